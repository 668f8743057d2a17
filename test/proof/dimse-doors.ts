// Issue 14, the DICOM port's doors, for `npm run proof`: what a careless or hostile peer can do to
// the connection slots, in figures. A real server (in this process, timers at 2 s) and raw
// upper-layer clients on real sockets:
//
//   - slow connections: connect and send nothing, or part of an A-ASSOCIATE-RQ; each must be
//     closed by ARTIM;
//   - idle associations: one host opens 64 and sends nothing; past dimse.maxAssociationsPerPeer
//     they are rejected (local limit exceeded), another host still gets in, and each accepted one
//     is aborted by the idle timer;
//   - commands without their data sets (and other incomplete or unreadable commands): each must
//     be answered with a failure status or ended with A-ABORT;
//   - a throwing arrival listener: every C-STORE must still be answered Success and indexed.
//
// In every part, no reply (the connection still open, nothing said, at the deadline) is a failure.
//
//   node test/proof/dimse-doors.ts [--json]
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { newUid } from '../fixtures/builder.ts';
import { element, instanceDataset, type InstanceIds } from '../fuzz/dicom-bytes.ts';
import {
  CommandField,
  encodeAssociateRq,
  encodeCommandSet,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  NO_DATA_SET,
  PduType,
  PeerAbortError,
  PeerClosedError,
  RawConnection,
  rawAssociate,
  VERIFICATION_SOP_CLASS,
  type RawAssociation,
} from '../helpers/raw-scu.ts';
import { eventually, incomingFiles } from '../helpers/receive-checks.ts';
import { startTestServer } from '../helpers/server.ts';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false } } });

const TIMER_SECONDS = 2;
// A timer of 2 s on a loaded machine: what has not ended by then never will.
const DEADLINE_MS = 15_000;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const CONTEXT = { echo: 1, ct: 3, find: 5 } as const;
const AE_TITLE = 'DICOMFLOW';

const server = await startTestServer({
  dimse: { artimTimeoutSeconds: TIMER_SECONDS, associationTimeoutSeconds: TIMER_SECONDS, pduTimeoutSeconds: TIMER_SECONDS },
});
const problems: string[] = [];

