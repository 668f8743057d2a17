import { randomUUID } from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { dfError } from '../../core/errors.ts';
// Imported here (not only inside tasks) so sharp is loaded on the main thread: see image-export.ts.
import { safeFileStem, type ExportedImage, type ExportImagesTask } from '../../core/dicom/image-export.ts';
import { windowOptionSchema, type WindowChoice } from '../../core/dicom/render.ts';
import { engineServices } from '../../core/jobs/services.ts';
import { definePlugin, type StepContext, type StepInput } from '../../core/plugin.ts';
import { FINAL_JOB_STATES, IppClient, type IppJob } from './ipp.ts';
import { buildReportPdf, type ReportImage } from './report-pdf.ts';

const IMAGE_FILE = /\.(jpe?g|png)$/i;
const exportModule = new URL('../../core/dicom/image-export.ts', import.meta.url).href;

/** One row of the print-jobs table. */
export type PrintJobRow = {
  printer: string;
  uri: string;
  jobId: number;
  jobName: string;
  jobState: string;
  jobStateReasons: string;
  document: string;
  images: number;
  /** True when an earlier attempt of this job had already sent it (found by job name). */
  resumed: boolean;
};

/**
 * Lays the images of a job out on a report page (PDF) with patient, study, series and institution,
 * and prints it on a configured IPP printer, waiting for the printer to report the job done.
 *
 * Runs on the main thread: it needs the configured printers (engine services) and mostly waits on
 * the network. Images come from an earlier step (convert-image's files), or are rendered from
 * the instances in the worker pool (ctx.runTask), so no pixel work blocks the event loop.
 */
