import type { Socket } from 'node:net';
import dimse from 'dcmjs-dimse';
import type { Logger } from 'pino';
import { newId } from '../../core/ids.ts';
import type { ErrorCode } from '../../core/errors.ts';
import { databaseSource, type IndexStore, type QuerySource } from '../../core/store/index-store.ts';
import type { Reception, Receiver } from '../../core/receive/receive.ts';
import type { Caller, DicomService, Rights } from './access.ts';
import type { DimseTimeouts, TimerKind, AssociationPhase } from './association-timers.ts';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/part10.ts';
import {
  type AcceptedContextAnswer,
  type AssociateRq,
  ContextResult,
  decodeAssociateRq,
  encodeAssociateAc,
  encodeAssociateRj,
} from './association-pdus.ts';
import { answerRoles, decideContext } from './negotiation.ts';
import { APPLICATION_CONTEXT_NAME, FramedSocket, type CommandRoute } from './pdu-framer.ts';
import {
  CommandField,
  NO_DATA_SET,
  PduType,
  PdvControl,
  decodeAbort,
  encodeCommand,
  encodePData,
  encodeReleaseRp,
  type DimseCommand,
} from './upper-layer.ts';
import { type FindChannel, type FindRequest, type FindService, rawIdentifierValues, readIdentifier } from './find.ts';
import type { MoveService } from './move.ts';
import { GetStoreChannel, type GetService, type StorageContext } from './get.ts';

const { Scp, constants, responses } = dimse;
const { PresentationContextResult, RejectResult, RejectSource, RejectReason, Status } = constants;
const { CMoveResponse, CGetResponse } = responses;

type Association = InstanceType<typeof dimse.association.Association>;
type CMoveRequest = InstanceType<typeof dimse.requests.CMoveRequest>;
type CMoveResponseT = InstanceType<typeof CMoveResponse>;
type CGetRequest = InstanceType<typeof dimse.requests.CGetRequest>;
type CGetResponseT = InstanceType<typeof CGetResponse>;
type BaseScp = InstanceType<typeof Scp>;

export interface AllowedCaller {
  aeTitle: string;
  host?: string;
}

export interface ScpSettings {
  aeTitle: string;
  maxPduLength: number;
  maxAssociations: number;
  /** Associations open at once from one peer address, so that one host cannot take every slot. */
  maxAssociationsPerPeer: number;
  checkCalledAeTitle: boolean;
  allowedCallers?: AllowedCaller[];
  acceptUnknownSopClasses: boolean;
  /** Called AE title → database name; others go to the default database. */
  databaseByAeTitle: Map<string, string>;
  defaultDatabase: string;
  /** PS3.7 D.3.3.7 User Identity Negotiation: what an association must present. */
  requireUserIdentity?: 'off' | 'username' | 'passcode';
  /** Whether a presented identity is a configured user (with its passcode, when one is required). */
  /** Looks the user (and token) up in the index: the negotiation resumes when it answers. */
  verifyUser?: (name: string, passcode: string | undefined) => Promise<boolean>;
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
  /** Open associations by peer address (for dimse.maxAssociationsPerPeer). */
  readonly openByPeer = new Map<string, number>();
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
// PS3.7 C.4.1: identifiers are a few kilobytes; the framer held the library's to this too.
const MAX_IDENTIFIER_BYTES = 4 << 20;
// CommandDataSetType (0000,0800) of a response with a data set: dcmjs-dimse's value, kept.
const DATA_SET_PRESENT = 0x0202;
// dcmjs-dimse's cap on a P-DATA-TF it writes when the peer sets no limit, kept.
const UNLIMITED_PDU_BYTES = 4 * 1024 * 1024;
// PS3.7 C.5 (general status): the caller is not authorized for the operation.
const NOT_AUTHORIZED = 0x0124;
const CANNOT_UNDERSTAND = 0xc000;
// PS3.7 C.5.x (general statuses): the SOP class is not served on this presentation context.
const SOP_CLASS_NOT_SUPPORTED = 0x0122;
// PS3.8 9.3.4: A-ASSOCIATE-RJ reason 2 from the service user, "application-context-name-not-supported".
const APPLICATION_CONTEXT_NOT_SUPPORTED = 2;
// PS3.8 9.3.4: reason 2 from the presentation provider, "local-limit-exceeded".
const LOCAL_LIMIT_EXCEEDED = 2;

/**
 * One association. Association negotiation, release, C-ECHO and C-STORE are read and answered
 * here (association-pdus.ts, upper-layer.ts), every C-STORE dataset handed to the receiver as a
 * stream so that nothing is re-encoded or held whole. dcmjs-dimse still parses C-FIND, C-MOVE,
 * C-GET and N-service requests, on an association object made for it at the first of them.
 */
export class DicomflowScp extends Scp {
  private readonly ctx: ScpContext;
  private readonly associationId = newId();
  private readonly log: Logger;
  private readonly peerAddress: string | undefined;
  private readonly timeouts: DimseTimeouts;
  /** The reception whose data set is coming; ended (its partial file removed) if the association ends first. */
  private inFlight: Reception | undefined;
  /** (0000,0600) of the last command: read raw, so an AE title is never altered. */
  private commandMoveDestination: string | undefined;
  /** The raw bytes of the last C-FIND identifier (dcmjs rewrites UIDs when it parses them). */
  private lastIdentifier: { contextId: number; dataset: Buffer } | undefined;
  /** Accepted presentation contexts by id. */
  private readonly acceptedContexts = new Map<number, { abstractSyntax: string; transferSyntax: string }>();
  /** The presentation context of the last request handed to the library (its data set follows on it). */
  private requestContextId = 0;
  /** What dcmjs-dimse reads requests against, made when it first gets one. */
  private libraryAssociation: Association | undefined;
  private peerMaxPduLength = 0;
  private counted = false;
  private callingAeTitle = '';
  private calledAeTitle = '';
  /** The user the association identified itself as (verified), recorded with each arrival. */
  private userName: string | undefined;
  /** The index's answer on the A-ASSOCIATE-RQ's user identity, once it came. */
  private identityVerdict: 'accepted' | 'refused' | 'unavailable' | undefined;
  private database: string;
  private readonly framed: FramedSocket;
  /** C-GET sub-operations: our C-STORE requests back to the peer on this association. */
  private getChannel: GetStoreChannel | undefined;
  /** Accepted storage contexts by id: their C-STOREs are received here, not by the library. */
  private readonly storageContexts = new Map<number, StorageContext>();
  private runningGet: { messageId: number; cancelled: boolean } | undefined;
  /** Decided once, when the association is accepted. */
  private rights: Rights = { store: false, query: false, retrieve: false };
  /** C-FINDs being answered (a peer may ask several at once, PS3.7 asynchronous operations). */
  private readonly runningFinds = new Set<{ messageId: number; cancelled: boolean }>();
  /** Whether writeBatched holds the socket's writes until the end of this turn. */
  private corked = false;

