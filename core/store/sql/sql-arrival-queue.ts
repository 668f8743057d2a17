import type { ArrivalQueue, ArrivalScope } from '../arrival-queue.ts';
import type { ArrivalRecord } from '../index-store.ts';
import type { NewJob } from '../job-queue.ts';
import type { GroupJoin } from '../trigger-groups.ts';
import { toArrivalRecord } from './sql-index.ts';
import type { SqlDb } from './sql-db.ts';
import type { JobInserts } from './job-sql.ts';
import type { SqlTriggerGroups } from './sql-trigger-groups.ts';

const UNPROCESSED =
  'SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id WHERE a.processed_at IS NULL ORDER BY a.id LIMIT ?';
const UNPROCESSED_OF_NODE = `SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id
  WHERE a.processed_at IS NULL AND (o.node = ? OR o.node IS NULL OR a.received_at < ?) ORDER BY a.id LIMIT ?`;
const MARK_PROCESSED = 'UPDATE arrivals SET processed_at = ? WHERE id = ? AND processed_at IS NULL';

/** The arrival queue in the index's database, beside the arrivals the receiver commits. */
export class SqlArrivalQueue implements ArrivalQueue {
  private readonly db: SqlDb;
  private readonly inserts: JobInserts;
  private readonly groups: SqlTriggerGroups;

  constructor(db: SqlDb, inserts: JobInserts, groups: SqlTriggerGroups) {
    this.db = db;
    this.inserts = inserts;
    this.groups = groups;
  }

  async unprocessedArrivals(limit: number, scope?: ArrivalScope): Promise<ArrivalRecord[]> {
    const rows = scope
      ? await this.db.all(UNPROCESSED_OF_NODE, scope.node, scope.orphanedBefore, limit)
      : await this.db.all(UNPROCESSED, limit);
    return rows.map(toArrivalRecord);
  }

  recordTriggerDecisions(arrivalId: string, receivedAt: string, jobs: NewJob[], joins: GroupJoin[]): Promise<string[]> {
    return this.inserts.transaction(this.db, async (tx, insert) => {
      const processed = await tx.run(MARK_PROCESSED, new Date().toISOString(), arrivalId);
      // Processed already (by another node, or before a crash): the decisions were made then.
      if (processed.changes === 0) return [];
      const ids: string[] = [];
      for (const job of jobs) ids.push(await insert(job));
      for (const join of joins) await this.groups.join(tx, arrivalId, receivedAt, join);
      if (ids.length > 0 || joins.length > 0) tx.notify('jobs');
      return ids;
    });
  }
}
