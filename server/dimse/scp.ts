import { Writable } from 'node:stream';
import type { Socket } from 'node:net';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { newId } from '../../core/ids.ts';
import type { ErrorCode } from '../../core/errors.ts';
import { databaseSource, type IndexStore, type QuerySource } from '../../core/store/index-store.ts';
import type { Reception, Receiver } from '../../core/receive.ts';
import { answerRoles, decideContext } from './negotiation.ts';
import { FramedSocket, abortPdu, type DatasetSink, type OwnDataset } from './pdu-framer.ts';
import { CommandField, NO_DATA_SET, PdvControl, decodeCommand, encodeCommand, encodePData } from './upper-layer.ts';
import { rawUidValues, type FindService } from './find.ts';
import type { MoveService } from './move.ts';
import { GetStoreChannel, type GetService, type StorageContext } from './get.ts';
import type { Caller, DicomService, Rights } from './access.ts';

const { Scp, constants, responses } = dimse;
const { PresentationContextResult, RejectResult, RejectSource, RejectReason, Status } = constants;
const { CEchoResponse, CStoreResponse, CFindResponse, CMoveResponse, CGetResponse } = responses;

type Association = InstanceType<typeof dimse.association.Association>;
type PresentationContext = InstanceType<typeof dimse.association.PresentationContext>;
type CStoreRequest = InstanceType<typeof dimse.requests.CStoreRequest>;
type CEchoRequest = InstanceType<typeof dimse.requests.CEchoRequest>;
type CFindRequest = InstanceType<typeof dimse.requests.CFindRequest>;
type CStoreResponseT = InstanceType<typeof CStoreResponse>;
type CFindResponseT = InstanceType<typeof CFindResponse>;
type CMoveRequest = InstanceType<typeof dimse.requests.CMoveRequest>;
type CMoveResponseT = InstanceType<typeof CMoveResponse>;
type CGetRequest = InstanceType<typeof dimse.requests.CGetRequest>;
type CGetResponseT = InstanceType<typeof CGetResponse>;
type CCancelRequest = InstanceType<typeof dimse.requests.CCancelRequest>;
type BaseScp = InstanceType<typeof Scp>;

export interface AllowedCaller {
  aeTitle: string;
  host?: string;
}

export interface ScpSettings {
  aeTitle: string;
  maxPduLength: number;
  maxAssociations: number;
  checkCalledAeTitle: boolean;
  allowedCallers?: AllowedCaller[];
  acceptUnknownSopClasses: boolean;
  /** Called AE title → database name; others go to the default database. */
  databaseByAeTitle: Map<string, string>;
  defaultDatabase: string;
  /** PS3.7 D.3.3.7 User Identity Negotiation: what an association must present. */
  requireUserIdentity?: 'off' | 'username' | 'passcode';
  /** Whether a presented identity is a configured user (with its passcode, when one is required). */
  verifyUser?: (name: string, passcode: string | undefined) => boolean;
  /** What the caller may do where its called AE title leads (server/dimse/access.ts). */
  access: (caller: Caller, target: { database: string; dicomdirAeTitle?: string }) => Rights;
}

// PS3.7 D.3.3.7.1: user identity types 1 (username) and 2 (username and passcode).
const IDENTITY_USERNAME = 1;
const IDENTITY_USERNAME_PASSCODE = 2;

/** Association counters for the status page. */
export class AssociationStats {
  open = 0;
  total = 0;
  rejected = 0;
  aborted = 0;
}

export interface ScpContext {
  settings: ScpSettings;
  receiver: Receiver;
  find: FindService;
  move: MoveService;
  /** Databases for Query/Retrieve. */
  index: IndexStore;
  /** Called AE title → a DICOMDIR file-set answering Query/Retrieve in its place. */
  dicomdirStores: Map<string, QuerySource>;
  get: GetService;
  stats: AssociationStats;
  log: Logger;
}

