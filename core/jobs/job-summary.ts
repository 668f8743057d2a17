import type { StepOutput } from '../plugin.ts';
import type { InputSeries, JobRecord, StepLogLine } from '../store/job-queue.ts';

/** One output of a job, numbered in step order: the number names it in the download URL. */
export type NumberedOutput = StepOutput & { index: number; step: string; attempt: number };

/** The attributes a person recognises a series by; the rest of the arrival's stay out of the summary. */
const SERIES_KEYS = [
  'PatientName',
  'PatientID',
  'StudyDate',
  'StudyDescription',
  'AccessionNumber',
  'Modality',
  'SeriesNumber',
  'SeriesDescription',
];

export interface JobSummary {
  inputs: { instances: number; series: (Omit<InputSeries, 'attributes'> & { attributes: Record<string, string> })[] };
  outputs: {
    /** Files (plots, reports, volumes): listed one by one. */
    files: { index: number; step: string; name: string; description?: string }[];
    /** Derived instances: counted per step and description, not listed. */
    instances: { count: number; groups: { step: string; description?: string; count: number; firstIndex: number }[] };
    tables: { index: number; step: string; name: string; rows: number }[];
  };
  log: { lines: number; levels: Record<StepLogLine['level'], number> };
}

export function numberedOutputs(job: JobRecord): NumberedOutput[] {
  return (job.steps ?? [])
    .flatMap((s) => s.outputs.map((o) => ({ ...o, step: s.id, attempt: s.attempt })))
    .map((o, index) => ({ ...o, index }));
}

const baseName = (p: string | undefined) => (p ?? '').split(/[\\/]/).pop() ?? '';

/**
 * What a job did, in a size a person can read whatever the number of its inputs: inputs per
 * series, files listed, derived instances counted, tables named, log lines counted by level.
 */
export function summariseJob(job: JobRecord, inputSeries: InputSeries[]): JobSummary {
  const outputs = numberedOutputs(job);
  const groups = new Map<string, JobSummary['outputs']['instances']['groups'][number]>();
  for (const o of outputs) {
    if (o.kind !== 'instance') continue;
    const key = `${o.step}\u0000${o.description ?? ''}`;
    const g = groups.get(key);
    if (g) g.count++;
    else groups.set(key, { step: o.step, ...(o.description ? { description: o.description } : {}), count: 1, firstIndex: o.index });
  }
  const levels: Record<StepLogLine['level'], number> = { debug: 0, info: 0, warn: 0, error: 0 };
  let lines = 0;
  for (const s of job.steps ?? []) {
    for (const l of s.log) {
      levels[l.level] = (levels[l.level] ?? 0) + 1;
      lines++;
    }
  }
  return {
    inputs: {
      instances: job.inputs.length,
      series: inputSeries.map((s) => ({
        ...s,
        attributes: Object.fromEntries(SERIES_KEYS.filter((k) => s.attributes[k] !== undefined).map((k) => [k, s.attributes[k]])),
      })),
    },
    outputs: {
      files: outputs
        .filter((o) => o.kind === 'file')
        .map((o) => ({
          index: o.index,
          step: o.step,
          name: o.name ?? baseName(o.path),
          ...(o.description ? { description: o.description } : {}),
        })),
      instances: { count: [...groups.values()].reduce((n, g) => n + g.count, 0), groups: [...groups.values()] },
      tables: outputs
        .filter((o) => o.kind === 'table')
        .map((o) => ({ index: o.index, step: o.step, name: o.name ?? `table ${o.index}`, rows: o.rows?.length ?? 0 })),
    },
    log: { lines, levels },
  };
}
