/**
 * A C-STORE SCU that sends stored Part 10 files' dataset bytes exactly as they are on disk: the
 * base of forwarding, C-MOVE/C-GET sub-operations and replication. dcmjs-dimse's Client cannot
 * do this (it re-encodes every dataset through dcmjs and loses private tags), so this speaks the
 * upper-layer protocol itself (./upper-layer.ts) and streams each file from its dataset offset
 * into P-DATA-TF fragments; the bytes are never parsed, copied into a dataset or re-encoded.
 *
 * One message at a time (no asynchronous operations window): calls on an association queue up.
 * Nothing waits forever: connecting, every reply and every stalled write has a deadline, after
 * which the association is aborted.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { readFileMetaOf, type FileMeta } from '../../core/dicom/part10.ts';
import { queryRetrieveSopClasses, sopClassKeyword } from '../../core/dicom/sop-classes.ts';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, transferSyntaxByUid } from '../../core/dicom/transfer-syntaxes.ts';
import { dfError, isDfError, type DfError, type ErrorCode } from '../../core/errors.ts';
import {
  aeTitleProblem,
  CommandField,
  ContextResult,
  decodeAbort,
  decodeAssociateAc,
  decodeAssociateRj,
  decodeCommand,
  decodePData,
  describeAbort,
  describeContextResult,
  describeRejection,
  encodeAbort,
  encodeAssociateRq,
  encodeCommand,
  encodePData,
  encodeReleaseRp,
  encodeReleaseRq,
  hex4,
  NO_DATA_SET,
  P_DATA_HEADER_BYTES,
  PduReader,
  PduType,
  PdvControl,
  Priority,
  statusCategory,
  type AssociateAc,
  type DimseCommand,
  type NegotiatedContext,
  type Pdu,
  type Pdv,
  type ProposedContext,
  type RoleSelection,
} from './upper-layer.ts';
import { DatasetPdvSender } from './dataset-pdvs.ts';

// ---------------------------------------------------------------------------------------------
// Errors

// Network failures carry DF_ERR_PEER_UNREACHABLE, _ASSOCIATION_REJECTED, _ASSOCIATION_ABORTED,
// _PEER_TIMEOUT, _CONTEXT_REJECTED, _FILE_READ and _AE_TITLE_INVALID (core/errors.ts).
export type ScuErrorCode = ErrorCode;
export type ScuError = DfError;
const scuError = dfError;
export const isScuError = isDfError;

/** Errors that end the association: every later operation on it fails the same way. */
const ASSOCIATION_ENDING = new Set<string>(['DF_ERR_ASSOCIATION_ABORTED', 'DF_ERR_PEER_TIMEOUT', 'DF_ERR_PDU_INVALID']);

// ---------------------------------------------------------------------------------------------
// Options and results

export const storeScuDefaults = {
  /** The largest P-DATA-TF we accept from the peer (only responses come our way). */
  maxPduLength: 65536,
  /** TCP connect plus TLS handshake. */
  connectTimeoutMs: 10_000,
  /** A-ASSOCIATE-AC, each DIMSE response, A-RELEASE-RP, and a write the peer stopped reading. */
  responseTimeoutMs: 30_000,
} as const;

// With a peer that sets no max PDU (0, PS3.8 D.1) fragments still need a size.
const UNLIMITED_PEER_FRAGMENT_BYTES = 1 << 20;
// Dataset bytes are read in blocks of whole fragments, then written fragment by fragment.
const READ_BLOCK_BYTES = 256 * 1024;
// The meta group of a real file is a few hundred bytes; a larger one is not a file we send.
// PS3.8 9.3.2.2: odd context ids 1–255.
const MAX_CONTEXTS = 128;
// After A-ABORT or A-RELEASE-RP, give the bytes a moment to leave before the socket is destroyed.
const CLOSE_GRACE_MS = 1000;

export interface ContextProposal {
  abstractSyntax: string;
  /** In order of preference; the peer picks one. */
  transferSyntaxes: readonly string[];
}

export interface PeerAddress {
  host: string;
  port: number;
  callingAeTitle: string;
  calledAeTitle: string;
  /** Default storeScuDefaults.maxPduLength; 0 means no limit. */
  maxPduLength?: number;
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
  /** DICOM over TLS (PS3.15 B.1): given, the connection is tls.connect with these options. */
  tls?: tls.ConnectionOptions;
}

export interface OpenAssociationOptions extends PeerAddress {
  contexts: readonly ContextProposal[];
  /** SCP/SCU role selection, e.g. to take C-GET's C-STORE sub-operations. */
  roleSelections?: readonly RoleSelection[];
}

export type Outcome = 'success' | 'warning' | 'failure';

