import type { JobStores } from '../job-store.ts';
import { JobInserts } from './job-sql.ts';
import { SqlArrivalQueue } from './sql-arrival-queue.ts';
import type { SqlDb } from './sql-db.ts';
import { SqlJobQueue } from './sql-job-queue.ts';
import { SqlObjectLifecycle } from './sql-object-lifecycle.ts';
import { SqlTriggerGroups } from './sql-trigger-groups.ts';

/**
 * The engine's stores on one database: arrivals, trigger groups, the job queue and the object
 * lifecycle. One JobInserts between them, so a pipeline version kept by any is known to all.
 */
export function sqlJobStores(db: SqlDb): JobStores {
  const inserts = new JobInserts();
  const groups = new SqlTriggerGroups(db, inserts);
  return {
    arrivals: new SqlArrivalQueue(db, inserts, groups),
    groups,
    queue: new SqlJobQueue(db, inserts),
    lifecycle: new SqlObjectLifecycle(db),
  };
}
