import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compress, ctSeries, mrSeries, TransferSyntax } from '../fixtures/builder.ts';
import { echoscu, runDcmtk, storescu } from '../helpers/dcmtk.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

let server: Awaited<ReturnType<typeof startTestServer>>;
let ct: Awaited<ReturnType<typeof ctSeries>>;
let mr: Awaited<ReturnType<typeof mrSeries>>;
let large: Awaited<ReturnType<typeof ctSeries>>;
/** One plain slice and one RLE-compressed one, which getscu (uncompressed only) cannot take. */
let mixed: { studyInstanceUid: string; plain: string; rle: string };

beforeAll(async () => {
  server = await startTestServer();
  ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32, patientId: 'GET1', withPrivateTags: true });
  mr = await mrSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'GET1', studyUid: ct.studyInstanceUid });
  large = await ctSeries(tempDir(), { slices: 2, rows: 256, cols: 256, patientId: 'GET2' });
  const two = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'GET3' });
  const rle = await compress(two.files[1], 'rle', path.join(tempDir(), 'rle.dcm'));
  expect(rle.transferSyntaxUid).toBe(TransferSyntax.RleLossless);
  mixed = { studyInstanceUid: two.studyInstanceUid, plain: two.sopInstanceUids[0], rle: two.sopInstanceUids[1] };
  const stored = await storescu([
    '-aec',
    'DICOMFLOW',
    '127.0.0.1',
    String(server.dicomPort),
    ...ct.files,
    ...mr.files,
    ...large.files,
    two.files[0],
  ]);
  expect(stored.code, stored.stderr).toBe(0);
  const storedRle = await storescu(['-xr', '-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), rle.file]);
  expect(storedRle.code, storedRle.stderr).toBe(0);
  await server.engine.idle();
});
afterAll(async () => {
  await server.close();
});

/** getscu receives the sub-operations on its own association; +B writes into its cwd. */
async function get(keys: string[], options: { model?: '-S' | '-P'; extra?: string[] } = {}) {
  const out = tempDir('df-got-');
  const args = [
    '-v',
    options.model ?? '-S',
    '-aec',
    'DICOMFLOW',
    ...(options.extra ?? []),
    '+B',
    '-od',
    out,
    ...keys.flatMap((k) => ['-k', k]),
    '127.0.0.1',
    String(server.dicomPort),
  ];
  const result = await runDcmtk('getscu', args, { timeoutMs: 30_000, cwd: out });
  return { result, out, files: fs.readdirSync(out).map((f) => path.join(out, f)) };
}

/** Each received file's dataset is byte for byte the one dicomflow stored. */
async function expectStoredBytes(files: string[]): Promise<void> {
  const part10 = (f: string) => splitPart10(fs.readFileSync(f));
  const stored = (await server.index.instances('Import', { patientId: 'GET1' }))
    .concat(await server.index.instances('Import', { patientId: 'GET2' }))
    .map((r) => server.objects.absolutePath(r.objectPath));
  const kept = new Map(stored.map((f) => [part10(f).sopInstanceUid, part10(f).dataset]));
  for (const f of files) {
    const received = part10(f);
    expect(kept.has(received.sopInstanceUid), `${received.sopInstanceUid} of ${[...kept.keys()].join(', ')}`).toBe(true);
    expect(received.dataset.equals(kept.get(received.sopInstanceUid)!), received.sopInstanceUid).toBe(true);
  }
}

