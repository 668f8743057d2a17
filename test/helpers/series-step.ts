import path from 'node:path';
import type { StepContextSeed } from '../../core/jobs/step-context.ts';
import type { StepInput } from '../../core/plugin.ts';
import type { BuiltSeries } from '../fixtures/builder.ts';

/** A built series as a series-triggered job's inputs: one arrival per file, as the engine passes them. */
export function seriesStepInputs(series: BuiltSeries): StepInput[] {
  const receivedAt = new Date().toISOString();
  return series.files.map((file, i) => ({
    arrivalId: `a${i}`,
    objectId: `o${i}`,
    path: file,
    sopClassUid: series.sopClassUid,
    sopInstanceUid: series.sopInstanceUids[i],
    seriesInstanceUid: series.seriesInstanceUid,
    studyInstanceUid: series.studyInstanceUid,
    attributes: { Modality: series.modality },
    source: 'network',
    receivedAt,
  }));
}

/** The seed of one step of a job that a whole series triggered, its scratch and outputs under jobDir. */
export function seriesStepSeed(
  series: BuiltSeries,
  o: { jobId: string; pipeline: string; stepId: string; jobDir: string; node?: string },
): StepContextSeed {
  return {
    job: {
      id: o.jobId,
      pipeline: o.pipeline,
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'series', uid: series.seriesInstanceUid, callingAeTitles: [], peerAddresses: [] },
    },
    node: { name: o.node ?? 'test-node' },
    step: { id: o.stepId, index: 0 },
    inputs: seriesStepInputs(series),
    previousOutputs: [],
    scratchDir: path.join(o.jobDir, 'scratch'),
    outputDir: path.join(o.jobDir, 'outputs'),
  };
}
