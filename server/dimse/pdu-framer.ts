import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { AssociationTimers, type AssociationPhase, type DimseTimeouts, type TimerKind } from './association-timers.ts';
import { APPLICATION_CONTEXT_NAME, CommandField, NO_DATA_SET, PduType, decodeCommand, type DimseCommand } from './upper-layer.ts';

const KNOWN_TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
const HEADER = 6;
// An A-ASSOCIATE-RQ with every storage SOP class and a dozen transfer syntaxes each stays far
// below this; anything larger is an attack or a broken peer.
const MAX_ASSOCIATE_RQ = 1 << 20;
const MAX_OTHER = 1 << 16;
// Commands are a few hundred bytes; identifiers of C-FIND/MOVE/GET and N-service data sets,
// which the library holds whole, a few kilobytes. C-STORE data sets never count here.
const MAX_COMMAND_BYTES = 1 << 16;
const MAX_RELAYED_DATASET_BYTES = 4 << 20;

// PS3.7 E.1-1 and 10.3: the command fields of requests; a response is its request's | 0x8000.
const REQUEST_FIELDS = new Set([0x0001, 0x0010, 0x0020, 0x0021, 0x0030, 0x0100, 0x0110, 0x0120, 0x0130, 0x0140, 0x0150]);
const RESPONSE_BIT = 0x8000;
// PS3.7 C: pending statuses; any other status ends the request.
const PENDING = new Set([0xff00, 0xff01]);

export interface PduViolation {
  /** PS3.8 9.3.8 A-ABORT reason: 0 not specified, 1 unrecognized PDU, 2 unexpected PDU, 6 invalid PDU parameter value. */
  abortReason: 0 | 1 | 2 | 6;
  code: 'DF_ERR_PDU_INVALID' | 'DF_ERR_COMMAND_INVALID';
  message: string;
}

/** Where the bytes of a C-STORE dataset go, once the SCP has opened a reception for it. */
export type DatasetSink = (bytes: Buffer) => void;

/** A C-STORE dataset the SCP receives itself, without the library: its bytes and its end. */
export interface OwnDataset {
  write: DatasetSink;
  end(): void;
  /**
   * The message is over unfinished: a new command came before the last fragment (or before
   * any), or the association ended.
   */
  abandon(why: 'next-command' | 'association-ended'): void;
}

/**
 * Where a complete, readable command goes. 'library': dcmjs-dimse answers it (its PDUs and any
 * data set follow to the library). 'scp': the SCP took it; a data set it announces goes to
 * `dataset`, or is read and dropped when there is none. 'abort': the command cannot be served.
 */
export type CommandRoute = { to: 'library' } | { to: 'scp'; dataset?: OwnDataset } | { to: 'abort'; message: string };

/** What the framer hands on: whole small PDUs for dcmjs-dimse, dataset bytes for the SCP. */
export interface FramerOutput {
  pdu(pdu: Buffer): void;
  /** A complete command set, decoded and checked (command field, message id, data set type). */
  command(command: Buffer, contextId: number, decoded: DimseCommand): CommandRoute;
  /** A complete dataset relayed to the library (a C-FIND identifier), before its last fragment. */
  relayedDataset?(contextId: number, dataset: Buffer): void;
}

type State =
  | { at: 'pdu-header' }
  | { at: 'whole-pdu'; length: number }
  | { at: 'pdv-header'; pduRemaining: number }
  | {
      at: 'pdv-value';
      pduRemaining: number;
      valueRemaining: number;
      contextId: number;
      control: number;
      sink?: DatasetSink;
      parts?: Buffer[];
    };

/** The data set a command announced, from the command's end to the data set's last fragment. */
interface ExpectedDataset {
  contextId: number;
  /** The SCP's reception; undefined with `relay` false: read and dropped. */
  own?: OwnDataset;
  relay: boolean;
}

const DROP: DatasetSink = () => {};

