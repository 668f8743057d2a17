// The C-STORE SCU (base of forwarding and C-MOVE/C-GET sub-operations) against real DCMTK
// storescp in bit-preserving mode (+B): what arrives must be the stored dataset bytes, private
// tags and all. Small fake peers stand in for what storescp will not do (stay silent), and a TCP
// proxy watches the PDUs the SCU puts on the wire.
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/part10.ts';
import { isDfError } from '../../core/errors.ts';
import { echoPeer, isScuError, openAssociation, sendFiles, type ScuErrorCode, type SendFileResult } from '../../server/dimse/store-scu.ts';
import {
  CommandField,
  decodeCommand,
  decodePData,
  encodeCommand,
  encodePData,
  encodeReleaseRp,
  NO_DATA_SET,
  PduReader,
  PduType,
  PdvControl,
  statusCategory,
} from '../../server/dimse/upper-layer.ts';
import {
  compress,
  ctSeries,
  ctSliceWithPrivateTags,
  mrSeries,
  petSeries,
  secondaryCaptureRgb,
  SopClass,
  TransferSyntax,
} from '../fixtures/builder.ts';
import { startStorescp, type DcmtkPeer } from '../helpers/dcmtk-peers.ts';
import { dumpDataset, hasTool } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { readPart10, type Part10Parts } from '../helpers/part10.ts';

const CALLING = 'DICOMFLOW';
const VERIFICATION = '1.2.840.10008.1.1';

let tmp: string;
let files: { ct: string[]; mr: string[]; pet: string[]; sc: string[]; jpeg: string; large: string; huge: string };
const peers: DcmtkPeer[] = [];
const servers: net.Server[] = [];

async function storescp(args: string[] = []): Promise<DcmtkPeer> {
  const peer = await startStorescp({ args });
  peers.push(peer);
  return peer;
}

function to(peer: { port: number; aeTitle?: string }) {
  return { host: '127.0.0.1', port: peer.port, callingAeTitle: CALLING, calledAeTitle: peer.aeTitle ?? 'ANY-SCP' };
}

/** What storescp wrote, by SOP Instance UID. */
async function received(dir: string): Promise<Map<string, Part10Parts & { file: string }>> {
  const byUid = new Map<string, Part10Parts & { file: string }>();
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    const parts = await readPart10(file);
    byUid.set(parts.sopInstanceUid, { ...parts, file });
  }
  return byUid;
}

async function expectSameDatasets(sources: readonly string[], dir: string): Promise<void> {
  const got = await received(dir);
  for (const source of sources) {
    const sent = await readPart10(source);
    const arrived = got.get(sent.sopInstanceUid);
    expect(arrived, `${path.basename(source)} arrived`).toBeDefined();
    expect(arrived!.transferSyntaxUid).toBe(sent.transferSyntaxUid);
    expect(arrived!.dataset.length, path.basename(source)).toBe(sent.dataset.length);
    expect(Buffer.compare(arrived!.dataset, sent.dataset), `${path.basename(source)}: dataset bytes identical`).toBe(0);
  }
}

function expectError(result: SendFileResult | undefined, code: ScuErrorCode | 'DF_ERR_DATASET_MALFORMED', message?: RegExp): void {
  expect(result?.outcome).toBe('error');
  const err = result?.error;
  expect(isScuError(err, code as ScuErrorCode) || isDfError(err, code as 'DF_ERR_DATASET_MALFORMED'), String(err)).toBe(true);
  if (message) expect(err!.message).toMatch(message);
}

async function expectRejects(promise: Promise<unknown>, code: ScuErrorCode, message?: RegExp): Promise<Error> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e as Error,
  );
  expect(err, 'rejected').toBeInstanceOf(Error);
  expect(isScuError(err, code), String(err)).toBe(true);
  if (message) expect(err!.message).toMatch(message);
  return err!;
}

// ---------------------------------------------------------------------------------------------
// Fake peers

