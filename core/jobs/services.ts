import type { DuplicatePolicy, IndexStore } from '../store/index-store.ts';
import type { OutboxStore } from '../store/outbox-store.ts';
import type { PseudonymStore } from '../store/pseudonym-store.ts';
import type { JobQueue } from '../store/job-queue.ts';
import type { ObjectLifecycle } from '../store/object-lifecycle.ts';

/** What main-thread steps may use (ctx.services). Worker steps get none: they work on files. */
export interface EngineServices {
  index: IndexStore;
  /** The job queue (a step reads the inputs of the instances it stored). */
  jobs: JobQueue;
  /** Objects a step no longer needs filed (delete-source, a duplicate kept out) are released here. */
  lifecycle: ObjectLifecycle;
  databases: string[];
  defaultDatabase: string;
  duplicatePolicy: DuplicatePolicy;
  /** The routing outbox (the route step queues into it; server/route delivers). */
  outbox: OutboxStore;
  /** AE titles of remoteNodes: the destinations the outbox delivers to. */
  remoteNodes: string[];
  /** The configured printers (the print-report step prints to them by name). */
  printers: { name: string; uri: string }[];
  /** The deidentify step's pseudonym table and installation secret. */
  pseudonyms?: PseudonymStore;
}

/** ctx.services, or a clear error when the step ran in a worker (which gets none). */
export function engineServices(services: EngineServices | undefined): EngineServices {
  if (!services) throw new Error('this step must run on the main thread (runsIn: "main")');
  return services;
}
