import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ctSeries, ctSliceWithPrivateTags, SopClass, TransferSyntax } from '../fixtures/builder.ts';
import { startStorescp, type DcmtkPeer } from './dcmtk-peers.ts';
import { hasTool } from './dcmtk.ts';
import { readPart10, type Part10Parts } from './part10.ts';
import {
  encodeAssociateRq,
  PeerAbortError,
  PeerClosedError,
  PduType,
  RawConnection,
  rawAssociate,
  sendCStore,
  sendEcho,
  VERIFICATION_SOP_CLASS,
  type PresentationContextRq,
} from './raw-scu.ts';

const JPEG_LS_LOSSLESS = '1.2.840.10008.1.2.4.80';

let tmp: string;
let privateCt: Part10Parts;
let implicitCt: Part10Parts;
let series: Part10Parts[];
const peers: DcmtkPeer[] = [];

async function storescp(args: string[] = []): Promise<DcmtkPeer> {
  const peer = await startStorescp({ args, outDir: await mkdtemp(path.join(tmp, 'scp-')) });
  peers.push(peer);
  return peer;
}

function contexts(...extra: PresentationContextRq[]): PresentationContextRq[] {
  return [
    { id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [TransferSyntax.ImplicitVRLittleEndian] },
    { id: 3, abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ExplicitVRLittleEndian] },
    ...extra,
  ];
}

async function onlyReceivedFile(peer: DcmtkPeer): Promise<Part10Parts> {
  const files = await readdir(peer.dir);
  expect(files).toHaveLength(1);
  return readPart10(path.join(peer.dir, files[0]));
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicomflow-raw-scu-'));
  privateCt = await readPart10((await ctSliceWithPrivateTags(path.join(tmp, 'private'), { rows: 128, cols: 128 })).files[0]);
  implicitCt = await readPart10(
    (
      await ctSeries(path.join(tmp, 'implicit'), {
        slices: 1,
        rows: 96,
        cols: 96,
        transferSyntaxUid: TransferSyntax.ImplicitVRLittleEndian,
      })
    ).files[0],
  );
  series = await Promise.all((await ctSeries(path.join(tmp, 'series'), { slices: 3, rows: 64, cols: 64 })).files.map(readPart10));
});

