import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineServices } from '../../core/jobs/services.ts';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput, StepOutput } from '../../core/plugin.ts';
import { PluginRegistry, type RegisteredPlugin } from '../../core/plugin-registry.ts';
import { ctSeries, secondaryCaptureRgb, type BuiltSeries } from '../../test/fixtures/builder.ts';
import { ippPrinterUnavailable, startIppPrinter, type IppPrinter } from '../../test/helpers/ipp-printer.ts';
import convertImage from '../convert-image/index.ts';
import plugin, { dicomDate, personName, type PrintJobRow } from './index.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-print-report-'));
const noPrinter = ippPrinterUnavailable();
let printer: IppPrinter | undefined;
let registry: PluginRegistry;
let registered: RegisteredPlugin;
let sc: BuiltSeries;
let ct: BuiltSeries;

beforeAll(async () => {
  registry = new PluginRegistry();
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  registry.register(convertImage, new URL('../convert-image/index.ts', import.meta.url).href);
  registered = registry.resolve('print-report@1')!;
  sc = await secondaryCaptureRgb(path.join(root, 'sc'), {
    count: 3,
    rows: 64,
    cols: 96,
    patientName: 'Doe^Jane',
    patientId: 'PAT-42',
    seriesNumber: 9,
  });
  ct = await ctSeries(path.join(root, 'ct'), { slices: 2, rows: 32, cols: 32, patientName: 'Doe^Jane', patientId: 'PAT-42' });
  if (!noPrinter) printer = await startIppPrinter();
}, 30_000);

afterAll(async () => {
  await printer?.stop();
  fs.rmSync(root, { recursive: true, force: true });
});

function inputsOf(series: BuiltSeries, description: string): StepInput[] {
  return series.files.map((file, i) => ({
    arrivalId: `${series.modality}-${i}`,
    objectId: `object-${series.modality}-${i}`,
    path: file,
    sopClassUid: series.sopClassUid,
    sopInstanceUid: series.sopInstanceUids[i],
    seriesInstanceUid: series.seriesInstanceUid,
    studyInstanceUid: series.studyInstanceUid,
    attributes: {
      PatientName: series.patientName,
      PatientID: series.patientId,
      PatientBirthDate: '19650412',
      StudyDate: series.studyDate,
      StudyDescription: 'REPORT IMAGES',
      AccessionNumber: 'ACC0000001',
      InstitutionName: 'Fixture General Hospital',
      SeriesNumber: String(series.seriesNumber),
      SeriesDescription: description,
      Modality: series.modality,
      InstanceNumber: String(i + 1),
    },
    source: 'network',
    receivedAt: new Date().toISOString(),
  }));
}

function seed(name: string, inputs: StepInput[], previousOutputs: StepOutput[] = [], index = 1): StepContextSeed {
  const jobDir = path.join(root, 'jobs', name);
  return {
    job: {
      id: `job-${name}`,
      pipeline: 'sc-print',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'series', callingAeTitles: [], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: index === 0 ? 'convert-image' : 'print-report', index },
    inputs,
    previousOutputs,
    scratchDir: path.join(jobDir, `scratch-${index}`),
    outputDir: path.join(jobDir, 'outputs'),
  };
}

function options(plugin: RegisteredPlugin, given: Record<string, unknown>): any {
  const o = structuredClone(given);
  expect(plugin.validateOptions(o), JSON.stringify(plugin.validateOptions.errors)).toBe(true);
  return o;
}

/** Step 1 of the PMOD pipeline: the Secondary Captures as JPEG into a folder. */
async function convertStep(name: string, inputs: StepInput[], folder: string): Promise<StepOutput[]> {
  const { ctx, effects } = createStepContext(seed(name, inputs, [], 0), new AbortController().signal, () => {});
  await convertImage.run(ctx, options(registry.resolve('convert-image@1')!, { folder }));
  return effects.outputs;
}