export default definePlugin({
  name: 'print-report',
  version: '1.0.0',
  description: 'Lay the images out on a PDF report page with patient/study/series identification and print it on a configured IPP printer.',
  runsIn: 'main',
  usesPool: true,
  consumes: ['instances'],
  produces: ['files', 'tables'],
  defaultTimeoutSeconds: 300,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      title: { type: 'string', minLength: 1, maxLength: 200, default: 'DICOM images', description: 'Heading of the report page.' },
      printer: {
        type: 'string',
        minLength: 1,
        description: 'Name of a printer in the configuration’s "printers"; without it the PDF is only written.',
      },
      images: {
        enum: ['auto', 'previous-step', 'instances'],
        default: 'auto',
        description:
          '"previous-step": the JPEG/PNG files earlier steps emitted (convert-image); "instances": render the instances here; "auto": the former when there are any.',
      },
      window: { ...windowOptionSchema, description: `When rendering the instances: ${windowOptionSchema.description}` },
      frames: {
        enum: ['all', 'middle', 'first'],
        default: 'middle',
        description: 'When rendering the instances: which frames of a multi-frame object.',
      },
      columns: { type: 'integer', minimum: 1, maximum: 8, default: 2 },
      rows: { type: 'integer', minimum: 1, maximum: 10, default: 3 },
      pageSize: { enum: ['A4', 'LETTER'], default: 'A4' },
      landscape: { type: 'boolean', default: false },
      fileName: {
        type: 'string',
        pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,100}\\.pdf$',
        default: 'report.pdf',
        description: 'Name of the PDF in the job’s output directory.',
      },
      afterPrinting: {
        enum: ['keep', 'delete'],
        default: 'keep',
        description: '"delete": once the printer reports the job completed, delete the image files taken from earlier steps.',
      },
      waitSeconds: {
        type: 'integer',
        minimum: 1,
        maximum: 3600,
        default: 120,
        description: 'How long to wait for the printer to complete the job before the step fails.',
      },
    },
  },
  check(options, env) {
    const printers = env.printers ?? [];
    if (options.printer !== undefined && !printers.includes(options.printer)) {
      return [{ pointer: '/printer', message: `unknown printer "${options.printer}" (configured: ${printers.join(', ') || 'none'})` }];
    }
    return [];
  },
  async run(ctx, options) {
    const printer = options.printer === undefined ? undefined : printerOf(ctx, options.printer);

    // 1. The images: an earlier step's files, or rendered here in the pool.
    const fromEarlier = options.images === 'instances' ? [] : earlierImages(ctx);
    if (options.images === 'previous-step' && fromEarlier.length === 0)
      ctx.log.warn('no image files from earlier steps: the report has no images');
    const images =
      fromEarlier.length > 0 || options.images === 'previous-step'
        ? fromEarlier
        : await renderInstances(ctx, options.window as WindowChoice, options.frames);
    const embedded: ReportImage[] = [];
    for (const image of images) embedded.push({ bytes: await fsp.readFile(image.file), caption: image.caption });
    ctx.progress(0.4, `${embedded.length} image(s)`);

    // 2. The PDF, written whole under a fixed name (a rerun overwrites it).
    const pdf = await buildReportPdf(
      { title: options.title, identification: identification(ctx), images: embedded, subject: `dicomflow job ${ctx.job.id}` },
      { pageSize: options.pageSize, landscape: options.landscape, columns: options.columns, rows: options.rows },
    );
    const file = path.join(ctx.outputDir, options.fileName);
    const tmp = `${file}.${randomUUID()}.tmp`;
    await fsp.writeFile(tmp, pdf);
    await fsp.rename(tmp, file);
    ctx.emitFile(file, `Report "${options.title}" (${embedded.length} image(s))`);
    ctx.log.info(`report written: ${file} (${embedded.length} image(s), ${pdf.length} bytes)`);
    ctx.progress(0.5, 'report written');
    if (!printer) return;

    // 3. Print, then wait for the printer's verdict.
    const client = new IppClient(printer.uri);
    const jobName = `dicomflow ${ctx.job.id} ${ctx.step.id}`;
    // At least once: a rerun after a crash must not print the page twice. The job name is the same
    // on every attempt; a job of that name that did not fail is the one to follow.
    const earlier = (await client.getJobs(ctx.signal).catch(() => [] as IppJob[])).find(
      (j) => j.name === jobName && j.state !== 'aborted' && j.state !== 'canceled',
    );
    let job = earlier ?? (await client.printJob(pdf, 'application/pdf', jobName, ctx.signal));
    ctx.log.info(`${earlier ? 'found the job an earlier attempt sent' : 'sent'} to ${printer.name}: IPP job ${job.jobId} (${job.state})`, {
      printer: printer.name,
      jobId: job.jobId,
      state: job.state,
    });
    const deadline = Date.now() + options.waitSeconds * 1000;
    while (!FINAL_JOB_STATES.has(job.state)) {
      if (Date.now() >= deadline) {
        recordJob(ctx, printer, job, jobName, file, embedded.length, Boolean(earlier));
        throw dfError(
          'DF_ERR_PRINT_TIMEOUT',
          `IPP job ${job.jobId} on ${printer.name} is still ${job.state} (${job.reasons.join(', ')}) after ${options.waitSeconds} s`,
        );
      }
      await sleep(1000, ctx.signal);
      job = await client.getJob(job.jobId, ctx.signal);
      ctx.progress(
        0.5 + 0.5 * Math.min(0.99, 1 - (deadline - Date.now()) / (options.waitSeconds * 1000)),
        `IPP job ${job.jobId}: ${job.state}`,
      );
    }
    recordJob(ctx, printer, job, jobName, file, embedded.length, Boolean(earlier));
    ctx.log.info(`IPP job ${job.jobId} on ${printer.name}: ${job.state} (${job.reasons.join(', ')})`, {
      printer: printer.name,
      jobId: job.jobId,
      state: job.state,
      reasons: job.reasons,
    });
    if (job.state !== 'completed') {
      throw dfError(
        'DF_ERR_PRINT_FAILED',
        `IPP job ${job.jobId} on ${printer.name} ended ${job.state} (${job.reasons.join(', ')}${job.message ? `: ${job.message}` : ''})`,
      );
    }

    // 4. PMOD: "the JPEGs kept or deleted after printing".
    if (options.afterPrinting === 'delete') {
      for (const image of fromEarlier) await fsp.rm(image.file, { force: true });
      ctx.log.info(`deleted ${fromEarlier.length} printed image file(s)`);
    }
    ctx.progress(1);
  },
});

