/**
 * Plays DIMSE fuzz cases against a server over real sockets and judges each answer. The client
 * is test/helpers/raw-scu.ts, which shares no code with the server.
 */
import {
  PduType,
  PeerAbortError,
  PeerClosedError,
  RawConnection,
  rawAssociate,
  type Pdu,
  type RawAssociation,
} from '../helpers/raw-scu.ts';
import {
  BAIT_PATIENT,
  CALLED_AE,
  CALLING_AE,
  CONTEXT,
  CT_IMAGE_STORAGE,
  QUERY_CONTEXT,
  STUDY_ROOT_FIND,
  STUDY_ROOT_GET,
  STUDY_ROOT_MOVE,
  caseIds,
} from './corpus.ts';
import { instanceDataset } from './dicom-bytes.ts';
import type { DimseCase } from './dimse-cases.ts';
import { EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, VERIFICATION_SOP_CLASS } from '../helpers/raw-scu.ts';

export type Answer = 'accepted' | 'rejected' | 'aborted' | 'response' | 'closed' | 'silent';

export interface CaseOutcome {
  case: DimseCase;
  answer: Answer;
  /** DIMSE status of a response. */
  status?: number;
  /** Our end of the connection: the server logs the peer port, which ties its lines to the case. */
  localPort: number;
  /** Set when the answer breaks a rule; the run fails on it. */
  problem?: string;
  /**
   * For a case the server met with silence: waits for its timers to end the connection (an
   * incomplete message is aborted by the DIMSE timer, a connection with no A-ASSOCIATE-RQ closed
   * by ARTIM) and updates answer and problem. Silence to the end is a problem: no reply.
   */
  settle?: () => Promise<void>;
  /** The server answered C-STORE with Success or a warning: the object must be kept, once. */
  acknowledged: boolean;
  /** Whether the server should have logged a DF_ERR code for this case. */
  refused: boolean;
  ms: number;
}

export interface Target {
  host: string;
  port: number;
}

// Long enough for a server on a busy 2-core machine to answer; a silent server costs this per case.
const SILENCE_MS = 500;
/** How long the answer to a complete A-ASSOCIATE-RQ may take before its silence is a finding. */
const ANSWER_OWED_MS = 10_000;
/**
 * How long a silent server has to end the connection itself: its ARTIM and DIMSE timers (2 s in
 * the fuzz server's configuration, harness.ts) and a margin for a loaded machine. Its idle timer
 * is long there, so only an incomplete message or request can end this way: a complete request
 * met with silence is never rescued by it.
 */
export const TIMER_END_MS = 6_000;