export interface StoreRequest {
  /** A Part 10 file; its dataset bytes are sent as they are, after the file meta group. */
  file: string;
  priority?: (typeof Priority)[keyof typeof Priority];
  /** For C-MOVE sub-operations (PS3.7 9.3.1.1). */
  moveOriginator?: { aeTitle: string; messageId: number };
}

export interface StoreResult {
  /** The C-STORE-RSP status (PS3.7 9.1.1.1.9, Annex B.2.3). */
  status: number;
  /** success; warning for 0xB000 coercion, 0xB006 elements discarded, 0xB007 SOP class mismatch… */
  outcome: Outcome;
  errorComment?: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  datasetBytes: number;
}

export interface EchoResult {
  status: number;
  outcome: Outcome;
}

// ---------------------------------------------------------------------------------------------
// Connecting

export function peerLabel(o: { host: string; port: number; calledAeTitle: string }): string {
  return `${o.calledAeTitle.trim()} at ${o.host}:${o.port}`;
}

const connectErrorText: Record<string, string> = {
  ECONNREFUSED: 'connection refused (nothing listens on that port?)',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed (DNS)',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ETIMEDOUT: 'connect timed out',
  ECONNRESET: 'connection reset by the peer',
};

/** What remoteNodes[] says about TLS to a node. */
export interface NodeTls {
  tls: boolean;
  tlsCaFile?: string;
  tlsCertFile?: string;
  tlsKeyFile?: string;
}

/**
 * The tls.connect options for a remote node, or undefined for plain TCP: its own CAs instead of
 * the system ones, and a client certificate for mutual TLS. Read per association, so renewed
 * certificates are picked up without a restart.
 */
export function tlsOptionsForNode(node: NodeTls): tls.ConnectionOptions | undefined {
  if (!node.tls) return undefined;
  const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(file));
  return { ca: read(node.tlsCaFile), cert: read(node.tlsCertFile), key: read(node.tlsKeyFile), minVersion: 'TLSv1.2' };
}