function associate(localAddress?: string): Promise<RawAssociation> {
  return rawAssociate({
    port: server.dicomPort,
    calledAe: AE_TITLE,
    callingAe: 'DOORS',
    localAddress,
    contexts: [
      { id: CONTEXT.echo, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
      { id: CONTEXT.ct, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
      { id: CONTEXT.find, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
    ],
  });
}

function ids(name: string): InstanceIds {
  const root = newUid(name);
  return { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: `${root}.3`, studyInstanceUid: `${root}.1`, seriesInstanceUid: `${root}.2` };
}

function command(
  field: number,
  messageId: number,
  sopClass: string,
  withDataset: boolean,
  extra: Array<[number, { ui: string }]> = [],
): Buffer {
  return encodeCommandSet([
    [0x0002, { ui: sopClass }],
    [0x0100, { us: field }],
    [0x0110, { us: messageId }],
    [0x0800, { us: withDataset ? 0 : NO_DATA_SET }],
    ...extra,
  ]);
}

/** How a connection ended, or 'no reply' if it was still open and silent at the deadline. */
async function ending(conn: RawConnection): Promise<'abort' | 'closed' | 'no reply' | 'other PDU'> {
  try {
    const pdu = await conn.readPdu(DEADLINE_MS);
    conn.destroy();
    return pdu.type === PduType.Abort ? 'abort' : 'other PDU';
  } catch (err) {
    return err instanceof PeerClosedError ? 'closed' : 'no reply';
  }
}

function tally<T extends string>(items: T[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

// --- slow connections --------------------------------------------------------------------------
async function slowConnections() {
  const started = Date.now();
  const rq = encodeAssociateRq({
    calledAe: AE_TITLE,
    contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
  });
  const connections = await Promise.all(Array.from({ length: 100 }, () => RawConnection.connect('127.0.0.1', server.dicomPort)));
  await Promise.all(connections.slice(50).map((c) => c.sendRawBytes(rq.subarray(0, 40))));
  const endings = await Promise.all(
    connections.map(async (c) => {
      try {
        await c.waitClosed(DEADLINE_MS);
        return 'closed';
      } catch {
        c.destroy();
        return 'no reply';
      }
    }),
  );
  const result = {
    connections: connections.length,
    silent: 50,
    partialRequest: 50,
    endings: tally(endings),
    secondsToAllClosed: Math.round((Date.now() - started) / 100) / 10,
  };
  if (result.endings['no reply']) problems.push(`slow connections: ${result.endings['no reply']} still open after ${DEADLINE_MS} ms`);
  return result;
}

// --- idle associations -------------------------------------------------------------------------
async function idleAssociations() {
  const started = Date.now();
  const opened = await Promise.all(Array.from({ length: 64 }, () => associate()));
  const accepted = opened.filter((a) => a.accepted);
  const rejected = opened.filter((a) => !a.accepted);
  const localLimit = rejected.filter((a) => a.rejection?.result === 2 && a.rejection.source === 3 && a.rejection.reason === 2).length;
  // While one host holds its share, another is let in.
  const other = await associate('127.0.0.2');
  const otherHostAccepted = other.accepted;
  if (other.accepted) other.connection.destroy();
  const endings = await Promise.all(accepted.map((a) => ending(a.connection)));
  const result = {
    associations: opened.length,
    accepted: accepted.length,
    rejectedLocalLimit: localLimit,
    rejectedOtherwise: rejected.length - localLimit,
    otherHostAccepted,
    endings: tally(endings),
    secondsToAllEnded: Math.round((Date.now() - started) / 100) / 10,
  };
  if (!otherHostAccepted) problems.push('idle associations: another host was refused while one host held its share');
  if (result.rejectedOtherwise > 0)
    problems.push(`idle associations: ${result.rejectedOtherwise} rejected for another reason than the local limit`);
  const notAborted = endings.filter((e) => e !== 'abort').length;
  if (notAborted > 0) problems.push(`idle associations: ${notAborted} not ended by A-ABORT (${JSON.stringify(result.endings)})`);
  return result;
}

// --- commands without their data sets ----------------------------------------------------------
interface CommandCase {
  name: string;
  /** What is sent on a fresh association. */
  send(assoc: RawAssociation): Promise<void>;
  /** DIMSE responses expected before the association is ended by A-ABORT. */
  responses: number;
}

const commandCases: CommandCase[] = [
  {
    name: 'C-STORE announcing a data set, then C-ECHO',
    responses: 2,
    send: async (a) => {
      await a.writeMessage(
        CONTEXT.ct,
        command(CommandField.CStoreRq, 1, CT_IMAGE_STORAGE, true, [[0x1000, { ui: ids('no-data-set').sopInstanceUid }]]),
      );
      await a.writeMessage(CONTEXT.echo, command(CommandField.CEchoRq, 2, VERIFICATION_SOP_CLASS, false));
    },
  },
  {
    name: 'C-STORE saying no data set follows',
    responses: 1,
    send: (a) =>
      a.writeMessage(
        CONTEXT.ct,
        command(CommandField.CStoreRq, 1, CT_IMAGE_STORAGE, false, [[0x1000, { ui: ids('none-follows').sopInstanceUid }]]),
      ),
  },
  {
    name: 'C-STORE whose data set stops half way, then the next C-STORE',
    responses: 1,
    send: async (a) => {
      const first = ids('half-way');
      const dataset = instanceDataset(first, { size: 32 });
      await a.writeMessage(
        CONTEXT.ct,
        command(CommandField.CStoreRq, 1, CT_IMAGE_STORAGE, true, [[0x1000, { ui: first.sopInstanceUid }]]),
        { bytes: dataset.subarray(0, 1000), lastFragment: false },
      );
      await a.writeMessage(
        CONTEXT.ct,
        command(CommandField.CStoreRq, 2, CT_IMAGE_STORAGE, true, [[0x1000, { ui: ids('next').sopInstanceUid }]]),
      );
    },
  },
  {
    name: 'C-STORE announcing a data set that never comes',
    responses: 0,
    send: (a) =>
      a.writeMessage(
        CONTEXT.ct,
        command(CommandField.CStoreRq, 1, CT_IMAGE_STORAGE, true, [[0x1000, { ui: ids('never').sopInstanceUid }]]),
      ),
  },
  {
    name: 'C-FIND announcing an identifier, then C-ECHO',
    responses: 0,
    send: async (a) => {
      await a.writeMessage(CONTEXT.find, command(CommandField.CFindRq, 1, STUDY_ROOT_FIND, true));
      await a.writeMessage(CONTEXT.echo, command(CommandField.CEchoRq, 2, VERIFICATION_SOP_CLASS, false));
    },
  },
  {
    name: 'C-FIND announcing an identifier that never comes',
    responses: 0,
    send: (a) => a.writeMessage(CONTEXT.find, command(CommandField.CFindRq, 1, STUDY_ROOT_FIND, true)),
  },
  {
    name: 'C-ECHO announcing a data set that never comes',
    responses: 0,
    send: (a) => a.writeMessage(CONTEXT.echo, command(CommandField.CEchoRq, 1, VERIFICATION_SOP_CLASS, true)),
  },
  {
    name: 'a data set with no command',
    responses: 0,
    send: (a) => a.sendRawBytes(pDataDataset(CONTEXT.ct, element(0x00100010, 'PN', 'NO^COMMAND'))),
  },
  {
    name: 'an unknown command field',
    responses: 0,
    send: (a) => a.writeMessage(CONTEXT.echo, command(0x1234, 1, VERIFICATION_SOP_CLASS, false)),
  },
  {
    name: 'a command set of random bytes',
    responses: 0,
    send: (a) => a.writeMessage(CONTEXT.echo, Buffer.from('these bytes are no command set at all', 'latin1')),
  },
];

function pDataDataset(contextId: number, value: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head[0] = PduType.PData;
  head.writeUInt32BE(6 + value.length, 2);
  head.writeUInt32BE(2 + value.length, 6);
  head[10] = contextId;
  head[11] = 0x02;
  return Buffer.concat([head, value]);
}

async function commandsWithoutDataSets() {
  const rounds = 5;
  const runs = await Promise.all(
    // Each case from a host of its own (127.0.1.x), so that the per-peer limit stays out of it.
    commandCases.flatMap((c, caseIndex) =>
      Array.from({ length: rounds }, async () => {
        const assoc = await associate(`127.0.1.${caseIndex + 1}`);
        if (!assoc.accepted) return { name: c.name, answer: 'association rejected' as const, statuses: [] as number[] };
        await c.send(assoc).catch(() => undefined);
        const statuses: number[] = [];
        try {
          for (let i = 0; i < c.responses; i++) statuses.push((await assoc.readDimseResponse(DEADLINE_MS)).status);
        } catch (err) {
          const answer = err instanceof PeerAbortError ? 'abort' : err instanceof PeerClosedError ? 'closed' : 'no reply';
          assoc.connection.destroy();
          return { name: c.name, answer, statuses };
        }
        // Then the association ends by A-ABORT: what the case left unfinished by the DIMSE timer,
        // an association with nothing left by the idle timer. Never waited on forever.
        const end = await ending(assoc.connection);
        if (!assoc.connection.closed) await assoc.abort();
        return { name: c.name, answer: end, statuses };
      }),
    ),
  );
  const byCase: Record<string, Record<string, number>> = {};
  for (const r of runs) {
    const key =
      r.statuses.length > 0
        ? `answered ${r.statuses.map((s) => `0x${s.toString(16).padStart(4, '0')}`).join('+')}, then ${r.answer}`
        : r.answer;
    byCase[r.name] ??= {};
    byCase[r.name][key] = (byCase[r.name][key] ?? 0) + 1;
    if (r.answer === 'no reply' || r.answer === 'closed' || r.answer === 'other PDU' || r.answer === 'association rejected')
      problems.push(`${r.name}: ${r.answer}`);
  }
  await eventually(
    () => incomingFiles(server.dataDir).length,
    (n) => n === 0,
    DEADLINE_MS,
  ).catch(() => problems.push('partial files left in incoming/'));
  return { cases: commandCases.length, rounds, byCase, partialFilesLeft: incomingFiles(server.dataDir).length };
}

// --- a throwing arrival listener -------------------------------------------------------------
async function throwingListener() {
  let thrown = 0;
  const listener = () => {
    thrown++;
    throw new Error('a listener that fails');
  };
  server.events.on('InstanceReceived', listener);
  const objects = Array.from({ length: 20 }, (_, i) => ids(`listener-${i}`));
  const assoc = await associate();
  const statuses: number[] = [];
  for (const o of objects)
    statuses.push(
      (
        await assoc.sendCStore({
          pcId: CONTEXT.ct,
          sopClassUid: CT_IMAGE_STORAGE,
          sopInstanceUid: o.sopInstanceUid,
          datasetBytes: instanceDataset(o),
        })
      ).status,
    );
  await assoc.release();
  const indexed = await eventually(
    async () => (await server.index.instances('Import', { sopInstanceUids: objects.map((o) => o.sopInstanceUid) })).length,
    (n) => n === objects.length,
    DEADLINE_MS,
  ).catch(() => -1);
  server.events.off('InstanceReceived', listener);
  const result = {
    objects: objects.length,
    statuses: tally(statuses.map((s) => `0x${s.toString(16).padStart(4, '0')}`)),
    indexed,
    listenerThrew: thrown,
  };
  if (statuses.some((s) => s !== 0)) problems.push(`throwing listener: statuses ${JSON.stringify(result.statuses)}`);
  if (indexed !== objects.length) problems.push(`throwing listener: ${indexed} of ${objects.length} indexed`);
  return result;
}

let figures: Record<string, unknown>;
try {
  figures = {
    timerSeconds: TIMER_SECONDS,
    // The defaults of dimse.maxAssociationsPerPeer and dimse.maxAssociations.
    maxAssociationsPerPeer: 16,
    maxAssociations: 64,
    slow: await slowConnections(),
    idle: await idleAssociations(),
    commands: await commandsWithoutDataSets(),
    listener: await throwingListener(),
    problems,
  };
} finally {
  await server.close();
  fs.rmSync(server.dataDir, { recursive: true, force: true });
}
if (values.json) console.log(JSON.stringify(figures));
else console.log(JSON.stringify(figures, null, 2));
process.exitCode = problems.length === 0 ? 0 : 1;