export const FUZZ_CONTEXTS = [
  { id: CONTEXT.echo, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
  { id: CONTEXT.ctExplicit, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
  { id: CONTEXT.ctImplicit, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
  { id: QUERY_CONTEXT.find, abstractSyntax: STUDY_ROOT_FIND, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
  { id: QUERY_CONTEXT.move, abstractSyntax: STUDY_ROOT_MOVE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
  { id: QUERY_CONTEXT.get, abstractSyntax: STUDY_ROOT_GET, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
];

/** Stores the bait object query cases match against (long values: slow for a backtracking matcher). */
export async function storeBait(target: Target, seed: number): Promise<void> {
  const assoc = await open(target);
  try {
    const ids = caseIds(seed, 9_999_999);
    const r = await assoc.sendCStore({
      pcId: CONTEXT.ctExplicit,
      sopClassUid: CT_IMAGE_STORAGE,
      sopInstanceUid: ids.sopInstanceUid,
      datasetBytes: instanceDataset(ids, { patientName: BAIT_PATIENT, patientId: BAIT_PATIENT }),
    });
    if (r.status !== 0) throw new Error(`the bait object was refused: 0x${r.status.toString(16)}`);
    await assoc.release();
  } finally {
    if (!assoc.connection.closed) assoc.connection.destroy();
  }
}

function isSuccessOrWarning(status: number): boolean {
  // PS3.7 C: 0000 success, 0001 and Bxxx warnings; FF00/FF01 pending (a C-FIND match, a C-MOVE under way).
  return status === 0x0000 || status === 0x0001 || (status & 0xf000) === 0xb000 || status === 0xff00 || status === 0xff01;
}

/** The first PDU in `bytes` is complete (its declared length fits what was sent). */
function firstPduComplete(bytes: Buffer): boolean {
  return bytes.length >= 6 && bytes.readUInt32BE(2) <= bytes.length - 6;
}

async function nextPdu(conn: RawConnection, timeoutMs: number): Promise<Pdu | 'closed' | 'silent'> {
  try {
    return await conn.readPdu(timeoutMs);
  } catch (err) {
    if (err instanceof PeerClosedError) return 'closed';
    return 'silent';
  }
}

function commandStatus(pdu: Pdu): number | undefined {
  // One PDV: item length (4), context (1), control (1), then the command set.
  const body = pdu.body;
  if (body.length < 6 || (body[5] & 0x01) === 0) return undefined;
  const command = body.subarray(6, 4 + body.readUInt32BE(0));
  for (let o = 0; o + 8 <= command.length; ) {
    const element = command.readUInt16LE(o + 2);
    const length = command.readUInt32LE(o + 4);
    if (element === 0x0900 && length === 2) return command.readUInt16LE(o + 8);
    o += 8 + length;
  }
  return undefined;
}

function classify(reply: Pdu | 'closed' | 'silent'): { answer: Answer; status?: number } {
  if (reply === 'closed' || reply === 'silent') return { answer: reply };
  if (reply.type === PduType.AssociateAc) return { answer: 'accepted' };
  if (reply.type === PduType.AssociateRj) return { answer: 'rejected' };
  if (reply.type === PduType.Abort) return { answer: 'aborted' };
  if (reply.type === PduType.PData) return { answer: 'response', status: commandStatus(reply) };
  return { answer: 'response' };
}

async function open(target: Target): Promise<RawAssociation> {
  const a = await rawAssociate({
    ...target,
    callingAe: CALLING_AE,
    calledAe: CALLED_AE,
    maxPdu: 16384,
    contexts: FUZZ_CONTEXTS,
    timeoutMs: 10_000,
  });
  if (!a.accepted) throw new Error(`the server rejected a valid association: ${JSON.stringify(a.rejection)}`);
  return a;
}

export async function runCase(c: DimseCase, target: Target): Promise<CaseOutcome> {
  const started = Date.now();
  const done = (o: Omit<CaseOutcome, 'case' | 'ms'>): CaseOutcome => ({ ...o, case: c, ms: Date.now() - started });

  if (c.kind === 'associate') {
    const conn = await RawConnection.connect(target.host, target.port, 10_000);
    const localPort = conn.socket.localPort ?? 0;
    await conn.sendRawBytes(c.bytes).catch(() => undefined);
    // A complete PDU is owed an answer: waiting long for it costs nothing unless the server is
    // broken, and a loaded machine (133 presentation contexts took over 500 ms) is no finding.
    const complete = firstPduComplete(c.bytes);
    const waitMs = complete ? ANSWER_OWED_MS : SILENCE_MS;
    const { answer } = classify(await nextPdu(conn, waitMs));
    let problem: string | undefined;
    // PS3.8 9.2.3 (AA-3): a peer's A-ABORT is answered by closing the connection.
    if (answer === 'closed' && c.bytes[0] !== 0x07) problem = 'closed the connection without A-ASSOCIATE-RJ or A-ABORT';
    if (answer === 'silent' && complete) problem = `no answer within ${waitMs} ms to a complete PDU`;
    if (answer === 'response') problem = 'answered an association request with something other than AC/RJ/ABORT';
    const outcome = done({ answer, localPort, problem, acknowledged: false, refused: answer === 'rejected' || answer === 'aborted' });
    if (answer !== 'silent' || problem) {
      conn.destroy();
      return outcome;
    }
    // An incomplete request: ARTIM must close the connection (PS3.8 9.2.3, AA-2: no A-ABORT needed).
    outcome.settle = async () => {
      const late = classify(await nextPdu(conn, TIMER_END_MS));
      conn.destroy();
      outcome.answer = late.answer;
      outcome.refused = late.answer === 'rejected' || late.answer === 'aborted';
      if (late.answer === 'silent')
        outcome.problem = `no reply: an incomplete A-ASSOCIATE-RQ kept the connection open for ${SILENCE_MS + TIMER_END_MS} ms (ARTIM did not close it)`;
      else if (late.answer === 'response' || late.answer === 'accepted') outcome.problem = 'answered an incomplete association request';
    };
    return outcome;
  }

  const assoc = await open(target);
  const conn = assoc.connection;
  const localPort = conn.socket.localPort ?? 0;
  let settling = false;
  try {
    if (c.kind === 'stream') {
      await conn.sendRawBytes(c.bytes).catch(() => undefined);
      const { answer, status } = classify(await nextPdu(conn, SILENCE_MS));
      let problem: string | undefined;
      if (answer === 'closed' && c.bytes[0] !== 0x07) problem = 'closed the connection without A-ABORT';
      if (answer === 'accepted' || answer === 'rejected')
        problem = `sent A-ASSOCIATE-${answer === 'accepted' ? 'AC' : 'RJ'} on an open association`;
      const refused = answer === 'aborted' || (answer === 'response' && status !== undefined && !isSuccessOrWarning(status));
      const outcome = done({ answer, status, localPort, problem, acknowledged: false, refused });
      if (answer === 'silent') {
        settling = true;
        outcome.settle = () => settleByTimer(assoc, outcome, 'what it was sent');
      }
      return outcome;
    }

    // C-STORE with a hostile dataset.
    let sendError: unknown;
    await assoc
      .writeCStore({
        pcId: c.contextId,
        sopClassUid: CT_IMAGE_STORAGE,
        sopInstanceUid: c.sopInstanceUid,
        datasetBytes: c.dataset,
        maxFragmentBytes: c.fragmentBytes,
        lastFragment: c.lastFragment,
      })
      .catch((err) => (sendError = err));
    let answer: Answer;
    let status: number | undefined;
    try {
      const response = await assoc.readDimseResponse(c.lastFragment ? 20_000 : SILENCE_MS);
      answer = 'response';
      status = response.status;
    } catch (err) {
      answer = err instanceof PeerAbortError ? 'aborted' : err instanceof PeerClosedError ? 'closed' : 'silent';
    }
    const acknowledged = answer === 'response' && status !== undefined && isSuccessOrWarning(status);
    let problem: string | undefined;
    if (answer === 'closed')
      problem = `closed the connection without a response or A-ABORT${sendError ? ` (${(sendError as Error).message})` : ''}`;
    else if (answer === 'silent' && c.lastFragment) problem = 'no C-STORE response for a complete message';
    else if (c.expect === 'fail' && acknowledged) problem = `acknowledged a bad object with status 0x${status!.toString(16)}`;
    else if (c.expect === 'succeed' && !acknowledged)
      problem = `refused a valid object (${answer}${status === undefined ? '' : ` 0x${status.toString(16)}`})`;
    const refused = answer === 'aborted' || (answer === 'response' && !acknowledged);
    const outcome = done({ answer, status, localPort, problem, acknowledged, refused });
    if (answer === 'silent' && !problem) {
      settling = true;
      outcome.settle = () => settleByTimer(assoc, outcome, 'a C-STORE whose data set never ended');
    }
    return outcome;
  } finally {
    if (!settling && !conn.closed) await assoc.abort();
  }
}

/**
 * After silence on an open association: the message the case left unfinished must be ended by
 * the server's DIMSE timer with A-ABORT (a late response counts as an answer). Silence to the
 * end, or a close without A-ABORT, is a problem.
 */
async function settleByTimer(assoc: RawAssociation, outcome: CaseOutcome, what: string): Promise<void> {
  const conn = assoc.connection;
  try {
    const late = classify(await nextPdu(conn, TIMER_END_MS));
    outcome.answer = late.answer;
    outcome.status = late.status;
    if (late.answer === 'aborted') outcome.refused = true;
    if (late.answer === 'response') outcome.refused = late.status !== undefined && !isSuccessOrWarning(late.status);
    if (late.answer === 'silent')
      outcome.problem = `no reply: neither an answer to ${what} nor an A-ABORT within ${SILENCE_MS + TIMER_END_MS} ms`;
    else if (late.answer === 'closed') outcome.problem = `closed the connection without A-ABORT after ${what}`;
    else if (late.answer === 'accepted' || late.answer === 'rejected')
      outcome.problem = `sent A-ASSOCIATE-${late.answer === 'accepted' ? 'AC' : 'RJ'} on an open association`;
  } finally {
    if (!conn.closed) await assoc.abort();
  }
}

/** A C-ECHO on a fresh association: the server still answers. */
export async function echo(target: Target): Promise<void> {
  const assoc = await open(target);
  try {
    const r = await assoc.sendEcho({ timeoutMs: 10_000 });
    if (r.status !== 0) throw new Error(`C-ECHO answered 0x${r.status.toString(16)}`);
    await assoc.release(10_000);
  } finally {
    if (!assoc.connection.closed) assoc.connection.destroy();
  }
}
