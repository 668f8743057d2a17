import type { DuplicatePolicy, IndexStore } from '../store/index-store.ts';
import type { JobStore } from './job-store.ts';

/** What main-thread steps may use (ctx.services). Worker steps get none: they work on files. */
export interface EngineServices {
  index: IndexStore;
  jobs: JobStore;
  databases: string[];
  defaultDatabase: string;
  duplicatePolicy: DuplicatePolicy;
}

export function engineServices(services: unknown): EngineServices {
  if (!services) throw new Error('this step must run on the main thread (runsIn: "main")');
  return services as EngineServices;
}
