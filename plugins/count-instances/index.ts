import fs from 'node:fs';
import path from 'node:path';
import { definePlugin, type StepInput } from '../../core/plugin.ts';

/** One row of the table: a series and what the job received of it (a type, not an interface: rows are records). */
export type SeriesCount = {
  studyInstanceUid: string | null;
  seriesInstanceUid: string | null;
  seriesNumber: string | null;
  modality: string | null;
  seriesDescription: string | null;
  /** Distinct SOP Instance UIDs. */
  instances: number;
  /** Arrivals: more than instances when an object was sent again. */
  arrivals: number;
  /** Size of the stored files, one per distinct instance. */
  bytes: number;
};

/**
 * Counts the job's instances per series and emits the counts as a table (and, on request, as a
 * CSV file). The example of docs/plugins.md: a complete worker step in one small file.
 */
export default definePlugin({
  name: 'count-instances',
  version: '1.0.0',
  description: 'Count the instances of each series in the job’s inputs; emit a table (and optionally a CSV file).',
  runsIn: 'worker',
  consumes: ['instances'],
  produces: ['tables', 'files'],
  defaultTimeoutSeconds: 60,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      table: {
        type: 'string',
        pattern: '^[a-z0-9][a-z0-9-]*$',
        default: 'instances-per-series',
        description: 'Name of the emitted table (and of the CSV file, with .csv).',
      },
      csv: { type: 'boolean', default: false, description: 'Also write <table>.csv to the job’s output directory and emit it as a file.' },
    },
  },
  run(ctx, options) {
    const bySeries = new Map<string, { first: StepInput; uids: Set<string>; arrivals: number; bytes: number }>();
    ctx.inputs.forEach((input, i) => {
      const key = input.seriesInstanceUid ?? '';
      let entry = bySeries.get(key);
      if (!entry) {
        entry = { first: input, uids: new Set(), arrivals: 0, bytes: 0 };
        bySeries.set(key, entry);
      }
      entry.arrivals++;
      if (!entry.uids.has(input.sopInstanceUid)) {
        entry.uids.add(input.sopInstanceUid);
        entry.bytes += fs.statSync(input.path).size;
      }
      ctx.progress((i + 1) / ctx.inputs.length);
    });
    const rows: SeriesCount[] = [...bySeries.values()]
      .map(({ first, uids, arrivals, bytes }) => ({
        studyInstanceUid: first.studyInstanceUid ?? null,
        seriesInstanceUid: first.seriesInstanceUid ?? null,
        seriesNumber: first.attributes.SeriesNumber ?? null,
        modality: first.attributes.Modality ?? null,
        seriesDescription: first.attributes.SeriesDescription ?? null,
        instances: uids.size,
        arrivals,
        bytes,
      }))
      .sort((a, b) => `${a.studyInstanceUid}|${a.seriesInstanceUid}`.localeCompare(`${b.studyInstanceUid}|${b.seriesInstanceUid}`));
    ctx.emitTable(options.table, rows, 'Instances per series');
    ctx.log.info(`${ctx.inputs.length} input(s) in ${rows.length} series`);
    if (options.csv) {
      // Written whole on every attempt (never appended): a rerun after a crash leaves the same file.
      const file = path.join(ctx.outputDir, `${options.table}.csv`);
      fs.writeFileSync(file, toCsv(rows));
      ctx.emitFile(file, 'Instances per series (CSV)');
    }
  },
});

const columns: (keyof SeriesCount)[] = [
  'studyInstanceUid',
  'seriesInstanceUid',
  'seriesNumber',
  'modality',
  'seriesDescription',
  'instances',
  'arrivals',
  'bytes',
];

/** RFC 4180: every text field quoted, quotes doubled (a series description may hold anything). */
function toCsv(rows: SeriesCount[]): string {
  const cell = (v: unknown) => (typeof v === 'number' ? String(v) : v === null ? '' : `"${String(v).replace(/"/g, '""')}"`);
  return `${[columns.join(','), ...rows.map((r) => columns.map((c) => cell(r[c])).join(','))].join('\r\n')}\r\n`;
}
