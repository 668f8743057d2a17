import type { JobRecord } from '../../core/store/job-queue.ts';
import type { UserDefinition, Users } from '../../core/users.ts';

/** What decides who may see a job; it does not change once the job is made. */
export type JobAudience = Pick<JobRecord, 'createdBy' | 'inputs'> & {
  /** The databases its inputs were addressed to. */
  databases: string[];
};

/**
 * Jobs show what was received (logs, tables, UIDs, patient names in messages): a user sees the
 * jobs they made, those without inputs, and those with an input addressed to a database they
 * may read; admins see all. The same rule as the job list's (JobFilter.visibleTo).
 */
export function maySeeJob(users: Users, user: UserDefinition, job: JobAudience): boolean {
  if (user.role === 'admin' || job.createdBy === user.name || job.inputs.length === 0) return true;
  return job.databases.some((db) => users.may(user.name, 'read', db));
}

/**
 * An arrival carries patient attributes: it is shown to users who may read its database, and
 * one with no database recorded (rows from before databases) to admins only.
 */
export function maySeeArrival(users: Users, user: UserDefinition, database: string | undefined): boolean {
  if (user.role === 'admin') return true;
  return database !== undefined && users.may(user.name, 'read', database);
}
