import { EventEmitter } from 'node:events';
import dimse from 'dcmjs-dimse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/part10.ts';
import { type AssociateRq, ContextResult, decodeAssociateRq, encodeAssociateAc, encodeAssociateRj } from './association-pdus.ts';
import { answerRoles, decideContext } from './negotiation.ts';
import { CommandField, NO_DATA_SET, encodeCommand, encodeReleaseRp } from './upper-layer.ts';

// What the SCP answered with dcmjs-dimse 0.3.3 (its A-ASSOCIATE-RQ reader, its -AC, -RJ,
// A-RELEASE-RP and C-ECHO-RSP writers) is the reference: the same request must get the same bytes.

const { Association } = dimse.association;
type DimseAssociation = InstanceType<typeof Association>;
const { PresentationContextResult } = dimse.constants;

const VERIFICATION = '1.2.840.10008.1.1';
const CT = '1.2.840.10008.5.1.4.1.1.2';
const MR = '1.2.840.10008.5.1.4.1.1.4';
const STUDY_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
const STUDY_GET = '1.2.840.10008.5.1.4.1.2.2.3';
const PRIVATE = '1.2.3.4.5.6';
const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';
const JPEG_LOSSLESS = '1.2.840.10008.1.2.4.70';
const MAX_PDU = 65536;

/** A socket for dcmjs-dimse's Network: what it writes is kept, what is emitted as 'data' it reads. */
class MemorySocket extends EventEmitter {
  readonly written: Buffer[] = [];
  write(bytes: Buffer): boolean {
    this.written.push(Buffer.from(bytes));
    return true;
  }
  setTimeout(): this {
    return this;
  }
  destroy(): void {}
}

/** The library's way of answering, as scp.ts used it before association-pdus.ts. */
class LibraryScp extends dimse.Scp {
  decided: Promise<DimseAssociation>;
  /** The contexts as read, before the answers replace their transfer syntaxes with the accepted one. */
  proposed: [number, string, string[]][] = [];
  private resolve!: (a: DimseAssociation) => void;
  constructor(socket: MemorySocket) {
    super(socket as never);
    this.decided = new Promise((r) => (this.resolve = r));
  }
  override associationRequested(association: DimseAssociation): void {
    for (const { id } of association.getPresentationContexts() as { id: number }[]) {
      const context = association.getPresentationContext(id);
      this.proposed.push([id, context.getAbstractSyntaxUid(), [...context.getTransferSyntaxUids()]]);
      const decision = decideContext(
        { id, abstractSyntax: context.getAbstractSyntaxUid(), transferSyntaxes: context.getTransferSyntaxUids() },
        { acceptUnknownSopClasses: false },
      );
      if (decision.accept) context.setResult(PresentationContextResult.Accept, decision.transferSyntax);
      else if (decision.reason === 'transfer-syntax') context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
      else context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
      const scu = context.getUserRole();
      const scp = context.getProviderRole();
      if (scu !== undefined || scp !== undefined) {
        const roles = answerRoles(decision.accept ? decision.service : undefined, { scu: scu === true, scp: scp === true });
        context.setUserRole(roles.scu);
        context.setProviderRole(roles.scp);
      }
    }
    if (association.getNegotiateUserIdentity() && association.getUserIdentityPositiveResponseRequested()) {
      association.setNegotiateUserIdentityServerResponse(true);
      association.setUserIdentityServerResponse('');
    }
    association.setMaxPduLength(MAX_PDU);
    this.sendAssociationAccept();
    this.resolve(association);
  }
}

/** Our answer, decided the way scp.ts decides. */
function ourAccept(rq: AssociateRq): Buffer {
  const roleSelections: { sopClassUid: string; scu: boolean; scp: boolean }[] = [];
  const contexts = rq.contexts.map(({ id, abstractSyntax, transferSyntaxes }) => {
    const decision = decideContext({ id, abstractSyntax, transferSyntaxes }, { acceptUnknownSopClasses: false });
    const proposed = rq.roleSelections.get(abstractSyntax);
    if (proposed && !roleSelections.some((r) => r.sopClassUid === abstractSyntax)) {
      roleSelections.push({ sopClassUid: abstractSyntax, ...answerRoles(decision.accept ? decision.service : undefined, proposed) });
    }
    if (decision.accept) return { id, result: ContextResult.Acceptance, transferSyntax: decision.transferSyntax };
    return {
      id,
      result: decision.reason === 'transfer-syntax' ? ContextResult.TransferSyntaxesNotSupported : ContextResult.AbstractSyntaxNotSupported,
      transferSyntax: transferSyntaxes[0],
    };
  });
  return encodeAssociateAc({
    calledAeTitle: rq.calledAeTitle,
    callingAeTitle: rq.callingAeTitle,
    applicationContextName: '1.2.840.10008.3.1.1.1',
    contexts,
    maxPduLength: MAX_PDU,
    implementationClassUid: IMPLEMENTATION_CLASS_UID,
    implementationVersionName: IMPLEMENTATION_VERSION_NAME,
    asyncOps: rq.asyncOps,
    roleSelections,
    userIdentityServerResponse: rq.userIdentity?.positiveResponseRequested ? '' : undefined,
  });
}