/**
 * A streaming reader of the upper-layer protocol (PS3.8 9.3) in front of dcmjs-dimse.
 *
 * - It refuses declared lengths above what was negotiated (dcmjs-dimse trusts any length and
 *   buffers it) and unknown PDU types.
 * - It keeps the order of a message (PS3.7 9.3.1, PS3.8 9.3.5): a command, then the data set it
 *   announces and nothing else, on the same presentation context. A command set it cannot read,
 *   or one with no command field, message id or data set type, ends the association: a peer
 *   that gets no answer would otherwise wait on a request that was never understood.
 * - C-STORE datasets never pass through dcmjs-dimse, which re-parses and copies every data PDU
 *   (measured here: 2.7 ms of CPU and most of the GC per 512 KB object). The bytes of each PDV
 *   go from the socket's chunks straight to the SCP's sink, with no copy.
 * - Everything else goes on as whole PDUs, which are small: association PDUs (associate,
 *   release, abort) to the SCP, commands and C-FIND/MOVE/GET identifiers to the library.
 */
export class PduFramer {
  private readonly maxPduLength: number;
  private readonly out: FramerOutput;
  private state: State = { at: 'pdu-header' };
  private carry: Buffer = Buffer.alloc(0);
  private expecting: ExpectedDataset | undefined;
  private commandParts: Buffer[] = [];
  private commandBytes = 0;
  private commandContextId = -1;
  /** The command's PDUs for the library, held until the command is whole and routed. */
  private commandPdus: Buffer[] = [];
  private relayedParts: Buffer[] = [];
  private relayedBytes = 0;
  private sawAssociateRq = false;

  constructor(maxPduLength: number, out: FramerOutput) {
    this.maxPduLength = maxPduLength;
    this.out = out;
  }

  /** Whether the peer is in the middle of something: a PDU, a command, or a data set it announced. */
  messageInProgress(): boolean {
    return this.state.at !== 'pdu-header' || this.carry.length > 0 || this.commandParts.length > 0 || this.expecting !== undefined;
  }

  /** Consumes a chunk; returns a violation if the peer broke the protocol. */
  push(chunk: Buffer): PduViolation | undefined {
    let pos = 0;
    while (pos < chunk.length) {
      const st = this.state;
      if (st.at === 'pdv-value') {
        const take = Math.min(st.valueRemaining, chunk.length - pos);
        const bytes = chunk.subarray(pos, pos + take);
        if (st.sink) st.sink(bytes);
        else st.parts!.push(bytes);
        pos += take;
        st.valueRemaining -= take;
        st.pduRemaining -= take;
        if (st.valueRemaining === 0) {
          const problem = this.endPdv(st);
          if (problem) return problem;
        }
        continue;
      }
      const need = st.at === 'pdu-header' ? HEADER : st.at === 'pdv-header' ? 6 : HEADER + st.length;
      const got = this.gather(chunk, pos, need);
      pos = got.pos;
      if (!got.bytes) continue;
      const problem = this.onBlock(st, got.bytes);
      if (problem) return problem;
    }
    return undefined;
  }

  /** The peer's part of the association ended (abort, close): a reception under way is abandoned. */
  end(): void {
    const own = this.expecting?.own;
    this.expecting = undefined;
    own?.abandon('association-ended');
  }

  /** Collects `need` bytes across chunks; returns them once complete. */
  private gather(chunk: Buffer, pos: number, need: number): { pos: number; bytes?: Buffer } {
    if (this.carry.length === 0 && chunk.length - pos >= need) return { pos: pos + need, bytes: chunk.subarray(pos, pos + need) };
    const take = Math.min(need - this.carry.length, chunk.length - pos);
    this.carry = Buffer.concat([this.carry, chunk.subarray(pos, pos + take)]);
    if (this.carry.length < need) return { pos: pos + take };
    const bytes = this.carry;
    this.carry = Buffer.alloc(0);
    return { pos: pos + take, bytes };
  }

