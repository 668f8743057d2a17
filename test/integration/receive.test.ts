// Issue 2, receive: the real server on real sockets, fed by DCMTK's storescu/echoscu and by a raw
// upper-layer client for what DCMTK will not send. Every check is what a sender or an operator
// sees: the status they get, the file on disk, the index, the event, the HTTP status page.
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { InstanceReceived } from '../../core/events.ts';
import {
  compress,
  ctSeries,
  ctSliceWithPrivateTags,
  mrSeries,
  newUid,
  petSeries,
  secondaryCaptureRgb,
  SopClass,
  TransferSyntax,
  type BuiltSeries,
  type CompressionKind,
  type VolumeOptions,
} from '../fixtures/builder.ts';
import { seededRandom } from '../fixtures/phantom.ts';
import { dcmdump, dumpDataset, echoscu, hasTool, storescu, type ToolResult } from '../helpers/dcmtk.ts';
import { readPart10, type Part10Parts } from '../helpers/part10.ts';
import {
  datasetsOnTheWire,
  eventually,
  filesUnder,
  getJson,
  incomingFiles,
  objectFiles,
  serverEnded,
  storedObject,
} from '../helpers/receive-checks.ts';
import { PduType, RawConnection, rawAssociate, VERIFICATION_SOP_CLASS, type RawAssociation } from '../helpers/raw-scu.ts';
import { startTestServer } from '../helpers/server.ts';

type TestServer = Awaited<ReturnType<typeof startTestServer>>;

const AE_TITLE = 'DICOMFLOW';
const STATUS = { success: 0x0000, duplicateRejected: 0x0111, datasetMismatch: 0xa900, cannotUnderstand: 0xc000 } as const;
// Object files are named by ids dicomflow makes (UUID v7), never by anything in the dataset.
const OBJECT_FILE_NAME = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.dcm$/;

let tmp: string;
let shared: TestServer;
const fresh: TestServer[] = [];

/** A server of its own, for checks that need exact counts or a non-default configuration. */
async function startFresh(config: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startTestServer(config);
  fresh.push(server);
  return server;
}

async function stop(server: TestServer): Promise<void> {
  await server.close();
  await rm(server.dataDir, { recursive: true, force: true });
}

function send(server: TestServer, files: readonly string[], args: readonly string[] = []): Promise<ToolResult> {
  return storescu(['-aec', AE_TITLE, ...args, '127.0.0.1', String(server.dicomPort), ...files]);
}

function echo(server: TestServer, args: readonly string[] = []): Promise<ToolResult> {
  return echoscu(['-aec', AE_TITLE, ...args, '127.0.0.1', String(server.dicomPort)]);
}

function expectExit0(result: ToolResult): void {
  expect(result.code, `${result.stdout}\n${result.stderr}`).toBe(0);
}

function associate(server: TestServer, options: { callingAe?: string; calledAe?: string } = {}): Promise<RawAssociation> {
  return rawAssociate({
    port: server.dicomPort,
    callingAe: options.callingAe ?? 'RAWSCU',
    calledAe: options.calledAe ?? AE_TITLE,
    contexts: [
      { id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [TransferSyntax.ImplicitVRLittleEndian] },
      { id: 3, abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] },
    ],
  });
}

/** A small CT series in its own folder under tmp (each test sends objects no other test sent). */
function smallCt(name: string, options: VolumeOptions = {}): Promise<BuiltSeries> {
  return ctSeries(path.join(tmp, name), { slices: 1, rows: 64, cols: 64, ...options });
}

/** One CT slice whose SOP Instance UID is `sopInstanceUid`, as the bytes a raw C-STORE sends. */
async function ctSliceWithUid(name: string, sopInstanceUid: string): Promise<Part10Parts> {
  const built = await smallCt(name, { extra: { SOPInstanceUID: sopInstanceUid } });
  return readPart10(built.files[0]);
}

async function dcmdumpSucceeds(file: string): Promise<void> {
  const result = await dcmdump(['-q', file]);
  expect(result.code, `dcmdump ${file}: ${result.stderr}`).toBe(0);
  expect(result.stderr).toBe('');
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicomflow-receive-'));
  shared = await startTestServer();
});

