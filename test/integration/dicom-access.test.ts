// DICOM follows database rights (databases[].dicomAccess): storing open, query and retrieve for
// the remote nodes (from their hosts) and this machine, or only for the AE titles a list names.
// DCMTK's findscu, getscu, movescu and storescu as the peers; the repository's raw SCU where the
// peer must come from another address (127.0.0.2: another host, as far as the server can tell).
import fs from 'node:fs';
import os from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { findscu, hasTool, runDcmtk, storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { IMPLICIT_VR_LITTLE_ENDIAN, encodeCommandSet, encodePData, rawAssociate } from '../helpers/raw-scu.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

type Server = Awaited<ReturnType<typeof startTestServer>>;

const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const NOT_AUTHORIZED = 0x0124;
const PENDING = [0xff00, 0xff01];

/** findscu -v logs each response; the study UIDs matched and the final status line. */
async function find(port: number, callingAe: string, calledAe: string, host = '127.0.0.1') {
  const r = await findscu([
    '-v',
    '-S',
    '-aet',
    callingAe,
    '-aec',
    calledAe,
    '-k',
    'QueryRetrieveLevel=STUDY',
    '-k',
    'StudyInstanceUID',
    host,
    String(port),
  ]);
  const final = /Received Final Find Response \(([^)]*)\)/.exec(r.stderr)?.[1];
  const matches = (r.stderr.match(/^(?:[FEWIDT]: )?Find Response: /gm) ?? []).length;
  return { ...r, final, matches };
}

async function get(port: number, callingAe: string, calledAe: string, studyUid: string) {
  const out = tempDir('df-get-');
  const r = await runDcmtk(
    'getscu',
    [
      '-v',
      '-S',
      '-aet',
      callingAe,
      '-aec',
      calledAe,
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      `StudyInstanceUID=${studyUid}`,
      '-od',
      out,
      '127.0.0.1',
      String(port),
    ],
    { timeoutMs: 30_000, cwd: out },
  );
  return { ...r, files: fs.readdirSync(out) };
}

async function move(port: number, callingAe: string, calledAe: string, studyUid: string, destinationPort: number) {
  const out = tempDir('df-move-');
  const r = await runDcmtk(
    'movescu',
    [
      '-v',
      '-S',
      '-aet',
      callingAe,
      '-aem',
      'MOVEDEST',
      '-aec',
      calledAe,
      '--port',
      String(destinationPort),
      '-od',
      out,
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      `StudyInstanceUID=${studyUid}`,
      '127.0.0.1',
      String(port),
    ],
    { timeoutMs: 30_000, cwd: out },
  );
  return { ...r, files: fs.readdirSync(out) };
}

/** An implicit VR little endian data element. */
function element(group: number, elementNumber: number, value: string): Buffer {
  const bytes = Buffer.from(value.length % 2 === 1 ? `${value} ` : value, 'latin1');
  const header = Buffer.alloc(8);
  header.writeUInt16LE(group, 0);
  header.writeUInt16LE(elementNumber, 2);
  header.writeUInt32LE(bytes.length, 4);
  return Buffer.concat([header, bytes]);
}