  private onBlock(st: State, bytes: Buffer): PduViolation | undefined {
    if (st.at === 'pdu-header') {
      const type = bytes[0];
      const length = bytes.readUInt32BE(2);
      if (!KNOWN_TYPES.has(type)) return pduViolation(1, `unrecognized PDU type 0x${type.toString(16)}`);
      // PS3.8 9.2 (state table): an acceptor takes A-ASSOCIATE-RQ first and once; it never receives
      // -AC, -RJ or A-RELEASE-RP, since it requests nothing itself. dcmjs-dimse would answer some.
      const expected = this.sawAssociateRq
        ? type !== 0x01 && type !== 0x02 && type !== 0x03 && type !== 0x06
        : type === PduType.AssociateRq || type === 0x07;
      if (!expected)
        return pduViolation(
          2,
          `unexpected PDU type 0x${type.toString(16)} ${this.sawAssociateRq ? 'on an open association' : 'before A-ASSOCIATE-RQ'}`,
        );
      if (type === PduType.AssociateRq) this.sawAssociateRq = true;
      const limit = type === PduType.PData ? this.maxPduLength : type === PduType.AssociateRq ? MAX_ASSOCIATE_RQ : MAX_OTHER;
      if (length > limit)
        return pduViolation(6, `PDU of type 0x${type.toString(16)} declares ${length} bytes, more than the ${limit} allowed`);
      if (type === PduType.PData) {
        this.state = length === 0 ? { at: 'pdu-header' } : { at: 'pdv-header', pduRemaining: length };
      } else if (length === 0) {
        this.out.pdu(bytes);
      } else {
        // Keep the header: the whole PDU is gathered and handed on as one buffer.
        this.carry = Buffer.from(bytes);
        this.state = { at: 'whole-pdu', length };
      }
      return undefined;
    }
    if (st.at === 'whole-pdu') {
      this.state = { at: 'pdu-header' };
      this.out.pdu(bytes);
      return undefined;
    }
    if (st.at === 'pdv-header') {
      const itemLength = bytes.readUInt32BE(0);
      if (itemLength < 2 || 4 + itemLength > st.pduRemaining) {
        return pduViolation(6, `PDV item length ${itemLength} does not fit its PDU (${st.pduRemaining} bytes left)`);
      }
      const contextId = bytes[4];
      const control = bytes[5];
      const value: State = { at: 'pdv-value', pduRemaining: st.pduRemaining - 6, valueRemaining: itemLength - 2, contextId, control };
      const problem = (control & 0x01) !== 0 ? this.commandPdvStarts(contextId) : this.dataPdvStarts(value);
      if (problem) return problem;
      if (!value.sink) value.parts = [];
      this.state = value;
      if (value.valueRemaining === 0) return this.endPdv(value);
      return undefined;
    }
    return undefined;
  }

  private commandPdvStarts(contextId: number): PduViolation | undefined {
    if (this.commandParts.length > 0 && contextId !== this.commandContextId) {
      return commandViolation(`a command fragment on presentation context ${contextId} continues one begun on ${this.commandContextId}`);
    }
    const expected = this.expecting;
    if (!expected) return undefined;
    // PS3.7 9.3.1: a message is its command and then its data set. A new command first ends the
    // earlier message unfinished: its reception is dropped at once (file closed, partial file
    // removed). A request the library holds cannot be ended that way: the association is.
    if (expected.relay) return commandViolation('a new command came before the data set of the previous request ended');
    this.expecting = undefined;
    expected.own?.abandon('next-command');
    return undefined;
  }

  private dataPdvStarts(value: Extract<State, { at: 'pdv-value' }>): PduViolation | undefined {
    if (this.commandParts.length > 0) return commandViolation('a data set fragment came inside a command');
    const expected = this.expecting;
    if (!expected) return commandViolation('a data set fragment came with no command announcing one');
    if (value.contextId !== expected.contextId) {
      return commandViolation(`a data set fragment on presentation context ${value.contextId} follows a command on ${expected.contextId}`);
    }
    if (!expected.relay) value.sink = expected.own?.write ?? DROP;
    return undefined;
  }

  private endPdv(st: Extract<State, { at: 'pdv-value' }>): PduViolation | undefined {
    const isLast = (st.control & 0x02) !== 0;
    const isCommand = (st.control & 0x01) !== 0;
    this.state = st.pduRemaining === 0 ? { at: 'pdu-header' } : { at: 'pdv-header', pduRemaining: st.pduRemaining };
    if (st.sink) {
      if (isLast) {
        const own = this.expecting?.own;
        this.expecting = undefined;
        own?.end();
      }
      return undefined;
    }
    const value = st.parts!.length === 1 ? st.parts![0] : Buffer.concat(st.parts!);
    const pdu = pDataPdu(pdvItem(st.contextId, st.control, value));
    if (isCommand) {
      this.commandContextId = st.contextId;
      this.commandParts.push(value);
      this.commandPdus.push(pdu);
      this.commandBytes += value.length;
      if (this.commandBytes > MAX_COMMAND_BYTES) return commandViolation(`a command set of more than ${MAX_COMMAND_BYTES} bytes`);
      return isLast ? this.commandEnds(st.contextId) : undefined;
    }
    this.relayedParts.push(value);
    this.relayedBytes += value.length;
    if (this.relayedBytes > MAX_RELAYED_DATASET_BYTES)
      return commandViolation(`a request's data set of more than ${MAX_RELAYED_DATASET_BYTES} bytes`);
    if (isLast) {
      this.out.relayedDataset?.(st.contextId, Buffer.concat(this.relayedParts.splice(0)));
      this.relayedBytes = 0;
      this.expecting = undefined;
    }
    this.out.pdu(pdu);
    return undefined;
  }