afterEach(async () => {
  await Promise.all(peers.splice(0).map((peer) => peer.stop()));
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!hasTool('storescp'))('raw DICOM upper-layer client against storescp', () => {
  it('negotiates, echoes, stores a data set with private tags byte for byte, and releases', async () => {
    const peer = await storescp();
    const assoc = await rawAssociate({ port: peer.port, calledAe: peer.aeTitle, contexts: contexts() });
    expect(assoc.accepted).toBe(true);
    expect(assoc.peerMaxPdu).toBe(16384);
    expect(assoc.contexts).toEqual([
      { id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, result: 0, transferSyntax: TransferSyntax.ImplicitVRLittleEndian },
      { id: 3, abstractSyntax: SopClass.CtImageStorage, result: 0, transferSyntax: TransferSyntax.ExplicitVRLittleEndian },
    ]);

    expect((await sendEcho(assoc)).status).toBe(0x0000);
    const response = await sendCStore(assoc, {
      pcId: 3,
      sopClassUid: privateCt.sopClassUid,
      sopInstanceUid: privateCt.sopInstanceUid,
      datasetBytes: privateCt.dataset,
      messageId: 7,
    });
    expect(response).toMatchObject({
      status: 0x0000,
      commandField: 0x8001,
      messageIdBeingRespondedTo: 7,
      affectedSopInstanceUid: privateCt.sopInstanceUid,
    });
    await assoc.release();
    expect(assoc.connection.closed).toBe(true);

    const received = await onlyReceivedFile(peer);
    expect(received.sopInstanceUid).toBe(privateCt.sopInstanceUid);
    expect(received.transferSyntaxUid).toBe(TransferSyntax.ExplicitVRLittleEndian);
    expect(received.dataset.equals(privateCt.dataset)).toBe(true);
  });

  it('sends small fragments and implicit VR data sets exactly as given', async () => {
    const peer = await storescp();
    const assoc = await rawAssociate({
      port: peer.port,
      contexts: [{ id: 5, abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [TransferSyntax.ImplicitVRLittleEndian] }],
    });
    const response = await assoc.sendCStore({
      sopClassUid: implicitCt.sopClassUid,
      sopInstanceUid: implicitCt.sopInstanceUid,
      datasetBytes: implicitCt.dataset,
      maxFragmentBytes: 1000,
    });
    expect(response.status).toBe(0x0000);
    await assoc.release();
    const received = await onlyReceivedFile(peer);
    expect(received.transferSyntaxUid).toBe(TransferSyntax.ImplicitVRLittleEndian);
    expect(received.dataset.equals(implicitCt.dataset)).toBe(true);
  });

  it('stores several objects on one association, numbering the messages', async () => {
    const peer = await storescp();
    const assoc = await rawAssociate({ port: peer.port, contexts: contexts() });
    const responses = [];
    for (const slice of series) {
      responses.push(
        await assoc.sendCStore({ sopClassUid: slice.sopClassUid, sopInstanceUid: slice.sopInstanceUid, datasetBytes: slice.dataset }),
      );
    }
    expect(responses.map((r) => [r.status, r.messageIdBeingRespondedTo])).toEqual([
      [0, 1],
      [0, 2],
      [0, 3],
    ]);
    await assoc.release();
    expect(await readdir(peer.dir)).toHaveLength(3);
  });

  it('reports contexts refused for their abstract syntax or transfer syntaxes', async () => {
    const peer = await storescp();
    const assoc = await rawAssociate({
      port: peer.port,
      contexts: [
        { id: 1, abstractSyntax: '1.2.3.4.5.6', transferSyntaxes: [TransferSyntax.ImplicitVRLittleEndian] },
        { id: 3, abstractSyntax: SopClass.CtImageStorage, transferSyntaxes: [JPEG_LS_LOSSLESS] },
      ],
    });
    expect(assoc.contexts.map((c) => [c.id, c.result, c.transferSyntax])).toEqual([
      [1, 3, undefined],
      [3, 4, undefined],
    ]);
    await expect(assoc.sendCStore({ sopClassUid: '1.2.3.4.5.6', sopInstanceUid: '1.2.3', datasetBytes: Buffer.alloc(0) })).rejects.toThrow(
      /no accepted presentation context/,
    );
    await assoc.abort();
  });

  it('parses an A-ASSOCIATE-RJ', async () => {
    const peer = await storescp(['--refuse']);
    const assoc = await rawAssociate({ port: peer.port, contexts: contexts() });
    expect(assoc.accepted).toBe(false);
    expect(assoc.rejection).toEqual({ result: 1, source: 1, reason: 1 }); // permanent, service user, no reason given
    await assoc.connection.waitClosed(1000);
  });

  it('leaves out the implementation class UID when asked (storescp --reject refuses that)', async () => {
    const peer = await storescp(['--reject']);
    const withUid = await rawAssociate({ port: peer.port, contexts: contexts() });
    expect(withUid.accepted).toBe(true);
    await withUid.release();
    const withoutUid = await rawAssociate({ port: peer.port, contexts: contexts(), implementationClassUid: null });
    expect(withoutUid.accepted).toBe(false);
  });

  it('throws PeerAbortError when the peer aborts during a C-STORE', async () => {
    const peer = await storescp(['--abort-after']);
    const assoc = await rawAssociate({ port: peer.port, contexts: contexts() });
    const slice = series[0];
    const store = assoc.sendCStore({ sopClassUid: slice.sopClassUid, sopInstanceUid: slice.sopInstanceUid, datasetBytes: slice.dataset });
    await expect(store).rejects.toBeInstanceOf(PeerAbortError);
    await expect(store).rejects.toThrow(/A-ABORT .* while waiting for a DIMSE response/);
    await assoc.connection.waitClosed(1000);
  });

  it('sends a truncated, odd-length data set as is (DCMTK aborts on the odd fragment)', async () => {
    const peer = await storescp();
    const assoc = await rawAssociate({ port: peer.port, contexts: contexts() });
    const slice = series[0];
    const store = assoc.sendCStore({
      sopClassUid: slice.sopClassUid,
      sopInstanceUid: slice.sopInstanceUid,
      datasetBytes: slice.dataset.subarray(0, 3001),
    });
    await expect(store).rejects.toBeInstanceOf(PeerAbortError);
    await vi.waitFor(() => expect(peer.log()).toMatch(/Odd Fragment Length: 3001/), { timeout: 2000 });
    expect(await readdir(peer.dir)).toHaveLength(0);
  });

  it('sends hostile PDUs with sendRawBytes', async () => {
    const peer = await storescp();
    const unknownType = await RawConnection.connect('127.0.0.1', peer.port);
    await unknownType.sendRawBytes(Buffer.from([0x09, 0x00, 0x00, 0x00, 0x00, 0x02, 0xde, 0xad]));
    await expect(unknownType.readPdu(5000)).rejects.toBeInstanceOf(PeerClosedError);

    const wrongVersion = encodeAssociateRq({ contexts: contexts() });
    wrongVersion.writeUInt16BE(0x0002, 6); // protocol version: only bit 0 is defined
    const versionTwo = await RawConnection.connect('127.0.0.1', peer.port);
    await versionTwo.sendRawBytes(wrongVersion);
    const reply = await versionTwo.readPdu(5000);
    expect(reply.type).toBe(PduType.AssociateRj);
    expect([...reply.body]).toEqual([0, 1, 2, 2]); // permanent, ACSE provider, protocol version not supported
    versionTwo.destroy();

    // The peer survived both.
    const assoc = await rawAssociate({ port: peer.port, contexts: contexts() });
    expect((await assoc.sendEcho()).status).toBe(0);
    await assoc.release();
  });
});