async function printStep(name: string, inputs: StepInput[], previous: StepOutput[], given: Record<string, unknown>) {
  const services = {
    printers: printer
      ? [
          { name: 'ward-printer', uri: printer.uri },
          { name: 'nowhere', uri: 'ipp://127.0.0.1:9/ipp/print' },
        ]
      : [],
  } as unknown as EngineServices;
  const { ctx, effects } = createStepContext(seed(name, inputs, previous), new AbortController().signal, () => {}, undefined, services);
  await plugin.run(ctx, options(registered, given));
  return effects;
}

// ---------------------------------------------------------------------------------------------
// Reading the PDF back, independently of pdfkit: its objects, its image XObjects and its text.

function pdfStreams(pdf: Buffer): { dict: string; data: Buffer }[] {
  const out: { dict: string; data: Buffer }[] = [];
  const text = pdf.toString('latin1');
  const re = /<<((?:(?!>>\s*stream)[\s\S])*)>>\s*stream\r?\n/g;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    const start = m.index + m[0].length;
    const length = Number(/\/Length (\d+)/.exec(m[1])?.[1]);
    out.push({ dict: m[1], data: pdf.subarray(start, start + length) });
  }
  return out;
}

/** Text drawn with the standard fonts: pdfkit writes WinAnsi codes as hex strings in TJ arrays. */
function pdfText(pdf: Buffer): string {
  return pdfStreams(pdf)
    .filter((s) => !/\/Subtype \/Image/.test(s.dict))
    .map((s) => (/\/FlateDecode/.test(s.dict) ? zlib.inflateSync(s.data) : s.data).toString('latin1'))
    .flatMap((content) =>
      [...content.matchAll(/\[([^\]]*)\] TJ/g)].map((m) =>
        [...m[1].matchAll(/<([0-9a-f]*)>/gi)].map((h) => Buffer.from(h[1], 'hex').toString('latin1')).join(''),
      ),
    )
    .join('\n');
}

function expectValidPdf(pdf: Buffer, pages: number): void {
  expect(pdf.subarray(0, 5).toString()).toBe('%PDF-');
  expect(pdf.subarray(-6).toString()).toMatch(/%%EOF\s*$/);
  expect(pdf.toString('latin1').match(/\/Type \/Page\b/g)).toHaveLength(pages);
  // poppler, when the machine has it, must read it too.
  const pdfinfo = spawnSync('pdfinfo', ['-'], { input: pdf });
  if (!pdfinfo.error) {
    expect(pdfinfo.status, pdfinfo.stderr.toString()).toBe(0);
    expect(pdfinfo.stdout.toString()).toMatch(new RegExp(`Pages:\\s+${pages}\\b`));
  }
}