  private commandEnds(contextId: number): PduViolation | undefined {
    const command = Buffer.concat(this.commandParts.splice(0));
    const pdus = this.commandPdus.splice(0);
    this.commandBytes = 0;
    let decoded: DimseCommand;
    try {
      decoded = decodeCommand(command);
    } catch (err) {
      return commandViolation(`the command set cannot be read: ${(err as Error).message}`);
    }
    const problem = commandProblem(decoded);
    if (problem) return commandViolation(problem);
    const route = this.out.command(command, contextId, decoded);
    if (route.to === 'abort') return commandViolation(route.message);
    const hasDataset = decoded.CommandDataSetType !== NO_DATA_SET;
    if (route.to === 'library') {
      for (const p of pdus) this.out.pdu(p);
      if (hasDataset) this.expecting = { contextId, relay: true };
    } else if (hasDataset) {
      this.expecting = { contextId, own: route.dataset, relay: false };
    }
    return undefined;
  }
}

/** What makes a command set unusable, if anything (PS3.7 9.3, 10.3: the fields every command has). */
export function commandProblem(c: DimseCommand): string | undefined {
  const field = c.CommandField;
  if (field === undefined) return 'the command set has no Command Field (0000,0100)';
  const isCancel = field === CommandField.CCancelRq;
  const isResponse = (field & RESPONSE_BIT) !== 0;
  if (!isCancel && !REQUEST_FIELDS.has(field & ~RESPONSE_BIT)) return `unknown command field 0x${field.toString(16).padStart(4, '0')}`;
  if (c.CommandDataSetType === undefined) return 'the command set has no Command Data Set Type (0000,0800)';
  if (isResponse || isCancel) {
    if (c.MessageIDBeingRespondedTo === undefined) return 'the command set has no Message ID Being Responded To (0000,0120)';
  } else if (c.MessageID === undefined) {
    return 'the request has no Message ID (0000,0110)';
  }
  return undefined;
}

/** A request of the peer that expects an answer (C-CANCEL expects none of its own). */
export function isRequest(c: DimseCommand): boolean {
  const field = c.CommandField ?? 0;
  return (field & RESPONSE_BIT) === 0 && field !== CommandField.CCancelRq;
}

function pduViolation(abortReason: 1 | 2 | 6, message: string): PduViolation {
  return { abortReason, code: 'DF_ERR_PDU_INVALID', message };
}

function commandViolation(message: string): PduViolation {
  return { abortReason: 0, code: 'DF_ERR_COMMAND_INVALID', message };
}

export interface FramedSocketOptions {
  maxPduLength: number;
  timeouts: DimseTimeouts;
  /** A complete, readable command: where it goes (see CommandRoute). */
  onCommand(command: Buffer, contextId: number, decoded: DimseCommand): CommandRoute;
  onViolation(v: PduViolation): void;
  onTimeout(kind: TimerKind, phase: AssociationPhase): void;
  onRelayedDataset?(contextId: number, dataset: Buffer): void;
  /** A whole A-ASSOCIATE-RQ, A-RELEASE-RQ or A-ABORT: the SCP answers these itself. */
  onAssociationPdu(pdu: Buffer): void;
  /** Whether requests of ours wait for the peer's answer (C-GET's C-STOREs). */
  awaitingPeer?(): boolean;
}

/**
 * What dcmjs-dimse needs of a socket (write, setTimeout, events), fed by the PduFramer with the
 * P-DATA-TFs it still reads (C-FIND, C-MOVE and C-GET requests); association PDUs go to the SCP. It also
 * runs the association's timers (association-timers.ts), seeing every byte either way, and keeps
 * what is written within the peer's maximum PDU length. On a violation it sends A-ABORT and
 * closes the connection.
 */
