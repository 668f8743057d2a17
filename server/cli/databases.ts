import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { TransferRequest, TransferResult } from '../../core/store/index-store.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { Users } from '../../core/users.ts';
import { findStudyUids, retrieveWithGet } from '../dimse/get-scu.ts';
import { tlsOptionsForNode } from '../dimse/store-scu.ts';
import { openStandaloneReceiver } from './standalone-receiver.ts';

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
export async function transferCommand(config: ResolvedConfig, c: TransferCommand): Promise<TransferResult> {
  for (const db of [c.from, c.to]) {
    if (!config.databases.some((d) => d.name === db))
      throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${db}" (configured: ${config.databases.map((d) => d.name).join(', ')})`);
  }
  if (c.from === c.to) throw dfError('DF_ERR_USAGE', 'source and target database are the same');
  const users = new Users(config.users);
  users.requireRole(c.user, ['admin', 'manager']);
  users.require(c.user, c.mode === 'move' ? 'write' : 'read', c.from);
  users.require(c.user, 'write', c.to);
  const index = new SqlIndex(await openIndexDatabase(config, { existing: true }));
  try {
    return await index.transfer({
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
    await index.close();
  }
}

/**
 * `dicomflow replicate --from-node AE --to DB (--study UID | --series UID)`: copies from a remote
 * DICOM node with C-GET, the objects arriving through the same spool → arrival → pipelines path,
 * with the initiating user as creator ("user (replication from AE)").
 */
export async function replicateFromNode(
  config: ResolvedConfig,
  c: { node: string; to: string; level: 'study' | 'series' | 'patient' | 'all'; uid?: string; studyUid?: string; user: string },
): Promise<{ status: number; completed: number; failed: number; warnings: number }> {
  if (!config.databases.some((d) => d.name === c.to)) throw dfError('DF_ERR_DATABASE_UNKNOWN', `no database "${c.to}"`);
  const node = config.remoteNodes.find((n) => n.aeTitle === c.node);
  if (!node)
    throw dfError(
      'DF_ERR_USAGE',
      `no remote node "${c.node}" in remoteNodes (configured: ${config.remoteNodes.map((n) => n.aeTitle).join(', ') || 'none'})`,
    );
  const users = new Users(config.users);
  users.requireRole(c.user, ['admin', 'manager']);
  users.require(c.user, 'write', c.to);
  const { receiver, close } = await openStandaloneReceiver(config);
  try {
    const address = {
      host: node.host,
      port: node.port,
      callingAeTitle: config.dimse.aeTitle,
      calledAeTitle: node.aeTitle,
      tls: tlsOptionsForNode(node),
    };
    // A patient or a whole node goes study by study: C-FIND lists them, C-GET fetches each.
    const identifiers: Record<string, string>[] =
      c.level === 'study'
        ? [{ QueryRetrieveLevel: 'STUDY', StudyInstanceUID: c.uid! }]
        : c.level === 'series'
          ? [{ QueryRetrieveLevel: 'SERIES', ...(c.studyUid ? { StudyInstanceUID: c.studyUid } : {}), SeriesInstanceUID: c.uid! }]
          : (await findStudyUids({ ...address, patientId: c.level === 'patient' ? c.uid : undefined })).map((uid) => ({
              QueryRetrieveLevel: 'STUDY',
              StudyInstanceUID: uid,
            }));
    const total = { status: 0, completed: 0, failed: 0, warnings: 0 };
    for (const identifier of identifiers) {
      const r = await retrieveWithGet({
        ...address,
        identifier,
        receiver,
        provenance: { source: 'replication', database: c.to, createdBy: `${c.user} (replication from ${c.node})`, userName: c.user },
      });
      total.completed += r.completed;
      total.failed += r.failed;
      total.warnings += r.warnings;
      if (r.status !== 0) total.status = r.status;
    }
    return total;
  } finally {
    await close();
  }
}