function listen(server: net.Server): Promise<number> {
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function item(type: number, body: Buffer): Buffer {
  const head = Buffer.from([type, 0, 0, 0]);
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([head, body]);
}

/** An A-ASSOCIATE-AC accepting every proposed context in its first transfer syntax. */
function acceptEverything(rq: Buffer): Buffer {
  const body = rq.subarray(6);
  const items: Buffer[] = [item(0x10, Buffer.from('1.2.840.10008.3.1.1.1', 'latin1'))];
  for (let at = 68; at + 4 <= body.length; ) {
    const type = body[at];
    const length = body.readUInt16BE(at + 2);
    const value = body.subarray(at + 4, at + 4 + length);
    if (type === 0x20) {
      const firstTs = value.subarray(4 + 4 + value.readUInt16BE(6)); // after the abstract syntax sub-item
      items.push(
        item(0x21, Buffer.concat([Buffer.from([value[0], 0, 0, 0]), item(0x40, firstTs.subarray(4, 4 + firstTs.readUInt16BE(2)))])),
      );
    }
    at += 4 + length;
  }
  const maxPdu = Buffer.alloc(4);
  maxPdu.writeUInt32BE(16384);
  items.push(item(0x50, item(0x51, maxPdu)));
  const payload = Buffer.concat([body.subarray(0, 68), ...items]);
  const head = Buffer.from([0x02, 0, 0, 0, 0, 0]);
  head.writeUInt32BE(payload.length, 2);
  return Buffer.concat([head, payload]);
}

type FakeBehaviour =
  /** Reads everything, answers nothing, not even the A-ASSOCIATE-RQ. */
  | { associate: false }
  /** Accepts the association, then reads on (or stops reading) and never answers. */
  | { associate: true; then: 'stay-silent' | 'stop-reading' }
  /** Accepts the association and answers each C-STORE with the next of these statuses. */
  | { associate: true; then: 'answer'; statuses: number[] };

/** A peer that does what storescp will not. */
async function fakePeer(behaviour: FakeBehaviour): Promise<{ port: number }> {
  const server = net.createServer((socket) => {
    const reader = new PduReader(0);
    let associated = false;
    let command: ReturnType<typeof decodeCommand> | undefined;
    let commandParts: Buffer[] = [];
    let answered = 0;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      if (!behaviour.associate) return;
      for (const pdu of reader.push(chunk)) {
        if (!associated) {
          associated = true;
          const header = Buffer.from([pdu.type, 0, 0, 0, 0, 0]);
          header.writeUInt32BE(pdu.body.length, 2);
          socket.write(acceptEverything(Buffer.concat([header, pdu.body])));
          if (behaviour.then === 'stop-reading') socket.pause();
          continue;
        }
        if (behaviour.then !== 'answer') continue;
        if (pdu.type === PduType.ReleaseRq) socket.end(encodeReleaseRp());
        if (pdu.type !== PduType.PData) continue;
        for (const pdv of decodePData(pdu.body)) {
          const last = (pdv.control & PdvControl.Last) !== 0;
          if ((pdv.control & PdvControl.Command) !== 0) {
            commandParts.push(pdv.value);
            if (last) command = decodeCommand(Buffer.concat(commandParts.splice(0)));
          } else if (last && command !== undefined) {
            const status = behaviour.statuses[answered++];
            const response = encodeCommand({
              AffectedSOPClassUID: command.AffectedSOPClassUID,
              CommandField: CommandField.CStoreRsp,
              MessageIDBeingRespondedTo: command.MessageID,
              CommandDataSetType: NO_DATA_SET,
              Status: status,
              AffectedSOPInstanceUID: command.AffectedSOPInstanceUID,
              ...(statusCategory(status) === 'failure' ? { ErrorComment: 'fake peer says no' } : {}),
            });
            socket.write(encodePData(pdv.contextId, PdvControl.Command | PdvControl.Last, response));
            command = undefined;
            commandParts = [];
          }
        }
      }
    });
  });
  return { port: await listen(server) };
}

interface WirePdu {
  type: number;
  length: number;
  body?: Buffer;
}