// PS3.4 Annex B.2.3 / PS3.7 C: the C-STORE status that fits each way receive can refuse.
const STORE_STATUS: Partial<Record<ErrorCode, number>> = {
  DF_ERR_STORE_FULL: 0xa700,
  DF_ERR_DATASET_MALFORMED: 0xc000,
  DF_ERR_DATASET_MISMATCH: 0xa900,
  DF_ERR_DATASET_INCOMPLETE: 0xa900,
  DF_ERR_UID_INVALID: 0xa900,
  // 0111 "Duplicate SOP Instance" (PS3.7 C.4.2), as dcm4chee answers under a reject policy.
  DF_ERR_DUPLICATE_REJECTED: 0x0111,
};
const PROCESSING_FAILURE = 0x0110;
// PS3.7 C.5 (general status): the caller is not authorized for the operation.
const NOT_AUTHORIZED = 0x0124;

/**
 * One association. dcmjs-dimse parses PDUs and DIMSE commands; this class decides, and hands
 * every C-STORE dataset to the receiver as a stream so that nothing is re-encoded or held whole.
 */
export class DicomflowScp extends Scp {
  private readonly ctx: ScpContext;
  private readonly associationId = newId();
  private readonly log: Logger;
  private readonly peerAddress: string | undefined;
  private readonly receptions = new WeakMap<CStoreRequest, Reception>();
  private inFlight: Reception | undefined;
  private pendingSink: DatasetSink | undefined;
  /** (0000,1000) of the last command, as sent: dcmjs drops every character of a UI but digits and dots. */
  private commandSopInstanceUid: string | undefined;
  /** (0000,0600) of the last command: read raw, so an AE title is never altered. */
  private commandMoveDestination: string | undefined;
  private readonly sopInstanceUids = new WeakMap<CStoreRequest, string>();
  /** The raw bytes of the last C-FIND identifier (dcmjs rewrites UIDs when it parses them). */
  private lastIdentifier: { contextId: number; dataset: Buffer } | undefined;
  private negotiated: Association | undefined;
  private counted = false;
  private callingAeTitle = '';
  private calledAeTitle = '';
  /** The user the association identified itself as (verified), recorded with each arrival. */
  private userName: string | undefined;
  private database: string;
  /** Decided once, when the association is accepted. */
  private rights: Rights = { store: false, query: false, retrieve: false };
  private readonly framed: FramedSocket;
  /** C-GET sub-operations: our C-STORE requests back to the peer on this association. */
  private getChannel: GetStoreChannel | undefined;
  /** Accepted storage contexts by id: their C-STOREs are received here, not by the library. */
  private readonly storageContexts = new Map<number, StorageContext>();
  /** The C-STORE whose command came and whose dataset comes next. */
  private ownStore: OwnDataset | undefined;
  private runningGet: { messageId: number; cancelled: boolean } | undefined;