  constructor(socket: Socket, ctx: ScpContext, timeouts: DimseTimeouts) {
    const peerAddress = socket.remoteAddress?.replace(/^::ffff:/, '');
    // The peer's port tells apart associations from one host (a log line is traced to its sender).
    const peerPort = socket.remotePort;
    const log = ctx.log.child({ associationId: undefined as string | undefined, peer: peerAddress, peerPort });
    // The framed socket is made before super() (which takes it), so its callbacks reach the SCP
    // through `self`, set right after: `this` there would throw until super() returned.
    // biome-ignore lint/complexity/noUselessThisAlias: not useless: `this` in these callbacks throws before super() returns
    let self: DicomflowScp | undefined;
    const framed = new FramedSocket(socket, {
      maxPduLength: ctx.settings.maxPduLength,
      timeouts,
      onCommand: (command, contextId, decoded) => self?.route(command, contextId, decoded) ?? { to: 'abort', message: 'no association' },
      onViolation: (v) => {
        ctx.stats.aborted++;
        (self?.log ?? log).warn(
          { code: v.code, reason: v.message },
          v.code === 'DF_ERR_PDU_INVALID' ? 'association aborted: invalid PDU' : 'association aborted: a command that cannot be served',
        );
      },
      onTimeout: (kind, phase) => self?.timedOut(kind, phase),
      onRelayedDataset: (contextId, dataset) => {
        if (self) self.lastIdentifier = { contextId, dataset };
      },
      onAssociationPdu: (pdu) => self?.associationPdu(pdu),
      awaitingPeer: () => self?.getChannel?.awaitingPeer() ?? false,
    });
    // The library's own timers stay off (no 'connect' event on an accepted socket); ours run in the framed socket.
    super(framed as unknown as Socket);
    self = this;
    // dcmjs-dimse merges a name map given here into a copy of the whole dictionary for every
    // dataset it sends (its default, {}, included): without one, each C-FIND match costs ~1 ms less.
    (this as unknown as { datasetNameMap?: object }).datasetNameMap = undefined;
    this.framed = framed;
    this.ctx = ctx;
    this.timeouts = timeouts;
    this.peerAddress = peerAddress;
    this.log = ctx.log.child({ associationId: this.associationId, peer: this.peerAddress, peerPort });
    this.database = ctx.settings.defaultDatabase;
    socket.on('close', () => this.closed());
    // dcmjs-dimse reports protocol errors (a PDU or command it cannot parse) but leaves the
    // connection open. PS3.8 9.2.3 (AA-8): an invalid PDU is answered with A-ABORT before the
    // connection closes, so the peer learns why.
    this.on('networkError', (err: Error) => {
      if (socket.destroyed) return;
      ctx.stats.aborted++;
      this.log.warn({ code: 'DF_ERR_PDU_INVALID', err: err.message }, 'association aborted: the peer sent what cannot be parsed');
      framed.abortAndClose(0);
    });
  }

