import type { ObjectLifecycle } from '../object-lifecycle.ts';
import { dialectOf, type SqlDb } from './sql-db.ts';

const RELEASE = 'INSERT INTO object_releases (object_id, released_at, released_by_job) VALUES (?, ?, ?) ON CONFLICT DO NOTHING';
const ANY_RELEASED =
  'SELECT 1 AS one FROM object_releases r CROSS JOIN objects o WHERE o.id = r.object_id AND o.deleted_at IS NULL LIMIT 1';
const MARK_DELETED = 'UPDATE objects SET deleted_at = ? WHERE id = ?';

/** Released objects and their collection, in the index's database. */
export class SqlObjectLifecycle implements ObjectLifecycle {
  private readonly db: SqlDb;
  private readonly collectable: string;

  constructor(db: SqlDb) {
    this.db = db;
    const d = dialectOf(db.dialect);
    // CROSS JOIN keeps the (few) releases as the outer loop: left to choose, SQLite scanned every
    // object and ran the subqueries for each, after every job (measured: a fifth of the main thread).
    this.collectable = `SELECT o.id, o.path FROM object_releases r CROSS JOIN objects o
      WHERE o.id = r.object_id AND o.deleted_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.object_id = o.id)
        AND NOT EXISTS (SELECT 1 FROM arrivals a WHERE a.object_id = o.id AND a.processed_at IS NULL)
        AND NOT EXISTS (
          SELECT 1 FROM arrivals a JOIN jobs j ON j.status IN ('queued', 'running')
            AND EXISTS (SELECT 1 FROM ${d.jsonElements('j.inputs', 'e')} WHERE e.value = a.id)
          WHERE a.object_id = o.id)
        AND NOT EXISTS (
          SELECT 1 FROM arrivals a JOIN trigger_group_members m ON m.arrival_id = a.id
            JOIN trigger_groups g ON g.id = m.group_id AND g.state = 'open'
          WHERE a.object_id = o.id)`;
  }

  async releaseObjects(objectIds: string[], jobId: string): Promise<void> {
    const now = new Date().toISOString();
    await this.db.transaction(async (tx) => {
      for (const id of objectIds) await tx.run(RELEASE, id, now, jobId);
    });
  }

  async hasReleasedObjects(): Promise<boolean> {
    return (await this.db.get(ANY_RELEASED)) !== undefined;
  }

  collectableObjects(): Promise<{ id: string; path: string }[]> {
    // A scan over the unfinished jobs: off the event loop.
    return this.db.read<{ id: string; path: string }>(this.collectable);
  }

  async markObjectDeleted(objectId: string): Promise<void> {
    await this.db.run(MARK_DELETED, new Date().toISOString(), objectId);
  }
}
