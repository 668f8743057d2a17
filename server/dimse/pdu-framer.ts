import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';

// PS3.8 9.3.1: PDU types.
const A_ASSOCIATE_RQ = 0x01;
const P_DATA_TF = 0x04;
const KNOWN_TYPES = new Set([0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07]);
const HEADER = 6;
// An A-ASSOCIATE-RQ with every storage SOP class and a dozen transfer syntaxes each stays far
// below this; anything larger is an attack or a broken peer.
const MAX_ASSOCIATE_RQ = 1 << 20;
const MAX_OTHER = 1 << 16;

export interface PduViolation {
  /** PS3.8 9.3.8 A-ABORT reason: 1 unrecognized PDU, 2 unexpected PDU, 6 invalid PDU parameter value. */
  abortReason: 1 | 2 | 6;
  message: string;
}

/** Where the bytes of a C-STORE dataset go, once the SCP has opened a reception for it. */
export type DatasetSink = (bytes: Buffer) => void;

/** What the framer hands on: whole small PDUs for dcmjs-dimse, dataset bytes for the sink. */
export interface FramerOutput {
  pdu(pdu: Buffer): void;
  /** A complete command set, before the library is handed its last fragment. */
  command?(command: Buffer): void;
  /**
   * A complete command set, first of all: true keeps it from the library (and from `command`),
   * e.g. a C-STORE-RSP answering a C-STORE we sent ourselves on this association.
   */
  consumeCommand?(command: Buffer, contextId: number): boolean;
  /** A complete dataset relayed to the library (a C-FIND identifier), before its last fragment. */
  relayedDataset?(contextId: number, dataset: Buffer): void;
  /** The first fragment of a dataset begins: returns the sink of a C-STORE, or undefined. */
  datasetStarts(contextId: number): DatasetSink | undefined;
  /** The last fragment of a dataset streamed to a sink has ended. */
  datasetEnds(contextId: number, control: number): void;
}

type State =
  | { at: 'pdu-header' }
  | { at: 'whole-pdu'; length: number }
  | { at: 'pdv-header'; pduRemaining: number }
  | { at: 'pdv-value'; pduRemaining: number; valueRemaining: number; contextId: number; control: number; sink?: DatasetSink; parts?: Buffer[] };

/**
 * A streaming reader of the upper-layer protocol (PS3.8 9.3) in front of dcmjs-dimse.
 *
 * - It refuses declared lengths above what was negotiated (dcmjs-dimse trusts any length and
 *   buffers it) and unknown PDU types.
 * - C-STORE datasets never pass through dcmjs-dimse, which re-parses and copies every data PDU
 *   (measured here: 2.7 ms of CPU and most of the GC per 512 KB object). The bytes of each PDV
 *   go from the socket's chunks straight to the sink, with no copy; the library only sees the
 *   commands, plus an empty first and last fragment so that it opens and completes the C-STORE
 *   as usual (Scp.createStoreWritableStream, then cStoreRequest).
 * - Everything else (associate, release, abort, commands, C-FIND identifiers) goes to the
 *   library as whole PDUs, which are small.
 */
export class PduFramer {
  private readonly maxPduLength: number;
  private readonly out: FramerOutput;
  private state: State = { at: 'pdu-header' };
  private carry: Buffer = Buffer.alloc(0);
  /** A non-C-STORE dataset being relayed to the library PDV by PDV. */
  private relayingDataset = false;
  /** The sink of a C-STORE dataset whose last fragment has not come yet. */
  private continuingSink: DatasetSink | undefined;
  private commandParts: Buffer[] = [];
  /** The command's PDUs for the library, held until the command is whole (see consumeCommand). */
  private commandPdus: Buffer[] = [];
  private relayedParts: Buffer[] = [];
  private sawAssociateRq = false;

