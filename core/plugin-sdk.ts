/**
 * What a plugin package imports: `import { definePlugin } from 'dicomflow/plugin'` (the package's
 * "exports"). The step contract and the types of everything a step is handed; nothing here
 * reaches into the engine.
 */
export { definePlugin } from './plugin.ts';
export type {
  JobInfo,
  NodeInfo,
  OutputKind,
  PluginDefinition,
  PluginKind,
  StepContext,
  StepInput,
  StepLogger,
  StepOutput,
} from './plugin.ts';
export { engineServices, type EngineServices } from './jobs/services.ts';
export type { DuplicatePolicy, IndexStore } from './store/index-store.ts';
export type { JobQueue } from './store/job-queue.ts';
export type { ObjectLifecycle } from './store/object-lifecycle.ts';
export type { OutboxStore } from './store/outbox-store.ts';
export type { PseudonymStore } from './store/pseudonym-store.ts';
