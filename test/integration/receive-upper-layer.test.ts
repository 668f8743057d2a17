// Issue 14, the DICOM upper layer as a hostile or careless peer meets it: timers (ARTIM, idle,
// DIMSE), the per-peer association limit, a C-STORE abandoned for the next command, commands
// that cannot be served, the peer's maximum PDU length, and arrival listeners that throw. Real
// sockets throughout (a raw upper-layer client, DCMTK); timers are configured at 1–2 s and every
// check polls for its condition with a deadline.
import { mkdtemp, rm } from 'node:fs/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, newUid } from '../fixtures/builder.ts';
import { element, instanceDataset, type InstanceIds } from '../fuzz/dicom-bytes.ts';
import { hasTool, storescu } from '../helpers/dcmtk.ts';
import {
  CommandField,
  encodeAssociateRq,
  encodeCommandSet,
  encodeReleaseRq,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  NO_DATA_SET,
  PduType,
  RawConnection,
  rawAssociate,
  VERIFICATION_SOP_CLASS,
  type DimseResponse,
  type RawAssociation,
} from '../helpers/raw-scu.ts';
import { eventually, getJson, incomingFiles, serverEnded, storedObject } from '../helpers/receive-checks.ts';
import { startTestServer } from '../helpers/server.ts';

type TestServer = Awaited<ReturnType<typeof startTestServer>>;

const AE_TITLE = 'DICOMFLOW';

let tmp: string;
const servers: TestServer[] = [];

async function start(config: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startTestServer(config);
  servers.push(server);
  return server;
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicomflow-upper-layer-'));
});