/** A study-level C-FIND from a chosen source address; the final status and the matches before it. */
async function rawFind(port: number, callingAe: string, calledAe: string, localAddress: string) {
  const assoc = await rawAssociate({
    port,
    localAddress,
    callingAe,
    calledAe,
    contexts: [{ id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
  });
  if (!assoc.accepted) return { accepted: false as const, rejection: assoc.rejection };
  const command = encodeCommandSet([
    [0x0002, { ui: STUDY_ROOT_FIND }],
    [0x0100, { us: 0x0020 }],
    [0x0110, { us: assoc.nextMessageId() }],
    [0x0700, { us: 0 }],
    [0x0800, { us: 0x0000 }],
  ]);
  await assoc.sendRawBytes(encodePData(1, true, true, command));
  await assoc.sendRawBytes(encodePData(1, false, true, Buffer.concat([element(0x0008, 0x0052, 'STUDY'), element(0x0020, 0x000d, '')])));
  let matches = 0;
  for (;;) {
    const response = await assoc.readDimseResponse();
    if (PENDING.includes(response.status)) {
      matches++;
      continue;
    }
    await assoc.release();
    return { accepted: true as const, status: response.status, errorComment: response.errorComment, matches };
  }
}

/** An IPv4 address of this machine that is not loopback, if it has one. */
const outsideAddress = Object.values(os.networkInterfaces())
  .flat()
  .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;

describe.skipIf(!hasTool('findscu') || !hasTool('getscu') || !hasTool('movescu'))('DICOM access per database', () => {
  let server: Server;
  let moveDestinationPort: number;
  let study: string;
  let fileSetRoot: string;

  beforeAll(async () => {
    moveDestinationPort = await freePort();
    fileSetRoot = tempDir('df-fileset-');
    server = await startTestServer({
      remoteNodes: [
        { aeTitle: 'MOVEDEST', host: '127.0.0.1', port: moveDestinationPort },
        // A node this machine reaches at 127.0.0.1: a caller with its AE title from elsewhere is not it.
        { aeTitle: 'PACS', host: '127.0.0.1', port: 104 },
      ],
      databases: [
        { name: 'Import' },
        { name: 'Research', aeTitle: 'RESEARCH', dicomAccess: { query: ['VIEWER', 'PACS'], retrieve: ['VIEWER'] } },
        { name: 'Locked', aeTitle: 'LOCKED', dicomAccess: { store: ['MODALITY'], query: ['VIEWER'], retrieve: ['VIEWER'] } },
      ],
      dicomdirStores: [{ aeTitle: 'FILESET', root: fileSetRoot, dicomAccess: { query: ['VIEWER'], retrieve: ['VIEWER'] } }],
    });
    const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'ACCESS1' });
    study = ct.studyInstanceUid;
    for (const called of ['DICOMFLOW', 'RESEARCH']) {
      const r = await storescu(['-aet', 'ANYMODALITY', '-aec', called, '127.0.0.1', String(server.dicomPort), ...ct.files]);
      expect(r.code, r.stderr).toBe(0);
    }
    await server.engine.idle();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('by default any AE title on this machine may query and retrieve, as the README’s first findscu does', async () => {
    const found = await find(server.dicomPort, 'ANYONE', 'DICOMFLOW');
    expect(found.final).toBe('Success');
    expect(found.matches).toBe(1);
    const got = await get(server.dicomPort, 'ANYONE', 'DICOMFLOW', study);
    expect(got.files).toHaveLength(2);
  });

  it('a database with an allow-list answers only the listed AE titles, loopback included', async () => {
    const listed = await find(server.dicomPort, 'VIEWER', 'RESEARCH');
    expect(listed.final).toBe('Success');
    expect(listed.matches).toBe(1);

    const other = await find(server.dicomPort, 'OTHER', 'RESEARCH');
    expect(other.matches).toBe(0);
    expect(other.stderr).toMatch(/Final Find Response \((Failed|Refused|Unknown Status)[^)]*\)/);
    expect(other.stderr).toMatch(/0x0?124|Not authorized/i);

    const got = await get(server.dicomPort, 'OTHER', 'RESEARCH', study);
    expect(got.files).toHaveLength(0);
    expect(got.stderr).toMatch(/0x0?124|Not authorized/i);

    const moved = await move(server.dicomPort, 'OTHER', 'RESEARCH', study, moveDestinationPort);
    expect(moved.files).toHaveLength(0);
    expect(moved.stderr).toMatch(/0x0?124|Not authorized/i);

    // Storing stays open without a store list.
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await storescu(['-aet', 'OTHER', '-aec', 'RESEARCH', '127.0.0.1', String(server.dicomPort), ...ct.files])).code).toBe(0);
  });

  it('a listed AE title may query a database yet not retrieve from it without the retrieve right', async () => {
    // PACS may query RESEARCH, not retrieve.
    const moved = await move(server.dicomPort, 'PACS', 'RESEARCH', study, moveDestinationPort);
    expect(moved.files).toHaveLength(0);
    expect(moved.stderr).toMatch(/0x0?124|Not authorized/i);
  });

  it('a remote node’s AE title from another address than its host is refused', async () => {
    // From 127.0.0.1, the node's host: admitted.
    const fromHost = await rawFind(server.dicomPort, 'PACS', 'RESEARCH', '127.0.0.1');
    expect(fromHost).toMatchObject({ accepted: true, status: 0x0000 });
    if (fromHost.accepted) expect(fromHost.matches).toBeGreaterThan(0);
    // The same AE title from 127.0.0.2: refused, even though it is on this machine, because the
    // list names the AE title only (a named remote node is bound to its host).
    const elsewhere = await rawFind(server.dicomPort, 'PACS', 'RESEARCH', '127.0.0.2');
    expect(elsewhere).toMatchObject({ accepted: true, status: NOT_AUTHORIZED, matches: 0 });
    if (elsewhere.accepted) expect(elsewhere.errorComment).toMatch(/^DF_ERR_DICOM_ACCESS_DENIED/);
  });

  it('a store allow-list refuses other callers: nothing allowed is rejected at association, a query-only caller gets 0124 on C-STORE', async () => {
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    const stranger = await storescu(['-aet', 'STRANGER', '-aec', 'LOCKED', '127.0.0.1', String(server.dicomPort), ...ct.files]);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toMatch(/Association Rejected|Calling AE Title Not Recognized/i);
    const rejected = await rawAssociate({
      port: server.dicomPort,
      callingAe: 'STRANGER',
      calledAe: 'LOCKED',
      contexts: [{ id: 1, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
    });
    // PS3.8 9.3.4: rejected-permanent, service user, calling AE title not recognized.
    expect(rejected.rejection).toEqual({ result: 1, source: 1, reason: 3 });

    const viewer = await storescu(['-v', '-aet', 'VIEWER', '-aec', 'LOCKED', '127.0.0.1', String(server.dicomPort), ...ct.files]);
    expect(viewer.stderr).toMatch(/0x0?124|Not authorized/i);
    await server.engine.idle();
    expect(await server.index.instances('Locked', {})).toHaveLength(0);
    const modality = await storescu(['-aet', 'MODALITY', '-aec', 'LOCKED', '127.0.0.1', String(server.dicomPort), ...ct.files]);
    expect(modality.code, modality.stderr).toBe(0);
    await server.engine.idle();
    expect((await server.index.instances('Locked', {})).map((i) => i.instance.SOPInstanceUID)).toEqual(ct.sopInstanceUids);
  });

  it('a DICOMDIR store follows its own rule', async () => {
    const other = await find(server.dicomPort, 'OTHER', 'FILESET');
    expect(other.stderr).toMatch(/0x0?124|Not authorized/i);
    const viewer = await find(server.dicomPort, 'VIEWER', 'FILESET');
    expect(viewer.final).toBe('Success');
  });

  it('/api/status shows who may store, query and retrieve each database', async () => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/api/status`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    const status = (await res.json()) as {
      dicom: { access: { databases: ({ name: string } & Record<'store' | 'query' | 'retrieve', unknown>)[]; dicomdirStores: unknown[] } };
    };
    const byName = Object.fromEntries(status.dicom.access.databases.map((d) => [d.name, d]));
    expect(byName.Import).toEqual({
      name: 'Import',
      store: { anyone: true, loopback: false, callers: [] },
      query: {
        anyone: false,
        loopback: true,
        callers: [
          { aeTitle: 'MOVEDEST', host: '127.0.0.1' },
          { aeTitle: 'PACS', host: '127.0.0.1' },
        ],
      },
      retrieve: {
        anyone: false,
        loopback: true,
        callers: [
          { aeTitle: 'MOVEDEST', host: '127.0.0.1' },
          { aeTitle: 'PACS', host: '127.0.0.1' },
        ],
      },
    });
    expect(byName.Research.query).toEqual({
      anyone: false,
      loopback: false,
      callers: [{ aeTitle: 'VIEWER' }, { aeTitle: 'PACS', host: '127.0.0.1' }],
    });
    expect(byName.Locked.store).toEqual({ anyone: false, loopback: false, callers: [{ aeTitle: 'MODALITY' }] });
    expect(status.dicom.access.dicomdirStores).toEqual([
      {
        aeTitle: 'FILESET',
        query: { anyone: false, loopback: false, callers: [{ aeTitle: 'VIEWER' }] },
        retrieve: { anyone: false, loopback: false, callers: [{ aeTitle: 'VIEWER' }] },
      },
    ]);
  });
});

// A peer that is not on this machine: the default admits remote nodes from their host only.
describe.skipIf(!hasTool('findscu') || outsideAddress === undefined)('DICOM access from another host, by default', () => {
  let server: Server;

  beforeAll(async () => {
    server = await startTestServer({ dimse: { host: '0.0.0.0' }, remoteNodes: [{ aeTitle: 'PACS', host: outsideAddress!, port: 104 }] });
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...ct.files]);
    await server.engine.idle();
  });

  afterAll(async () => {
    await server?.close();
  });

  it('a remote node queries from its host; an unknown AE title from the same host is refused', async () => {
    const node = await find(server.dicomPort, 'PACS', 'DICOMFLOW', outsideAddress);
    expect(node.final).toBe('Success');
    expect(node.matches).toBe(1);
    const stranger = await find(server.dicomPort, 'STRANGER', 'DICOMFLOW', outsideAddress);
    expect(stranger.matches).toBe(0);
    expect(stranger.stderr).toMatch(/0x0?124|Not authorized/i);
    // Storing is open to it.
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await storescu(['-aet', 'STRANGER', '-aec', 'DICOMFLOW', outsideAddress!, String(server.dicomPort), ...ct.files])).code).toBe(
      0,
    );
  });
});
