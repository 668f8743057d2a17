// PMOD's seed pipeline end to end, through the real server: Secondary Capture only → JPEG into a
// folder → printed on a report page (a real IPP printer) → forwarded to a PACS (storescp) → the
// DICOM originals released; once as written in a test, once as shipped in pipelines/.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, secondaryCaptureRgb } from '../fixtures/builder.ts';
import { startStorescp } from '../helpers/dcmtk-peers.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { readPart10 } from '../helpers/part10.ts';
import { ippPrinterUnavailable, startIppPrinter, type IppPrinter } from '../helpers/ipp-printer.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const unavailable = ippPrinterUnavailable();
let printer: IppPrinter | undefined;
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  if (!unavailable) printer = await startIppPrinter({ name: 'ward 7' });
}, 30_000);
afterAll(async () => {
  for (const close of closers) await close();
  await printer?.stop();
});

describe.skipIf(unavailable)('Secondary Capture → JPEG → report page → IPP printer', () => {
  it('prints the SC series on one page and deletes the JPEGs; other series are not touched', async () => {
    const dir = tempDir('df-sc-print-');
    const graphic = path.join(dir, 'graphic');
    const pipelines = path.join(dir, 'pipelines');
    fs.mkdirSync(pipelines);
    fs.writeFileSync(
      path.join(pipelines, 'sc-print.json'),
      JSON.stringify({
        name: 'sc-print',
        trigger: { on: 'series', stableSeconds: 0.5, when: { sopClass: { oneOf: ['SecondaryCaptureImageStorage'] } } },
        steps: [
          { plugin: 'convert-image', options: { folder: graphic } },
          { plugin: 'print-report', options: { title: 'Secondary captures', printer: 'ward-7', afterPrinting: 'delete', waitSeconds: 30 } },
          { plugin: 'delete-source' },
        ],
      }),
    );
    const server = await startTestServer({
      pipelinesDir: pipelines,
      defaultPipeline: false,
      printers: [{ name: 'ward-7', uri: printer!.uri }],
      engine: { workerThreads: 2 },
    });
    closers.push(() => server.close());
    expect(server.pipelines.problems()).toEqual([]);

    const sc = await secondaryCaptureRgb(path.join(dir, 'sc'), { count: 2, rows: 48, cols: 64, patientName: 'Doe^Jane' });
    const ct = await ctSeries(path.join(dir, 'ct'), { slices: 2, rows: 32, cols: 32, studyUid: sc.studyInstanceUid });
    const before = printer!.documents().length;
    expect(
      (await storescu(['-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...sc.files, ...ct.files])).code,
    ).toBe(0);

    const job = await until(
      'the sc-print job',
      async () => (await server.jobs.listJobs({ pipeline: 'sc-print' })).find((j) => j.status === 'succeeded' || j.status === 'failed'),
      60_000,
    );
    const detail = (await server.jobs.getJob(job.id))!;
    expect(detail.status, JSON.stringify(detail.steps?.map((s) => [s.id, s.status, s.error]))).toBe('succeeded');
    expect(detail.inputs).toHaveLength(2);
    const [convert, print] = detail.steps!;
    expect(convert.outputs.filter((o) => o.kind === 'file').map((o) => path.dirname(o.path!))).toEqual([graphic, graphic]);

    // The printer got the report, byte for byte the PDF the job kept.
    const pdf = fs.readFileSync(print.outputs.find((o) => o.kind === 'file')!.path!);
    const documents = printer!.documents();
    expect(documents).toHaveLength(before + 1);
    expect(documents.at(-1)!.bytes.equals(pdf)).toBe(true);
    expect(print.outputs.find((o) => o.kind === 'table')!.rows![0]).toMatchObject({
      printer: 'ward-7',
      jobId: documents.at(-1)!.jobId,
      jobState: 'completed',
    });
    // "the JPEGs … deleted after printing"
    expect(fs.readdirSync(graphic)).toEqual([]);
    // Only the Secondary Captures triggered it.
    expect(await server.jobs.listJobs({})).toHaveLength(1);
  }, 90_000);

  it('the shipped seed pipeline: SC → JPEGs kept in a folder → printed → forwarded to the PACS → received copies released', async () => {
    const dir = tempDir('df-sc-seed-');
    const graphic = path.join(dir, 'graphic');
    const pipelines = path.join(dir, 'pipelines');
    fs.mkdirSync(pipelines);
    const seed = JSON.parse(
      fs.readFileSync(path.resolve(import.meta.dirname, '../../pipelines/seed-secondary-capture-print.json'), 'utf8'),
    );
    // As an operator would: enable it; here also quicker, and the folder in the test's directory.
    seed.enabled = true;
    seed.trigger.stableSeconds = 0.5;
    seed.steps[0].options.folder = graphic;
    fs.writeFileSync(path.join(pipelines, 'seed.json'), JSON.stringify(seed));
    const pacs = await startStorescp({ aeTitle: 'PACS' });
    closers.push(() => pacs.stop());
    const server = await startTestServer({
      pipelinesDir: pipelines,
      defaultPipeline: false,
      printers: [{ name: 'reports', uri: printer!.uri }],
      remoteNodes: [{ aeTitle: 'PACS', host: '127.0.0.1', port: pacs.port }],
      engine: { workerThreads: 2 },
    });
    closers.push(() => server.close());
    expect([...server.pipelines.problems(), ...server.pipelines.warnings()]).toEqual([]);

    const sc = await secondaryCaptureRgb(path.join(dir, 'sc'), { count: 2, rows: 48, cols: 64 });
    const ct = await ctSeries(path.join(dir, 'ct'), { slices: 1, rows: 32, cols: 32, studyUid: sc.studyInstanceUid });
    const before = printer!.documents().length;
    expect(
      (await storescu(['-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...sc.files, ...ct.files])).code,
    ).toBe(0);

    const job = await until(
      'the seed job',
      async () => (await server.jobs.listJobs({ pipeline: seed.name })).find((j) => j.status === 'succeeded' || j.status === 'failed'),
      60_000,
    );
    const detail = (await server.jobs.getJob(job.id))!;
    expect(detail.status, JSON.stringify(detail.steps?.map((s) => [s.id, s.status, s.error]))).toBe('succeeded');
    expect(detail.steps!.map((s) => s.id)).toEqual(['convert-image', 'print-report', 'route', 'delete-source']);
    expect(printer!.documents()).toHaveLength(before + 1);
    // The JPEGs are kept in the folder.
    expect(fs.readdirSync(graphic).filter((f) => f.endsWith('.jpg'))).toHaveLength(2);
    // The PACS gets the Secondary Captures, byte for byte, and nothing else.
    await until('both delivered', async () => (await server.outbox.status()).find((d) => d.destination === 'PACS' && d.delivered === 2));
    const arrived = new Map<string, Buffer>();
    for (const name of fs.readdirSync(pacs.dir).filter((n) => !n.startsWith('.'))) {
      const parts = await readPart10(path.join(pacs.dir, name));
      arrived.set(parts.sopInstanceUid, parts.dataset);
    }
    expect([...arrived.keys()].sort()).toEqual([...sc.sopInstanceUids].sort());
    for (const file of sc.files) {
      const sent = await readPart10(file);
      expect(Buffer.compare(arrived.get(sent.sopInstanceUid)!, sent.dataset)).toBe(0);
    }
  }, 90_000);
});