export class FramedSocket extends EventEmitter {
  readonly socket: Socket;
  /** The peer's maximum PDU length (0: no limit), once the association is accepted. */
  peerMaxPduLength = 0;
  private readonly framer: PduFramer;
  private readonly timers: AssociationTimers;
  private phase: AssociationPhase = 'awaiting-request';
  private phaseSince = Date.now();
  private lastReceivedAt = Date.now();
  private lastActivityAt = Date.now();
  private requestsOwed = 0;

  constructor(socket: Socket, o: FramedSocketOptions) {
    super();
    this.socket = socket;
    this.timers = new AssociationTimers(
      o.timeouts,
      () => ({
        phase: this.phase,
        phaseSince: this.phaseSince,
        lastReceivedAt: this.lastReceivedAt,
        lastActivityAt: this.lastActivityAt,
        messageInProgress: this.framer.messageInProgress(),
        requestsOwed: this.requestsOwed,
        awaitingPeer: o.awaitingPeer?.() ?? false,
      }),
      (kind) => {
        o.onTimeout(kind, this.phase);
        // PS3.8 9.2.3: ARTIM ends a connection with no association, or one we already answered,
        // by closing it (AA-2); on an open association the peer first learns why (A-ABORT).
        if (this.phase === 'open') this.abortAndClose(0);
        else socket.destroy();
      },
    );
    this.framer = new PduFramer(o.maxPduLength, {
      pdu: (pdu) => {
        if (pdu[0] === PduType.PData) {
          this.emit('data', pdu);
          return;
        }
        if (pdu[0] === PduType.AssociateRq) this.enter('negotiating');
        o.onAssociationPdu(pdu);
      },
      command: (command, contextId, decoded) => {
        if (isRequest(decoded)) this.requestsOwed++;
        return o.onCommand(command, contextId, decoded);
      },
      relayedDataset: o.onRelayedDataset,
    });
    this.timers.reschedule();
    socket.on('data', (chunk: Buffer) => {
      this.lastReceivedAt = this.lastActivityAt = Date.now();
      let problem: PduViolation | undefined;
      try {
        problem = this.framer.push(chunk);
      } catch (err) {
        // A bug met by a peer's bytes ends that association, never the server.
        problem = {
          abortReason: 0,
          code: 'DF_ERR_PDU_INVALID',
          message: `the association failed on what the peer sent: ${(err as Error).message}`,
        };
      }
      if (!problem) {
        this.timers.reschedule(this.lastReceivedAt);
        return;
      }
      o.onViolation(problem);
      socket.pause();
      socket.removeAllListeners('data');
      this.abortAndClose(problem.abortReason);
    });
    socket.on('close', () => {
      this.timers.stop();
      this.framer.end();
    });
    for (const event of ['connect', 'error', 'timeout', 'close', 'end']) {
      socket.on(event, (...args: unknown[]) => this.emit(event, ...args));
    }
  }

  /**
   * A whole PDU (the library writes one per call, and so does the SCP): it moves the
   * association's state, settles answered requests, and is cut to the peer's maximum PDU length.
   */
  write(pdu: Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    this.sent(pdu);
    let flushed = true;
    for (const piece of fitToMaxPdu(pdu, this.peerMaxPduLength)) flushed = this.socket.write(piece);
    return flushed;
  }

  /**
   * Bytes of a message the SCP streams itself (C-GET's sub-operations), already within the peer's
   * limit. `written` runs once the socket is done with them, or at once if they are not written.
   */
  writeStream(bytes: Buffer, written?: () => void): boolean {
    if (this.socket.destroyed || !this.socket.writable) {
      written?.();
      return false;
    }
    this.lastActivityAt = Date.now();
    this.timers.reschedule(this.lastActivityAt);
    return this.socket.write(bytes, written);
  }

  /** Sends A-ABORT (service provider) and closes the connection. */
  abortAndClose(reason: number): void {
    this.enter('closing');
    if (this.socket.writable) {
      this.socket.end(abortPdu(reason));
      setTimeout(() => this.socket.destroy(), 1000).unref();
    } else {
      this.socket.destroy();
    }
  }

