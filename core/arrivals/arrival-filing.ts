import type { LoadedPipeline } from '../pipeline/load.ts';
import type { ArrivalFilingDecision, ArrivalRecord, DuplicatePolicy } from '../store/index-store.ts';
import { pipelineTakes } from '../trigger/pipeline-takes.ts';

/**
 * Filing on arrival. A pipeline that only files each arrival (one `store` step of the built-in
 * plugin, triggered per instance, as the default "store-received") does its filing in the
 * arrival's own commit instead of a job per instance: no queue entry, no job rows, and the
 * object is in its database (visible to C-FIND) before the sender is answered. Pipelines that
 * process (any other step, or a series/study trigger) still get jobs.
 */

/** What a filing-only pipeline files with (its database and duplicate policy, if set); else undefined. */
export function filingOnly(p: LoadedPipeline): { database?: string; duplicatePolicy?: DuplicatePolicy } | undefined {
  if (p.definition.trigger.on !== 'instance' || p.steps.length !== 1) return undefined;
  const [step] = p.steps;
  const builtInStore = step.registered.plugin.name === 'store' && step.registered.moduleUrl.endsWith('/plugins/store/index.ts');
  if (!builtInStore || step.options.objects === 'emitted') return undefined;
  return step.options as { database?: string; duplicatePolicy?: DuplicatePolicy };
}

/**
 * The first filing-only pipeline that takes the arrival files it; the arrival is settled
 * (processed in the same commit) when no other pipeline takes it.
 */
export function filingOnArrival(
  enabled: readonly LoadedPipeline[],
  arrival: ArrivalRecord,
  defaults: { defaultDatabase: string; duplicatePolicy: DuplicatePolicy },
): ArrivalFilingDecision | undefined {
  let filing: ArrivalFilingDecision | undefined;
  let others = false;
  for (const p of enabled) {
    if (!pipelineTakes(p, arrival)) continue;
    const store = filing ? undefined : filingOnly(p);
    if (!store) {
      others = true;
      continue;
    }
    filing = {
      pipeline: p.definition.name,
      database: store.database ?? arrival.database ?? defaults.defaultDatabase,
      policy: store.duplicatePolicy ?? defaults.duplicatePolicy,
      settled: false,
    };
  }
  if (filing) filing.settled = !others;
  return filing;
}