  constructor(socket: Socket, ctx: ScpContext, timeouts: { associationTimeoutMs: number; pduTimeoutMs: number }) {
    const peerAddress = socket.remoteAddress?.replace(/^::ffff:/, '');
    // The peer's port tells apart associations from one host (a log line is traced to its sender).
    const peerPort = socket.remotePort;
    const log = ctx.log.child({ associationId: undefined as string | undefined, peer: peerAddress, peerPort });
    let self: DicomflowScp | undefined;
    const onCommand = (command: Buffer) => {
      if (!self) return;
      self.commandSopInstanceUid = commandString(command, 0x1000);
      self.commandMoveDestination = commandString(command, 0x0600);
    };
    const framed = new FramedSocket(socket, {
      maxPduLength: ctx.settings.maxPduLength,
      takeSink: () => self?.takeDatasetSink(),
      takeOwnDataset: () => self?.takeOwnDataset(),
      onCommand,
      onViolation: (v) => {
        ctx.stats.aborted++;
        log.warn({ code: 'DF_ERR_PDU_INVALID', reason: v.message }, 'association aborted: invalid PDU');
      },
      onRelayedDataset: (contextId, dataset) => {
        if (self) self.lastIdentifier = { contextId, dataset };
      },
      consumeCommand: (command, contextId) => (self?.getChannel?.consume(command) ?? false) || (self?.takeStoreCommand(command, contextId) ?? false),
    });
    super(framed as unknown as Socket, { associationTimeout: timeouts.associationTimeoutMs, pduTimeout: timeouts.pduTimeoutMs });
    self = this;
    this.framed = framed;
    this.ctx = ctx;
    this.peerAddress = peerAddress;
    this.log = ctx.log.child({ associationId: this.associationId, peer: this.peerAddress, peerPort });
    this.database = ctx.settings.defaultDatabase;
    socket.on('close', () => this.closed());
    // dcmjs-dimse reports protocol errors (a PDU or command it cannot parse) and timeouts but
    // leaves the connection open. PS3.8 9.2.3 (AA-8): an invalid PDU is answered with A-ABORT
    // before the connection closes, so the peer learns why.
    this.on('networkError', (err: Error) => {
      if (socket.destroyed) return;
      ctx.stats.aborted++;
      const timedOut = /timeout/i.test(err.message);
      this.log.warn({ code: timedOut ? 'DF_ERR_PEER_TIMEOUT' : 'DF_ERR_PDU_INVALID', err: err.message }, timedOut ? 'association aborted: the peer went quiet' : 'association aborted: the peer sent what cannot be parsed');
      if (socket.writable) {
        socket.end(abortPdu(0));
        setTimeout(() => socket.destroy(), 1000).unref();
      } else {
        socket.destroy();
      }
    });
  }