function printerOf(ctx: StepContext, name: string): { name: string; uri: string } {
  const printer = engineServices(ctx.services).printers.find((p) => p.name === name);
  if (!printer) throw dfError('DF_ERR_PRINTER_UNKNOWN', `no printer "${name}" in the configuration's "printers"`);
  return printer;
}

function recordJob(
  ctx: StepContext,
  printer: { name: string; uri: string },
  job: IppJob,
  jobName: string,
  document: string,
  images: number,
  resumed: boolean,
): void {
  const row: PrintJobRow = {
    printer: printer.name,
    uri: printer.uri,
    jobId: job.jobId,
    jobName,
    jobState: job.state,
    jobStateReasons: job.reasons.join(','),
    document,
    images,
    resumed,
  };
  ctx.emitTable('print-jobs', [row], 'IPP print job of the report');
}

interface PlacedImage {
  file: string;
  caption: string;
}

/** Where an instance goes on the page: series by number, then instance by number (what the reader counts by). */
function instanceOrder(attributes: Record<string, string> | undefined): [number, number] {
  const n = (v: string | undefined) => (v !== undefined && Number.isFinite(Number(v)) ? Number(v) : Number.MAX_SAFE_INTEGER);
  return [n(attributes?.SeriesNumber), n(attributes?.InstanceNumber)];
}

function byInstanceOrder<T>(items: T[], key: (item: T) => [number, number, number]): T[] {
  return items
    .map((item, index) => ({ item, index, k: key(item) }))
    .sort((a, b) => a.k[0] - b.k[0] || a.k[1] - b.k[1] || a.k[2] - b.k[2] || a.index - b.index)
    .map((x) => x.item);
}

/**
 * Image files emitted by earlier steps, in instance order (series number, instance number,
 * frame; as emitted where those are unknown), captioned from an images table when there is one.
 */
function earlierImages(ctx: StepContext): PlacedImage[] {
  const rows = new Map<string, Record<string, unknown>>();
  for (const output of ctx.previousOutputs) {
    if (output.kind !== 'table') continue;
    for (const row of output.rows ?? []) if (typeof row.file === 'string') rows.set(row.file, row);
  }
  const inputs = new Map(ctx.inputs.map((i) => [i.sopInstanceUid, i]));
  const seen = new Set<string>();
  const out: (PlacedImage & { order: [number, number, number] })[] = [];
  for (const output of ctx.previousOutputs) {
    if (output.kind !== 'file' || !output.path || !IMAGE_FILE.test(output.path) || seen.has(output.path)) continue;
    seen.add(output.path);
    const row = rows.get(output.path);
    const input = typeof row?.sopInstanceUid === 'string' ? inputs.get(row.sopInstanceUid) : undefined;
    const caption = captionOf(row && { ...row, instanceNumber: input?.attributes.InstanceNumber }) ?? path.basename(output.path);
    out.push({ file: output.path, caption, order: [...instanceOrder(input?.attributes), Number(row?.frame) || 1] });
  }
  return byInstanceOrder(out, (i) => i.order).map(({ file, caption }) => ({ file, caption }));
}

async function renderInstances(ctx: StepContext, window: WindowChoice, frames: 'all' | 'middle' | 'first'): Promise<PlacedImage[]> {
  const outDir = path.join(ctx.scratchDir, 'images');
  const unique = byInstanceOrder([...new Map(ctx.inputs.map((i) => [i.sopInstanceUid, i])).values()], (i) => [
    ...instanceOrder(i.attributes),
    0,
  ]);
  let done = 0;
  const rendered = await Promise.all(
    unique.map(async (input) => {
      const task: ExportImagesTask = {
        file: input.path,
        outDir,
        baseName: safeFileStem(input.sopInstanceUid, input.objectId),
        format: 'jpeg',
        quality: 92,
        window,
        frames,
        pngBitDepth: 8,
      };
      try {
        const images = await ctx.runTask<ExportedImage[]>(exportModule, 'exportImages', task);
        return images.map((image) => ({ file: image.path, caption: captionOfInput(input, image) }));
      } catch (err) {
        // Objects without pixels (a report, a presentation state) are not on the page.
        if ((err as { notAnImage?: boolean }).notAnImage || /no Pixel Data/.test((err as Error).message)) return [];
        throw err;
      } finally {
        ctx.progress((0.4 * ++done) / unique.length, 'rendering');
      }
    }),
  );
  return rendered.flat();
}

