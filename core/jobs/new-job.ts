import type { LoadedPipeline } from '../pipeline/load.ts';
import type { NewJob } from '../store/job-queue.ts';

/** A job of this pipeline version, its definition kept with it, with the version's priority and retry policy. */
export function newJobOf(p: LoadedPipeline, extra: Pick<NewJob, 'triggerOn' | 'triggerUid' | 'inputs'> & Partial<NewJob>): NewJob {
  return {
    pipeline: p.definition.name,
    pipelineHash: p.hash,
    pipelineDefinition: p.definitionJson,
    priority: p.definition.priority,
    maxAttempts: p.definition.retry.maxAttempts,
    backoffSeconds: p.definition.retry.backoffSeconds,
    ...extra,
  };
}