  override associationRequested(association: Association): void {
    const s = this.ctx.settings;
    this.callingAeTitle = association.getCallingAeTitle().trim();
    this.calledAeTitle = association.getCalledAeTitle().trim();
    const log = this.log.child({ callingAeTitle: this.callingAeTitle, calledAeTitle: this.calledAeTitle });

    if (s.allowedCallers && !s.allowedCallers.some((c) => c.aeTitle === this.callingAeTitle && (!c.host || c.host === this.peerAddress))) {
      log.warn({ code: 'DF_ERR_AE_UNKNOWN' }, 'association rejected: calling AE title not allowed');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
    }
    const mode = s.requireUserIdentity ?? 'off';
    if (mode !== 'off') {
      const presented = association.getNegotiateUserIdentity();
      const type = presented ? association.getUserIdentityType() : undefined;
      const user = presented ? association.getUserIdentityPrimaryField() : undefined;
      const passcode = type === IDENTITY_USERNAME_PASSCODE ? association.getUserIdentitySecondaryField() : undefined;
      const usable = mode === 'username' ? type === IDENTITY_USERNAME || type === IDENTITY_USERNAME_PASSCODE : type === IDENTITY_USERNAME_PASSCODE;
      if (!usable || !user || !s.verifyUser?.(user, mode === 'passcode' ? passcode : undefined)) {
        log.warn({ code: 'DF_ERR_USER_IDENTITY', identityType: type ?? null, user: user ?? null }, 'association rejected: user identity missing or not accepted');
        return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven);
      }
      this.userName = user;
      // D.3.3.7.2: for types 1 and 2 the server response, when asked for, is empty.
      if (association.getUserIdentityPositiveResponseRequested()) {
        association.setNegotiateUserIdentityServerResponse(true);
        association.setUserIdentityServerResponse('');
      }
    }
    const knownCalled = this.calledAeTitle === s.aeTitle || s.databaseByAeTitle.has(this.calledAeTitle) || this.ctx.dicomdirStores.has(this.calledAeTitle);
    if (s.checkCalledAeTitle && !knownCalled) {
      log.warn({ code: 'DF_ERR_CALLED_AE_UNKNOWN' }, 'association rejected: called AE title unknown');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized);
    }
    if (this.ctx.stats.open >= s.maxAssociations) {
      log.warn({ code: 'DF_ERR_TOO_MANY_ASSOCIATIONS', open: this.ctx.stats.open }, 'association rejected: too many open associations');
      // PS3.8 9.3.4: source 3 (presentation provider), reason 2 = local limit exceeded.
      return this.reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, 2);
    }
    this.database = s.databaseByAeTitle.get(this.calledAeTitle) ?? s.defaultDatabase;
    const dicomdirAeTitle = this.ctx.dicomdirStores.has(this.calledAeTitle) ? this.calledAeTitle : undefined;
    this.rights = s.access({ callingAeTitle: this.callingAeTitle, peerAddress: this.peerAddress }, { database: this.database, dicomdirAeTitle });
    if (!this.rights.store && !this.rights.query && !this.rights.retrieve) {
      log.warn({ code: 'DF_ERR_DICOM_ACCESS_DENIED', database: this.database }, 'association rejected: the calling AE title may not store, query or retrieve here');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
    }
    this.negotiated = association;

    let accepted = 0;
    const storage: StorageContext[] = [];
    const peerScpClasses = new Set<string>();
    for (const { id } of association.getPresentationContexts() as { id: number }[]) {
      const context = association.getPresentationContext(id);
      const abstractSyntax = context.getAbstractSyntaxUid();
      const decision = decideContext(
        { id, abstractSyntax, transferSyntaxes: context.getTransferSyntaxUids() },
        { acceptUnknownSopClasses: s.acceptUnknownSopClasses },
      );
      accepted += decision.accept ? 1 : 0;
      if (decision.accept) context.setResult(PresentationContextResult.Accept, decision.transferSyntax);
      else if (decision.reason === 'transfer-syntax') context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      else context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
      if (decision.accept && decision.service === 'storage') storage.push({ id, abstractSyntax, transferSyntax: decision.transferSyntax });
      // dcmjs-dimse puts a proposed SCP/SCU Role Selection item (PS3.7 D.3.3.4) on the first
      // context of its SOP class and writes back whatever roles that context then holds.
      const proposedScu = context.getUserRole();
      const proposedScp = context.getProviderRole();
      if (proposedScu !== undefined || proposedScp !== undefined) {
        const roles = answerRoles(decision.accept ? decision.service : undefined, { scu: proposedScu === true, scp: proposedScp === true });
        context.setUserRole(roles.scu);
        context.setProviderRole(roles.scp);
        if (roles.scp) peerScpClasses.add(abstractSyntax);
      }
    }
    if (accepted === 0) {
      log.warn({ code: 'DF_ERR_NO_ACCEPTABLE_CONTEXT' }, 'association rejected: no acceptable presentation context');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven);
    }
    // dcmjs-dimse keeps one max-PDU field: what the peer can take is overwritten by what we
    // announce. Our responses to C-ECHO/C-STORE/C-FIND are far below any peer's limit; C-GET's
    // sub-operations are sent by us, within the peer's limit read here first.
    const peerMaxPduLength = association.getMaxPduLength();
    association.setMaxPduLength(s.maxPduLength);
    for (const c of storage) this.storageContexts.set(c.id, c);
    this.getChannel = new GetStoreChannel({
      write: (parts) => this.writeOwn(parts),
      peerMaxPduLength,
      contexts: storage.filter((c) => peerScpClasses.has(c.abstractSyntax)),
    });
    this.ctx.stats.open++;
    this.ctx.stats.total++;
    this.counted = true;
    log.info({ acceptedContexts: accepted, database: this.database, user: this.userName }, 'association accepted');
    try {
      this.sendAssociationAccept();
    } catch (err) {
      // dcmjs-dimse cannot encode an answer to some malformed requests (e.g. more than 128
      // presentation contexts, whose ids then pass 255): abort instead of leaving the peer waiting.
      this.ctx.stats.aborted++;
      log.warn({ code: 'DF_ERR_PDU_INVALID', err: (err as Error).message }, 'association aborted: the request cannot be answered');
      const socket = this.framed.socket;
      socket.end(abortPdu(6));
      setTimeout(() => socket.destroy(), 1000).unref();
    }
  }

  private reject(result: number, source: number, reason: number): void {
    this.ctx.stats.rejected++;
    this.sendAssociationReject(result, source, reason);
  }

  override associationReleaseRequested(): void {
    this.sendAssociationReleaseResponse();
  }

  override cEchoRequest(request: CEchoRequest, callback: (response: InstanceType<typeof CEchoResponse>) => void): void {
    const response = CEchoResponse.fromRequest(request);
    response.setStatus(Status.Success);
    callback(response);
  }

  override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): Writable {
    if (!this.rights.store) return new Writable({ write: (_chunk, _encoding, done) => done() });
    const sopInstanceUid = this.commandSopInstanceUid ?? request.getAffectedSopInstanceUid();
    this.sopInstanceUids.set(request, sopInstanceUid);
    const reception = this.ctx.receiver.begin({
      sopClassUid: request.getAffectedSopClassUid(),
      sopInstanceUid,
      transferSyntaxUid: context.getAcceptedTransferSyntaxUid() ?? '1.2.840.10008.1.2',
      sourceAeTitle: this.callingAeTitle,
    });
    this.receptions.set(request, reception);
    this.inFlight = reception;
    // The framed socket takes this sink and writes the dataset's bytes to it directly; the
    // stream returned to dcmjs-dimse only ever sees empty fragments.
    this.pendingSink = (bytes) => reception.write(bytes);
    return new Writable({
      highWaterMark: 1 << 30,
      write(chunk: Buffer, _encoding, done) {
        if (chunk.length > 0) reception.write(chunk);
        done();
      },
    });
  }

  /**
   * C-STOREs on an accepted storage context are answered here, without dcmjs-dimse: its
   * handling of a request (parsing, emitters, response objects) cost about 1.5 ms of the event
   * loop per object, as much as everything else the receive path does. Anything unusual (an
   * unaccepted context, a SOP class that does not match it) goes to the library, which answers
   * with its own errors.
   */
  takeStoreCommand(bytes: Buffer, contextId: number): boolean {
    const context = this.storageContexts.get(contextId);
    // A refused C-STORE is answered by cStoreRequest, through the library.
    if (!context || bytes.length < 8 || !this.rights.store) return false;
    let command;
    try {
      command = decodeCommand(bytes);
    } catch {
      return false;
    }
    if (command.CommandField !== CommandField.CStoreRq || command.CommandDataSetType === NO_DATA_SET) return false;
    const sopClassUid = command.AffectedSOPClassUID;
    if (sopClassUid !== context.abstractSyntax || command.MessageID === undefined) return false;
    this.pduSeen();
    const sopInstanceUid = command.AffectedSOPInstanceUID ?? '';
    const messageId = command.MessageID;
    const reception = this.ctx.receiver.begin({
      sopClassUid,
      sopInstanceUid,
      transferSyntaxUid: context.transferSyntax,
      sourceAeTitle: this.callingAeTitle,
    });
    this.inFlight = reception;
    this.ownStore = {
      write: (chunk) => reception.write(chunk),
      end: () => {
        this.pduSeen();
        if (this.inFlight === reception) this.inFlight = undefined;
        void reception.finish(this.provenance()).then((result) => {
          const status = result.ok ? Status.Success : (STORE_STATUS[result.error.code] ?? PROCESSING_FAILURE);
          const response = encodeCommand({
            AffectedSOPClassUID: sopClassUid,
            CommandField: CommandField.CStoreRsp,
            MessageIDBeingRespondedTo: messageId,
            CommandDataSetType: NO_DATA_SET,
            Status: status,
            // (0000,0902) Error Comment is at most 64 characters (PS3.7 E.1).
            ErrorComment: result.ok ? undefined : result.error.message.slice(0, 64),
            AffectedSOPInstanceUID: sopInstanceUid,
          });
          this.framed.write(encodePData(contextId, PdvControl.Command | PdvControl.Last, response));
        });
      },
    };
    return true;
  }

  /** The library's PDU timeout counts from the last PDU it saw; our own C-STOREs it never sees. */
  private pduSeen(): void {
    (this as unknown as { lastPduTime: number }).lastPduTime = Date.now();
  }

  takeOwnDataset(): OwnDataset | undefined {
    const own = this.ownStore;
    this.ownStore = undefined;
    return own;
  }

  private provenance() {
    return {
      source: 'network' as const,
      database: this.database,
      createdBy: this.callingAeTitle,
      callingAeTitle: this.callingAeTitle,
      calledAeTitle: this.calledAeTitle,
      peerAddress: this.peerAddress,
      associationId: this.associationId,
      userName: this.userName,
    };
  }

  /** Called by the framed socket right after the first dataset fragment of a command. */
  takeDatasetSink(): DatasetSink | undefined {
    const sink = this.pendingSink;
    this.pendingSink = undefined;
    return sink;
  }

  override createDatasetFromStoreWritableStream(
    _writable: Writable,
    _context: PresentationContext,
    callback: (dataset: any) => void,
  ): void {
    // The dataset stays on disk; cStoreRequest finds its reception by the request.
    callback(undefined);
  }

  override cStoreRequest(request: CStoreRequest, callback: (response: CStoreResponseT) => void): void {
    const reception = this.receptions.get(request);
    const response = CStoreResponse.fromRequest(request);
    const sopInstanceUid = this.sopInstanceUids.get(request);
    if (sopInstanceUid !== undefined) response.setAffectedSopInstanceUid(sopInstanceUid);
    if (this.refused('store', 'C-STORE', response)) return callback(response);
    if (!reception) {
      // A C-STORE-RQ whose command says no data set follows, or on a context not accepted for storage.
      this.log.warn({ code: 'DF_ERR_DATASET_MALFORMED', sopInstanceUid }, 'C-STORE refused: no data set came with it');
      response.setStatus(STORE_STATUS.DF_ERR_DATASET_MALFORMED!);
      response.setErrorComment('DF_ERR_DATASET_MALFORMED: no data set');
      callback(response);
      return;
    }
    this.receptions.delete(request);
    // From here the object completes even if the peer goes away; unanswered, it will be resent
    // and met by the duplicate policy.
    if (this.inFlight === reception) this.inFlight = undefined;
    void reception
      .finish(this.provenance())
      .then((result) => {
        if (result.ok) {
          response.setStatus(Status.Success);
        } else {
          response.setStatus(STORE_STATUS[result.error.code] ?? PROCESSING_FAILURE);
          // (0000,0902) Error Comment is at most 64 characters (PS3.7 E.1).
          response.setErrorComment(result.error.message.slice(0, 64));
        }
        callback(response);
      });
  }

  override cFindRequest(request: CFindRequest, callback: (responses: CFindResponseT[]) => void): void {
    const raw = this.takeRawIdentifier();
    const refusal = CFindResponse.fromRequest(request);
    if (this.refused('query', 'C-FIND', refusal)) return callback([refusal]);
    callback(this.ctx.find.answer(request, this.querySource(), this.log, raw));
  }

  override cMoveRequest(request: CMoveRequest, callback: (responses: CMoveResponseT[]) => void): void {
    const raw = this.takeRawIdentifier();
    const refusal = CMoveResponse.fromRequest(request);
    if (this.refused('retrieve', 'C-MOVE', refusal)) return callback([refusal]);
    const identifier = { ...(request.getDataset()?.getElements() ?? {}), ...(raw ? rawUidValues(raw.dataset, raw.transferSyntaxUid) : {}) };
    const destination = this.commandMoveDestination;
    this.log.info({ destination, queryLevel: identifier.QueryRetrieveLevel }, 'C-MOVE requested');
    // dcmjs-dimse's callback may be called once (it ends the request); pending responses go
    // out as they happen through the library's own DIMSE writer, on the request's context.
    const context = this.negotiated?.getAcceptedPresentationContextFromRequest(request);
    let finished = false;
    const send = {
      pending: (response: CMoveResponseT) => {
        if (!finished && context) (this as unknown as { _sendDimse(d: unknown): void })._sendDimse({ context, command: response });
      },
      final: (response: CMoveResponseT) => {
        if (finished) return;
        finished = true;
        callback([response]);
      },
    };
    void this.ctx.move
      .answer(request, { source: this.querySource(), destination, callingAeTitle: this.callingAeTitle, identifier, log: this.log }, send)
      .catch((err) => {
        this.log.error({ err }, 'C-MOVE failed');
        const r = CMoveResponse.fromRequest(request);
        r.setStatus(0xc000);
        r.setErrorComment(String((err as Error).message).slice(0, 64));
        send.final(r);
      });
  }

  override cGetRequest(request: CGetRequest, callback: (responses: CGetResponseT[]) => void): void {
    const raw = this.takeRawIdentifier();
    const refusal = CGetResponse.fromRequest(request);
    if (this.refused('retrieve', 'C-GET', refusal)) return callback([refusal]);
    const identifier = { ...(request.getDataset()?.getElements() ?? {}), ...(raw ? rawUidValues(raw.dataset, raw.transferSyntaxUid) : {}) };
    this.log.info({ queryLevel: identifier.QueryRetrieveLevel }, 'C-GET requested');
    // As for C-MOVE: pending responses through the library's DIMSE writer, the final one (which
    // ends the request) through the callback, once.
    const context = this.negotiated?.getAcceptedPresentationContextFromRequest(request);
    const running = { messageId: request.getMessageId(), cancelled: false };
    this.runningGet = running;
    let finished = false;
    const send = {
      pending: (response: CGetResponseT) => {
        if (!finished && context) (this as unknown as { _sendDimse(d: unknown): void })._sendDimse({ context, command: response });
      },
      final: (response: CGetResponseT) => {
        if (finished) return;
        finished = true;
        callback([response]);
      },
    };
    const channel = this.getChannel!;
    void this.ctx.get
      .answer(request, { source: this.querySource(), identifier, log: this.log, cancelled: () => running.cancelled }, channel, send)
      .catch((err) => {
        // The association closed, or a C-STORE broke off half sent: no response can follow.
        this.log.warn({ err: (err as Error).message }, 'C-GET ended: association aborted');
        channel.close(err as Error);
        const socket = this.framed.socket;
        if (socket.destroyed) return;
        this.ctx.stats.aborted++;
        socket.end(abortPdu(0));
        setTimeout(() => socket.destroy(), 1000).unref();
      })
      .finally(() => {
        if (this.runningGet === running) this.runningGet = undefined;
      });
  }

  // The N-services (PS3.7 10) are not offered; a request for one comes only on a context of
  // another service (or from a mangled command). dcmjs-dimse answers 0110 and says nothing: it is
  // refused as an unrecognized operation (0211), and logged.
  override nCreateRequest(...[request, callback]: Parameters<BaseScp['nCreateRequest']>): void {
    callback(this.refuseOperation(request, responses.NCreateResponse, 'N-CREATE'));
  }

  override nSetRequest(...[request, callback]: Parameters<BaseScp['nSetRequest']>): void {
    callback(this.refuseOperation(request, responses.NSetResponse, 'N-SET'));
  }

  override nGetRequest(...[request, callback]: Parameters<BaseScp['nGetRequest']>): void {
    callback(this.refuseOperation(request, responses.NGetResponse, 'N-GET'));
  }

  override nActionRequest(...[request, callback]: Parameters<BaseScp['nActionRequest']>): void {
    callback(this.refuseOperation(request, responses.NActionResponse, 'N-ACTION'));
  }

  override nDeleteRequest(...[request, callback]: Parameters<BaseScp['nDeleteRequest']>): void {
    callback(this.refuseOperation(request, responses.NDeleteResponse, 'N-DELETE'));
  }

  override nEventReportRequest(...[request, callback]: Parameters<BaseScp['nEventReportRequest']>): void {
    callback(this.refuseOperation(request, responses.NEventReportResponse, 'N-EVENT-REPORT'));
  }

  /** Sets 0124 on the response when the association's rights lack the service; true if so. */
  private refused(service: DicomService, operation: string, response: { setStatus(status: number): void; setErrorComment(comment: string): void }): boolean {
    if (this.rights[service]) return false;
    this.log.warn({ code: 'DF_ERR_DICOM_ACCESS_DENIED', service, callingAeTitle: this.callingAeTitle, calledAeTitle: this.calledAeTitle, database: this.database }, `${operation} refused: the calling AE title may not ${service} here`);
    response.setStatus(NOT_AUTHORIZED);
    // (0000,0902) Error Comment is at most 64 characters (PS3.7 E.1).
    response.setErrorComment(`DF_ERR_DICOM_ACCESS_DENIED: no ${service} for ${this.callingAeTitle}`.slice(0, 64));
    return true;
  }

  private refuseOperation<R, T extends { setStatus(status: number): void }>(request: R, type: { fromRequest(request: R): T }, name: string): T {
    this.log.warn({ code: 'DF_ERR_OPERATION_UNSUPPORTED', operation: name }, `${name} refused: not a service of this server`);
    const response = type.fromRequest(request);
    response.setStatus(Status.UnrecognizedOperation);
    return response;
  }

  override abort(source: number, reason: number): void {
    // PS3.8 9.2.2 (AA-3): the peer's A-ABORT ends the association; close the connection, which a
    // requestor such as DCMTK otherwise waits for until its ACSE timeout.
    this.log.info({ source, reason }, 'association aborted by the peer');
    this.framed.socket.destroy();
  }

  override cCancelRequest(request: CCancelRequest): void {
    // PS3.4 C.4.3.2: a cancelled C-GET stops after the sub-operation under way.
    if (this.runningGet?.messageId === request.getMessageIdBeingRespondedTo()) this.runningGet.cancelled = true;
    else super.cCancelRequest(request);
  }

  /** Our own P-DATA-TFs (C-GET's C-STORE requests), written where the library writes its own. */
  private async writeOwn(parts: Buffer[]): Promise<void> {
    for (const part of parts) {
      if (!this.framed.write(part)) {
        if (this.framed.socket.destroyed || !this.framed.socket.writable) throw new Error('the association closed while a C-STORE sub-operation was sent');
      }
    }
    await this.framed.drained();
  }

  /** Query/Retrieve answers from the DICOMDIR store of the called AE title, else its database. */
  private querySource(): QuerySource {
    return this.ctx.dicomdirStores.get(this.calledAeTitle) ?? databaseSource(this.ctx.index, this.database);
  }

  /** The raw bytes of the identifier that came with the current request (dcmjs rewrites UIDs). */
  private takeRawIdentifier(): { dataset: Buffer; transferSyntaxUid: string } | undefined {
    const raw = this.lastIdentifier;
    this.lastIdentifier = undefined;
    const transferSyntaxUid = raw ? this.negotiated?.getPresentationContext(raw.contextId)?.getAcceptedTransferSyntaxUid() : undefined;
    return raw && transferSyntaxUid ? { dataset: raw.dataset, transferSyntaxUid } : undefined;
  }

  private closed(): void {
    this.getChannel?.close(new Error('the association closed'));
    if (this.counted) {
      this.ctx.stats.open--;
      this.counted = false;
    }
    if (this.inFlight) {
      // The sender never got a response for this object: it is not kept.
      this.ctx.stats.aborted++;
      void this.inFlight.abort();
      this.inFlight = undefined;
    }
  }
}

/** A string element (0000,eeee) of a command set (implicit VR little endian, PS3.7 6.3.1). */
function commandString(command: Buffer, element: number): string | undefined {
  for (let offset = 0; offset + 8 <= command.length; ) {
    const length = command.readUInt32LE(offset + 4);
    if (command.readUInt16LE(offset) === 0x0000 && command.readUInt16LE(offset + 2) === element) {
      return command.toString('latin1', offset + 8, offset + 8 + length).replace(/[\0 ]+$/, '').trim();
    }
    offset += 8 + length;
  }
  return undefined;
}