function captionOf(row: Record<string, unknown> | undefined): string | undefined {
  if (!row) return undefined;
  const parts = [
    row.seriesNumber ? `S${row.seriesNumber}` : undefined,
    typeof row.seriesDescription === 'string' && row.seriesDescription ? row.seriesDescription : undefined,
    row.instanceNumber !== undefined && row.instanceNumber !== null && row.instanceNumber !== '' ? `#${row.instanceNumber}` : undefined,
    Number(row.numberOfFrames) > 1 ? `frame ${row.frame}` : undefined,
    row.windowWidth !== null && row.windowWidth !== undefined ? `W ${round(row.windowCenter)}/${round(row.windowWidth)}` : undefined,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(' · ') : undefined;
}

function captionOfInput(input: StepInput, image: ExportedImage): string {
  return (
    captionOf({
      seriesNumber: input.attributes.SeriesNumber,
      seriesDescription: input.attributes.SeriesDescription,
      instanceNumber: input.attributes.InstanceNumber,
      frame: image.frame,
      numberOfFrames: image.numberOfFrames,
      windowCenter: image.window?.center,
      windowWidth: image.window?.width,
    }) ?? path.basename(image.path)
  );
}

const round = (v: unknown) => Number(Number(v).toPrecision(4));

/** PS3.5 6.2 PN: Family^Given^Middle^Prefix^Suffix, first (alphabetic) group only. */
export function personName(value: string | undefined): string {
  const [family = '', given = '', middle = '', prefix = '', suffix = ''] = (value ?? '')
    .split('=')[0]
    .split('^')
    .map((s) => s.trim());
  const rest = [prefix, given, middle].filter(Boolean).join(' ');
  return [family, rest].filter(Boolean).join(', ') + (suffix ? `, ${suffix}` : '');
}

/** DA YYYYMMDD → YYYY-MM-DD (anything else as it is). */
export function dicomDate(value: string | undefined): string {
  return value && /^\d{8}$/.test(value) ? `${value.slice(0, 4)}-${value.slice(4, 6)}-${value.slice(6, 8)}` : (value ?? '');
}

function identification(ctx: StepContext): [string, string][] {
  const first = ctx.inputs[0]?.attributes ?? {};
  const distinct = (f: (a: Record<string, string>) => string | undefined) => [
    ...new Set(ctx.inputs.map((i) => f(i.attributes)).filter((v): v is string => Boolean(v))),
  ];
  const patients = distinct((a) => a.PatientID);
  const series = [...new Map(ctx.inputs.map((i) => [i.seriesInstanceUid ?? '', i.attributes])).values()].map((a) =>
    [a.SeriesNumber, a.SeriesDescription, a.Modality ? `(${a.Modality})` : undefined].filter(Boolean).join(' '),
  );
  const printed = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  const rows: [string, string][] = [
    ['Patient', `${personName(first.PatientName)}${patients.length > 1 ? ` (and ${patients.length - 1} other patient(s))` : ''}`],
    ['Patient ID', patients.join(', ')],
    ['Birth date', dicomDate(first.PatientBirthDate)],
    [
      'Study',
      [dicomDate(first.StudyDate), first.StudyDescription, first.AccessionNumber ? `accession ${first.AccessionNumber}` : undefined]
        .filter(Boolean)
        .join('  '),
    ],
    ['Series', series.join('; ')],
    ['Institution', distinct((a) => a.InstitutionName).join(', ')],
    [
      'Printed',
      `${printed.getFullYear()}-${pad(printed.getMonth() + 1)}-${pad(printed.getDate())} ${pad(printed.getHours())}:${pad(printed.getMinutes())} (dicomflow job ${ctx.job.id})`,
    ],
  ];
  // A row with no value (no institution recorded, say) is left out, not printed empty.
  return rows.filter(([, value]) => value.trim() !== '');
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