/** TCP (or TLS) connection to a peer, with a connect timeout and errors in words. */
export function connect(o: PeerAddress, label: string): Promise<net.Socket> {
  const timeoutMs = o.connectTimeoutMs ?? storeScuDefaults.connectTimeoutMs;
  return new Promise((resolve, reject) => {
    const socket =
      o.tls === undefined ? net.connect({ host: o.host, port: o.port }) : tls.connect({ ...o.tls, host: o.host, port: o.port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        scuError('DF_ERR_PEER_UNREACHABLE', `could not connect to ${label} within ${timeoutMs} ms`, {
          details: { host: o.host, port: o.port },
        }),
      );
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException): void => {
      clearTimeout(timer);
      socket.destroy();
      const what = (err.code !== undefined && connectErrorText[err.code]) || err.message;
      reject(
        scuError('DF_ERR_PEER_UNREACHABLE', `could not connect to ${label}: ${what}`, {
          cause: err,
          details: { host: o.host, port: o.port, errno: err.code },
        }),
      );
    };
    socket.once('error', onError);
    socket.once(o.tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.removeListener('error', onError);
      // Without it each small PDU (command, response) waits for Nagle's algorithm (~40 ms).
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

export function checkAeTitle(role: string, title: string): void {
  const problem = aeTitleProblem(title);
  if (problem !== undefined) throw scuError('DF_ERR_AE_TITLE_INVALID', `the ${role} AE title "${title}" is not valid: ${problem}`);
}

/**
 * Connects and negotiates an association. Rejects with DF_ERR_PEER_UNREACHABLE,
 * DF_ERR_ASSOCIATION_REJECTED (A-ASSOCIATE-RJ, its reason in words), DF_ERR_ASSOCIATION_ABORTED
 * or DF_ERR_PEER_TIMEOUT (no answer to the A-ASSOCIATE-RQ within responseTimeoutMs).
 */
export async function openAssociation(options: OpenAssociationOptions): Promise<StoreAssociation> {
  checkAeTitle('calling', options.callingAeTitle);
  checkAeTitle('called', options.calledAeTitle);
  if (options.contexts.length === 0 || options.contexts.length > MAX_CONTEXTS) {
    throw new RangeError(`an association proposes 1 to ${MAX_CONTEXTS} presentation contexts, not ${options.contexts.length}`);
  }
  const proposed: ProposedContext[] = options.contexts.map((c, i) => ({
    id: 2 * i + 1,
    abstractSyntax: c.abstractSyntax,
    transferSyntaxes: c.transferSyntaxes,
  }));
  const maxPduLength = options.maxPduLength ?? storeScuDefaults.maxPduLength;
  const label = peerLabel(options);
  const socket = await connect(options, label);
  return StoreAssociation.negotiate(socket, label, options, maxPduLength, proposed);
}

// ---------------------------------------------------------------------------------------------
// The association

interface DimseMessage {
  contextId: number;
  command: DimseCommand;
  dataset?: Buffer;
}

type Phase = 'negotiating' | 'open' | 'releasing' | 'released' | 'failed';

/** An association we requested (PS3.8 9.2, requestor side), for C-STORE and C-ECHO. */
export class StoreAssociation {
  /** "AE at host:port", as error messages name the peer. */
  readonly peer: string;

  #accepted: AssociateAc | undefined;
  readonly #socket: net.Socket;
  readonly #reader: PduReader;
  readonly #proposed: readonly ProposedContext[];
  readonly #responseTimeoutMs: number;
  readonly #queuedPdus: Pdu[] = [];
  /** Whoever waits for the next PDU or a drain; each rejects when the association fails. */
  readonly #waiters = new Set<(err: Error) => void>();
  #pduArrived: (() => void) | undefined;
  #phase: Phase = 'negotiating';
  #failure: Error | undefined;
  /** What the association is doing, for error messages ("while sending …"). */
  #activity = 'after the A-ASSOCIATE-RQ';
  #nextMessageId = 1;
  /** Made with the first data set sent, once the peer's max PDU is known. */
  #datasetSender: DatasetPdvSender | undefined;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(
    socket: net.Socket,
    label: string,
    options: OpenAssociationOptions,
    maxPduLength: number,
    proposed: readonly ProposedContext[],
  ) {
    this.peer = label;
    this.#socket = socket;
    this.#proposed = proposed;
    this.#reader = new PduReader(maxPduLength);
    this.#responseTimeoutMs = options.responseTimeoutMs ?? storeScuDefaults.responseTimeoutMs;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    let socketError: Error | undefined;
    socket.on('error', (err) => (socketError = err));
    socket.on('close', () => {
      if (this.#phase === 'released' || this.#failure !== undefined) return;
      this.#fail(
        scuError(
          'DF_ERR_ASSOCIATION_ABORTED',
          `${this.peer} closed the connection ${this.#activity}${socketError ? ` (${socketError.message})` : ''}, without A-RELEASE or A-ABORT`,
          { cause: socketError },
        ),
        false,
      );
    });
  }

  /** Every proposed context with the peer's answer. */
  get contexts(): readonly NegotiatedContext[] {
    return this.#accepted?.contexts ?? [];
  }

  /** The largest P-DATA-TF the peer accepts (0: no limit). */
  get peerMaxPduLength(): number {
    return this.#accepted?.peerMaxPduLength ?? 0;
  }

  get peerImplementationClassUid(): string | undefined {
    return this.#accepted?.peerImplementationClassUid;
  }

  get peerImplementationVersionName(): string | undefined {
    return this.#accepted?.peerImplementationVersionName;
  }

  /** The roles the peer granted (answers to OpenAssociationOptions.roleSelections). */
  get roleSelections(): readonly RoleSelection[] {
    return this.#accepted?.roleSelections ?? [];
  }

  /** True while operations can be sent. */
  get isOpen(): boolean {
    return this.#phase === 'open';
  }

  /** The accepted contexts. */
  get acceptedContexts(): NegotiatedContext[] {
    return this.contexts.filter((c) => c.result === ContextResult.Acceptance);
  }

  /** Sends the A-ASSOCIATE-RQ on a connected socket and waits for the answer (openAssociation). */
  static async negotiate(
    socket: net.Socket,
    label: string,
    options: OpenAssociationOptions,
    maxPduLength: number,
    proposed: readonly ProposedContext[],
  ): Promise<StoreAssociation> {
    const association = new StoreAssociation(socket, label, options, maxPduLength, proposed);
    await association.#negotiate(encodeAssociateRq({ ...options, contexts: proposed, maxPduLength }));
    return association;
  }

  async #negotiate(associateRq: Buffer): Promise<void> {
    try {
      await this.#write([associateRq]);
      const reply = await this.#nextPdu();
      if (reply.type === PduType.AssociateRj) {
        const rejection = decodeAssociateRj(reply.body);
        // PS3.8 9.2.3, AE-4: on A-ASSOCIATE-RJ the requestor closes the transport connection.
        this.#phase = 'failed';
        this.#failure = scuError('DF_ERR_ASSOCIATION_REJECTED', `${this.peer} rejected the association (${describeRejection(rejection)})`, {
          details: { ...rejection },
        });
        this.#socket.destroy();
        throw this.#failure;
      }
      if (reply.type !== PduType.AssociateAc)
        throw this.#protocolError(`answered the A-ASSOCIATE-RQ with PDU type 0x${reply.type.toString(16)}`, 2);
      this.#accepted = decodeAssociateAc(reply.body, this.#proposed);
      this.#phase = 'open';
      this.#activity = 'while the association was idle';
    } catch (err) {
      if (this.#failure === undefined) this.#fail(err as Error, true);
      this.#socket.destroy();
      throw err;
    }
  }

  /** C-ECHO on an accepted Verification context. */
  echo(): Promise<EchoResult> {
    return this.#serialized(async () => {
      this.#checkOpen();
      const verification = queryRetrieveSopClasses.Verification;
      const context = this.acceptedContexts.find((c) => c.abstractSyntax === verification);
      if (context === undefined) throw this.#contextRejected(verification, undefined, 'C-ECHO');
      const messageId = this.#messageId();
      this.#activity = 'while sending a C-ECHO-RQ';
      const command = encodeCommand({
        AffectedSOPClassUID: verification,
        CommandField: CommandField.CEchoRq,
        MessageID: messageId,
        CommandDataSetType: NO_DATA_SET,
      });
      await this.#write([encodePData(context.id, PdvControl.Command | PdvControl.Last, command)]);
      this.#activity = 'while waiting for the C-ECHO-RSP';
      const response = await this.#response(CommandField.CEchoRsp, messageId, 'C-ECHO-RSP');
      const status = response.command.Status ?? -1;
      this.#activity = 'while the association was idle';
      return { status, outcome: outcomeOf(status) };
    });
  }

  /**
   * C-STORE of one Part 10 file, its dataset bytes sent exactly as stored on the accepted context
   * for its SOP class and transfer syntax. A failure status is a result, not an exception; errors
   * are DF_ERR_FILE_READ, DF_ERR_DATASET_MALFORMED (no valid file meta), DF_ERR_CONTEXT_REJECTED
   * (the association stays usable for those), and DF_ERR_ASSOCIATION_ABORTED,
   * DF_ERR_PEER_TIMEOUT, DF_ERR_PDU_INVALID (the association is over).
   */
  store(request: StoreRequest): Promise<StoreResult> {
    return this.#serialized(async () => {
      this.#checkOpen();
      const name = path.basename(request.file);
      const handle = await fs.open(request.file, 'r').catch((err: unknown) => {
        throw scuError('DF_ERR_FILE_READ', `cannot open ${request.file}: ${(err as Error).message}`, { cause: err });
      });
      try {
        const meta = await readMetaOf(handle, request.file);
        const size = (await handle.stat()).size;
        const context = this.acceptedContexts.find(
          (c) => c.abstractSyntax === meta.sopClassUid && c.transferSyntax === meta.transferSyntaxUid,
        );
        if (context === undefined) throw this.#contextRejected(meta.sopClassUid, meta.transferSyntaxUid, name);
        const datasetBytes = size - meta.datasetOffset;
        const messageId = this.#messageId();
        this.#activity = `while sending SOP instance ${meta.sopInstanceUid} (${name})`;
        const command = encodeCommand({
          AffectedSOPClassUID: meta.sopClassUid,
          CommandField: CommandField.CStoreRq,
          MessageID: messageId,
          Priority: request.priority ?? Priority.Medium,
          CommandDataSetType: 0x0000, // PS3.7 E.1-1: anything but 0x0101 means a data set follows
          AffectedSOPInstanceUID: meta.sopInstanceUid,
          MoveOriginatorApplicationEntityTitle: request.moveOriginator?.aeTitle,
          MoveOriginatorMessageID: request.moveOriginator?.messageId,
        });
        await this.#write([encodePData(context.id, PdvControl.Command | PdvControl.Last, command)]);
        await this.#sendDataset(handle, context.id, meta.datasetOffset, datasetBytes, request.file);
        this.#activity = `while waiting for the C-STORE-RSP of SOP instance ${meta.sopInstanceUid} (${name})`;
        const response = await this.#response(CommandField.CStoreRsp, messageId, 'C-STORE-RSP');
        this.#activity = 'while the association was idle';
        const status = response.command.Status ?? -1;
        return {
          status,
          outcome: outcomeOf(status),
          ...(response.command.ErrorComment ? { errorComment: response.command.ErrorComment } : {}),
          sopClassUid: meta.sopClassUid,
          sopInstanceUid: meta.sopInstanceUid,
          transferSyntaxUid: meta.transferSyntaxUid,
          datasetBytes,
        };
      } finally {
        await handle.close();
      }
    });
  }

  /** A-RELEASE-RQ after the queued operations, then waits for A-RELEASE-RP (PS3.8 7.2). */
  release(): Promise<void> {
    return this.#serialized(async () => {
      if (this.#phase === 'released') return;
      this.#checkOpen();
      this.#phase = 'releasing';
      this.#activity = 'while waiting for the A-RELEASE-RP';
      await this.#write([encodeReleaseRq()]);
      try {
        for (;;) {
          const reply = await this.#nextPdu();
          if (reply.type === PduType.ReleaseRp) break;
          // PS3.8 Table 9-10 (release collision): answer the peer's A-RELEASE-RQ, keep waiting.
          if (reply.type === PduType.ReleaseRq) this.#socket.write(encodeReleaseRp());
          else throw this.#protocolError(`answered the A-RELEASE-RQ with PDU type 0x${reply.type.toString(16)}`, 2);
        }
      } catch (err) {
        // Everything was acknowledged before the release: a peer that closes instead of
        // answering loses nothing.
        if (isScuError(err, 'DF_ERR_ASSOCIATION_ABORTED') && this.#socket.destroyed) return;
        throw err;
      }
      this.#phase = 'released';
      this.#socket.end();
      setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS).unref();
    });
  }

  /** A-ABORT now, whatever is under way; queued operations fail with DF_ERR_ASSOCIATION_ABORTED. */
  abort(): void {
    if (this.#phase === 'released' || this.#failure !== undefined) {
      this.#socket.destroy();
      return;
    }
    this.#fail(
      scuError('DF_ERR_ASSOCIATION_ABORTED', `the association with ${this.peer} was aborted by dicomflow ${this.#activity}`),
      true,
    );
  }

  // ------------------------------------------------------------------------------------------

  #serialized<T>(operation: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(operation, operation);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  #checkOpen(): void {
    if (this.#failure !== undefined) throw this.#failure;
    if (this.#phase !== 'open') throw new Error(`the association with ${this.peer} is ${this.#phase}; open a new one`);
  }

  #messageId(): number {
    const id = this.#nextMessageId;
    this.#nextMessageId = (this.#nextMessageId % 0xffff) + 1;
    return id;
  }

  #contextRejected(sopClassUid: string, transferSyntaxUid: string | undefined, what: string): ScuError {
    const sopName = sopClassKeyword(sopClassUid) ?? (sopClassUid === queryRetrieveSopClasses.Verification ? 'Verification' : 'SOP class');
    const tsName = (uid: string): string => `${transferSyntaxByUid(uid)?.keyword ?? 'transfer syntax'} (${uid})`;
    const answers = this.contexts.filter((c) => c.abstractSyntax === sopClassUid);
    const shortTs = (uid: string | undefined): string => (uid === undefined ? '?' : (transferSyntaxByUid(uid)?.keyword ?? uid));
    const found =
      answers.length === 0
        ? 'no presentation context for it was proposed'
        : `for this SOP class it answered: ${answers
            .map((c) =>
              c.result === ContextResult.Acceptance
                ? `${shortTs(c.transferSyntax)} accepted`
                : `${c.proposedTransferSyntaxes.map(shortTs).join('/')} refused (${describeContextResult(c.result)})`,
            )
            .join(', ')}`;
    const wanted = transferSyntaxUid === undefined ? '' : ` in ${tsName(transferSyntaxUid)}`;
    return scuError(
      'DF_ERR_CONTEXT_REJECTED',
      `${what}: ${this.peer} accepted no presentation context for ${sopName} (${sopClassUid})${wanted}; ${found}; dicomflow does not transcode yet`,
      {
        details: { sopClassUid, transferSyntaxUid },
      },
    );
  }

  /** Streams bytes [offset, offset+length) of the file as data PDVs of at most the peer's max PDU. */
  async #sendDataset(handle: fs.FileHandle, contextId: number, offset: number, length: number, file: string): Promise<void> {
    // PS3.8 9.3.5: the PDU length counts the PDV item (4 + 2 header bytes) and its value.
    this.#datasetSender ??= new DatasetPdvSender(
      this.peerMaxPduLength === 0 ? UNLIMITED_PEER_FRAGMENT_BYTES : this.peerMaxPduLength - (P_DATA_HEADER_BYTES - 6),
      READ_BLOCK_BYTES,
    );
    await this.#datasetSender.send({
      handle,
      contextId,
      offset,
      length,
      write: (parts, written) => this.#write(parts, written),
      readError: (message, cause) =>
        this.#abortFor(
          scuError('DF_ERR_FILE_READ', `reading ${file} failed ${this.#activity}: ${message}`, cause === undefined ? undefined : { cause }),
        ),
    });
  }

  /** A message half sent cannot be taken back (PS3.8 has no cancel for it): abort, then report. */
  #abortFor(err: ScuError): ScuError {
    this.#fail(err, true);
    return err;
  }

  /** Waits for the response to messageId, whole (command and any data set). */
  async #response(commandField: number, messageId: number, name: string): Promise<DimseMessage> {
    const message = await this.#nextMessage();
    const { command } = message;
    if (command.CommandField !== commandField || command.MessageIDBeingRespondedTo !== messageId) {
      throw this.#protocolError(
        `answered message ${messageId} with command field 0x${hex4(command.CommandField ?? 0)} for message ${command.MessageIDBeingRespondedTo ?? '?'} instead of a ${name}`,
        2,
      );
    }
    return message;
  }

  async #nextMessage(): Promise<DimseMessage> {
    const commandParts: Buffer[] = [];
    const datasetParts: Buffer[] = [];
    let command: DimseCommand | undefined;
    let contextId = 0;
    for (;;) {
      const pdu = await this.#nextPdu();
      if (pdu.type === PduType.ReleaseRq) {
        this.#socket.write(encodeReleaseRp());
        this.#fail(scuError('DF_ERR_ASSOCIATION_ABORTED', `${this.peer} released the association ${this.#activity}`), false);
        this.#socket.end();
        throw this.#failure;
      }
      if (pdu.type !== PduType.PData) throw this.#protocolError(`sent PDU type 0x${pdu.type.toString(16)} ${this.#activity}`, 2);
      let pdvs: Pdv[];
      try {
        pdvs = decodePData(pdu.body);
      } catch (err) {
        throw this.#abortFor(err as ScuError);
      }
      for (const pdv of pdvs) {
        const isCommand = (pdv.control & PdvControl.Command) !== 0;
        if (isCommand !== (command === undefined))
          throw this.#protocolError(
            `sent a ${isCommand ? 'command' : 'data'} fragment where a ${isCommand ? 'data' : 'command'} fragment belongs`,
            5,
          );
        contextId = pdv.contextId;
        (isCommand ? commandParts : datasetParts).push(pdv.value);
        if ((pdv.control & PdvControl.Last) === 0) continue;
        if (isCommand) {
          try {
            command = decodeCommand(Buffer.concat(commandParts));
          } catch (err) {
            throw this.#abortFor(err as ScuError);
          }
          if (command.CommandDataSetType === NO_DATA_SET || command.CommandDataSetType === undefined) return { contextId, command };
        } else {
          return { contextId, command: command!, dataset: Buffer.concat(datasetParts) };
        }
      }
    }
  }

  #protocolError(what: string, abortReason: number): Error {
    const err = dfError('DF_ERR_PDU_INVALID', `${this.peer} ${what}; the association was aborted`, { details: { abortReason } });
    this.#fail(err, true, abortReason);
    return err;
  }

  #onData(chunk: Buffer): void {
    if (this.#failure !== undefined) return;
    let pdus: Pdu[];
    try {
      pdus = this.#reader.push(chunk);
    } catch (err) {
      const reason = isDfError(err) && typeof err.details?.abortReason === 'number' ? err.details.abortReason : 6;
      const what = (err as Error).message.replace(/^DF_ERR_[A-Z_]+: the peer /, '');
      this.#protocolError(what, reason);
      return;
    }
    for (const pdu of pdus) {
      // Set at once: the peer may close right after its A-RELEASE-RP, before our waiter runs.
      if (pdu.type === PduType.ReleaseRp && this.#phase === 'releasing') this.#phase = 'released';
      if (pdu.type === PduType.Abort) {
        // PS3.8 9.2.3, AA-3: on A-ABORT, close the transport connection; nothing is answered.
        const abort = decodeAbort(pdu.body);
        this.#fail(
          scuError(
            'DF_ERR_ASSOCIATION_ABORTED',
            `${this.peer} aborted the association (A-ABORT, ${describeAbort(abort)}) ${this.#activity}`,
            { details: { ...abort } },
          ),
          false,
        );
        this.#socket.destroy();
        return;
      }
      this.#queuedPdus.push(pdu);
    }
    if (pdus.length > 0) this.#pduArrived?.();
  }

  /** The next PDU, or the association's failure; after responseTimeoutMs, aborts. */
  #nextPdu(): Promise<Pdu> {
    const queued = this.#queuedPdus.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(onFailure);
        this.#pduArrived = undefined;
      };
      const onFailure = (err: Error): void => {
        done();
        reject(err);
      };
      this.#pduArrived = () => {
        done();
        resolve(this.#queuedPdus.shift()!);
      };
      this.#waiters.add(onFailure);
      const timer = setTimeout(() => {
        this.#fail(
          scuError(
            'DF_ERR_PEER_TIMEOUT',
            `${this.peer} did not answer within ${this.#responseTimeoutMs} ms ${this.#activity}; the association was aborted`,
          ),
          true,
        );
      }, this.#responseTimeoutMs);
    });
  }

  /**
   * Writes (as one writev); if the socket's buffer is full, waits for it to drain, at most
   * responseTimeoutMs. `written` runs once the socket is done with the buffers (written out, or
   * failed), and at once when nothing is written.
   */
  #write(buffers: Buffer[], written?: () => void): Promise<void> {
    if (this.#failure !== undefined) {
      written?.();
      return Promise.reject(this.#failure);
    }
    this.#socket.cork();
    let flushed = true;
    for (const [i, b] of buffers.entries()) flushed = this.#socket.write(b, i === buffers.length - 1 ? written : undefined);
    this.#socket.uncork();
    if (flushed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#waiters.delete(onFailure);
        this.#socket.removeListener('drain', onDrain);
      };
      const onFailure = (err: Error): void => {
        done();
        reject(err);
      };
      const onDrain = (): void => {
        done();
        resolve();
      };
      this.#socket.on('drain', onDrain);
      this.#waiters.add(onFailure);
      const timer = setTimeout(() => {
        this.#fail(
          scuError(
            'DF_ERR_PEER_TIMEOUT',
            `${this.peer} read nothing for ${this.#responseTimeoutMs} ms ${this.#activity}; the association was aborted`,
          ),
          true,
        );
      }, this.#responseTimeoutMs);
    });
  }

  /** Ends the association for good: every waiter and every later call gets `err`. */
  #fail(err: Error, sendAbort: boolean, abortReason = 0): void {
    if (this.#failure !== undefined) return;
    this.#failure = err;
    this.#phase = 'failed';
    if (sendAbort && !this.#socket.destroyed && this.#socket.writable) {
      // Source 0 (service user) when we give up; 2 (service provider) for a protocol violation.
      this.#socket.end(encodeAbort(abortReason === 0 ? 0 : 2, abortReason));
      setTimeout(() => this.#socket.destroy(), CLOSE_GRACE_MS).unref();
    } else {
      this.#socket.destroy();
    }
    for (const reject of [...this.#waiters]) reject(err);
  }
}

function outcomeOf(status: number): Outcome {
  const category = statusCategory(status);
  return category === 'success' || category === 'warning' ? category : 'failure';
}

/** Reads and parses the file meta group (PS3.10 7.1), sized by its group length when present. */
async function readMetaOf(handle: fs.FileHandle, file: string): Promise<FileMeta & { datasetOffset: number }> {
  try {
    return await readFileMetaOf(handle);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== undefined)
      throw scuError('DF_ERR_FILE_READ', `cannot read ${file}: ${(err as Error).message}`, { cause: err });
    throw dfError('DF_ERR_DATASET_MALFORMED', `${file} cannot be sent: ${(err as Error).message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------------------------
// Sending files

export interface SendFilesOptions extends PeerAddress {
  files: readonly string[];
  /** C-MOVE sub-operations name the C-MOVE that caused them (PS3.7 9.1.1.1). */
  moveOriginator?: { aeTitle: string; messageId: number };
  /** After each file, in order. */
  onProgress?: (progress: { done: number; total: number; result: SendFileResult }) => void;
}

export interface SendFileResult {
  file: string;
  /**
   * success/warning: the peer acknowledged the object; failure: it answered with a failure
   * status; error: no answer (see `error`: not readable, refused context, association failed).
   */
  outcome: Outcome | 'error';
  status?: number;
  errorComment?: string;
  sopClassUid?: string;
  sopInstanceUid?: string;
  transferSyntaxUid?: string;
  error?: Error;
}

interface FileToSend {
  file: string;
  index: number;
  meta: FileMeta;
}

const UNCOMPRESSED = new Set([EXPLICIT_VR_LE, IMPLICIT_VR_LE]);

/**
 * Proposed contexts for a batch: one per (SOP class, transfer syntax) pair, each with that one
 * transfer syntax, so the peer decides on each pair alone (a context listing several lets it
 * pick one we cannot send). Uncompressed pairs also propose the other little endian syntax
 * (Implicit VR LE is the default every SCP supports, PS3.5 10.1), for transcoding once it lands.
 */
function batchContexts(pairs: ReadonlyArray<{ sopClassUid: string; transferSyntaxUid: string }>): ContextProposal[] {
  const seen = new Set<string>();
  const contexts: ContextProposal[] = [];
  const add = (sopClassUid: string, transferSyntaxUid: string): void => {
    const key = `${sopClassUid}|${transferSyntaxUid}`;
    if (seen.has(key) || contexts.length >= MAX_CONTEXTS) return;
    seen.add(key);
    contexts.push({ abstractSyntax: sopClassUid, transferSyntaxes: [transferSyntaxUid] });
  };
  for (const p of pairs) add(p.sopClassUid, p.transferSyntaxUid);
  for (const p of pairs) {
    if (UNCOMPRESSED.has(p.transferSyntaxUid)) for (const ts of UNCOMPRESSED) add(p.sopClassUid, ts);
  }
  return contexts;
}

/** Splits files into batches of at most MAX_CONTEXTS distinct (SOP class, transfer syntax) pairs. */
function batches(files: readonly FileToSend[]): FileToSend[][] {
  const result: Array<{ pairs: Set<string>; files: FileToSend[] }> = [];
  for (const f of files) {
    const key = `${f.meta.sopClassUid}|${f.meta.transferSyntaxUid}`;
    let batch = result.find((b) => b.pairs.has(key)) ?? result.find((b) => b.pairs.size < MAX_CONTEXTS);
    if (batch === undefined) {
      batch = { pairs: new Set(), files: [] };
      result.push(batch);
    }
    batch.pairs.add(key);
    batch.files.push(f);
  }
  return result.map((b) => b.files);
}

/**
 * Sends Part 10 files to a peer on one association (more only past 128 distinct SOP class and
 * transfer syntax pairs), each dataset byte for byte as stored. Never throws for a file or the
 * peer: every file gets a result, in the order given. If the association cannot be opened or
 * ends early, each file not acknowledged gets that error.
 */
export async function sendFiles(options: SendFilesOptions): Promise<SendFileResult[]> {
  const results: SendFileResult[] = new Array(options.files.length);
  let done = 0;
  const settle = (index: number, result: SendFileResult): void => {
    results[index] = result;
    done += 1;
    options.onProgress?.({ done, total: options.files.length, result });
  };

  const readable: FileToSend[] = [];
  for (const [index, file] of options.files.entries()) {
    try {
      const handle = await fs.open(file, 'r').catch((err: unknown) => {
        throw scuError('DF_ERR_FILE_READ', `cannot open ${file}: ${(err as Error).message}`, { cause: err });
      });
      try {
        readable.push({ file, index, meta: await readMetaOf(handle, file) });
      } finally {
        await handle.close();
      }
    } catch (err) {
      settle(index, { file, outcome: 'error', error: err as Error });
    }
  }

  for (const batch of batches(readable)) {
    let association: StoreAssociation;
    try {
      association = await openAssociation({ ...options, contexts: batchContexts(batch.map((f) => f.meta)) });
    } catch (err) {
      for (const f of batch) settle(f.index, { file: f.file, ...idOf(f.meta), outcome: 'error', error: notSent(err as Error, f) });
      continue;
    }
    let ended: Error | undefined;
    for (const f of batch) {
      if (ended !== undefined) {
        settle(f.index, { file: f.file, ...idOf(f.meta), outcome: 'error', error: notSent(ended, f) });
        continue;
      }
      try {
        const r = await association.store({ file: f.file, moveOriginator: options.moveOriginator });
        settle(f.index, {
          file: f.file,
          ...idOf(r),
          outcome: r.outcome,
          status: r.status,
          ...(r.errorComment ? { errorComment: r.errorComment } : {}),
        });
      } catch (err) {
        settle(f.index, { file: f.file, ...idOf(f.meta), outcome: 'error', error: err as Error });
        if (association.isOpen) continue;
        // A file that could not be read to its end ends the association too: the files after it
        // fail for the association, not for that file.
        ended = ASSOCIATION_ENDING.has((err as ScuError).code)
          ? (err as Error)
          : scuError(
              'DF_ERR_ASSOCIATION_ABORTED',
              `the association with ${association.peer} was aborted after an earlier file failed (${(err as Error).message})`,
              { cause: err },
            );
      }
    }
    if (ended === undefined) {
      // Every file has its answer; a peer that fumbles the release costs nothing but the socket.
      await association.release().catch(() => association.abort());
    }
  }
  return results;
}

function idOf(m: {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
}): Pick<SendFileResult, 'sopClassUid' | 'sopInstanceUid' | 'transferSyntaxUid'> {
  return { sopClassUid: m.sopClassUid, sopInstanceUid: m.sopInstanceUid, transferSyntaxUid: m.transferSyntaxUid };
}

/** The error of a file never sent because the association failed: same code, cause kept. */
function notSent(cause: Error, f: FileToSend): Error {
  const message = `${path.basename(f.file)} (SOP instance ${f.meta.sopInstanceUid}) was not sent: ${cause.message.replace(/^DF_ERR_[A-Z_]+: /, '')}`;
  if (isDfError(cause)) return dfError(cause.code, message, { cause, details: cause.details });
  return new Error(message, { cause });
}

/** C-ECHO to a peer on a fresh association (a destination's "test connection"). */
export async function echoPeer(options: PeerAddress): Promise<EchoResult> {
  const association = await openAssociation({
    ...options,
    contexts: [{ abstractSyntax: queryRetrieveSopClasses.Verification, transferSyntaxes: [EXPLICIT_VR_LE, IMPLICIT_VR_LE] }],
  });
  try {
    const result = await association.echo();
    await association.release();
    return result;
  } catch (err) {
    association.abort();
    throw err;
  }
}