describe('C-GET SCP with DCMTK getscu', () => {
  it('sends a study back on the same association as the stored bytes, private tags and all', async () => {
    const { result, files } = await get(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ct.studyInstanceUid}`]);
    expect(result.code, result.stderr).toBe(0);
    expect(files).toHaveLength(5);
    await expectStoredBytes(files);
    const withPrivate = files.map((f) => splitPart10(fs.readFileSync(f))).find((p) => p.sopInstanceUid === ct.sopInstanceUids[0])!;
    // (0009,0010) private creator and its block, as the builder wrote them.
    expect(withPrivate.dataset.includes(Buffer.from([0x09, 0x00, 0x10, 0x00]))).toBe(true);
    // The sub-operations come on getscu's own association, each followed by a pending response.
    expect(result.stderr.match(/Received C-STORE Request/g)).toHaveLength(5);
    expect(result.stderr.match(/Received C-GET Response \(Pending\)/g)).toHaveLength(4);
    expect(result.stderr).toMatch(/Received C-GET Response \(Success\)/);
  });

  it('gets a series and single images, with the patient root model too', async () => {
    const series = await get([
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${ct.studyInstanceUid}`,
      `SeriesInstanceUID=${mr.seriesInstanceUid}`,
    ]);
    expect(series.files).toHaveLength(2);
    await expectStoredBytes(series.files);
    const image = await get([
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${ct.studyInstanceUid}`,
      `SeriesInstanceUID=${ct.seriesInstanceUid}`,
      `SOPInstanceUID=${ct.sopInstanceUids[0]}\\${ct.sopInstanceUids[2]}`,
    ]);
    expect(image.files).toHaveLength(2);
    await expectStoredBytes(image.files);
    const patient = await get(['QueryRetrieveLevel=PATIENT', 'PatientID=GET1'], { model: '-P' });
    expect(patient.result.code, patient.result.stderr).toBe(0);
    expect(patient.files).toHaveLength(5);
  });

  it("splits large datasets within the peer's max PDU", async () => {
    const { result, files } = await get(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${large.studyInstanceUid}`], {
      extra: ['-pdu', '4096'],
    });
    expect(result.code, result.stderr).toBe(0);
    expect(files).toHaveLength(2);
    await expectStoredBytes(files);
  });

  it('reports the sub-operations it could not perform (B000, then A702) with their UIDs', async () => {
    // DCMTK's DcmSCU (3.6.7) never reads a C-GET-RSP's identifier: its A-RELEASE then meets the
    // Failed SOP Instance UID List still on the wire, and it aborts instead.
    const some = await get(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${mixed.studyInstanceUid}`], { extra: ['-d'] });
    expect(some.files.map((f) => splitPart10(fs.readFileSync(f)).sopInstanceUid)).toEqual([mixed.plain]);
    const finalResponse = some.result.stderr.slice(some.result.stderr.lastIndexOf('Message Type                  : C-GET RSP'));
    expect(finalResponse).toMatch(/Failed Suboperations\s+: 1/);
    expect(finalResponse).toMatch(/Data Set\s+: present/);
    expect(finalResponse).toMatch(/DIMSE Status\s+: 0xb000/);
    const none = await get(['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${mixed.studyInstanceUid}`, `SOPInstanceUID=${mixed.rle}`]);
    expect(none.files).toHaveLength(0);
    expect(none.result.stderr).toMatch(/Received C-GET Response \(Refused: OutOfResourcesSubOperations\)/);
  });

  it('refuses a retrieve without its unique key with A900, and the server goes on', async () => {
    const noKey = await get(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${ct.studyInstanceUid}`]);
    expect(noKey.files).toHaveLength(0);
    expect(noKey.result.stderr).toMatch(/Received C-GET Response \(Error: DataSetDoesNotMatchSOPClass\)/);
    const echo = await echoscu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort)]);
    expect(echo.code, echo.stderr).toBe(0);
    // The same association carries on after a C-GET: getscu repeats it on the one association.
    const twice = await get(
      ['QueryRetrieveLevel=IMAGE', `StudyInstanceUID=${ct.studyInstanceUid}`, `SOPInstanceUID=${ct.sopInstanceUids[2]}`],
      { extra: ['--repeat', '2'] },
    );
    expect(twice.result.code, twice.result.stderr).toBe(0);
    expect(twice.result.stderr.match(/Requesting Association/g)).toHaveLength(1);
    expect(twice.result.stderr.match(/Received C-GET Response \(Success\)/g)).toHaveLength(2);
    const again = await get([
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${ct.studyInstanceUid}`,
      `SeriesInstanceUID=${ct.seriesInstanceUid}`,
      `SOPInstanceUID=${ct.sopInstanceUids[1]}`,
    ]);
    expect(again.files).toHaveLength(1);
  });
});