afterEach(async () => {
  for (const server of servers.splice(0)) {
    await server.close();
    await rm(server.dataDir, { recursive: true, force: true });
  }
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!hasTool('storescu'))('arrival listeners cannot touch the result of a C-STORE', () => {
  it('answers Success and keeps the object when a listener throws, and the next listener still hears of it', async () => {
    const server = await start();
    const ct = await ctSeries(path.join(tmp, 'listener'), { slices: 2, rows: 32, cols: 32, seed: 41 });
    server.events.on('InstanceReceived', () => {
      throw new Error('a listener that fails');
    });
    const heard: string[] = [];
    server.events.on('InstanceReceived', (event) => heard.push(event.sopInstanceUid));

    const sent = await storescu(['-aec', AE_TITLE, '127.0.0.1', String(server.dicomPort), ...ct.files]);
    expect(sent.code, `${sent.stdout}\n${sent.stderr}`).toBe(0);
    expect(sent.stderr).not.toMatch(/0110|Failed|Error/i);
    for (const uid of ct.sopInstanceUids) {
      const stored = await storedObject(server, uid);
      expect(fs.existsSync(stored.file)).toBe(true);
    }
    await eventually(
      () => heard.length,
      (n) => n === ct.sopInstanceUids.length,
    );
    expect(heard.sort()).toEqual([...ct.sopInstanceUids].sort());
  });
});

const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const STUDY_ROOT_GET = '1.2.840.10008.5.1.4.1.2.2.3';
const CONTEXT = { echo: 1, ct: 3, find: 5 } as const;
const STATUS = { success: 0x0000, cannotUnderstand: 0xc000 } as const;
// Long enough for a loaded 2-core machine to see a 1 s timer fire; the checks poll, never sleep.
const DEADLINE_MS = 15_000;

function associate(
  server: TestServer,
  options: { maxPdu?: number; applicationContextName?: string; localAddress?: string } = {},
): Promise<RawAssociation> {
  return rawAssociate({
    port: server.dicomPort,
    localAddress: options.localAddress,
    calledAe: AE_TITLE,
    callingAe: 'RAWSCU',
    maxPdu: options.maxPdu,
    applicationContextName: options.applicationContextName,
    contexts: [
      { id: CONTEXT.echo, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
      { id: CONTEXT.ct, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
      { id: CONTEXT.find, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
    ],
  });
}

async function accepted(server: TestServer, options?: Parameters<typeof associate>[1]): Promise<RawAssociation> {
  const assoc = await associate(server, options);
  expect(assoc.accepted, JSON.stringify(assoc.rejection)).toBe(true);
  return assoc;
}

function ids(name: string): InstanceIds {
  const root = newUid(name);
  return { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: `${root}.3`, studyInstanceUid: `${root}.1`, seriesInstanceUid: `${root}.2` };
}

function storeCommand(sopInstanceUid: string, messageId: number, withDataset = true): Buffer {
  return encodeCommandSet([
    [0x0002, { ui: CT_IMAGE_STORAGE }],
    [0x0100, { us: CommandField.CStoreRq }],
    [0x0110, { us: messageId }],
    [0x0700, { us: 0 }],
    [0x0800, { us: withDataset ? 0x0000 : NO_DATA_SET }],
    [0x1000, { ui: sopInstanceUid }],
  ]);
}

function echoCommand(messageId: number): Buffer {
  return encodeCommandSet([
    [0x0002, { ui: VERIFICATION_SOP_CLASS }],
    [0x0100, { us: CommandField.CEchoRq }],
    [0x0110, { us: messageId }],
    [0x0800, { us: NO_DATA_SET }],
  ]);
}

function openFileDescriptors(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

async function openAssociations(server: TestServer): Promise<number> {
  const status = await getJson(server.httpPort, '/api/status', server.adminToken);
  return status.body.dicom.associations.open as number;
}

describe('the timers of an association (ARTIM, idle, DIMSE)', () => {
  it('closes a connection that sends no A-ASSOCIATE-RQ, or only part of one, within dimse.artimTimeoutSeconds', async () => {
    const server = await start({ dimse: { artimTimeoutSeconds: 1 } });
    const silent = await RawConnection.connect('127.0.0.1', server.dicomPort);
    const partial = await RawConnection.connect('127.0.0.1', server.dicomPort);
    const rq = encodeAssociateRq({
      calledAe: AE_TITLE,
      contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
    });
    await partial.sendRawBytes(rq.subarray(0, 40));
    await Promise.all([silent.waitClosed(DEADLINE_MS), partial.waitClosed(DEADLINE_MS)]);
    // And it goes on serving.
    const assoc = await accepted(server);
    expect((await assoc.sendEcho()).status).toBe(STATUS.success);
    await assoc.release();
  });

  it('closes a connection whose peer keeps it open after A-RELEASE-RP', async () => {
    const server = await start({ dimse: { artimTimeoutSeconds: 1 } });
    const assoc = await accepted(server);
    await assoc.sendRawBytes(encodeReleaseRq());
    expect((await assoc.readPdu()).type).toBe(PduType.ReleaseRp);
    await assoc.connection.waitClosed(DEADLINE_MS);
  });

  it('aborts an association idle for dimse.associationTimeoutSeconds (A-ABORT, then close) and frees its slot', async () => {
    const server = await start({ dimse: { associationTimeoutSeconds: 1 } });
    const assoc = await accepted(server);
    expect((await assoc.sendEcho()).status).toBe(STATUS.success);
    expect(await openAssociations(server)).toBe(1);
    const pdu = await assoc.readPdu(DEADLINE_MS);
    expect(pdu.type).toBe(PduType.Abort);
    await assoc.connection.waitClosed(DEADLINE_MS);
    await eventually(
      () => openAssociations(server),
      (open) => open === 0,
    );
  });

  it('aborts a C-STORE whose data set stops for dimse.pduTimeoutSeconds and removes its partial file while the server runs', async () => {
    const server = await start({ dimse: { pduTimeoutSeconds: 1 } });
    const assoc = await accepted(server);
    const object = ids('dimse-timeout');
    const dataset = instanceDataset(object, { size: 64 });
    await assoc.writeMessage(CONTEXT.ct, storeCommand(object.sopInstanceUid, 1), { bytes: dataset.subarray(0, 4000), lastFragment: false });
    await eventually(
      () => incomingFiles(server.dataDir).length,
      (n) => n === 1,
    );
    const pdu = await assoc.readPdu(DEADLINE_MS);
    expect(pdu.type).toBe(PduType.Abort);
    await assoc.connection.waitClosed(DEADLINE_MS);
    await eventually(
      () => incomingFiles(server.dataDir),
      (files) => files.length === 0,
    );
    expect(await server.index.instances('Import', { sopInstanceUids: [object.sopInstanceUid] })).toEqual([]);
  });
  it('removes the partial file of a C-STORE whose peer aborts or just closes mid data set, while the server runs', async () => {
    const server = await start();
    for (const end of ['abort', 'close'] as const) {
      const assoc = await accepted(server);
      const object = ids(`peer-${end}s`);
      const dataset = instanceDataset(object, { size: 64 });
      await assoc.writeMessage(CONTEXT.ct, storeCommand(object.sopInstanceUid, 1), {
        bytes: dataset.subarray(0, 4000),
        lastFragment: false,
      });
      await eventually(
        () => incomingFiles(server.dataDir).length,
        (n) => n === 1,
      );
      if (end === 'abort') await assoc.abort();
      else assoc.connection.destroy();
      await eventually(
        () => incomingFiles(server.dataDir),
        (files) => files.length === 0,
      );
      expect(await server.index.instances('Import', { sopInstanceUids: [object.sopInstanceUid] })).toEqual([]);
    }
  });

  it('aborts a C-GET whose peer never answers its C-STORE sub-operation within dimse.pduTimeoutSeconds', async () => {
    const server = await start({ dimse: { pduTimeoutSeconds: 1 } });
    const object = ids('get-never-answered');
    const storer = await accepted(server);
    expect(
      (
        await storer.sendCStore({
          pcId: CONTEXT.ct,
          sopClassUid: CT_IMAGE_STORAGE,
          sopInstanceUid: object.sopInstanceUid,
          datasetBytes: instanceDataset(object),
        })
      ).status,
    ).toBe(STATUS.success);
    await storer.release();
    await storedObject(server, object.sopInstanceUid);

    // PS3.4 C.4.3: the C-STOREs of a C-GET come back on its own association, to the SCP role.
    const assoc = await rawAssociate({
      port: server.dicomPort,
      calledAe: AE_TITLE,
      callingAe: 'RAWSCU',
      contexts: [
        { id: 1, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
        { id: 3, abstractSyntax: STUDY_ROOT_GET, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
      ],
      roles: [{ abstractSyntax: CT_IMAGE_STORAGE, scu: true, scp: true }],
    });
    expect(assoc.accepted).toBe(true);
    const getCommand = encodeCommandSet([
      [0x0002, { ui: STUDY_ROOT_GET }],
      [0x0100, { us: 0x0010 }],
      [0x0110, { us: 1 }],
      [0x0700, { us: 0 }],
      [0x0800, { us: 0x0000 }],
    ]);
    await assoc.writeMessage(3, getCommand, {
      bytes: Buffer.concat([element(0x00080052, 'CS', 'STUDY'), element(0x0020000d, 'UI', object.studyInstanceUid)]),
    });
    const subOperation = await assoc.readDimseResponse();
    expect(subOperation.commandField).toBe(CommandField.CStoreRq);
    // No C-STORE-RSP from us: the rest of its data set, then A-ABORT.
    let last;
    do last = await assoc.readPdu(DEADLINE_MS);
    while (last.type === PduType.PData);
    expect(last.type).toBe(PduType.Abort);
    await assoc.connection.waitClosed(DEADLINE_MS);
  });
});

describe('limits', () => {
  it('rejects associations of one peer address beyond dimse.maxAssociationsPerPeer (transient, local limit exceeded) and takes the next once one ends', async () => {
    const server = await start({ dimse: { maxAssociationsPerPeer: 2 } });
    const first = await accepted(server);
    const second = await accepted(server);
    const third = await associate(server);
    expect(third.accepted).toBe(false);
    // PS3.8 9.3.4: rejected-transient (2), service-provider presentation (3), local-limit-exceeded (2).
    expect(third.rejection).toEqual({ result: 2, source: 3, reason: 2 });
    // Another host still gets in (on Linux every 127.x.y.z is the loopback interface).
    const otherHost = await accepted(server, { localAddress: '127.0.0.2' });
    await otherHost.release();
    await first.release();
    const fourth = await eventually(
      () => associate(server),
      (a) => a.accepted,
    );
    expect((await fourth.sendEcho()).status).toBe(STATUS.success);
    await Promise.all([second.release(), fourth.release()]);
  });
});

describe('every message gets an answer, and an abandoned one leaves nothing behind', () => {
  it('ends a C-STORE at once when the next command comes before its data set ended: C000, no partial file, no descriptor left', async () => {
    const server = await start();
    const assoc = await accepted(server);
    expect((await assoc.sendEcho()).status).toBe(STATUS.success);
    const descriptorsBefore = openFileDescriptors();
    const abandoned = Array.from({ length: 40 }, (_, i) => ids(`abandoned-${i}`));
    for (const [i, object] of abandoned.entries()) {
      const dataset = instanceDataset(object, { size: 32 });
      await assoc.writeMessage(CONTEXT.ct, storeCommand(object.sopInstanceUid, 100 + i), {
        bytes: dataset.subarray(0, dataset.length >> 1),
        lastFragment: false,
      });
    }
    const kept = ids('kept-after-abandoned');
    await assoc.writeCStore({
      pcId: CONTEXT.ct,
      sopClassUid: CT_IMAGE_STORAGE,
      sopInstanceUid: kept.sopInstanceUid,
      datasetBytes: instanceDataset(kept),
      messageId: 200,
    });
    // The responses come in order: the 40 refusals, each as the next command came, then Success.
    const refusals: DimseResponse[] = [];
    for (let i = 0; i < abandoned.length; i++) refusals.push(await assoc.readDimseResponse());
    const final = await assoc.readDimseResponse();
    expect(refusals.map((r) => [r.messageIdBeingRespondedTo, r.status])).toEqual(
      abandoned.map((_, i) => [100 + i, STATUS.cannotUnderstand]),
    );
    expect([final.messageIdBeingRespondedTo, final.status]).toEqual([200, STATUS.success]);

    // While the association is still open: nothing of the abandoned objects is on disk or open.
    await eventually(
      () => incomingFiles(server.dataDir),
      (files) => files.length === 0,
    );
    await eventually(openFileDescriptors, (n) => n <= descriptorsBefore + 4);
    await storedObject(server, kept.sopInstanceUid);
    expect(await server.index.instances('Import', { sopInstanceUids: abandoned.map((o) => o.sopInstanceUid) })).toEqual([]);
    expect((await assoc.sendEcho()).status).toBe(STATUS.success);
    await assoc.release();
  });

  it('answers a C-STORE that announces a data set but is followed by another command (C000), then that command', async () => {
    const server = await start();
    const assoc = await accepted(server);
    const object = ids('no-dataset-came');
    await assoc.writeMessage(CONTEXT.ct, storeCommand(object.sopInstanceUid, 7));
    await assoc.writeMessage(CONTEXT.echo, echoCommand(8));
    const store = await assoc.readDimseResponse();
    const echo = await assoc.readDimseResponse();
    expect([store.commandField, store.messageIdBeingRespondedTo, store.status]).toEqual([
      CommandField.CStoreRsp,
      7,
      STATUS.cannotUnderstand,
    ]);
    expect([echo.commandField, echo.messageIdBeingRespondedTo, echo.status]).toEqual([CommandField.CEchoRsp, 8, STATUS.success]);
    // A C-STORE that says no data set follows is refused at once.
    await assoc.writeMessage(CONTEXT.ct, storeCommand(object.sopInstanceUid, 9, false));
    expect((await assoc.readDimseResponse()).status).toBe(STATUS.cannotUnderstand);
    await eventually(
      () => incomingFiles(server.dataDir),
      (files) => files.length === 0,
    );
    await assoc.release();
  });

  it('aborts, never ignores, a command set it cannot read, an unknown command field, and a response to no request', async () => {
    const server = await start();
    const unreadable = Buffer.from('this is no command set at all!', 'latin1');
    const unknownField = encodeCommandSet([
      [0x0100, { us: 0x1234 }],
      [0x0110, { us: 1 }],
      [0x0800, { us: NO_DATA_SET }],
    ]);
    const unsolicitedResponse = encodeCommandSet([
      [0x0002, { ui: VERIFICATION_SOP_CLASS }],
      [0x0100, { us: CommandField.CEchoRsp }],
      [0x0120, { us: 1 }],
      [0x0800, { us: NO_DATA_SET }],
      [0x0900, { us: 0 }],
    ]);
    const noMessageId = encodeCommandSet([
      [0x0002, { ui: VERIFICATION_SOP_CLASS }],
      [0x0100, { us: CommandField.CEchoRq }],
      [0x0800, { us: NO_DATA_SET }],
    ]);
    for (const command of [unreadable, unknownField, unsolicitedResponse, noMessageId]) {
      const assoc = await accepted(server);
      await assoc.writeMessage(CONTEXT.echo, command);
      expect(await serverEnded(assoc.connection, DEADLINE_MS)).toBe('abort');
    }
    const assoc = await accepted(server);
    expect((await assoc.sendEcho()).status).toBe(STATUS.success);
    await assoc.release();
  });

  it('rejects an A-ASSOCIATE-RQ naming another application context (permanent, service user, "application context name not supported")', async () => {
    const server = await start();
    const assoc = await associate(server, { applicationContextName: '1.2.840.10008.3.1.1.2' });
    expect(assoc.accepted).toBe(false);
    expect(assoc.rejection).toEqual({ result: 1, source: 1, reason: 2 });
  });

  it("keeps every P-DATA-TF within the peer's maximum PDU length: a C-FIND match longer than it comes in fragments", async () => {
    // PS3.8 D.1 sets no floor under a peer's maximum PDU length; at 256 bytes, an ordinary match
    // (full-length study keys, ~400 bytes) must be cut.
    const maxPdu = 256;
    const server = await start();
    const assoc = await accepted(server, { maxPdu });
    const object = ids('long-study-values');
    const keys: Array<[number, string, string]> = [
      [0x00080050, 'SH', 'A'.repeat(16)],
      [0x00080090, 'PN', 'R'.repeat(64)],
      [0x00081030, 'LO', 'D'.repeat(64)],
      [0x00100010, 'PN', 'P'.repeat(64)],
      [0x00100020, 'LO', 'I'.repeat(64)],
    ];
    const dataset = Buffer.concat([
      element(0x00080016, 'UI', object.sopClassUid),
      element(0x00080018, 'UI', object.sopInstanceUid),
      ...keys.filter(([tag]) => tag < 0x00080060).map(([tag, vr, value]) => element(tag, vr, value)),
      element(0x00080060, 'CS', 'CT'),
      ...keys.filter(([tag]) => tag > 0x00080060).map(([tag, vr, value]) => element(tag, vr, value)),
      element(0x0020000d, 'UI', object.studyInstanceUid),
      element(0x0020000e, 'UI', object.seriesInstanceUid),
    ]);
    const stored = await assoc.sendCStore({
      pcId: CONTEXT.ct,
      sopClassUid: CT_IMAGE_STORAGE,
      sopInstanceUid: object.sopInstanceUid,
      datasetBytes: dataset,
    });
    expect(stored.status).toBe(STATUS.success);
    await storedObject(server, object.sopInstanceUid);
    const identifier = Buffer.concat([
      element(0x00080050, 'SH', ''),
      element(0x00080052, 'CS', 'STUDY'),
      element(0x00080090, 'PN', ''),
      element(0x00081030, 'LO', ''),
      element(0x00100010, 'PN', ''),
      element(0x00100020, 'LO', ''),
      element(0x0020000d, 'UI', object.studyInstanceUid),
    ]);
    const findCommand = encodeCommandSet([
      [0x0002, { ui: STUDY_ROOT_FIND }],
      [0x0100, { us: CommandField.CFindRq }],
      [0x0110, { us: 2 }],
      [0x0700, { us: 0 }],
      [0x0800, { us: 0x0000 }],
    ]);
    const before = assoc.connection.received.length;
    await assoc.writeMessage(CONTEXT.find, findCommand, { bytes: identifier });
    const responses = await assoc.readResponsesUntilFinal();
    expect(responses.map((r) => r.status)).toEqual([0xff00, STATUS.success]);
    const pdata = assoc.connection.received.slice(before).filter((p) => p.type === PduType.PData);
    expect(pdata.reduce((sum, p) => sum + p.length, 0)).toBeGreaterThan(2 * maxPdu);
    expect(Math.max(...pdata.map((p) => p.length))).toBeLessThanOrEqual(maxPdu);
    await assoc.release();
  });
});