  constructor(maxPduLength: number, out: FramerOutput) {
    this.maxPduLength = maxPduLength;
    this.out = out;
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
        if (st.valueRemaining === 0) this.endPdv(st);
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
      if (!KNOWN_TYPES.has(type)) return { abortReason: 1, message: `unrecognized PDU type 0x${type.toString(16)}` };
      // PS3.8 9.2 (state table): an acceptor takes A-ASSOCIATE-RQ first and once; it never receives
      // -AC, -RJ or A-RELEASE-RP, since it requests nothing itself. dcmjs-dimse would answer some.
      const expected = this.sawAssociateRq ? type !== 0x01 && type !== 0x02 && type !== 0x03 && type !== 0x06 : type === A_ASSOCIATE_RQ || type === 0x07;
      if (!expected) return { abortReason: 2, message: `unexpected PDU type 0x${type.toString(16)} ${this.sawAssociateRq ? 'on an open association' : 'before A-ASSOCIATE-RQ'}` };
      if (type === A_ASSOCIATE_RQ) this.sawAssociateRq = true;
      const limit = type === P_DATA_TF ? this.maxPduLength : type === A_ASSOCIATE_RQ ? MAX_ASSOCIATE_RQ : MAX_OTHER;
      if (length > limit) {
        return { abortReason: 6, message: `PDU of type 0x${type.toString(16)} declares ${length} bytes, more than the ${limit} allowed` };
      }
      if (type === P_DATA_TF) {
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
        return { abortReason: 6, message: `PDV item length ${itemLength} does not fit its PDU (${st.pduRemaining} bytes left)` };
      }
      const contextId = bytes[4];
      const control = bytes[5];
      const value: State = { at: 'pdv-value', pduRemaining: st.pduRemaining - 6, valueRemaining: itemLength - 2, contextId, control };
      const isCommand = (control & 0x01) !== 0;
      if (!isCommand && this.continuingSink) {
        value.sink = this.continuingSink;
      } else if (!isCommand && !this.relayingDataset) {
        value.sink = this.out.datasetStarts(contextId);
        if (!value.sink) this.relayingDataset = true;
      }
      if (!value.sink) value.parts = [];
      this.state = value;
      if (value.valueRemaining === 0) this.endPdv(value);
      return undefined;
    }
    return undefined;
  }

  private endPdv(st: Extract<State, { at: 'pdv-value' }>): void {
    const isLast = (st.control & 0x02) !== 0;
    const isCommand = (st.control & 0x01) !== 0;
    if (st.sink) {
      if (isLast) this.out.datasetEnds(st.contextId, st.control);
    } else {
      const value = Buffer.concat(st.parts!);
      const pdu = pDataPdu(pdvItem(st.contextId, st.control, value));
      if (isCommand) {
        this.commandParts.push(value);
        this.commandPdus.push(pdu);
        if (isLast) {
          const command = Buffer.concat(this.commandParts.splice(0));
          const pdus = this.commandPdus.splice(0);
          if (!this.out.consumeCommand?.(command, st.contextId)) {
            this.out.command?.(command);
            for (const p of pdus) this.out.pdu(p);
          }
        }
      } else {
        this.relayedParts.push(value);
        if (isLast) this.out.relayedDataset?.(st.contextId, Buffer.concat(this.relayedParts.splice(0)));
        this.out.pdu(pdu);
        if (isLast) this.relayingDataset = false;
      }
    }
    // A dataset sink stays with the dataset across PDVs and PDUs until its last fragment.
    const sink = isLast ? undefined : st.sink;
    this.state = st.pduRemaining === 0 ? { at: 'pdu-header' } : { at: 'pdv-header', pduRemaining: st.pduRemaining };
    this.continuingSink = sink;
  }
}

/**
 * What dcmjs-dimse needs of a socket (write, setTimeout, events), fed by the PduFramer. On a
 * violation it sends A-ABORT and closes the connection.
 */
/** A C-STORE dataset the SCP receives itself, without the library: its bytes and its end. */
export interface OwnDataset {
  write: DatasetSink;
  end(): void;
}

export interface FramedSocketOptions {
  maxPduLength: number;
  /** The sink the library's store stream opened for the dataset just started (library path). */
  takeSink(): DatasetSink | undefined;
  /** A dataset of a command the SCP consumed itself (consumeCommand): checked first. */
  takeOwnDataset?(): OwnDataset | undefined;
  onCommand(command: Buffer): void;
  onViolation(v: PduViolation): void;
  onRelayedDataset?(contextId: number, dataset: Buffer): void;
  consumeCommand?(command: Buffer, contextId: number): boolean;
}

/**
 * What dcmjs-dimse needs of a socket (write, setTimeout, events), fed by the PduFramer. On a
 * violation it sends A-ABORT and closes the connection.
 */
export class FramedSocket extends EventEmitter {
  readonly socket: Socket;

  constructor(socket: Socket, o: FramedSocketOptions) {
    super();
    this.socket = socket;
    let ownEnd: (() => void) | undefined;
    const framer = new PduFramer(o.maxPduLength, {
      pdu: (pdu) => this.emit('data', pdu),
      command: o.onCommand,
      consumeCommand: o.consumeCommand,
      relayedDataset: o.onRelayedDataset,
      datasetStarts: (contextId) => {
        const own = o.takeOwnDataset?.();
        if (own) {
          ownEnd = own.end;
          return own.write;
        }
        // An empty, non-last first fragment makes dcmjs-dimse open its store stream.
        this.emit('data', pDataPdu(pdvItem(contextId, 0x00, Buffer.alloc(0))));
        return o.takeSink();
      },
      datasetEnds: (contextId, control) => {
        const end = ownEnd;
        ownEnd = undefined;
        if (end) end();
        else this.emit('data', pDataPdu(pdvItem(contextId, control, Buffer.alloc(0))));
      },
    });
    socket.on('data', (chunk: Buffer) => {
      const problem = framer.push(chunk);
      if (!problem) return;
      o.onViolation(problem);
      socket.pause();
      socket.removeAllListeners('data');
      socket.end(abortPdu(problem.abortReason));
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    for (const event of ['connect', 'error', 'timeout', 'close', 'end']) {
      socket.on(event, (...args: unknown[]) => this.emit(event, ...args));
    }
  }

  write(data: Buffer): boolean {
    if (this.socket.destroyed || !this.socket.writable) return false;
    return this.socket.write(data);
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

  setTimeout(ms: number): this {
    this.socket.setTimeout(ms);
    return this;
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress;
  }
}

function pdvItem(contextId: number, control: number, value: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head.writeUInt32BE(value.length + 2, 0);
  head[4] = contextId;
  head[5] = control;
  return value.length === 0 ? head : Buffer.concat([head, value]);
}

function pDataPdu(item: Buffer): Buffer {
  const head = Buffer.from([P_DATA_TF, 0, 0, 0, 0, 0]);
  head.writeUInt32BE(item.length, 2);
  return Buffer.concat([head, item]);
}

/** PS3.8 9.3.8: A-ABORT, source 2 (service provider). */
export function abortPdu(reason: number): Buffer {
  return Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x02, reason]);
}