  /**
   * Every complete command comes here first. C-STOREs and C-ECHOs are answered by the SCP
   * itself, C-STORE responses to C-GET's sub-operations go to their channel, other requests to
   * the library; what none of them can serve ends the association rather than waiting for an answer.
   */
  private route(command: Buffer, contextId: number, decoded: DimseCommand): CommandRoute {
    if (this.getChannel?.consume(command)) return { to: 'scp' };
    if (!this.counted) return { to: 'abort', message: 'a command before the association was accepted' };
    if (!this.acceptedContexts.has(contextId)) {
      return { to: 'abort', message: `a command on presentation context ${contextId}, which was not accepted` };
    }
    const field = decoded.CommandField!;
    if ((field & 0x8000) !== 0) return { to: 'abort', message: `a response (command field 0x${field.toString(16)}) to no request of ours` };
    if (field === CommandField.CStoreRq) return this.takeStoreCommand(decoded, contextId);
    if (field === CommandField.CEchoRq) {
      this.answerEcho(decoded, contextId);
      return { to: 'scp' };
    }
    if (field === CommandField.CFindRq) return this.takeFindCommand(decoded, contextId);
    if (field === CommandField.CCancelRq) {
      this.cancel(decoded.MessageIDBeingRespondedTo!);
      return { to: 'scp' };
    }
    this.commandMoveDestination = commandString(command, 0x0600);
    this.requestContextId = contextId;
    this.prepareLibrary();
    return { to: 'library' };
  }

  /** PS3.7 9.1.5: C-ECHO succeeds on any accepted context; a data set it announces is dropped. */
  private answerEcho(request: DimseCommand, contextId: number): void {
    const response = encodeCommand({
      AffectedSOPClassUID: request.AffectedSOPClassUID,
      CommandField: CommandField.CEchoRsp,
      MessageIDBeingRespondedTo: request.MessageID,
      CommandDataSetType: NO_DATA_SET,
      Status: Status.Success,
    });
    this.framed.write(encodePData(contextId, PdvControl.Command | PdvControl.Last, response));
  }

  /**
   * dcmjs-dimse reads a request's data set in the transfer syntax of its context, from the
   * association object it would have made from the A-ASSOCIATE-RQ: made here instead, once, from
   * the accepted contexts (in id order, as the library numbers contexts it is given in any other).
   */
  private prepareLibrary(): void {
    if (this.libraryAssociation) return;
    const association = new dimse.association.Association(this.callingAeTitle, this.calledAeTitle);
    for (const [id, c] of [...this.acceptedContexts].sort(([a], [b]) => a - b)) {
      association.addPresentationContext(c.abstractSyntax, id);
      association.getPresentationContext(id).setResult(PresentationContextResult.Accept, c.transferSyntax);
    }
    association.setMaxPduLength(this.peerMaxPduLength);
    this.libraryAssociation = association;
    (this as unknown as { association: Association }).association = association;
  }

  /** A-ASSOCIATE-RQ, A-RELEASE-RQ or A-ABORT from the peer (the framer let through only these, in order). */
  private associationPdu(pdu: Buffer): void {
    if (pdu[0] === PduType.ReleaseRq) {
      this.framed.write(encodeReleaseRp());
      return;
    }
    if (pdu[0] === PduType.Abort) {
      // PS3.8 9.2.2 (AA-3): the peer's A-ABORT ends the association; close the connection, which a
      // requestor such as DCMTK otherwise waits for until its ACSE timeout.
      this.log.info(decodeAbort(pdu.subarray(6)), 'association aborted by the peer');
      this.framed.socket.destroy();
      return;
    }
    let rq: AssociateRq;
    try {
      rq = decodeAssociateRq(pdu);
    } catch (err) {
      this.ctx.stats.aborted++;
      this.log.warn(
        { code: 'DF_ERR_PDU_INVALID', err: (err as Error).message },
        'association aborted: the peer sent what cannot be parsed',
      );
      this.framed.abortAndClose(6);
      return;
    }
    this.negotiate(rq);
  }

  private timedOut(kind: TimerKind, phase: AssociationPhase): void {
    const seconds = (ms: number) => ms / 1000;
    const t = this.timeouts;
    if (kind === 'artim') {
      const message =
        phase === 'closing'
          ? 'connection closed: the peer did not close it after the association ended'
          : 'connection closed: no A-ASSOCIATE-RQ came';
      this.log.warn({ code: 'DF_ERR_ASSOCIATION_TIMEOUT', timer: 'artim', seconds: seconds(t.artimMs) }, message);
      return;
    }
    this.ctx.stats.aborted++;
    if (kind === 'idle') {
      this.log.warn({ code: 'DF_ERR_ASSOCIATION_TIMEOUT', timer: 'idle', seconds: seconds(t.idleMs) }, 'association aborted: idle');
    } else {
      this.log.warn(
        { code: 'DF_ERR_ASSOCIATION_TIMEOUT', timer: 'dimse', seconds: seconds(t.dimseMs) },
        'association aborted: the peer did not continue its message',
      );
    }
  }

