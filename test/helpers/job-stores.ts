import type { ArrivalQueue } from '../../core/store/arrival-queue.ts';
import type { JobQueue } from '../../core/store/job-queue.ts';
import type { ObjectLifecycle } from '../../core/store/object-lifecycle.ts';
import type { SqlDb } from '../../core/store/sql/sql-db.ts';
import { sqlJobStores } from '../../core/store/sql/sql-job-stores.ts';
import type { TriggerGroups } from '../../core/store/trigger-groups.ts';

/** The four stages' stores on one database as one object: store tests walk a job through all of them. */
export type AllJobStores = ArrivalQueue & TriggerGroups & JobQueue & ObjectLifecycle;

export function allJobStores(db: SqlDb): AllJobStores {
  const { arrivals, groups, queue, lifecycle } = sqlJobStores(db);
  const all: Record<string, unknown> = {};
  for (const store of [arrivals, groups, queue, lifecycle] as object[]) {
    for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(store))) {
      const member = (store as Record<string, unknown>)[name];
      if (name !== 'constructor' && typeof member === 'function') all[name] = member.bind(store);
    }
  }
  return all as unknown as AllJobStores;
}
