// A minimal DICOM upper-layer client (PS3.8 section 9) for tests that must send what storescu
// will not: truncated or malformed data sets, odd fragmentation, hostile PDUs. It sends bytes
// exactly as given and reports what came back; it never re-encodes a data set.
import net from 'node:net';

export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PData: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

export const APPLICATION_CONTEXT_NAME = '1.2.840.10008.3.1.1.1';
export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';
export const IMPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2';
export const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
const DEFAULT_IMPLEMENTATION_CLASS_UID = '2.25.301716411612344813722591337125540939621';
const DEFAULT_IMPLEMENTATION_VERSION = 'DICOMFLOW_RAW';
const DEFAULT_TIMEOUT_MS = 30_000;

export interface Pdu {
  type: number;
  /** The bytes after the 6-byte PDU header. */
  body: Buffer;
}

/** The peer sent A-ABORT (PS3.8 9.3.8): source 0 service user, 2 service provider. */
export class PeerAbortError extends Error {
  readonly source: number;
  readonly reason: number;
  constructor(source: number, reason: number, during: string) {
    super(`peer sent A-ABORT (source ${source}, reason ${reason}) ${during}`);
    this.name = 'PeerAbortError';
    this.source = source;
    this.reason = reason;
  }
}

/** The peer closed the TCP connection without A-ABORT or A-RELEASE-RP. */
export class PeerClosedError extends Error {
  constructor(during: string, cause?: Error) {
    super(`peer closed the connection ${during}${cause === undefined ? '' : `: ${cause.message}`}`, { cause });
    this.name = 'PeerClosedError';
  }
}

interface PduWaiter {
  resolve: (pdu: Pdu) => void;
  reject: (error: Error) => void;
}