  private negotiate(rq: AssociateRq): void {
    const s = this.ctx.settings;
    this.callingAeTitle = rq.callingAeTitle.trim();
    this.calledAeTitle = rq.calledAeTitle.trim();
    const log = this.log.child({ callingAeTitle: this.callingAeTitle, calledAeTitle: this.calledAeTitle });

    // PS3.7 A.2.1: DICOM has one application context.
    const applicationContextName = rq.applicationContextName;
    if (applicationContextName !== APPLICATION_CONTEXT_NAME) {
      log.warn(
        { code: 'DF_ERR_APPLICATION_CONTEXT_UNSUPPORTED', applicationContextName: applicationContextName?.slice(0, 80) ?? null },
        'association rejected: application context name not supported',
      );
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, APPLICATION_CONTEXT_NOT_SUPPORTED);
    }
    if (s.allowedCallers && !s.allowedCallers.some((c) => c.aeTitle === this.callingAeTitle && (!c.host || c.host === this.peerAddress))) {
      log.warn({ code: 'DF_ERR_AE_UNKNOWN' }, 'association rejected: calling AE title not allowed');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
    }
    const mode = s.requireUserIdentity ?? 'off';
    let userIdentityServerResponse: string | undefined;
    if (mode !== 'off') {
      const presented = rq.userIdentity;
      const type = presented?.type;
      const user = presented?.primaryField;
      const passcode = type === IDENTITY_USERNAME_PASSCODE ? presented?.secondaryField : undefined;
      const usable =
        mode === 'username' ? type === IDENTITY_USERNAME || type === IDENTITY_USERNAME_PASSCODE : type === IDENTITY_USERNAME_PASSCODE;
      if (usable && user && s.verifyUser && this.identityVerdict === undefined) {
        void this.verifyIdentity(rq, s.verifyUser, user, mode === 'passcode' ? passcode : undefined);
        return;
      }
      if (this.identityVerdict === 'unavailable') {
        log.warn(
          { code: 'DF_ERR_USER_IDENTITY', user: user ?? null },
          'association rejected: the user identity could not be checked (index unavailable)',
        );
        return this.reject(RejectResult.Transient, RejectSource.ServiceUser, RejectReason.NoReasonGiven);
      }
      if (!usable || !user || this.identityVerdict !== 'accepted') {
        log.warn(
          { code: 'DF_ERR_USER_IDENTITY', identityType: type ?? null, user: user ?? null },
          'association rejected: user identity missing or not accepted',
        );
        return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven);
      }
      this.userName = user;
      // D.3.3.7.2: for types 1 and 2 the server response, when asked for, is empty.
      if (presented?.positiveResponseRequested) userIdentityServerResponse = '';
    }
    const knownCalled =
      this.calledAeTitle === s.aeTitle || s.databaseByAeTitle.has(this.calledAeTitle) || this.ctx.dicomdirStores.has(this.calledAeTitle);
    if (s.checkCalledAeTitle && !knownCalled) {
      log.warn({ code: 'DF_ERR_CALLED_AE_UNKNOWN' }, 'association rejected: called AE title unknown');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CalledAeNotRecognized);
    }
    if (this.ctx.stats.open >= s.maxAssociations) {
      log.warn({ code: 'DF_ERR_TOO_MANY_ASSOCIATIONS', open: this.ctx.stats.open }, 'association rejected: too many open associations');
      return this.reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, LOCAL_LIMIT_EXCEEDED);
    }
    const openFromPeer = this.ctx.stats.openByPeer.get(this.peerKey()) ?? 0;
    if (openFromPeer >= s.maxAssociationsPerPeer) {
      log.warn(
        { code: 'DF_ERR_TOO_MANY_ASSOCIATIONS', openFromPeer },
        'association rejected: too many open associations from this peer address',
      );
      return this.reject(RejectResult.Transient, RejectSource.ServiceProviderPresentation, LOCAL_LIMIT_EXCEEDED);
    }
    this.database = s.databaseByAeTitle.get(this.calledAeTitle) ?? s.defaultDatabase;
    const dicomdirAeTitle = this.ctx.dicomdirStores.has(this.calledAeTitle) ? this.calledAeTitle : undefined;
    this.rights = s.access(
      { callingAeTitle: this.callingAeTitle, peerAddress: this.peerAddress },
      { database: this.database, dicomdirAeTitle },
    );
    if (!this.rights.store && !this.rights.query && !this.rights.retrieve) {
      log.warn(
        { code: 'DF_ERR_DICOM_ACCESS_DENIED', database: this.database },
        'association rejected: the calling AE title may not store, query or retrieve here',
      );
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.CallingAeNotRecognized);
    }
    let accepted = 0;
    const answers: AcceptedContextAnswer[] = [];
    const storage: StorageContext[] = [];
    const peerScpClasses = new Set<string>();
    const roleSelections: { sopClassUid: string; scu: boolean; scp: boolean }[] = [];
    for (const { id, abstractSyntax, transferSyntaxes } of rq.contexts) {
      const decision = decideContext({ id, abstractSyntax, transferSyntaxes }, { acceptUnknownSopClasses: s.acceptUnknownSopClasses });
      if (decision.accept) {
        accepted++;
        answers.push({ id, result: ContextResult.Acceptance, transferSyntax: decision.transferSyntax });
        this.acceptedContexts.set(id, { abstractSyntax, transferSyntax: decision.transferSyntax });
        if (decision.service === 'storage') storage.push({ id, abstractSyntax, transferSyntax: decision.transferSyntax });
      } else {
        const result =
          decision.reason === 'transfer-syntax' ? ContextResult.TransferSyntaxesNotSupported : ContextResult.AbstractSyntaxNotSupported;
        answers.push({ id, result, transferSyntax: transferSyntaxes[0] });
      }
      // A proposed SCP/SCU Role Selection (PS3.7 D.3.3.4) is answered once per SOP class, as
      // decided for the first context of that class (as dcmjs-dimse answered it).
      const proposed = rq.roleSelections.get(abstractSyntax);
      if (proposed && !roleSelections.some((r) => r.sopClassUid === abstractSyntax)) {
        const roles = answerRoles(decision.accept ? decision.service : undefined, proposed);
        roleSelections.push({ sopClassUid: abstractSyntax, ...roles });
        if (roles.scp) peerScpClasses.add(abstractSyntax);
      }
    }
    if (accepted === 0) {
      this.acceptedContexts.clear();
      log.warn({ code: 'DF_ERR_NO_ACCEPTABLE_CONTEXT' }, 'association rejected: no acceptable presentation context');
      return this.reject(RejectResult.Permanent, RejectSource.ServiceUser, RejectReason.NoReasonGiven);
    }
    let ac: Buffer;
    try {
      ac = encodeAssociateAc({
        calledAeTitle: rq.calledAeTitle,
        callingAeTitle: rq.callingAeTitle,
        applicationContextName: APPLICATION_CONTEXT_NAME,
        contexts: answers,
        maxPduLength: s.maxPduLength,
        implementationClassUid: IMPLEMENTATION_CLASS_UID,
        implementationVersionName: IMPLEMENTATION_VERSION_NAME,
        asyncOps: rq.asyncOps,
        roleSelections,
        userIdentityServerResponse,
      });
    } catch (err) {
      // An answer whose user information would pass 64 KB: abort rather than leave the peer waiting.
      this.acceptedContexts.clear();
      this.ctx.stats.aborted++;
      log.warn({ code: 'DF_ERR_PDU_INVALID', err: (err as Error).message }, 'association aborted: the request cannot be answered');
      this.framed.abortAndClose(6);
      return;
    }
    const peerMaxPduLength = rq.peerMaxPduLength;
    this.peerMaxPduLength = peerMaxPduLength;
    for (const c of storage) this.storageContexts.set(c.id, c);
    this.getChannel = new GetStoreChannel({
      write: (parts, written) => this.writeOwn(parts, written),
      peerMaxPduLength,
      contexts: storage.filter((c) => peerScpClasses.has(c.abstractSyntax)),
    });
    this.ctx.stats.open++;
    this.ctx.stats.total++;
    this.ctx.stats.openByPeer.set(this.peerKey(), openFromPeer + 1);
    this.counted = true;
    log.info({ acceptedContexts: accepted, database: this.database, user: this.userName }, 'association accepted');
    this.framed.write(ac);
    this.framed.peerMaxPduLength = peerMaxPduLength;
  }

  /**
   * The token lookup awaits the index (never the event loop); the negotiation then runs again
   * from the start with the verdict, unless the peer went away meanwhile.
   */
  private async verifyIdentity(
    rq: AssociateRq,
    verify: (name: string, passcode: string | undefined) => Promise<boolean>,
    user: string,
    passcode: string | undefined,
  ): Promise<void> {
    try {
      this.identityVerdict = (await verify(user, passcode)) ? 'accepted' : 'refused';
    } catch (err) {
      this.log.error({ err, user }, 'checking the user identity failed');
      this.identityVerdict = 'unavailable';
    }
    if (this.framed.socket.destroyed) return;
    this.negotiate(rq);
  }

  private peerKey(): string {
    return this.peerAddress ?? '';
  }

  private reject(result: number, source: number, reason: number): void {
    this.ctx.stats.rejected++;
    this.framed.write(encodeAssociateRj(result, source, reason));
  }

  /**
   * C-STOREs are answered here, never by dcmjs-dimse: its handling of a request (parsing,
   * emitters, response objects) cost about 1.5 ms of the event loop per object, as much as
   * everything else the receive path does, and it re-encodes data sets. Every C-STORE gets an
   * answer: stored, refused after its data set was read, or refused at once without one.
   */
  private takeStoreCommand(command: DimseCommand, contextId: number): CommandRoute {
    const context = this.storageContexts.get(contextId);
    const sopClassUid = command.AffectedSOPClassUID;
    const sopInstanceUid = command.AffectedSOPInstanceUID ?? '';
    const answer = this.storeAnswerer(contextId, command.MessageID!, sopClassUid, sopInstanceUid);
    if (command.CommandDataSetType === NO_DATA_SET) {
      this.log.warn({ code: 'DF_ERR_DATASET_MALFORMED', sopInstanceUid }, 'C-STORE refused: no data set came with it');
      answer(CANNOT_UNDERSTAND, 'DF_ERR_DATASET_MALFORMED: no data set');
      return { to: 'scp' };
    }
    if (!context || !sopClassUid || !this.rights.store) {
      // The data set is read and dropped; then the request is answered.
      const refusal = !this.rights.store
        ? {
            code: 'DF_ERR_DICOM_ACCESS_DENIED',
            status: NOT_AUTHORIZED,
            why: `the calling AE title may not store here`,
            comment: `DF_ERR_DICOM_ACCESS_DENIED: no store for ${this.callingAeTitle}`,
          }
        : !context
          ? {
              code: 'DF_ERR_OPERATION_UNSUPPORTED',
              status: SOP_CLASS_NOT_SUPPORTED,
              why: 'not a storage context',
              comment: 'C-STORE refused: not a storage context',
            }
          : {
              code: 'DF_ERR_DATASET_MALFORMED',
              status: CANNOT_UNDERSTAND,
              why: 'no Affected SOP Class UID',
              comment: 'C-STORE refused: no Affected SOP Class UID',
            };
      return {
        to: 'scp',
        dataset: {
          write: () => {},
          end: () => {
            this.log.warn(
              {
                code: refusal.code,
                sopInstanceUid,
                contextId,
                callingAeTitle: this.callingAeTitle,
                calledAeTitle: this.calledAeTitle,
                database: this.database,
              },
              `C-STORE refused: ${refusal.why}`,
            );
            answer(refusal.status, refusal.comment);
          },
          abandon: (why) => {
            if (why === 'next-command') answer(CANNOT_UNDERSTAND, 'DF_ERR_DATASET_MALFORMED: the data set did not end');
          },
        },
      };
    }
    const reception = this.ctx.receiver.begin({
      sopClassUid,
      sopInstanceUid,
      transferSyntaxUid: context.transferSyntax,
      sourceAeTitle: this.callingAeTitle,
    });
    this.inFlight = reception;
    const ended = () => {
      const current = this.inFlight === reception;
      if (current) this.inFlight = undefined;
      return current;
    };
    return {
      to: 'scp',
      dataset: {
        write: (chunk) => reception.write(chunk),
        end: () => {
          ended();
          // From here the object completes even if the peer goes away; unanswered, it will be
          // resent and met by the duplicate policy.
          void reception.finish(this.provenance()).then((result) => {
            if (result.ok) answer(Status.Success);
            else answer(STORE_STATUS[result.error.code] ?? PROCESSING_FAILURE, result.error.message);
          });
        },
        abandon: (why) => {
          // A new command before the last fragment: nothing of the object is kept, its
          // descriptor is closed and its partial file removed now. (At the association's end,
          // closed() does the same.)
          if (why !== 'next-command' || !ended()) return;
          void reception.abort();
          this.log.warn(
            { code: 'DF_ERR_DATASET_MALFORMED', sopInstanceUid },
            'C-STORE refused: the next command came before its data set ended',
          );
          answer(CANNOT_UNDERSTAND, 'DF_ERR_DATASET_MALFORMED: the data set did not end');
        },
      },
    };
  }

  /** Writes the C-STORE-RSP to one request (once the socket is still open). */
  private storeAnswerer(contextId: number, messageId: number, sopClassUid: string | undefined, sopInstanceUid: string) {
    return (status: number, errorComment?: string) => {
      const response = encodeCommand({
        AffectedSOPClassUID: sopClassUid,
        CommandField: CommandField.CStoreRsp,
        MessageIDBeingRespondedTo: messageId,
        CommandDataSetType: NO_DATA_SET,
        Status: status,
        // (0000,0902) Error Comment is at most 64 characters (PS3.7 E.1).
        ErrorComment: status === Status.Success ? undefined : errorComment?.slice(0, 64),
        AffectedSOPInstanceUID: sopInstanceUid,
      });
      this.framed.write(encodePData(contextId, PdvControl.Command | PdvControl.Last, response));
    };
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

  /** A C-FIND request: its identifier is gathered here, then answered (never by the library). */
  private takeFindCommand(command: DimseCommand, contextId: number): CommandRoute {
    if (command.CommandDataSetType === NO_DATA_SET) {
      this.answerFind(command, contextId, Buffer.alloc(0));
      return { to: 'scp' };
    }
    const parts: Buffer[] = [];
    let bytes = 0;
    return {
      to: 'scp',
      dataset: {
        write: (chunk) => {
          bytes += chunk.length;
          // Thrown inside the framer: the association is aborted (DF_ERR_PDU_INVALID).
          if (bytes > MAX_IDENTIFIER_BYTES) throw new Error(`a C-FIND identifier of more than ${MAX_IDENTIFIER_BYTES} bytes`);
          parts.push(chunk);
        },
        end: () => this.answerFind(command, contextId, Buffer.concat(parts)),
        abandon: (why) => {
          // PS3.7 9.3.1: the request's data set must end before the next command; a request that
          // never got its identifier cannot be answered, so the association ends, as before.
          if (why === 'next-command') throw new Error('a new command came before the data set of the previous request ended');
        },
      },
    };
  }

  private answerFind(command: DimseCommand, contextId: number, identifier: Buffer): void {
    const socket = this.framed.socket;
    const transferSyntaxUid = this.acceptedContexts.get(contextId)!.transferSyntax;
    const rsp = {
      AffectedSOPClassUID: command.AffectedSOPClassUID,
      CommandField: CommandField.CFindRsp,
      MessageIDBeingRespondedTo: command.MessageID,
    };
    const final = (status: number, comment?: string) => {
      if (socket.destroyed) return;
      // (0000,0902) Error Comment is at most 64 characters (PS3.7 E.1).
      const response = encodeCommand({ ...rsp, CommandDataSetType: NO_DATA_SET, Status: status, ErrorComment: comment?.slice(0, 64) });
      this.writeBatched([encodePData(contextId, PdvControl.Command | PdvControl.Last, response)]);
    };
    const denied = this.denial('query', 'C-FIND');
    if (denied) return final(NOT_AUTHORIZED, denied);
    const running = { messageId: command.MessageID!, cancelled: false };
    this.runningFinds.add(running);
    // Responses are encoded here, whose every pending command is the same: encoded once,
    // written for each match (dcmjs-dimse's writer allocated about 256 KB per response).
    let pendingCommand: Buffer | undefined;
    const channel: FindChannel = {
      pending: (match) => {
        if (socket.destroyed) return Promise.resolve();
        pendingCommand ??= encodePData(
          contextId,
          PdvControl.Command | PdvControl.Last,
          encodeCommand({ ...rsp, CommandDataSetType: DATA_SET_PRESENT, Status: Status.Pending }),
        );
        this.writeBatched([pendingCommand, ...datasetPdus(contextId, match, this.framed.peerMaxPduLength)]);
        return this.framed.drained();
      },
      final,
      cancelled: () => running.cancelled || socket.destroyed,
      transferSyntaxUid,
    };
    const request: FindRequest = { sopClassUid: command.AffectedSOPClassUID, elements: {} };
    try {
      request.elements = readIdentifier(identifier, transferSyntaxUid);
    } catch (err) {
      // dcmjs reads with errors ignored; what still throws is left to the raw values and the parser.
      this.log.warn({ code: 'DF_ERR_QUERY_INVALID', err: (err as Error).message }, 'C-FIND identifier only partly readable');
    }
    const raw = identifier.length > 0 ? { dataset: identifier, transferSyntaxUid } : undefined;
    void this.ctx.find
      .answer(request, this.querySource(), this.log, raw, channel)
      .catch((err) => this.log.error({ err }, 'C-FIND failed'))
      .finally(() => this.runningFinds.delete(running));
  }

  /**
   * Writes whole PDUs, gathered with whatever else is written before the event loop's current
   * turn ends: the responses made in one turn (a selective query's every match, a few
   * milliseconds' worth of a long one) go out in one system call rather than two each.
   */
  private writeBatched(pdus: Buffer[]): void {
    const socket = this.framed.socket;
    if (!this.corked) {
      this.corked = true;
      socket.cork();
      process.nextTick(() => {
        this.corked = false;
        socket.uncork();
      });
    }
    for (const pdu of pdus) this.framed.write(pdu);
  }

  override cMoveRequest(request: CMoveRequest, callback: (responses: CMoveResponseT[]) => void): void {
    const raw = this.takeRawIdentifier();
    const refusal = CMoveResponse.fromRequest(request);
    if (this.refused('retrieve', 'C-MOVE', refusal)) return callback([refusal]);
    const identifier = {
      ...(request.getDataset()?.getElements() ?? {}),
      ...(raw ? rawIdentifierValues(raw.dataset, raw.transferSyntaxUid) : {}),
    };
    const destination = this.commandMoveDestination;
    this.log.info({ destination, queryLevel: identifier.QueryRetrieveLevel }, 'C-MOVE requested');
    // dcmjs-dimse's callback may be called once (it ends the request); pending responses go
    // out as they happen through the library's own DIMSE writer, on the request's context.
    const contextId = this.requestContextId;
    let finished = false;
    const send = {
      pending: (response: CMoveResponseT) => {
        if (!finished) this.sendPendingRetrieve(contextId, CommandField.CMoveRsp, response);
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
    const identifier = {
      ...(request.getDataset()?.getElements() ?? {}),
      ...(raw ? rawIdentifierValues(raw.dataset, raw.transferSyntaxUid) : {}),
    };
    this.log.info({ queryLevel: identifier.QueryRetrieveLevel }, 'C-GET requested');
    // As for C-MOVE: pending responses through the library's DIMSE writer, the final one (which
    // ends the request) through the callback, once.
    const contextId = this.requestContextId;
    const running = { messageId: request.getMessageId(), cancelled: false };
    this.runningGet = running;
    let finished = false;
    const send = {
      pending: (response: CGetResponseT) => {
        if (!finished) this.sendPendingRetrieve(contextId, CommandField.CGetRsp, response);
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
        if (this.framed.socket.destroyed) return;
        this.ctx.stats.aborted++;
        this.framed.abortAndClose(0);
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
  private refused(
    service: DicomService,
    operation: string,
    response: { setStatus(status: number): void; setErrorComment(comment: string): void },
  ): boolean {
    const comment = this.denial(service, operation);
    if (!comment) return false;
    response.setStatus(NOT_AUTHORIZED);
    response.setErrorComment(comment);
    return true;
  }

  /** When the association's rights lack the service: logged, and the error comment to answer 0124 with. */
  private denial(service: DicomService, operation: string): string | undefined {
    if (this.rights[service]) return undefined;
    this.log.warn(
      {
        code: 'DF_ERR_DICOM_ACCESS_DENIED',
        service,
        callingAeTitle: this.callingAeTitle,
        calledAeTitle: this.calledAeTitle,
        database: this.database,
      },
      `${operation} refused: the calling AE title may not ${service} here`,
    );
    // (0000,0902) Error Comment is at most 64 characters (PS3.7 E.1).
    return `DF_ERR_DICOM_ACCESS_DENIED: no ${service} for ${this.callingAeTitle}`.slice(0, 64);
  }

  private refuseOperation<R, T extends { setStatus(status: number): void }>(
    request: R,
    type: { fromRequest(request: R): T },
    name: string,
  ): T {
    this.log.warn({ code: 'DF_ERR_OPERATION_UNSUPPORTED', operation: name }, `${name} refused: not a service of this server`);
    const response = type.fromRequest(request);
    response.setStatus(Status.UnrecognizedOperation);
    return response;
  }

  private cancel(messageId: number): void {
    const find = [...this.runningFinds].find((f) => f.messageId === messageId);
    // PS3.4 C.4.1.2.3: a cancelled C-FIND sends no more matches and ends with Cancel.
    if (find) find.cancelled = true;
    // PS3.4 C.4.3.2: a cancelled C-GET stops after the sub-operation under way.
    else if (this.runningGet?.messageId === messageId) this.runningGet.cancelled = true;
  }

  /**
   * A pending C-MOVE or C-GET response (no data set), encoded here rather than by dcmjs-dimse,
   * whose encoder (dcmjs's WriteBufferStream) allocates about 256 KB per command: 1.4 GB of
   * garbage for the 4000 pending responses of a 2 GB C-MOVE, measured.
   */
  private sendPendingRetrieve(contextId: number, field: number, response: CMoveResponseT | CGetResponseT): void {
    const command = encodeCommand({
      AffectedSOPClassUID: response.getAffectedSopClassUid(),
      CommandField: field,
      MessageIDBeingRespondedTo: response.getMessageIdBeingRespondedTo(),
      CommandDataSetType: NO_DATA_SET,
      Status: response.getStatus(),
      NumberOfRemainingSuboperations: response.getRemaining(),
      NumberOfCompletedSuboperations: response.getCompleted(),
      NumberOfFailedSuboperations: response.getFailures(),
      NumberOfWarningSuboperations: response.getWarnings(),
    });
    this.framed.write(encodePData(contextId, PdvControl.Command | PdvControl.Last, command));
  }

  /** Our own P-DATA-TFs (C-GET's C-STORE requests), written where the library writes its own. */
  private async writeOwn(parts: Buffer[], written?: () => void): Promise<void> {
    for (const [i, part] of parts.entries()) {
      const last = i === parts.length - 1;
      if (!this.framed.writeStream(part, last ? written : undefined)) {
        if (this.framed.socket.destroyed || !this.framed.socket.writable) {
          if (!last) written?.();
          throw new Error('the association closed while a C-STORE sub-operation was sent');
        }
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
    const transferSyntaxUid = raw ? this.acceptedContexts.get(raw.contextId)?.transferSyntax : undefined;
    return raw && transferSyntaxUid ? { dataset: raw.dataset, transferSyntaxUid } : undefined;
  }

  private closed(): void {
    this.getChannel?.close(new Error('the association closed'));
    if (this.counted) {
      this.ctx.stats.open--;
      const fromPeer = (this.ctx.stats.openByPeer.get(this.peerKey()) ?? 1) - 1;
      if (fromPeer > 0) this.ctx.stats.openByPeer.set(this.peerKey(), fromPeer);
      else this.ctx.stats.openByPeer.delete(this.peerKey());
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
      return command
        .toString('latin1', offset + 8, offset + 8 + length)
        .replace(/[\0 ]+$/, '')
        .trim();
    }
    offset += 8 + length;
  }
  return undefined;
}

/**
 * A data set as P-DATA-TFs of one PDV each, cut as dcmjs-dimse cut them: at most the peer's
 * maximum PDU length, PDV header included.
 */
function datasetPdus(contextId: number, dataset: Buffer, peerMaxPduLength: number): Buffer[] {
  const fragmentBytes = (peerMaxPduLength === 0 ? UNLIMITED_PDU_BYTES : Math.min(peerMaxPduLength, UNLIMITED_PDU_BYTES)) - 6;
  const pdus: Buffer[] = [];
  for (let at = 0; at < dataset.length || pdus.length === 0; at += fragmentBytes) {
    const last = at + fragmentBytes >= dataset.length;
    pdus.push(encodePData(contextId, last ? PdvControl.Last : 0, dataset.subarray(at, at + fragmentBytes)));
  }
  return pdus;
}