interface Proposal {
  calling: string;
  called: string;
  contexts: { abstractSyntax: string; transferSyntaxes: string[]; roles?: { scu: boolean; scp: boolean } }[];
  peerMaxPdu?: number;
  asyncOps?: [number, number];
  identity?: { type: number; positive: boolean; primary: string; secondary: string };
}

/** The A-ASSOCIATE-RQ dcmjs-dimse's own requestor writes for a proposal. */
function libraryRequest(p: Proposal): Buffer {
  const association = new Association(p.calling, p.called);
  for (const c of p.contexts) {
    const id = association.addPresentationContext(c.abstractSyntax);
    for (const ts of c.transferSyntaxes) association.addTransferSyntaxToPresentationContext(id, ts);
    if (c.roles) {
      association.getPresentationContext(id).setUserRole(c.roles.scu);
      association.getPresentationContext(id).setProviderRole(c.roles.scp);
    }
  }
  if (p.peerMaxPdu !== undefined) association.setMaxPduLength(p.peerMaxPdu);
  if (p.asyncOps) {
    association.setNegotiateAsyncOps(true);
    association.setMaxAsyncOpsInvoked(p.asyncOps[0]);
    association.setMaxAsyncOpsPerformed(p.asyncOps[1]);
  }
  if (p.identity) {
    association.setNegotiateUserIdentity(true);
    association.setUserIdentityType(p.identity.type);
    association.setUserIdentityPositiveResponseRequested(p.identity.positive);
    association.setUserIdentityPrimaryField(p.identity.primary);
    association.setUserIdentitySecondaryField(p.identity.secondary);
  }
  const socket = new MemorySocket();
  const client = new dimse.Scp(socket as never);
  (client as unknown as { sendAssociationRequest(a: DimseAssociation): void }).sendAssociationRequest(association);
  return Buffer.concat(socket.written);
}

const PROPOSALS: Record<string, Proposal> = {
  'an echoscu': { calling: 'ECHOSCU', called: 'DICOMFLOW', contexts: [{ abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] }] },
  'a storescu with accepted and refused contexts': {
    calling: 'STORESCU',
    called: 'ARCHIVE',
    peerMaxPdu: 16384,
    contexts: [
      { abstractSyntax: CT, transferSyntaxes: [JPEG_LOSSLESS, EXPLICIT, IMPLICIT] },
      { abstractSyntax: MR, transferSyntaxes: ['1.2.3.99'] },
      { abstractSyntax: PRIVATE, transferSyntaxes: [EXPLICIT] },
      { abstractSyntax: STUDY_FIND, transferSyntaxes: [IMPLICIT, EXPLICIT] },
    ],
  },
  'a getscu taking the SCP role for storage, and proposing it for C-FIND too': {
    calling: 'GETSCU',
    called: 'DICOMFLOW',
    peerMaxPdu: 0,
    contexts: [
      { abstractSyntax: STUDY_GET, transferSyntaxes: [EXPLICIT] },
      { abstractSyntax: CT, transferSyntaxes: [EXPLICIT], roles: { scu: false, scp: true } },
      { abstractSyntax: CT, transferSyntaxes: [IMPLICIT], roles: { scu: true, scp: true } },
      { abstractSyntax: STUDY_FIND, transferSyntaxes: [EXPLICIT], roles: { scu: true, scp: true } },
    ],
  },
  'a requestor with a window of asynchronous operations and a user identity asking for a response': {
    calling: 'ASYNC',
    called: 'DICOMFLOW',
    contexts: [{ abstractSyntax: STUDY_FIND, transferSyntaxes: [EXPLICIT] }],
    asyncOps: [5, 3],
    identity: { type: 2, positive: true, primary: 'alice', secondary: 'token-1234' },
  },
  'a username without a response requested, and a window of 1/1': {
    calling: 'A',
    called: 'B',
    contexts: [{ abstractSyntax: VERIFICATION, transferSyntaxes: [EXPLICIT] }],
    asyncOps: [1, 1],
    identity: { type: 1, positive: false, primary: 'bob', secondary: '' },
  },
};