afterEach(async () => {
  await Promise.all(fresh.splice(0).map(stop));
});

afterAll(async () => {
  if (shared) await stop(shared);
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!hasTool('storescu'))('receive over DICOM', () => {
  it('answers C-ECHO', async () => {
    expectExit0(await echo(shared));
  });

  it('stores CT, MR, PET and secondary capture from storescu byte for byte, and a raw object with private tags and nested sequences', async () => {
    const [ct, mr, pet, sc] = await Promise.all([
      ctSeries(path.join(tmp, 'modalities/ct'), { slices: 3, rows: 64, cols: 64, seed: 2 }),
      mrSeries(path.join(tmp, 'modalities/mr'), { slices: 3, rows: 64, cols: 64, seed: 3 }),
      petSeries(path.join(tmp, 'modalities/pt'), { slices: 2, rows: 64, cols: 64, frameDurationsSec: [30, 60], seed: 4 }),
      secondaryCaptureRgb(path.join(tmp, 'modalities/sc'), { count: 2, rows: 64, cols: 64, seed: 5 }),
    ]);
    const files = [ct, mr, pet, sc].flatMap((s) => s.files);
    expectExit0(await send(shared, files));

    // PET carries sequences, which storescu re-encodes: its reference is what went on the wire.
    const wire = await datasetsOnTheWire(pet.files);
    const withoutSequences = new Set([ct, mr, sc].flatMap((s) => s.files));
    for (const file of files) {
      const source = await readPart10(file);
      const stored = await storedObject(shared, source.sopInstanceUid);
      await dcmdumpSucceeds(stored.file);
      expect(stored.part10.transferSyntaxUid).toBe(source.transferSyntaxUid);
      expect(stored.part10.sopInstanceUid).toBe(source.sopInstanceUid);
      expect(stored.part10.sopClassUid).toBe(source.sopClassUid);
      const expected = withoutSequences.has(file) ? source.dataset : wire.get(source.sopInstanceUid);
      expect(expected, `no reference bytes for ${file}`).toBeDefined();
      expect(stored.part10.dataset.equals(expected!), `dataset of ${path.basename(file)} differs from what was sent`).toBe(true);
    }

    // The raw client sends the file's own bytes: undefined-length sequences, private blocks and all.
    const privateCt = await readPart10((await ctSliceWithPrivateTags(path.join(tmp, 'modalities/private'), { seed: 6 })).files[0]);
    const assoc = await associate(shared);
    const response = await assoc.sendCStore({
      sopClassUid: privateCt.sopClassUid,
      sopInstanceUid: privateCt.sopInstanceUid,
      datasetBytes: privateCt.dataset,
    });
    expect(response.status).toBe(STATUS.success);
    await assoc.release();
    const stored = await storedObject(shared, privateCt.sopInstanceUid);
    await dcmdumpSucceeds(stored.file);
    expect(stored.part10.dataset.equals(privateCt.dataset)).toBe(true);
    const dump = await dumpDataset(stored.file);
    expect(dump['00091001']).toBe('private text 6');
    expect(dump['00191001']).toBe('OTHER BLOCK');
  });

  it('keeps JPEG lossless, JPEG baseline, JPEG-LS and RLE objects in the transfer syntax they came in', async () => {
    const ct = await ctSeries(path.join(tmp, 'compressed/ct'), { slices: 3, rows: 64, cols: 64, seed: 7 });
    const sc = await secondaryCaptureRgb(path.join(tmp, 'compressed/sc'), { count: 1, rows: 64, cols: 64, seed: 8 });
    // storescu 3.6.7 proposes only uncompressed syntaxes unless told which compressed one to add.
    const cases: Array<{ kind: CompressionKind; source: string; proposeFlag: string }> = [
      { kind: 'jpeg-lossless', source: ct.files[0], proposeFlag: '-xs' },
      { kind: 'jpeg-ls', source: ct.files[1], proposeFlag: '-xt' },
      { kind: 'rle', source: ct.files[2], proposeFlag: '-xr' },
      // Baseline JPEG is 8-bit only: the RGB secondary capture.
      { kind: 'jpeg-baseline', source: sc.files[0], proposeFlag: '-xy' },
    ];
    for (const { kind, source, proposeFlag } of cases) {
      const compressed = await compress(source, kind, path.join(tmp, 'compressed', `${kind}.dcm`));
      const original = await readPart10(compressed.file);
      expect(original.transferSyntaxUid).toBe(compressed.transferSyntaxUid);
      expectExit0(await send(shared, [compressed.file], [proposeFlag]));
      const stored = await storedObject(shared, original.sopInstanceUid);
      expect(stored.part10.transferSyntaxUid, kind).toBe(original.transferSyntaxUid);
      expect(stored.transferSyntaxUid, kind).toBe(original.transferSyntaxUid);
      expect(stored.part10.dataset.equals(original.dataset), `${kind}: stored dataset differs from the source`).toBe(true);
      await dcmdumpSucceeds(stored.file);
    }
  });

  it('stores Implicit VR Little Endian when that is all the sender proposes, and indexes patient and study', async () => {
    const ct = await ctSeries(path.join(tmp, 'implicit'), {
      slices: 2,
      rows: 64,
      cols: 64,
      seed: 9,
      patientId: 'IMPLICIT01',
      patientName: 'Implicit^Ivy',
      accessionNumber: 'ACCIMPL1',
    });
    expectExit0(await send(shared, ct.files, ['-xi']));
    const wire = await datasetsOnTheWire(ct.files, ['-xi']);
    for (const uid of ct.sopInstanceUids) {
      const stored = await storedObject(shared, uid);
      expect(stored.part10.transferSyntaxUid).toBe(TransferSyntax.ImplicitVRLittleEndian);
      expect(stored.part10.dataset.equals(wire.get(uid)!)).toBe(true);
      await dcmdumpSucceeds(stored.file);
    }
    const studies = await shared.index.studies('Import', { studyInstanceUids: [ct.studyInstanceUid] });
    expect(studies).toHaveLength(1);
    expect(studies[0].patient).toMatchObject({ PatientID: 'IMPLICIT01', PatientName: 'Implicit^Ivy', PatientBirthDate: '19650412' });
    expect(studies[0].study).toMatchObject({ StudyInstanceUID: ct.studyInstanceUid, StudyDate: ct.studyDate, AccessionNumber: 'ACCIMPL1' });
    expect(studies[0].numberOfInstances).toBe(2);
    expect(studies[0].modalitiesInStudy).toEqual(['CT']);
  });

  it('announces each received object once and counts it on the status page, which needs the token', async () => {
    const server = await startFresh();
    const ct = await ctSeries(path.join(tmp, 'events'), { slices: 3, rows: 64, cols: 64, seed: 10 });
    const events: InstanceReceived[] = [];
    server.events.on('InstanceReceived', (event) => events.push(event));
    expectExit0(await send(server, ct.files, ['-aet', 'EVENTSCU']));

    expect(events.map((e) => e.sopInstanceUid).sort()).toEqual([...ct.sopInstanceUids].sort());
    for (const event of events) {
      expect(event).toMatchObject({
        sopClassUid: SopClass.CtImageStorage,
        seriesInstanceUid: ct.seriesInstanceUid,
        studyInstanceUid: ct.studyInstanceUid,
        callingAeTitle: 'EVENTSCU',
        calledAeTitle: AE_TITLE,
        peerAddress: '127.0.0.1',
        source: 'network',
        database: 'Import',
      });
      expect(event.attributes).toMatchObject({ Modality: 'CT', PatientID: ct.patientId, SOPInstanceUID: event.sopInstanceUid });
      expect(existsSync(event.absolutePath)).toBe(true);
      expect(event.absolutePath).toBe((await storedObject(server, event.sopInstanceUid)).file);
    }

    const sentBytes = (await Promise.all(ct.files.map(readPart10))).reduce((sum, p) => sum + p.dataset.length, 0);
    const status = await eventually(
      () => getJson(server.httpPort, '/api/status', server.adminToken),
      (reply) => reply.body.databases?.[0]?.instances === 3,
    );
    expect(status.status).toBe(200);
    expect(status.body.received).toMatchObject({ objects: 3, bytes: sentBytes, failures: 0, duplicates: 0 });
    expect(status.body.dicom.associations).toMatchObject({ total: 1, rejected: 0 });
    expect(status.body.databases).toEqual([expect.objectContaining({ name: 'Import', instances: 3 })]);

    const anonymous = await getJson(server.httpPort, '/api/status');
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.code).toBe('DF_ERR_UNAUTHORIZED');
    expect((await getJson(server.httpPort, '/api/status', 'not-the-token')).status).toBe(401);
    expect((await getJson(server.httpPort, '/api/health')).status).toBe(200);
  });

  it('refuses with A900 an object whose SOP Instance UID looks like a path, and writes nothing where the path points', async () => {
    const storageDir = path.join(shared.dataDir, 'storage');
    for (const [i, hostileUid] of ['../../x', '1.2/../../../tmp/x'].entries()) {
      const object = await ctSliceWithUid(`hostile-${i}`, hostileUid);
      // Everywhere a naive join of a directory and the UID would land.
      const bases = [
        shared.dataDir,
        storageDir,
        path.join(storageDir, 'objects'),
        path.join(storageDir, 'incoming'),
        process.cwd(),
        os.tmpdir(),
      ];
      const naivePaths = bases.flatMap((base) => ['', '.dcm', '.part'].map((suffix) => path.resolve(base, hostileUid + suffix)));
      const existedBefore = naivePaths.filter((p) => existsSync(p));

      const assoc = await associate(shared);
      const response = await assoc.sendCStore({
        sopClassUid: object.sopClassUid,
        sopInstanceUid: hostileUid,
        datasetBytes: object.dataset,
      });
      await assoc.release();
      // Storage makes no path from a DICOM value, but steps may (an output folder per series):
      // a UID with a slash or of dots alone is no UID (PS3.5 9.1) and is refused (issue 8).
      expect(response.status, hostileUid).toBe(0xa900);
      expect(response.errorComment, hostileUid).toMatch(/^DF_ERR_UID_INVALID/);
      // PS3.7 Table 9.1-1: the response names the SOP Instance of the request (=).
      expect(response.affectedSopInstanceUid, hostileUid).toBe(hostileUid);
      expect(naivePaths.filter((p) => existsSync(p))).toEqual(existedBefore);
    }
    // The whole data directory: objects only under storage/objects, named by id; nothing
    // anywhere named after the UIDs' last component.
    for (const file of filesUnder(shared.dataDir)) {
      const relative = path.relative(shared.dataDir, file);
      expect(['x', 'x.dcm', 'x.part'], relative).not.toContain(path.basename(file));
      // storage/spare holds empty files made ahead of need (object-store.ts).
      if (relative.startsWith(path.join('storage', 'spare') + path.sep)) {
        expect(statSync(file).size, relative).toBe(0);
        continue;
      }
      if (relative.startsWith(`storage${path.sep}`)) {
        expect(relative.startsWith(path.join('storage', 'objects') + path.sep), relative).toBe(true);
        expect(path.basename(file), relative).toMatch(OBJECT_FILE_NAME);
      }
    }
  });

  it('refuses with A900 an empty SOP Instance UID and one of 65 characters', async () => {
    const refused: Array<[string, string]> = [
      ['empty', ''],
      ['65 characters', `1.2.${'3'.repeat(61)}`],
    ];
    for (const [what, badUid] of refused) {
      expect(badUid.length).toBe(what === 'empty' ? 0 : 65);
      const object = await ctSliceWithUid(`refused-${what.replace(/ /g, '-')}`, badUid);
      const assoc = await associate(shared);
      const response = await assoc.sendCStore({ sopClassUid: object.sopClassUid, sopInstanceUid: badUid, datasetBytes: object.dataset });
      await assoc.release();
      expect(response.status, what).toBe(STATUS.datasetMismatch);
      expect(response.errorComment, what).toBeTruthy();
      expect(
        (await shared.index.recentArrivals(1000)).filter((a) => a.sopInstanceUid === badUid),
        what,
      ).toEqual([]);
    }
    expect(incomingFiles(shared.dataDir)).toEqual([]);
  });

  it('refuses a truncated dataset with C000, keeps nothing of it, and goes on with the association', async () => {
    const [truncated, valid] = await Promise.all([
      smallCt('truncated').then((s) => readPart10(s.files[0])),
      smallCt('after-truncated').then((s) => readPart10(s.files[0])),
    ]);
    const objectsBefore = new Set(objectFiles(shared.dataDir));
    const pixelBytes = 64 * 64 * 2;
    // Cut halfway through the pixel data, which ends the dataset, and send it as complete.
    const cut = truncated.dataset.subarray(0, truncated.dataset.length - pixelBytes / 2);

    const assoc = await associate(shared);
    const refused = await assoc.sendCStore({
      sopClassUid: truncated.sopClassUid,
      sopInstanceUid: truncated.sopInstanceUid,
      datasetBytes: cut,
    });
    expect(refused.status).toBe(STATUS.cannotUnderstand);
    expect(refused.errorComment).toBeTruthy();
    expect((await shared.index.recentArrivals(1000)).filter((a) => a.sopInstanceUid === truncated.sopInstanceUid)).toEqual([]);
    expect(await shared.index.instances('Import', { sopInstanceUids: [truncated.sopInstanceUid] })).toEqual([]);
    const newObjects = await Promise.all(
      objectFiles(shared.dataDir)
        .filter((f) => !objectsBefore.has(f))
        .map(readPart10),
    );
    expect(newObjects.map((p) => p.sopInstanceUid)).not.toContain(truncated.sopInstanceUid);
    expect(incomingFiles(shared.dataDir)).toEqual([]);

    const accepted = await assoc.sendCStore({
      sopClassUid: valid.sopClassUid,
      sopInstanceUid: valid.sopInstanceUid,
      datasetBytes: valid.dataset,
    });
    expect(accepted.status).toBe(STATUS.success);
    await assoc.release();
    expect((await storedObject(shared, valid.sopInstanceUid)).part10.dataset.equals(valid.dataset)).toBe(true);
  });

  it('refuses with A900 a dataset whose SOP Instance UID is not the one in its command', async () => {
    const object = await readPart10((await smallCt('mismatch')).files[0]);
    const commandUid = newUid();
    const assoc = await associate(shared);
    const response = await assoc.sendCStore({ sopClassUid: object.sopClassUid, sopInstanceUid: commandUid, datasetBytes: object.dataset });
    expect(response.status).toBe(STATUS.datasetMismatch);
    expect(response.errorComment).toBeTruthy();
    await assoc.release();
    for (const uid of [commandUid, object.sopInstanceUid]) {
      expect((await shared.index.recentArrivals(1000)).filter((a) => a.sopInstanceUid === uid)).toEqual([]);
      expect(await shared.index.instances('Import', { sopInstanceUids: [uid] })).toEqual([]);
    }
    expect(incomingFiles(shared.dataDir)).toEqual([]);
  });

  it('lets only allowed calling AE titles associate', async () => {
    const server = await startFresh({ dimse: { allowedCallers: [{ aeTitle: 'GOODSCU' }] } });
    expect((await echo(server, ['-aet', 'BADSCU'])).code).not.toBe(0);
    const assoc = await associate(server, { callingAe: 'BADSCU' });
    expect(assoc.accepted).toBe(false);
    // PS3.8 9.3.4: rejected-permanent, service user, calling AE title not recognized.
    expect(assoc.rejection).toEqual({ result: 1, source: 1, reason: 3 });
    expectExit0(await echo(server, ['-aet', 'GOODSCU']));
    const status = await getJson(server.httpPort, '/api/status', server.adminToken);
    expect(status.body.dicom.associations).toMatchObject({ total: 1, rejected: 2 });
  });

  it('rejects an unknown called AE title when checkCalledAeTitle is on', async () => {
    const server = await startFresh({ dimse: { checkCalledAeTitle: true } });
    const assoc = await associate(server, { calledAe: 'SOMEONEELSE' });
    expect(assoc.accepted).toBe(false);
    // PS3.8 9.3.4: rejected-permanent, service user, called AE title not recognized.
    expect(assoc.rejection).toEqual({ result: 1, source: 1, reason: 7 });
    expect((await echoscu(['-aec', 'SOMEONEELSE', '127.0.0.1', String(server.dicomPort)])).code).not.toBe(0);
    expectExit0(await echo(server));
  });

  it('acknowledges a duplicate, keeps the first and records it (default policy)', async () => {
    const server = await startFresh();
    const ct = await smallCt('duplicate-keep');
    const source = await readPart10(ct.files[0]);
    expectExit0(await send(server, ct.files));
    expectExit0(await send(server, ct.files));
    // Filing into the database (and dropping the duplicate's bytes) may follow the acknowledgement.
    await eventually(
      () => server.index.totals(),
      (totals) => totals.duplicates === 1,
    );
    expect(await server.index.totals()).toMatchObject({ instances: 1, duplicates: 1, arrivals: 2 });
    expect(await server.index.instances('Import', { sopInstanceUids: [source.sopInstanceUid] })).toHaveLength(1);
    expect((await storedObject(server, source.sopInstanceUid)).part10.dataset.equals(source.dataset)).toBe(true);
    await eventually(
      () => objectFiles(server.dataDir),
      (files) => files.length === 1,
    ).catch(() => undefined);
    expect(objectFiles(server.dataDir)).toHaveLength(1);
  });

  it('answers 0111 to a duplicate under the reject policy', async () => {
    const server = await startFresh({ storage: { duplicatePolicy: 'reject' } });
    const source = await readPart10((await smallCt('duplicate-reject')).files[0]);
    const assoc = await associate(server);
    const first = await assoc.sendCStore({
      sopClassUid: source.sopClassUid,
      sopInstanceUid: source.sopInstanceUid,
      datasetBytes: source.dataset,
    });
    const second = await assoc.sendCStore({
      sopClassUid: source.sopClassUid,
      sopInstanceUid: source.sopInstanceUid,
      datasetBytes: source.dataset,
    });
    await assoc.release();
    expect(first.status).toBe(STATUS.success);
    expect(second.status).toBe(STATUS.duplicateRejected);
    await server.engine.idle();
    expect(objectFiles(server.dataDir)).toHaveLength(1);
    expect(await server.index.totals()).toMatchObject({ instances: 1, duplicates: 1 });
  });

  it('indexes the newer object under the replace policy', async () => {
    const server = await startFresh({ storage: { duplicatePolicy: 'replace' } });
    // Same UIDs (same uidSeed), different content: the index must point at the second one's bytes.
    const first = await readPart10((await smallCt('replace-1', { uidSeed: 'replace', seriesDescription: 'first' })).files[0]);
    const second = await readPart10((await smallCt('replace-2', { uidSeed: 'replace', seriesDescription: 'second' })).files[0]);
    expect(second.sopInstanceUid).toBe(first.sopInstanceUid);
    expect(second.dataset.equals(first.dataset)).toBe(false);
    const events: InstanceReceived[] = [];
    server.events.on('InstanceReceived', (event) => events.push(event));
    const assoc = await associate(server);
    for (const object of [first, second]) {
      const response = await assoc.sendCStore({
        sopClassUid: object.sopClassUid,
        sopInstanceUid: object.sopInstanceUid,
        datasetBytes: object.dataset,
      });
      expect(response.status).toBe(STATUS.success);
    }
    await assoc.release();
    await eventually(
      () => server.index.totals(),
      (totals) => totals.duplicates === 1,
    );
    const stored = await storedObject(server, first.sopInstanceUid);
    expect(stored.part10.dataset.equals(second.dataset)).toBe(true);
    expect(events).toHaveLength(2);
    expect(stored.file).toBe(events[1].absolutePath);
    expect(await server.index.totals()).toMatchObject({ instances: 1, duplicates: 1, arrivals: 2 });
  });

  it('aborts an association whose P-DATA-TF is longer than negotiated, and keeps serving', async () => {
    const assoc = await associate(shared);
    expect(assoc.peerMaxPdu).toBe(65536);
    const header = Buffer.from([PduType.PData, 0, 0, 0, 0, 0]);
    header.writeUInt32BE(assoc.peerMaxPdu + 1, 2);
    await assoc.sendRawBytes(Buffer.concat([header, Buffer.alloc(1024)]));
    expect(['abort', 'closed']).toContain(await serverEnded(assoc.connection));
    expectExit0(await echo(shared));
  });

  it('aborts an association on an unknown PDU type, and keeps serving', async () => {
    const assoc = await associate(shared);
    await assoc.sendRawBytes(Buffer.from([0x09, 0, 0, 0, 0, 4, 0, 0, 0, 0]));
    expect(['abort', 'closed']).toContain(await serverEnded(assoc.connection));
    expectExit0(await echo(shared));
  });

  it('drops a connection that sends random bytes, and keeps serving', async () => {
    const random = seededRandom(2024);
    const connection = await RawConnection.connect('127.0.0.1', shared.dicomPort);
    await connection.sendRawBytes(Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256))));
    expect(['abort', 'closed']).toContain(await serverEnded(connection));
    expectExit0(await echo(shared));
    // None of the broken connections of these tests stays counted as an open association.
    await eventually(
      () => getJson(shared.httpPort, '/api/status', shared.adminToken),
      (reply) => reply.body.dicom.associations.open === 0,
    );
  });

  it('does not accept an A-ASSOCIATE-RQ that is empty or noise', async () => {
    const random = seededRandom(2024);
    // PS3.8 9.3.2: protocol version bit 0 set, then an Application Context item, presentation
    // context items and a User Information item. Neither of these has any of that.
    const empty = Buffer.concat([Buffer.from([PduType.AssociateRq, 0, 0, 0, 0, 68]), Buffer.alloc(68)]);
    const noise = Buffer.concat([
      Buffer.from([PduType.AssociateRq, 0, 0, 0, 0x0f, 0xfa]),
      Buffer.from(Array.from({ length: 4090 }, () => Math.floor(random() * 256))),
    ]);
    const outcomes: Record<string, string> = {};
    for (const [what, request] of [
      ['empty', empty],
      ['noise', noise],
    ] as const) {
      const connection = await RawConnection.connect('127.0.0.1', shared.dicomPort);
      await connection.sendRawBytes(request);
      outcomes[what] = await serverEnded(connection).catch((error: Error) => error.message);
      connection.destroy();
    }
    const refused = expect.stringMatching(/^(rejected|abort|closed)$/);
    expect(outcomes).toEqual({ empty: refused, noise: refused });
    expectExit0(await echo(shared));
  });

  it('takes four storescu senders at once', async () => {
    const server = await startFresh();
    const series = await Promise.all(
      [11, 12, 13, 14].map((seed) => ctSeries(path.join(tmp, `concurrent-${seed}`), { slices: 20, rows: 64, cols: 64, seed })),
    );
    const results = await Promise.all(series.map((s) => send(server, s.files)));
    results.forEach(expectExit0);
    await eventually(
      () => server.index.totals('Import'),
      (totals) => totals.instances >= 80,
    );
    expect(await server.index.totals('Import')).toMatchObject({ studies: 4, series: 4, instances: 80 });
    for (const s of series) {
      expect(
        await server.index.instances('Import', { seriesInstanceUids: [s.seriesInstanceUid], studyInstanceUids: [s.studyInstanceUid] }),
      ).toHaveLength(20);
    }
    expect(objectFiles(server.dataDir)).toHaveLength(80);
    expect(incomingFiles(server.dataDir)).toEqual([]);
  });

  it('stores into the database whose AE title was called', async () => {
    const server = await startFresh({ databases: [{ name: 'Import' }, { name: 'StudyA', aeTitle: 'STUDYA' }] });
    const [forStudyA, forImport] = await Promise.all([
      ctSeries(path.join(tmp, 'db-studya'), { slices: 2, rows: 64, cols: 64, seed: 15 }),
      ctSeries(path.join(tmp, 'db-import'), { slices: 3, rows: 64, cols: 64, seed: 16 }),
    ]);
    expectExit0(await storescu(['-aec', 'STUDYA', '127.0.0.1', String(server.dicomPort), ...forStudyA.files]));
    expectExit0(await send(server, forImport.files));
    await eventually(
      async () => (await server.index.totals()).instances,
      (instances) => instances >= 5,
    );
    expect((await server.index.totals('StudyA')).instances).toBe(2);
    expect((await server.index.totals('Import')).instances).toBe(3);
    expect((await server.index.studies('StudyA', {})).map((s) => s.study.StudyInstanceUID)).toEqual([forStudyA.studyInstanceUid]);
    expect((await server.index.studies('Import', {})).map((s) => s.study.StudyInstanceUID)).toEqual([forImport.studyInstanceUid]);
  });
});