describe('print-report', () => {
  it('lays out the JPEGs of the convert-image step, embedded byte for byte, with the identification', async () => {
    const inputs = inputsOf(sc, 'Screen capture');
    const previous = await convertStep('layout', inputs, path.join(root, 'jpeg-layout'));
    const jpegs = previous.filter((o) => o.kind === 'file').map((o) => fs.readFileSync(o.path!));
    expect(jpegs).toHaveLength(3);
    const effects = await printStep('layout', inputs, previous, { title: 'Secondary captures', columns: 2, rows: 1 });
    const file = path.join(seed('layout', inputs).outputDir, 'report.pdf');
    expect(effects.outputs).toEqual([{ kind: 'file', path: file, description: 'Report "Secondary captures" (3 image(s))' }]);
    const pdf = fs.readFileSync(file);
    // Three images, two per page.
    expectValidPdf(pdf, 2);
    const images = pdfStreams(pdf).filter((s) => /\/Subtype \/Image/.test(s.dict));
    expect(images.map((s) => /\/Filter \/DCTDecode/.test(s.dict))).toEqual([true, true, true]);
    expect(images.map((s) => s.data)).toEqual(jpegs);
    const text = pdfText(pdf);
    for (const expected of [
      'Secondary captures',
      'Doe, Jane',
      'PAT-42',
      '1965-04-12',
      '2024-03-15',
      'REPORT IMAGES',
      'accession ACC0000001',
      '9 Screen capture (OT)',
      'Fixture General Hospital',
      'dicomflow job job-layout',
      'S9 · Screen capture',
      'page 2 of 2',
    ]) {
      expect(text).toContain(expected);
    }
    // Without a printer, nothing else happens: the JPEGs stay.
    expect(previous.filter((o) => o.kind === 'file').every((o) => fs.existsSync(o.path!))).toBe(true);
  });

  it('renders the instances itself when no earlier step made images (the window in the caption)', async () => {
    const effects = await printStep('render', inputsOf(ct, 'Axial'), [], { window: 'lung', columns: 1, rows: 2 });
    const pdf = fs.readFileSync(effects.outputs[0].path!);
    expectValidPdf(pdf, 1);
    expect(pdfStreams(pdf).filter((s) => /\/Subtype \/Image/.test(s.dict))).toHaveLength(2);
    expect(pdfText(pdf)).toContain('W -600/1500');
  });

  it('lays the images out in instance order with the instance number in each caption, and leaves out identification rows without a value', async () => {
    // Arrived in reverse order, without an institution.
    const inputs = inputsOf(ct, 'Axial')
      .reverse()
      .map((i) => ({ ...i, attributes: Object.fromEntries(Object.entries(i.attributes).filter(([k]) => k !== 'InstitutionName')) }));
    const rendered = fs.readFileSync((await printStep('order', inputs, [], { columns: 2, rows: 1 })).outputs[0].path!);
    const text = pdfText(rendered);
    expect(text.indexOf('#1')).toBeGreaterThan(-1);
    expect(text.indexOf('#1')).toBeLessThan(text.indexOf('#2'));
    expect(text).not.toContain('Institution');
    expect(text).toContain('Patient ID');
    // Images an earlier step made are ordered the same way, whatever order they were emitted in.
    const sc3 = inputsOf(sc, 'Screen capture');
    const previous = await convertStep('order-sc', sc3, path.join(root, 'jpeg-order'));
    const files = previous.filter((o) => o.kind === 'file');
    const tables = previous.filter((o) => o.kind === 'table');
    const effects = await printStep('order-sc', [...sc3].reverse(), [...files].reverse().concat(tables), { columns: 3, rows: 1 });
    const pdf = fs.readFileSync(effects.outputs[0].path!);
    const images = pdfStreams(pdf).filter((s) => /\/Subtype \/Image/.test(s.dict));
    expect(images.map((s) => s.data)).toEqual(files.map((o) => fs.readFileSync(o.path!)));
    const captions = pdfText(pdf);
    expect(
      [captions.indexOf('S9 · Screen capture · #1'), captions.indexOf('#2'), captions.indexOf('#3')].every(
        (v, k, a) => v > -1 && (k === 0 || v > a[k - 1]),
      ),
    ).toBe(true);
  });

  it.skipIf(noPrinter)(
    'prints on the IPP printer, records the job, deletes the JPEGs, and never prints twice on a rerun',
    async () => {
      const inputs = inputsOf(sc, 'Screen capture');
      const folder = path.join(root, 'jpeg-print');
      const previous = await convertStep('print', inputs, folder);
      expect(fs.readdirSync(folder)).toHaveLength(3);
      const before = printer!.documents().length;
      const effects = await printStep('print', inputs, previous, {
        printer: 'ward-printer',
        title: 'Ward copy',
        afterPrinting: 'delete',
        waitSeconds: 30,
      });
      const pdf = fs.readFileSync(effects.outputs.find((o) => o.kind === 'file')!.path!);

      // The job arrived at the printer: its spooled document is our PDF, byte for byte.
      const documents = printer!.documents();
      expect(documents).toHaveLength(before + 1);
      const arrived = documents.at(-1)!;
      expect(arrived.file).toMatch(/\.pdf$/);
      expect(arrived.bytes.equals(pdf)).toBe(true);
      expectValidPdf(arrived.bytes, 1);

      const table = effects.outputs.find((o) => o.kind === 'table')!;
      expect(table.name).toBe('print-jobs');
      const row = table.rows![0] as PrintJobRow;
      expect(row).toMatchObject({
        printer: 'ward-printer',
        uri: printer!.uri,
        jobId: arrived.jobId,
        jobName: 'dicomflow job-print print-report',
        jobState: 'completed',
        images: 3,
        resumed: false,
      });
      expect(row.jobStateReasons).toContain('job-completed-successfully');
      expect(effects.log.map((l) => l.message)).toEqual(
        expect.arrayContaining([
          `IPP job ${arrived.jobId} on ward-printer: completed (job-completed-successfully)`,
          'deleted 3 printed image file(s)',
        ]),
      );
      expect(fs.readdirSync(folder)).toEqual([]);

      // At least once: the same job's step run again finds its printed job instead of printing again.
      const again = await printStep('print', inputs, [], { printer: 'ward-printer', title: 'Ward copy', waitSeconds: 30 });
      expect(printer!.documents()).toHaveLength(before + 1);
      expect(again.outputs.find((o) => o.kind === 'table')!.rows![0]).toMatchObject({
        jobId: arrived.jobId,
        jobState: 'completed',
        resumed: true,
      });
    },
    60_000,
  );

  it.skipIf(noPrinter)('fails with DF_ERR_PRINT_FAILED when the printer cannot be reached', async () => {
    await expect(printStep('unreachable', inputsOf(sc, 'Screen capture').slice(0, 1), [], { printer: 'nowhere' })).rejects.toThrow(
      /^DF_ERR_PRINT_FAILED: Get-Jobs|^DF_ERR_PRINT_FAILED: Print-Job/,
    );
  });

  it('refuses a pipeline naming a printer the configuration lacks, with the option’s pointer', () => {
    const text = JSON.stringify(
      {
        name: 'sc-print',
        trigger: { on: 'series' },
        steps: [
          { plugin: 'convert-image', options: { folder: '/srv/jpeg' } },
          { plugin: 'print-report', options: { printer: 'ward-7', afterPrinting: 'delete' } },
        ],
      },
      null,
      2,
    );
    const refused = loadPipeline(text, 'sc-print.json', registry, { databases: ['Import'], printers: ['ward-printer'] });
    expect(refused.problems.map((p) => [p.pointer, p.message])).toEqual([
      ['/steps/1/options/printer', 'unknown printer "ward-7" (configured: ward-printer)'],
    ]);
    const accepted = loadPipeline(text, 'sc-print.json', registry, { databases: ['Import'], printers: ['ward-7'] });
    expect(accepted.problems).toEqual([]);
  });

  it.skipIf(!fs.existsSync('/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf'))(
    'embeds a Unicode font when a name is beyond Windows-1252',
    async () => {
      const inputs = inputsOf(sc, 'Screen capture').map((i) => ({
        ...i,
        attributes: { ...i.attributes, PatientName: 'Παπαδόπουλος^Ελένη' },
      }));
      const effects = await printStep('greek', inputs, [], {});
      const pdf = fs.readFileSync(effects.outputs[0].path!).toString('latin1');
      expect(pdf).toMatch(/\/BaseFont \/[A-Z]{6}\+DejaVuSans\b/);
      expect(pdf).toContain('/FontFile2');
    },
  );

  it('formats person names and dates for the page', () => {
    expect(personName('Doe^Jane^Q^Dr^PhD')).toBe('Doe, Dr Jane Q, PhD');
    expect(personName('Yamada^Tarou=山田^太郎')).toBe('Yamada, Tarou');
    expect(dicomDate('20240315')).toBe('2024-03-15');
  });
});
