import type { LoadedPipeline } from '../pipeline/load.ts';
import type { ArrivalRecord } from '../store/index-store.ts';

/** Whether a pipeline's trigger takes this arrival. */
export function pipelineTakes(p: LoadedPipeline, arrival: ArrivalRecord): boolean {
  const t = p.definition.trigger;
  if (arrival.source === 'pipeline' && !t.includePipelineOutput) return false;
  if (arrival.outcome === 'duplicate-rejected' && !t.includeDuplicates) return false;
  return p.when({ ...arrival, source: arrival.source });
}