/** A TCP proxy to `target` recording the PDUs the client sends (bodies only for small ones). */
async function recordingProxy(target: number): Promise<{ port: number; sent: WirePdu[] }> {
  const sent: WirePdu[] = [];
  const server = net.createServer((client) => {
    const upstream = net.connect({ host: '127.0.0.1', port: target });
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    let header = Buffer.alloc(0);
    let current: WirePdu | undefined;
    let remaining = 0;
    let parts: Buffer[] = [];
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      let at = 0;
      while (at < chunk.length) {
        if (remaining === 0) {
          const take = Math.min(6 - header.length, chunk.length - at);
          header = Buffer.concat([header, chunk.subarray(at, at + take)]);
          at += take;
          if (header.length < 6) break;
          current = { type: header[0], length: header.readUInt32BE(2) };
          sent.push(current);
          remaining = current.length;
          header = Buffer.alloc(0);
          parts = [];
          continue;
        }
        const take = Math.min(remaining, chunk.length - at);
        if (current!.type !== 0x04) parts.push(chunk.subarray(at, at + take));
        at += take;
        remaining -= take;
        if (remaining === 0 && current!.type !== 0x04) current!.body = Buffer.concat(parts);
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  return { port: await listen(server), sent };
}

/** The max PDU length an A-ASSOCIATE-RQ announces (user information sub-item 0x51). */
function announcedMaxPdu(rq: Buffer): number | undefined {
  for (let at = 68; at + 4 <= rq.length; at += 4 + rq.readUInt16BE(at + 2)) {
    if (rq[at] !== 0x50) continue;
    const user = rq.subarray(at + 4, at + 4 + rq.readUInt16BE(at + 2));
    for (let u = 0; u + 4 <= user.length; u += 4 + user.readUInt16BE(u + 2)) if (user[u] === 0x51) return user.readUInt32BE(u + 4);
  }
  return undefined;
}

// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicomflow-store-scu-'));
  const [ct, mr, pet, sc, toCompress, large, huge] = await Promise.all([
    ctSeries(path.join(tmp, 'ct'), { slices: 3, rows: 128, cols: 128, withPrivateTags: true, seed: 3 }),
    mrSeries(path.join(tmp, 'mr'), {
      slices: 2,
      rows: 64,
      cols: 64,
      withPrivateTags: true,
      seed: 4,
      transferSyntaxUid: TransferSyntax.ImplicitVRLittleEndian,
    }),
    petSeries(path.join(tmp, 'pet'), { slices: 2, rows: 32, cols: 32, frameDurationsSec: [30, 60], withPrivateTags: true, seed: 5 }),
    secondaryCaptureRgb(path.join(tmp, 'sc'), { count: 2, rows: 64, cols: 64, withPrivateTags: true, seed: 6 }),
    ctSliceWithPrivateTags(path.join(tmp, 'to-compress'), { seed: 7 }),
    ctSeries(path.join(tmp, 'large'), { slices: 1, rows: 512, cols: 512, seed: 8 }),
    ctSeries(path.join(tmp, 'huge'), { slices: 1, rows: 4096, cols: 4096, seed: 9 }),
  ]);
  const jpeg = await compress(toCompress.files[0], 'jpeg-lossless', path.join(tmp, 'ct-jpeg-lossless.dcm'));
  files = { ct: ct.files, mr: mr.files, pet: pet.files, sc: sc.files, jpeg: jpeg.file, large: large.files[0], huge: huge.files[0] };
});

afterEach(async () => {
  await Promise.all(
    peers.splice(0).map(async (peer) => {
      await peer.stop();
      await rm(peer.dir, { recursive: true, force: true });
    }),
  );
  for (const server of servers.splice(0)) server.close();
});

afterAll(async () => {
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

describe('upper-layer command sets', () => {
  it('round-trips a C-STORE-RQ command set in implicit VR LE with its group length first', () => {
    const bytes = encodeCommand({
      AffectedSOPClassUID: SopClass.CtImageStorage,
      CommandField: 0x0001,
      MessageID: 7,
      Priority: 0,
      CommandDataSetType: 0,
      AffectedSOPInstanceUID: '1.2.3',
      MoveOriginatorApplicationEntityTitle: 'MOVER',
    });
    expect(bytes.readUInt32LE(0)).toBe(0x00000000); // (0000,0000)
    expect(bytes.readUInt32LE(8)).toBe(bytes.length - 12);
    expect(bytes.length % 2).toBe(0);
    expect(decodeCommand(bytes)).toEqual({
      AffectedSOPClassUID: SopClass.CtImageStorage,
      CommandField: 1,
      MessageID: 7,
      Priority: 0,
      CommandDataSetType: 0,
      AffectedSOPInstanceUID: '1.2.3',
      MoveOriginatorApplicationEntityTitle: 'MOVER',
    });
  });

  it('counts 0xB000, 0xB006 and 0xB007 as warnings, 0xA700 as a failure', () => {
    expect([0x0000, 0xb000, 0xb006, 0xb007, 0xa700, 0xc000].map(statusCategory)).toEqual([
      'success',
      'warning',
      'warning',
      'warning',
      'failure',
      'failure',
    ]);
  });
});

describe.skipIf(!hasTool('storescp'))('C-STORE SCU against DCMTK storescp', () => {
  it('C-ECHOes on a fresh association (echoPeer) and twice on one kept open', async () => {
    const peer = await storescp();
    expect(await echoPeer(to(peer))).toEqual({ status: 0, outcome: 'success' });
    const association = await openAssociation({
      ...to(peer),
      contexts: [{ abstractSyntax: VERIFICATION, transferSyntaxes: [TransferSyntax.ImplicitVRLittleEndian] }],
    });
    expect(association.acceptedContexts).toHaveLength(1);
    expect(await association.echo()).toEqual({ status: 0, outcome: 'success' });
    expect(await association.echo()).toEqual({ status: 0, outcome: 'success' });
    await association.release();
    expect(association.isOpen).toBe(false);
  });

  it('announces its implementation class UID, version name, max PDU and role selections as DCMTK reads them', async () => {
    const peer = await storescp(['-d']);
    const association = await openAssociation({
      ...to(peer),
      maxPduLength: 131072,
      contexts: [
        { abstractSyntax: VERIFICATION, transferSyntaxes: [TransferSyntax.ImplicitVRLittleEndian] },
        { abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] },
      ],
      roleSelections: [{ sopClassUid: SopClass.CtImageStorage, scuRole: true, scpRole: true }],
    });
    expect(association.peerImplementationVersionName).toMatch(/^OFFIS_DCMTK_/);
    await association.release();
    await peer.stop();
    const log = peer.log();
    expect(log).toContain(`Their Implementation Class UID:    ${IMPLEMENTATION_CLASS_UID}`);
    expect(log).toContain(`Their Implementation Version Name: ${IMPLEMENTATION_VERSION_NAME}`);
    expect(log).toContain('Their Max PDU Receive Size:  131072');
    expect(log).toContain('Proposed SCP/SCU Role: SCP/SCU');
  });

  it('sends CT, MR, PET, SC and JPEG lossless objects on one association, each dataset byte for byte as stored', async () => {
    const peer = await storescp(['+xa', '-v']); // +xa: accept JPEG lossless too; -v: log associations
    const all = [...files.ct, ...files.mr, ...files.pet, ...files.sc, files.jpeg];
    const progress: number[] = [];
    const results = await sendFiles({ ...to(peer), files: all, onProgress: ({ done, total }) => progress.push(done / total) });
    expect(results.map((r) => [path.basename(r.file), r.outcome, r.status])).toEqual(all.map((f) => [path.basename(f), 'success', 0]));
    expect(progress).toHaveLength(all.length);
    expect(progress.at(-1)).toBe(1);
    expect(results.find((r) => r.file === files.jpeg)?.transferSyntaxUid).toBe(TransferSyntax.JpegLosslessSV1);
    expect(peer.log().match(/Association Acknowledged/g)).toHaveLength(1);
    await expectSameDatasets(all, peer.dir);

    // Private creators, private values and nested private sequences, as DCMTK reads them (in
    // explicit VR: in implicit VR, DCMTK knows no VR for these private tags and dumps bytes).
    const got = await received(peer.dir);
    for (const source of [files.ct[0], files.pet[0], files.sc[0], files.jpeg]) {
      const { sopInstanceUid } = await readPart10(source);
      const dump = await dumpDataset(got.get(sopInstanceUid)!.file);
      expect(dump['00090010']).toBe('DICOMFLOW FIXTURE');
      expect(dump['00091001']).toMatch(/^private text \d+$/);
      const items = dump['00091010'] as Array<Record<string, unknown>>;
      expect(items).toHaveLength(2);
      expect((items[0]['00091012'] as Array<Record<string, unknown>>)[0].CodeValue).toBe('DF001');
    }
  });

  it('reports a transfer syntax the peer refuses and an unreadable file per file, and sends the rest', async () => {
    const peer = await storescp(); // storescp's default accepts uncompressed transfer syntaxes only
    const notDicom = path.join(tmp, 'not-dicom.dcm');
    await writeFile(notDicom, 'hello');
    const missing = path.join(tmp, 'missing.dcm');
    const results = await sendFiles({ ...to(peer), files: [files.jpeg, files.ct[0], notDicom, missing, files.sc[0]] });
    expectError(
      results[0],
      'DF_ERR_CONTEXT_REJECTED',
      /CTImageStorage \(1\.2\.840\.10008\.5\.1\.4\.1\.1\.2\) in JPEGLosslessSV1 \(1\.2\.840\.10008\.1\.2\.4\.70\); for this SOP class it answered: JPEGLosslessSV1 refused \(none of the proposed transfer syntaxes supported\), ExplicitVRLittleEndian accepted.*does not transcode yet$/,
    );
    expect(results[1]).toMatchObject({ outcome: 'success', status: 0 });
    expectError(results[2], 'DF_ERR_DATASET_MALFORMED', /not-dicom\.dcm.*not a DICOM Part 10 file/);
    expectError(results[3], 'DF_ERR_FILE_READ', /missing\.dcm.*ENOENT/);
    expect(results[4]).toMatchObject({ outcome: 'success', status: 0 });
    await expectSameDatasets([files.ct[0], files.sc[0]], peer.dir);
  });

  it("fragments to the peer's max PDU: 16384 and 131072", async () => {
    for (const peerMax of [16384, 131072]) {
      const peer = await storescp(['-pdu', String(peerMax)]);
      const proxy = await recordingProxy(peer.port);
      const association = await openAssociation({
        ...to({ port: proxy.port, aeTitle: peer.aeTitle }),
        maxPduLength: 262144,
        contexts: [{ abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] }],
      });
      expect(association.peerMaxPduLength).toBe(peerMax);
      const result = await association.store({ file: files.large });
      expect(result).toMatchObject({ status: 0, outcome: 'success' });
      await association.release();

      expect(announcedMaxPdu(proxy.sent[0].body!)).toBe(262144);
      const data = proxy.sent.filter((p) => p.type === 0x04).slice(1); // the first is the command
      // PDU length = PDV item header (4 + 2) + fragment, never above the peer's maximum.
      expect(Math.max(...data.map((p) => p.length))).toBe(peerMax);
      expect(data).toHaveLength(Math.ceil(result.datasetBytes / (peerMax - 6)));
      expect(data.reduce((sum, p) => sum + p.length - 6, 0)).toBe(result.datasetBytes);
      await expectSameDatasets([files.large], peer.dir);
      await peer.stop();
    }
  });

  it('a peer that rejects the association gives DF_ERR_ASSOCIATION_REJECTED with its reason, for every file', async () => {
    const peer = await storescp(['--refuse']);
    await expectRejects(
      echoPeer(to(peer)),
      'DF_ERR_ASSOCIATION_REJECTED',
      /STORESCP at 127\.0\.0\.1:\d+ rejected the association \(permanent; service user: no reason given\)/,
    );
    const results = await sendFiles({ ...to(peer), files: files.ct });
    for (const r of results) expectError(r, 'DF_ERR_ASSOCIATION_REJECTED', /was not sent: STORESCP .* rejected the association/);
  });

  it('a peer that aborts after the C-STORE-RQ gives DF_ERR_ASSOCIATION_ABORTED; the files after it are not sent', async () => {
    const peer = await storescp(['--abort-after']);
    const { sopInstanceUid } = await readPart10(files.ct[0]);
    const results = await sendFiles({ ...to(peer), files: files.ct });
    expectError(
      results[0],
      'DF_ERR_ASSOCIATION_ABORTED',
      new RegExp(
        `aborted the association \\(A-ABORT, source: service user\\) while waiting for the C-STORE-RSP of SOP instance ${sopInstanceUid.replaceAll('.', '\\.')}`,
      ),
    );
    expectError(results[1], 'DF_ERR_ASSOCIATION_ABORTED', /CT0002\.dcm \(SOP instance .*\) was not sent: .*aborted the association/);
    expectError(results[2], 'DF_ERR_ASSOCIATION_ABORTED', /CT0003\.dcm .* was not sent/);
  });

  it('a peer that aborts while the dataset arrives gives DF_ERR_ASSOCIATION_ABORTED and a dead association', async () => {
    const peer = await storescp(['--abort-during']);
    const association = await openAssociation({
      ...to(peer),
      contexts: [{ abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] }],
    });
    const { sopInstanceUid } = await readPart10(files.large);
    await expectRejects(
      association.store({ file: files.large }),
      'DF_ERR_ASSOCIATION_ABORTED',
      new RegExp(`STORESCP at .* (aborted|closed).* SOP instance ${sopInstanceUid.replaceAll('.', '\\.')}`),
    );
    expect(association.isOpen).toBe(false);
    await expectRejects(association.store({ file: files.ct[0] }), 'DF_ERR_ASSOCIATION_ABORTED');
  });
});

