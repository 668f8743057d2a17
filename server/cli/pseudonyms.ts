import os from 'node:os';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { PseudonymKind, PseudonymRecord } from '../../core/store/pseudonym-store.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { SqlPseudonyms } from '../../core/store/sql/sql-pseudonyms.ts';
import { BOOTSTRAP_ADMIN, Users } from '../../core/users.ts';

const KINDS: readonly PseudonymKind[] = ['patient', 'study', 'series'];

/**
 * `dicomflow pseudonyms VALUE --user NAME`: the deidentify step's pseudonym table, looked up
 * either way (pseudonym or original). Reading it re-identifies people: the named user must be an
 * admin, and every lookup is written to the audit log with the OS user, whether it found rows or
 * not. Like `dicomflow token`, it works on the data directory itself.
 */
export async function lookupPseudonyms(config: ResolvedConfig, value: string, user: string, kind?: string): Promise<PseudonymRecord[]> {
  if (kind !== undefined && !KINDS.includes(kind as PseudonymKind))
    throw dfError('DF_ERR_USAGE', `--kind must be one of ${KINDS.join(', ')}, got "${kind}"`);
  const users = new Users(config.users.some((u) => u.name === BOOTSTRAP_ADMIN.name) ? config.users : [...config.users, BOOTSTRAP_ADMIN]);
  users.requireRole(user, ['admin']);
  const index = new SqlIndex(await openIndexDatabase(config));
  try {
    const rows = await new SqlPseudonyms(index.connection).find(value, kind as PseudonymKind | undefined);
    await index.recordAudit(`${os.userInfo().username} (command line) as ${user}`, 'pseudonym-read', {
      value,
      kind: kind ?? null,
      rows: rows.length,
    });
    return rows;
  } finally {
    await index.close();
  }
}
