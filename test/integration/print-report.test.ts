// PMOD's seed pipeline end to end, through the real server: Secondary Capture only → JPEG into a
// folder → printed on a report page (a real IPP printer) → the JPEGs deleted after printing → the
// DICOM originals released (delete-source; its own tests cover what it removes).
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, secondaryCaptureRgb } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
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
    const server = await startTestServer({ pipelinesDir: pipelines, defaultPipeline: false, printers: [{ name: 'ward-7', uri: printer!.uri }], engine: { workerThreads: 2 } });
    closers.push(() => server.close());
    expect(server.pipelines.problems()).toEqual([]);

    const sc = await secondaryCaptureRgb(path.join(dir, 'sc'), { count: 2, rows: 48, cols: 64, patientName: 'Doe^Jane' });
    const ct = await ctSeries(path.join(dir, 'ct'), { slices: 2, rows: 32, cols: 32, studyUid: sc.studyInstanceUid });
    const before = printer!.documents().length;
    expect((await storescu(['-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...sc.files, ...ct.files])).code).toBe(0);

    const job = await until('the sc-print job', () => server.jobs.listJobs({ pipeline: 'sc-print' }).find((j) => j.status === 'succeeded' || j.status === 'failed'), 60_000);
    const detail = server.jobs.getJob(job.id)!;
    expect(detail.status, JSON.stringify(detail.steps?.map((s) => [s.id, s.status, s.error]))).toBe('succeeded');
    expect(detail.inputs).toHaveLength(2);
    const [convert, print] = detail.steps!;
    expect(convert.outputs.filter((o) => o.kind === 'file').map((o) => path.dirname(o.path!))).toEqual([graphic, graphic]);

    // The printer got the report, byte for byte the PDF the job kept.
    const pdf = fs.readFileSync(print.outputs.find((o) => o.kind === 'file')!.path!);
    const documents = printer!.documents();
    expect(documents).toHaveLength(before + 1);
    expect(documents.at(-1)!.bytes.equals(pdf)).toBe(true);
    expect(print.outputs.find((o) => o.kind === 'table')!.rows![0]).toMatchObject({ printer: 'ward-7', jobId: documents.at(-1)!.jobId, jobState: 'completed' });
    // "the JPEGs … deleted after printing"
    expect(fs.readdirSync(graphic)).toEqual([]);
    // Only the Secondary Captures triggered it.
    expect(server.jobs.listJobs({})).toHaveLength(1);
  }, 90_000);
});