/** A TCP connection cut into PDUs: type byte, reserved byte, 4-byte big-endian length. */
export class RawConnection {
  readonly socket: net.Socket;
  /** Every PDU the peer sent, in order (type and the length its header declares). */
  readonly received: Array<{ type: number; length: number }> = [];
  #buffered: Buffer = Buffer.alloc(0);
  readonly #pdus: Pdu[] = [];
  readonly #waiters: PduWaiter[] = [];
  #closed = false;
  #closeError: Error | undefined;
  readonly #closedPromise: Promise<void>;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', (error) => {
      this.#closeError = error;
    });
    this.#closedPromise = new Promise((resolve) => {
      socket.once('close', () => {
        this.#closed = true;
        for (const waiter of this.#waiters.splice(0)) waiter.reject(new PeerClosedError('before the next PDU arrived', this.#closeError));
        resolve();
      });
    });
  }

  /** localAddress: the source address to connect from (e.g. 127.0.0.2, another host as the server sees it). */
  static connect(host: string, port: number, timeoutMs = DEFAULT_TIMEOUT_MS, localAddress?: string): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, localAddress });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`could not connect to ${host}:${port} within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeListener('error', onError);
        resolve(new RawConnection(socket));
      });
      const onError = (error: Error): void => {
        clearTimeout(timer);
        reject(new Error(`could not connect to ${host}:${port}: ${error.message}`, { cause: error }));
      };
      socket.once('error', onError);
    });
  }

  get closed(): boolean {
    return this.#closed;
  }

  #onData(chunk: Buffer): void {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    while (this.#buffered.length >= 6) {
      const length = this.#buffered.readUInt32BE(2);
      if (this.#buffered.length < 6 + length) break;
      const pdu: Pdu = { type: this.#buffered[0], body: this.#buffered.subarray(6, 6 + length) };
      this.received.push({ type: pdu.type, length });
      this.#buffered = this.#buffered.subarray(6 + length);
      const waiter = this.#waiters.shift();
      if (waiter === undefined) this.#pdus.push(pdu);
      else waiter.resolve(pdu);
    }
  }

  /** The next PDU from the peer; rejects with PeerClosedError, or after timeoutMs. */
  readPdu(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<Pdu> {
    const queued = this.#pdus.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#closed) return Promise.reject(new PeerClosedError('before the next PDU arrived', this.#closeError));
    return new Promise((resolve, reject) => {
      const waiter: PduWaiter = {
        resolve: (pdu) => {
          clearTimeout(timer);
          resolve(pdu);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        const at = this.#waiters.indexOf(waiter);
        if (at !== -1) this.#waiters.splice(at, 1);
        reject(new Error(`no PDU from the peer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiters.push(waiter);
    });
  }

  /** Writes bytes as they are (any PDU, valid or not); resolves once handed to the kernel. */
  sendRawBytes(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.socket.destroyed || this.socket.writableEnded) {
        reject(new PeerClosedError('before the bytes could be sent', this.#closeError));
        return;
      }
      this.socket.write(bytes, (error) => (error ? reject(new PeerClosedError('while sending', error)) : resolve()));
    });
  }

  /** Resolves when the connection is closed (by either side); rejects after timeoutMs. */
  waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the peer kept the connection open for ${timeoutMs} ms`)), timeoutMs);
      void this.#closedPromise.then(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  destroy(): void {
    this.socket.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// PDU encoding (PS3.8 9.3)

function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(6);
  header[0] = type;
  header.writeUInt32BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function item(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header[0] = type;
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([header, body]);
}

function aeTitle(title: string): Buffer {
  if (title.length === 0 || title.length > 16) throw new Error(`AE title "${title}" must be 1 to 16 characters`);
  return Buffer.from(title.padEnd(16, ' '), 'latin1');
}

export interface PresentationContextRq {
  /** Odd, 1–255 (PS3.8 9.3.2.2). */
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface AssociateRqOptions {
  callingAe?: string;
  calledAe?: string;
  contexts: PresentationContextRq[];
  /** Maximum PDU length we receive (sub-item 0x51); 0 means no limit. */
  maxPdu?: number;
  /** null leaves the sub-item out (to test peers that require it). */
  implementationClassUid?: string | null;
  implementationVersionName?: string | null;
  applicationContextName?: string;
  /** SCP/SCU Role Selection sub-items (PS3.7 D.3.3.4), e.g. the SCP role for storage under C-GET. */
  roles?: Array<{ abstractSyntax: string; scu: boolean; scp: boolean }>;
}

/** The bytes of an A-ASSOCIATE-RQ (PS3.8 9.3.2), e.g. to corrupt before sending. */
export function encodeAssociateRq(options: AssociateRqOptions): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(0x0001, 0); // protocol version 1
  aeTitle(options.calledAe ?? 'ANY-SCP').copy(fixed, 4);
  aeTitle(options.callingAe ?? 'RAWSCU').copy(fixed, 20);
  const items: Buffer[] = [item(0x10, Buffer.from(options.applicationContextName ?? APPLICATION_CONTEXT_NAME, 'latin1'))];
  for (const context of options.contexts) {
    const head = Buffer.from([context.id, 0, 0, 0]);
    const subItems = [
      item(0x30, Buffer.from(context.abstractSyntax, 'latin1')),
      ...context.transferSyntaxes.map((ts) => item(0x40, Buffer.from(ts, 'latin1'))),
    ];
    items.push(item(0x20, Buffer.concat([head, ...subItems])));
  }
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(options.maxPdu ?? 16384);
  const userItems = [item(0x51, maxLength)];
  const classUid = options.implementationClassUid === undefined ? DEFAULT_IMPLEMENTATION_CLASS_UID : options.implementationClassUid;
  if (classUid !== null) userItems.push(item(0x52, Buffer.from(classUid, 'latin1')));
  const versionName = options.implementationVersionName === undefined ? DEFAULT_IMPLEMENTATION_VERSION : options.implementationVersionName;
  for (const role of options.roles ?? []) {
    const uid = Buffer.from(role.abstractSyntax, 'latin1');
    const uidLength = Buffer.alloc(2);
    uidLength.writeUInt16BE(uid.length);
    userItems.push(item(0x54, Buffer.concat([uidLength, uid, Buffer.from([role.scu ? 1 : 0, role.scp ? 1 : 0])])));
  }
  if (versionName !== null) userItems.push(item(0x55, Buffer.from(versionName, 'latin1')));
  items.push(item(0x50, Buffer.concat(userItems)));
  return pdu(PduType.AssociateRq, Buffer.concat([fixed, ...items]));
}

export function encodeReleaseRq(): Buffer {
  return pdu(PduType.ReleaseRq, Buffer.alloc(4));
}

/** A-ABORT; source 0 is the service user (PS3.8 table 9-26). */
export function encodeAbort(source = 0, reason = 0): Buffer {
  return pdu(PduType.Abort, Buffer.from([0, 0, source, reason]));
}

/** One P-DATA-TF PDU holding one PDV (PS3.8 9.3.5, E.2): message control header bit 0 command, bit 1 last. */
export function encodePData(pcId: number, isCommand: boolean, isLast: boolean, fragment: Uint8Array): Buffer {
  const header = Buffer.alloc(12);
  header[0] = PduType.PData;
  header.writeUInt32BE(6 + fragment.length, 2);
  header.writeUInt32BE(2 + fragment.length, 6);
  header[10] = pcId;
  header[11] = (isCommand ? 0x01 : 0) | (isLast ? 0x02 : 0);
  return Buffer.concat([header, fragment]);
}

// ---------------------------------------------------------------------------------------------
// Command sets (PS3.7 9.3, E.1): implicit VR little endian, group 0000, group length first.

type CommandValue = { us: number } | { ul: number } | { ui: string } | { ae: string } | { bytes: Buffer };

function commandValueBytes(value: CommandValue): Buffer {
  if ('us' in value) {
    const b = Buffer.alloc(2);
    b.writeUInt16LE(value.us);
    return b;
  }
  if ('ul' in value) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(value.ul);
    return b;
  }
  if ('ui' in value) return Buffer.from(value.ui.length % 2 === 1 ? `${value.ui}\0` : value.ui, 'latin1');
  if ('ae' in value) return Buffer.from(value.ae.padEnd(16, ' '), 'latin1');
  return value.bytes;
}

/** Encodes a command set; `elements` maps element numbers of group 0000 to values. */
export function encodeCommandSet(elements: Array<[number, CommandValue]>): Buffer {
  const parts = [...elements]
    .sort((a, b) => a[0] - b[0])
    .map(([element, value]) => {
      const bytes = commandValueBytes(value);
      const header = Buffer.alloc(8);
      header.writeUInt16LE(0x0000, 0);
      header.writeUInt16LE(element, 2);
      header.writeUInt32LE(bytes.length, 4);
      return Buffer.concat([header, bytes]);
    });
  const body = Buffer.concat(parts);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(0x00000000, 0); // (0000,0000)
  groupLength.writeUInt32LE(4, 4);
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([groupLength, body]);
}

/** Parses an implicit VR little endian command set into element number → value bytes. */
export function decodeCommandSet(bytes: Buffer): Map<number, Buffer> {
  const elements = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    const element = bytes.readUInt16LE(offset + 2);
    const length = bytes.readUInt32LE(offset + 4);
    elements.set(element, bytes.subarray(offset + 8, offset + 8 + length));
    offset += 8 + length;
  }
  return elements;
}

export const CommandField = {
  CStoreRq: 0x0001,
  CStoreRsp: 0x8001,
  CFindRq: 0x0020,
  CFindRsp: 0x8020,
  CEchoRq: 0x0030,
  CEchoRsp: 0x8030,
} as const;
export const NO_DATA_SET = 0x0101;

export interface DimseResponse {
  status: number;
  commandField: number;
  messageIdBeingRespondedTo: number;
  affectedSopInstanceUid: string | undefined;
  errorComment: string | undefined;
  /** Every command element by element number (group 0000). */
  elements: Map<number, Buffer>;
}

function toResponse(elements: Map<number, Buffer>): DimseResponse {
  const us = (element: number): number => elements.get(element)?.readUInt16LE(0) ?? -1;
  const text = (element: number): string | undefined =>
    elements
      .get(element)
      ?.toString('latin1')
      .replace(/[\0 ]+$/, '');
  return {
    status: us(0x0900),
    commandField: us(0x0100),
    messageIdBeingRespondedTo: us(0x0120),
    affectedSopInstanceUid: text(0x1000),
    errorComment: text(0x0902),
    elements,
  };
}

// ---------------------------------------------------------------------------------------------
// Associations

export interface RawAssociateOptions extends AssociateRqOptions {
  host?: string;
  port: number;
  localAddress?: string;
  timeoutMs?: number;
}

export interface NegotiatedContext {
  id: number;
  abstractSyntax: string;
  /** 0 acceptance, 1 user rejection, 2 no reason, 3 abstract syntax not supported, 4 transfer syntaxes not supported. */
  result: number;
  transferSyntax: string | undefined;
}

export interface AssociateRejection {
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: number;
  /** 1 service user, 2 service provider (ACSE), 3 service provider (presentation). */
  source: number;
  reason: number;
}

export interface CStoreOptions {
  /** Default: the first accepted context for sopClassUid. */
  pcId?: number;
  sopClassUid: string;
  sopInstanceUid: string;
  /** Sent exactly as given, possibly truncated or malformed. */
  datasetBytes: Uint8Array;
  messageId?: number;
  priority?: number;
  /** Default: the peer's maximum PDU length less the PDV headers. */
  maxFragmentBytes?: number;
  /** false leaves the last-fragment bit off the final data PDV (a message that never ends). */
  lastFragment?: boolean;
  timeoutMs?: number;
}

export interface CEchoOptions {
  pcId?: number;
  messageId?: number;
  timeoutMs?: number;
}

export class RawAssociation {
  readonly connection: RawConnection;
  readonly accepted: boolean;
  readonly rejection: AssociateRejection | undefined;
  readonly contexts: NegotiatedContext[];
  /** The peer's maximum PDU length (0: no limit). */
  readonly peerMaxPdu: number;
  #nextMessageId = 1;

  constructor(
    connection: RawConnection,
    accepted: boolean,
    rejection: AssociateRejection | undefined,
    contexts: NegotiatedContext[],
    peerMaxPdu: number,
  ) {
    this.connection = connection;
    this.accepted = accepted;
    this.rejection = rejection;
    this.contexts = contexts;
    this.peerMaxPdu = peerMaxPdu;
  }

  /** The accepted context for an abstract syntax, or undefined. */
  acceptedContext(abstractSyntax: string): NegotiatedContext | undefined {
    return this.contexts.find((c) => c.result === 0 && c.abstractSyntax === abstractSyntax);
  }

  nextMessageId(): number {
    const id = this.#nextMessageId;
    this.#nextMessageId = (this.#nextMessageId % 0xffff) + 1;
    return id;
  }

  sendRawBytes(bytes: Uint8Array): Promise<void> {
    return this.connection.sendRawBytes(bytes);
  }

  readPdu(timeoutMs?: number): Promise<Pdu> {
    return this.connection.readPdu(timeoutMs);
  }

  /** Reads PDUs until a complete command arrives; data PDVs are skipped. */
  async readDimseResponse(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<DimseResponse> {
    const during = 'while waiting for a DIMSE response';
    const command: Buffer[] = [];
    for (;;) {
      const received = await this.connection.readPdu(timeoutMs);
      if (received.type === PduType.Abort) throw this.#aborted(received, during);
      if (received.type !== PduType.PData)
        throw new Error(`unexpected PDU type 0x${received.type.toString(16).padStart(2, '0')} ${during}`);
      let offset = 0;
      while (offset + 6 <= received.body.length) {
        const length = received.body.readUInt32BE(offset);
        const control = received.body[offset + 5];
        const fragment = received.body.subarray(offset + 6, offset + 4 + length);
        offset += 4 + length;
        if ((control & 0x01) === 0) continue;
        command.push(fragment);
        if ((control & 0x02) !== 0) return toResponse(decodeCommandSet(Buffer.concat(command)));
      }
    }
  }

  /** PS3.8 9.2.3, action AA-3: on A-ABORT, close the transport connection. */
  #aborted(abort: Pdu, during: string): PeerAbortError {
    this.connection.destroy();
    return new PeerAbortError(abort.body[2] ?? -1, abort.body[3] ?? -1, during);
  }

  #contextFor(pcId: number | undefined, abstractSyntax: string): number {
    if (!this.accepted) throw new Error('the association was rejected: nothing can be sent on it');
    if (pcId !== undefined) return pcId;
    const context = this.acceptedContext(abstractSyntax);
    if (context === undefined) throw new Error(`no accepted presentation context for ${abstractSyntax}`);
    return context.id;
  }

  /** Sends a C-STORE-RQ and its data set without waiting for the response. */
  async writeCStore(options: CStoreOptions): Promise<void> {
    const pcId = this.#contextFor(options.pcId, options.sopClassUid);
    const command = encodeCommandSet([
      [0x0002, { ui: options.sopClassUid }],
      [0x0100, { us: CommandField.CStoreRq }],
      [0x0110, { us: options.messageId ?? this.nextMessageId() }],
      [0x0700, { us: options.priority ?? 0 }],
      [0x0800, { us: 0x0000 }], // anything but 0x0101: a data set follows
      [0x1000, { ui: options.sopInstanceUid }],
    ]);
    const fragmentSize = options.maxFragmentBytes ?? (this.peerMaxPdu > 6 ? this.peerMaxPdu - 6 : 65536);
    await this.connection.sendRawBytes(encodePData(pcId, true, true, command));
    const data = options.datasetBytes;
    const lastFragment = options.lastFragment ?? true;
    if (data.length === 0) {
      await this.connection.sendRawBytes(encodePData(pcId, false, lastFragment, data));
      return;
    }
    for (let offset = 0; offset < data.length; offset += fragmentSize) {
      const end = Math.min(offset + fragmentSize, data.length);
      await this.connection.sendRawBytes(encodePData(pcId, false, lastFragment && end === data.length, data.subarray(offset, end)));
    }
  }

  /**
   * Any command set as given (valid or not) on a context, then an optional data set: in
   * fragments of `fragmentBytes`, the last-fragment bit on its end unless `lastFragment` is false.
   */
  async writeMessage(
    pcId: number,
    command: Buffer,
    dataset?: { bytes: Uint8Array; fragmentBytes?: number; lastFragment?: boolean },
  ): Promise<void> {
    await this.connection.sendRawBytes(encodePData(pcId, true, true, command));
    if (!dataset) return;
    const fragmentSize = dataset.fragmentBytes ?? (this.peerMaxPdu > 6 ? this.peerMaxPdu - 6 : 65536);
    const last = dataset.lastFragment ?? true;
    const data = dataset.bytes;
    for (let offset = 0; offset < data.length || offset === 0; offset += fragmentSize) {
      const end = Math.min(offset + fragmentSize, data.length);
      await this.connection.sendRawBytes(encodePData(pcId, false, last && end === data.length, data.subarray(offset, end)));
      if (end === data.length) break;
    }
  }

  /** Responses until one that is not pending (FF00/FF01): e.g. every C-FIND match and the final status. */
  async readResponsesUntilFinal(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<DimseResponse[]> {
    const responses: DimseResponse[] = [];
    for (;;) {
      const response = await this.readDimseResponse(timeoutMs);
      responses.push(response);
      if (response.status !== 0xff00 && response.status !== 0xff01) return responses;
    }
  }

  /** C-STORE: sends the request and data set, returns the response (status 0x0000 = success). */
  async sendCStore(options: CStoreOptions): Promise<DimseResponse> {
    await this.writeCStore(options);
    return this.readDimseResponse(options.timeoutMs);
  }

  /** C-ECHO on the Verification context. */
  async sendEcho(options: CEchoOptions = {}): Promise<DimseResponse> {
    const pcId = this.#contextFor(options.pcId, VERIFICATION_SOP_CLASS);
    const command = encodeCommandSet([
      [0x0002, { ui: VERIFICATION_SOP_CLASS }],
      [0x0100, { us: CommandField.CEchoRq }],
      [0x0110, { us: options.messageId ?? this.nextMessageId() }],
      [0x0800, { us: NO_DATA_SET }],
    ]);
    await this.connection.sendRawBytes(encodePData(pcId, true, true, command));
    return this.readDimseResponse(options.timeoutMs);
  }

  /** A-RELEASE-RQ, waits for A-RELEASE-RP, then closes the connection. */
  async release(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<void> {
    await this.connection.sendRawBytes(encodeReleaseRq());
    const reply = await this.connection.readPdu(timeoutMs);
    if (reply.type === PduType.Abort) throw this.#aborted(reply, 'in reply to A-RELEASE-RQ');
    if (reply.type !== PduType.ReleaseRp)
      throw new Error(`expected A-RELEASE-RP, got PDU type 0x${reply.type.toString(16).padStart(2, '0')}`);
    this.connection.socket.end();
    await this.connection.waitClosed(timeoutMs);
  }

  /** A-ABORT from the service user, then closes the connection. */
  async abort(): Promise<void> {
    if (!this.connection.closed) {
      await this.connection.sendRawBytes(encodeAbort()).catch(() => undefined);
      this.connection.socket.end();
    }
    await this.connection.waitClosed(5_000).catch(() => this.connection.destroy());
  }
}

function parseItems(body: Buffer, from: number): Array<{ type: number; value: Buffer }> {
  const items: Array<{ type: number; value: Buffer }> = [];
  let offset = from;
  while (offset + 4 <= body.length) {
    const length = body.readUInt16BE(offset + 2);
    items.push({ type: body[offset], value: body.subarray(offset + 4, offset + 4 + length) });
    offset += 4 + length;
  }
  return items;
}

/**
 * Connects and negotiates. Resolves with the A-ASSOCIATE-AC (accepted: true, contexts) or -RJ
 * (accepted: false, rejection); rejects with PeerAbortError or PeerClosedError otherwise.
 */
export async function rawAssociate(options: RawAssociateOptions): Promise<RawAssociation> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const connection = await RawConnection.connect(options.host ?? '127.0.0.1', options.port, timeoutMs, options.localAddress);
  try {
    await connection.sendRawBytes(encodeAssociateRq(options));
    const reply = await connection.readPdu(timeoutMs);
    if (reply.type === PduType.AssociateRj) {
      // PS3.8 9.2.3, action AE-4: on A-ASSOCIATE-RJ the requestor closes the transport connection;
      // the acceptor only waits for that (its ARTIM timer), blocking a single-process peer.
      const rejection = { result: reply.body[1], source: reply.body[2], reason: reply.body[3] };
      connection.destroy();
      return new RawAssociation(connection, false, rejection, [], 0);
    }
    if (reply.type === PduType.Abort) throw new PeerAbortError(reply.body[2] ?? -1, reply.body[3] ?? -1, 'in reply to A-ASSOCIATE-RQ');
    if (reply.type !== PduType.AssociateAc)
      throw new Error(`expected A-ASSOCIATE-AC or -RJ, got PDU type 0x${reply.type.toString(16).padStart(2, '0')}`);
    const contexts: NegotiatedContext[] = [];
    let peerMaxPdu = 0;
    // 68 fixed bytes: protocol version, reserved, AE titles (echoed), 32 reserved (PS3.8 9.3.3).
    for (const { type, value } of parseItems(reply.body, 68)) {
      if (type === 0x21) {
        const id = value[0];
        const transferSyntax = parseItems(value, 4)
          .find((sub) => sub.type === 0x40)
          ?.value.toString('latin1')
          .replace(/[\0 ]+$/, '');
        const result = value[2];
        const requested = options.contexts.find((c) => c.id === id);
        contexts.push({
          id,
          abstractSyntax: requested?.abstractSyntax ?? '',
          result,
          transferSyntax: result === 0 ? transferSyntax : undefined,
        });
      } else if (type === 0x50) {
        const maxLength = parseItems(value, 0).find((sub) => sub.type === 0x51);
        if (maxLength !== undefined && maxLength.value.length >= 4) peerMaxPdu = maxLength.value.readUInt32BE(0);
      }
    }
    return new RawAssociation(connection, true, undefined, contexts, peerMaxPdu);
  } catch (error) {
    connection.destroy();
    throw error;
  }
}

/** Free-function forms, for tests that read better that way. */
export function sendCStore(assoc: RawAssociation, options: CStoreOptions): Promise<DimseResponse> {
  return assoc.sendCStore(options);
}

export function sendEcho(assoc: RawAssociation, options?: CEchoOptions): Promise<DimseResponse> {
  return assoc.sendEcho(options);
}
