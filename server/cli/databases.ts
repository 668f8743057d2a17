import path from 'node:path';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { TransferRequest, TransferResult } from '../../core/store/index-store.ts';
import { SqliteIndex } from '../../core/store/sqlite/sqlite-index.ts';
import { Users } from '../../core/users.ts';

export interface TransferCommand {
  mode: 'move' | 'copy' | 'replicate';
  from: string;
  to: string;
  level: TransferRequest['level'];
  uid?: string;
  user: string;
}

/**
 * `dicomflow move|copy|replicate`: between databases of this server, keeping the original bytes
 * and recording who did it (PMOD's ATL_Manager moving studies from Import into study databases).
 * Moving needs write on both databases; copying and replicating read on the source and write on
 * the target; all three need the manager or admin role.
 */
export function transferCommand(config: ResolvedConfig, c: TransferCommand): TransferResult {
  for (const db of [c.from, c.to]) {
    if (!config.databases.some((d) => d.name === db)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${db}" (configured: ${config.databases.map((d) => d.name).join(', ')})`);
  }
  if (c.from === c.to) throw dfError('DF_ERR_USAGE', 'source and target database are the same');
  const users = new Users(config.users);
  users.requireRole(c.user, ['admin', 'manager']);
  users.require(c.user, c.mode === 'move' ? 'write' : 'read', c.from);
  users.require(c.user, 'write', c.to);
  const index = new SqliteIndex(path.join(config.dataDir, 'index.sqlite'));
  try {
    return index.transfer({
      from: c.from,
      to: c.to,
      level: c.level,
      uid: c.uid,
      mode: c.mode === 'move' ? 'move' : 'copy',
      user: c.user,
      source: c.mode === 'replicate' ? 'replication' : 'move',
      // PMOD: a move or copy records the user; a replication "replication from X" by the user.
      createdBy: c.mode === 'replicate' ? `${c.user} (replication from ${c.from})` : c.user,
    });
  } finally {
    index.close();
  }
}