describe('C-STORE SCU against peers that fail', () => {
  it('a peer that does not listen gives DF_ERR_PEER_UNREACHABLE at once', async () => {
    const port = await freePort();
    await expectRejects(
      echoPeer(to({ port })),
      'DF_ERR_PEER_UNREACHABLE',
      /could not connect to ANY-SCP at 127\.0\.0\.1:\d+: connection refused/,
    );
    const results = await sendFiles({ ...to({ port }), files: files.ct.slice(0, 2) });
    // Refused, not retried: each file says so (a hang would end the test at its timeout).
    for (const r of results) expectError(r, 'DF_ERR_PEER_UNREACHABLE', /was not sent: could not connect/);
  });

  it('a peer that accepts the connection but never answers the A-ASSOCIATE-RQ times out', async () => {
    const { port } = await fakePeer({ associate: false });
    await expectRejects(
      echoPeer({ ...to({ port }), responseTimeoutMs: 400 }),
      'DF_ERR_PEER_TIMEOUT',
      /ANY-SCP at 127\.0\.0\.1:\d+ did not answer within 400 ms after the A-ASSOCIATE-RQ/,
    );
  });

  it('a peer that accepts the association but never sends the C-STORE-RSP times out per response', async () => {
    const { port } = await fakePeer({ associate: true, then: 'stay-silent' });
    const association = await openAssociation({
      ...to({ port }),
      responseTimeoutMs: 400,
      contexts: [{ abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] }],
    });
    expect(association.peerMaxPduLength).toBe(16384);
    await expectRejects(
      association.store({ file: files.ct[0] }),
      'DF_ERR_PEER_TIMEOUT',
      /did not answer within 400 ms while waiting for the C-STORE-RSP of SOP instance/,
    );
    expect(association.isOpen).toBe(false);
  });

  it('a peer that stops reading mid-dataset times out instead of hanging', async () => {
    const { port } = await fakePeer({ associate: true, then: 'stop-reading' });
    const association = await openAssociation({
      ...to({ port }),
      responseTimeoutMs: 400,
      contexts: [{ abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] }],
    });
    // 32 MiB: more than loopback socket buffers take in, so the writes stall.
    await expectRejects(
      association.store({ file: files.huge }),
      'DF_ERR_PEER_TIMEOUT',
      /read nothing for 400 ms while sending SOP instance/,
    );
  });

  it('reports warning statuses as success with a warning and failure statuses with their comment', async () => {
    const { port } = await fakePeer({ associate: true, then: 'answer', statuses: [0xb000, 0xb007, 0xb006, 0xa700, 0x0000] });
    const sent = [...files.ct, ...files.mr];
    const results = await sendFiles({ ...to({ port }), files: sent });
    expect(results.map((r) => [r.outcome, r.status, r.errorComment])).toEqual([
      ['warning', 0xb000, undefined],
      ['warning', 0xb007, undefined],
      ['warning', 0xb006, undefined],
      ['failure', 0xa700, 'fake peer says no'],
      ['success', 0x0000, undefined],
    ]);
  });

  it('refuses an AE title longer than 16 characters before connecting', async () => {
    await expectRejects(
      echoPeer({ ...to({ port: 1 }), calledAeTitle: 'A_VERY_LONG_AE_TITLE' }),
      'DF_ERR_AE_TITLE_INVALID',
      /called AE title "A_VERY_LONG_AE_TITLE" is not valid: it has 20 characters/,
    );
  });
});