  /** Resolves once the socket can take more (after a write returned false), or has closed. */
  drained(): Promise<void> {
    if (this.socket.destroyed || !this.socket.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** The library's idle timeout (a socket timeout) is not used: the association timers decide. */
  setTimeout(_ms: number): this {
    return this;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }

  private enter(phase: AssociationPhase): void {
    if (this.phase === phase || this.phase === 'closing') return;
    this.phase = phase;
    this.phaseSince = Date.now();
    this.timers.reschedule(this.phaseSince);
  }

  private sent(pdu: Buffer): void {
    this.lastActivityAt = Date.now();
    switch (pdu[0]) {
      case PduType.AssociateAc:
        this.enter('open');
        break;
      // PS3.8 9.2.3: after A-ASSOCIATE-RJ (AE-8), A-RELEASE-RP (AR-4) or A-ABORT (AA-1) the
      // acceptor waits, under ARTIM, for the peer to close.
      case PduType.AssociateRj:
      case PduType.ReleaseRp:
      case PduType.Abort:
        this.enter('closing');
        break;
      case PduType.PData:
        for (const command of commandsIn(pdu)) {
          const status = command.Status;
          if ((command.CommandField ?? 0) & RESPONSE_BIT && status !== undefined && !PENDING.has(status)) {
            this.requestsOwed = Math.max(0, this.requestsOwed - 1);
          }
        }
        break;
    }
    this.timers.reschedule(this.lastActivityAt);
  }
}

/** The decoded commands whose last fragment is in this whole P-DATA-TF (responses are one PDV). */
function commandsIn(pdu: Buffer): DimseCommand[] {
  const commands: DimseCommand[] = [];
  if (pdu.length < HEADER || pdu.readUInt32BE(2) !== pdu.length - HEADER) return commands;
  for (let at = HEADER; at + 6 <= pdu.length; ) {
    const length = pdu.readUInt32BE(at);
    const control = pdu[at + 5];
    if ((control & 0x03) === 0x03) {
      try {
        commands.push(decodeCommand(pdu.subarray(at + 6, at + 4 + length)));
      } catch {
        // our own encoders wrote it: unreachable, and not the peer's problem
      }
    }
    at += 4 + length;
  }
  return commands;
}

/**
 * PS3.8 9.3.5 and D.1: a P-DATA-TF no longer than the peer's maximum PDU length (the length
 * field, PDV headers included). dcmjs-dimse fragments data sets itself but sends a command as one
 * PDV whatever its length; anything too long is cut into PDVs of the same kind, the last-fragment
 * bit on the final one only. Anything but a whole P-DATA-TF passes as it is.
 */
export function fitToMaxPdu(pdu: Buffer, maxPduLength: number): Buffer[] {
  if (maxPduLength === 0 || pdu[0] !== PduType.PData || pdu.length - HEADER <= maxPduLength) return [pdu];
  if (pdu.length < HEADER || pdu.readUInt32BE(2) !== pdu.length - HEADER) return [pdu];
  const fragmentBytes = maxPduLength - 6;
  if (fragmentBytes < 1) return [pdu];
  const out: Buffer[] = [];
  for (let at = HEADER; at + 6 <= pdu.length; ) {
    const length = pdu.readUInt32BE(at);
    const contextId = pdu[at + 4];
    const control = pdu[at + 5];
    const value = pdu.subarray(at + 6, at + 4 + length);
    for (let from = 0; from < value.length || from === 0; from += fragmentBytes) {
      const to = Math.min(value.length, from + fragmentBytes);
      const last = to === value.length;
      out.push(pDataPdu(pdvItem(contextId, last ? control : control & ~0x02, value.subarray(from, to))));
      if (last) break;
    }
    at += 4 + length;
  }
  return out;
}

export { APPLICATION_CONTEXT_NAME };

function pdvItem(contextId: number, control: number, value: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(value.length + 2, 0);
  head[4] = contextId;
  head[5] = control;
  return value.length === 0 ? head : Buffer.concat([head, value]);
}

function pDataPdu(item: Buffer): Buffer {
  const head = Buffer.from([PduType.PData, 0, 0, 0, 0, 0]);
  head.writeUInt32BE(item.length, 2);
  return Buffer.concat([head, item]);
}

/** PS3.8 9.3.8: A-ABORT, source 2 (service provider). */
export function abortPdu(reason: number): Buffer {
  return Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, reason]);
}