describe('association negotiation PDUs, against dcmjs-dimse 0.3.3', () => {
  const saved = { uid: dimse.Implementation.getImplementationClassUid(), version: dimse.Implementation.getImplementationVersion() };
  beforeAll(() => {
    dimse.log.setLevel('warn');
    dimse.Implementation.setImplementationClassUid(IMPLEMENTATION_CLASS_UID);
    dimse.Implementation.setImplementationVersion(IMPLEMENTATION_VERSION_NAME);
  });
  afterAll(() => {
    dimse.Implementation.setImplementationClassUid(saved.uid);
    dimse.Implementation.setImplementationVersion(saved.version);
  });

  for (const [name, proposal] of Object.entries(PROPOSALS)) {
    it(`reads the A-ASSOCIATE-RQ of ${name} as the library did, and answers it with the same A-ASSOCIATE-AC`, async () => {
      const request = libraryRequest(proposal);
      const socket = new MemorySocket();
      const library = new LibraryScp(socket);
      socket.emit('data', request);
      const theirs = await library.decided;
      const rq = decodeAssociateRq(request);
      expect(rq.callingAeTitle).toBe(theirs.getCallingAeTitle());
      expect(rq.calledAeTitle).toBe(theirs.getCalledAeTitle());
      expect(rq.peerMaxPduLength).toBe(proposal.peerMaxPdu ?? 262144);
      expect(rq.contexts.map((c) => [c.id, c.abstractSyntax, c.transferSyntaxes])).toEqual(library.proposed);
      expect(rq.userIdentity).toEqual(
        proposal.identity && {
          type: proposal.identity.type,
          positiveResponseRequested: proposal.identity.positive,
          primaryField: proposal.identity.primary,
          secondaryField: proposal.identity.secondary,
        },
      );
      expect(ourAccept(rq).toString('hex')).toBe(Buffer.concat(socket.written).toString('hex'));
    });
  }

  it('writes A-ASSOCIATE-RJ, A-RELEASE-RP and the C-ECHO response as the library did', () => {
    const socket = new MemorySocket();
    const library = new dimse.Scp(socket as never);
    for (const [result, source, reason] of [
      [1, 1, 3],
      [2, 3, 2],
      [1, 1, 2],
    ]) {
      socket.written.length = 0;
      library.sendAssociationReject(result, source, reason);
      expect(encodeAssociateRj(result, source, reason).equals(Buffer.concat(socket.written))).toBe(true);
    }
    socket.written.length = 0;
    library.sendAssociationReleaseResponse();
    expect(encodeReleaseRp().equals(Buffer.concat(socket.written))).toBe(true);

    const echo = new dimse.requests.CEchoRequest();
    echo.setMessageId(0x1234);
    const response = dimse.responses.CEchoResponse.fromRequest(echo);
    response.setStatus(0);
    const theirs = (
      response.getCommandDataset() as unknown as { getDenaturalizedCommandDataset(): Buffer }
    ).getDenaturalizedCommandDataset();
    const ours = encodeCommand({
      AffectedSOPClassUID: VERIFICATION,
      CommandField: CommandField.CEchoRsp,
      MessageIDBeingRespondedTo: 0x1234,
      CommandDataSetType: NO_DATA_SET,
      Status: 0,
    });
    expect(ours.toString('hex')).toBe(Buffer.from(theirs).toString('hex'));
  });

  it('refuses an A-ASSOCIATE-RQ whose items run past its end, or that proposes one context id twice', () => {
    const request = libraryRequest(PROPOSALS['an echoscu']);
    const cut = Buffer.from(request.subarray(0, request.length - 5));
    cut.writeUInt32BE(cut.length - 6, 2);
    expect(() => decodeAssociateRq(cut)).toThrow(expect.objectContaining({ code: 'DF_ERR_PDU_INVALID' }));
    expect(() => decodeAssociateRq(request.subarray(0, 40))).toThrow(expect.objectContaining({ code: 'DF_ERR_PDU_INVALID' }));

    const twice = libraryRequest({
      calling: 'A',
      called: 'B',
      contexts: [
        { abstractSyntax: VERIFICATION, transferSyntaxes: [IMPLICIT] },
        { abstractSyntax: CT, transferSyntaxes: [IMPLICIT] },
      ],
    });
    // The second presentation context item's id (3) becomes 1.
    let at = 6 + 68;
    for (let contexts = 0; ; at += 4 + twice.readUInt16BE(at + 2)) if (twice[at] === 0x20 && ++contexts === 2) break;
    expect(twice[at + 4]).toBe(3);
    twice[at + 4] = 1;
    expect(() => decodeAssociateRq(twice)).toThrow(/proposes presentation context 1 twice/);
  });
});
