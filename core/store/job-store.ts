import type { ArrivalQueue } from './arrival-queue.ts';
import type { JobQueue } from './job-queue.ts';
import type { ObjectLifecycle } from './object-lifecycle.ts';
import type { TriggerGroups } from './trigger-groups.ts';

/**
 * The engine's durable stores, one per stage of the flow (arrivals → trigger groups → job
 * queue → object lifecycle), as the wiring hands them out. SQL implements each on SQLite or
 * PostgreSQL (core/store/sql/sql-{arrival-queue,trigger-groups,job-queue,object-lifecycle}.ts).
 */
export interface JobStores {
  arrivals: ArrivalQueue;
  groups: TriggerGroups;
  queue: JobQueue;
  lifecycle: ObjectLifecycle;
}
