/**
 * The acceptor's side of association negotiation (PS3.8 9.3.2 – 9.3.4, PS3.7 D.3.3): reading an
 * A-ASSOCIATE-RQ and writing the A-ASSOCIATE-AC or -RJ that answers it. Pure encoding and
 * decoding, no sockets. The answers are laid out as dcmjs-dimse 0.3.3 laid them out (the SCP
 * used it until this module), so peers see the same bytes; association-pdus.test.ts checks it.
 */
import { dfError } from '../../core/errors.ts';
import { PduType } from './upper-layer.ts';

const PDU_HEADER_BYTES = 6;
// PS3.8 9.3.2: protocol version, reserved, called and calling AE titles, 32 reserved bytes.
const FIXED_FIELDS_BYTES = 68;
const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
// The peer's maximum PDU length when its A-ASSOCIATE-RQ has none: dcmjs-dimse's assumption, kept.
const DEFAULT_PEER_MAX_PDU = 262144;

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

/** PS3.7 D.3.3.7.1 User Identity sub-item as proposed. */
export interface ProposedUserIdentity {
  /** 1 username, 2 username and passcode, 3 Kerberos, 4 SAML, 5 JWT. */
  type: number;
  positiveResponseRequested: boolean;
  primaryField: string;
  secondaryField: string;
}

export interface AssociateRq {
  /** Trimmed of spaces (and NULs) at both ends, as the library read them. */
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string | undefined;
  /** In the order proposed; ids are unique. */
  contexts: ProposedContext[];
  /** The largest P-DATA-TF the peer accepts (0: no limit, PS3.8 D.1). */
  peerMaxPduLength: number;
  implementationClassUid: string | undefined;
  implementationVersionName: string | undefined;
  /** PS3.7 D.3.3.3: only when proposed and other than 1/1. */
  asyncOps: { invoked: number; performed: number } | undefined;
  /** PS3.7 D.3.3.4 SCP/SCU Role Selection by SOP class UID (a later item for a class wins). */
  roleSelections: Map<string, { scu: boolean; scp: boolean }>;
  userIdentity: ProposedUserIdentity | undefined;
}

function invalid(message: string) {
  return dfError('DF_ERR_PDU_INVALID', `the A-ASSOCIATE-RQ ${message}`, { details: { abortReason: 6 } });
}

// PS3.8 9.3.2: fields are ISO 646 with space (AE titles) or NUL (UIDs) padding; none is significant.
function text(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/^[ \0]+|[ \0]+$/g, '');
}

/** The items (type, value) of a PDU body or of an item's value, each within its bounds. */
function* items(bytes: Buffer, from: number, where: string): Generator<{ type: number; value: Buffer }> {
  for (let at = from; at < bytes.length; ) {
    if (at + 4 > bytes.length) throw invalid(`ends inside the header of an item ${where}`);
    const length = bytes.readUInt16BE(at + 2);
    if (at + 4 + length > bytes.length) throw invalid(`holds an item of type 0x${bytes[at].toString(16)} ${where} that runs past its end`);
    yield { type: bytes[at], value: bytes.subarray(at + 4, at + 4 + length) };
    at += 4 + length;
  }
}

/** Decodes a whole A-ASSOCIATE-RQ PDU (header included); throws DF_ERR_PDU_INVALID. */
export function decodeAssociateRq(pdu: Buffer): AssociateRq {
  if (pdu[0] !== PduType.AssociateRq || pdu.length < PDU_HEADER_BYTES + FIXED_FIELDS_BYTES) {
    throw invalid(`has ${pdu.length - PDU_HEADER_BYTES} bytes, fewer than its ${FIXED_FIELDS_BYTES} fixed ones`);
  }
  const body = pdu.subarray(PDU_HEADER_BYTES, PDU_HEADER_BYTES + pdu.readUInt32BE(2));
  const rq: AssociateRq = {
    calledAeTitle: text(body.subarray(4, 20)),
    callingAeTitle: text(body.subarray(20, 36)),
    applicationContextName: undefined,
    contexts: [],
    peerMaxPduLength: DEFAULT_PEER_MAX_PDU,
    implementationClassUid: undefined,
    implementationVersionName: undefined,
    asyncOps: undefined,
    roleSelections: new Map(),
    userIdentity: undefined,
  };
  const ids = new Set<number>();
  for (const { type, value } of items(body, FIXED_FIELDS_BYTES, 'in the PDU')) {
    if (type === 0x10) rq.applicationContextName = text(value);
    else if (type === 0x20) {
      if (value.length < 4) throw invalid('holds a presentation context item shorter than 4 bytes');
      const id = value[0];
      // PS3.8 9.3.2.2: each context has its own id; an answer could not tell two apart.
      if (ids.has(id)) throw invalid(`proposes presentation context ${id} twice`);
      ids.add(id);
      const context: ProposedContext = { id, abstractSyntax: '', transferSyntaxes: [] };
      for (const sub of items(value, 4, `in presentation context ${id}`)) {
        if (sub.type === 0x30) context.abstractSyntax = text(sub.value);
        else if (sub.type === 0x40) context.transferSyntaxes.push(text(sub.value));
      }
      rq.contexts.push(context);
    } else if (type === 0x50) readUserInformation(value, rq);
  }
  return rq;
}

function readUserInformation(value: Buffer, rq: AssociateRq): void {
  for (const { type, value: v } of items(value, 0, 'in the user information')) {
    const tooShort = (n: number) => {
      if (v.length < n) throw invalid(`holds a user information item 0x${type.toString(16)} of ${v.length} bytes, fewer than ${n}`);
    };
    if (type === 0x51) {
      tooShort(4);
      rq.peerMaxPduLength = v.readUInt32BE(0);
    } else if (type === 0x52) rq.implementationClassUid = text(v);
    else if (type === 0x53) {
      tooShort(4);
      const invoked = v.readUInt16BE(0);
      const performed = v.readUInt16BE(2);
      rq.asyncOps = invoked !== 1 || performed !== 1 ? { invoked, performed } : undefined;
    } else if (type === 0x54) {
      tooShort(2);
      const uidLength = v.readUInt16BE(0);
      tooShort(2 + uidLength + 2);
      rq.roleSelections.set(text(v.subarray(2, 2 + uidLength)), { scu: v[2 + uidLength] === 1, scp: v[3 + uidLength] === 1 });
    } else if (type === 0x55) rq.implementationVersionName = text(v);
    else if (type === 0x58) {
      tooShort(4);
      const primaryLength = v.readUInt16BE(2);
      tooShort(4 + primaryLength + 2);
      const secondaryLength = v.readUInt16BE(4 + primaryLength);
      tooShort(6 + primaryLength + secondaryLength);
      rq.userIdentity = {
        type: v[0],
        positiveResponseRequested: v[1] === 1,
        primaryField: text(v.subarray(4, 4 + primaryLength)),
        secondaryField: text(v.subarray(6 + primaryLength, 6 + primaryLength + secondaryLength)),
      };
    }
    // Others (0x56 SOP class extended negotiation, 0x57 common extended negotiation) are not
    // answered: PS3.7 D.3.3.5, an acceptor that does not support them omits the reply.
  }
}

/** PS3.8 Table 9-18: a presentation context's result in the A-ASSOCIATE-AC. */
export const ContextResult = { Acceptance: 0, AbstractSyntaxNotSupported: 3, TransferSyntaxesNotSupported: 4 } as const;

export interface AcceptedContextAnswer {
  id: number;
  result: number;
  /**
   * The accepted transfer syntax. For a rejected context none is significant (PS3.8 9.3.3.2):
   * dcmjs-dimse named the first one proposed, or Implicit VR Little Endian when none was.
   */
  transferSyntax?: string;
}

export interface AssociateAc {
  calledAeTitle: string;
  callingAeTitle: string;
  applicationContextName: string;
  /** Every proposed context, in the order proposed. */
  contexts: AcceptedContextAnswer[];
  /** The largest P-DATA-TF we accept. */
  maxPduLength: number;
  implementationClassUid: string;
  implementationVersionName: string;
  /** The peer's proposal, answered as proposed (as the library did). */
  asyncOps?: { invoked: number; performed: number };
  /** One answer per SOP class whose roles were proposed, in the order of its first context. */
  roleSelections: { sopClassUid: string; scu: boolean; scp: boolean }[];
  /** PS3.7 D.3.3.7.2: present only when the requestor asked for a positive response. */
  userIdentityServerResponse?: string;
}

/** Builds a PDU or item from parts: a type byte, a reserved byte, and a 16- or 32-bit length. */
function item(type: number, parts: Buffer[]): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  const length = parts.reduce((n, p) => n + p.length, 0);
  if (length > 0xffff) throw dfError('DF_ERR_PDU_INVALID', `an item of type 0x${type.toString(16)} would hold ${length} bytes`);
  head.writeUInt16BE(length, 2);
  return Buffer.concat([head, ...parts]);
}

const latin1 = (s: string) => Buffer.from(s, 'latin1');
const uint16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};

export function encodeAssociateAc(ac: AssociateAc): Buffer {
  const fixed = Buffer.alloc(FIXED_FIELDS_BYTES);
  fixed.writeUInt16BE(0x0001, 0);
  fixed.write(ac.calledAeTitle.padEnd(16, ' '), 4, 16, 'latin1');
  fixed.write(ac.callingAeTitle.padEnd(16, ' '), 20, 16, 'latin1');
  const parts: Buffer[] = [fixed, item(0x10, [latin1(ac.applicationContextName)])];
  for (const c of ac.contexts) {
    const transferSyntax = item(0x40, [latin1(c.transferSyntax ?? IMPLICIT_VR_LE)]);
    parts.push(item(0x21, [Buffer.from([c.id, 0, c.result, 0]), transferSyntax]));
  }
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(ac.maxPduLength);
  const user: Buffer[] = [item(0x51, [maxLength]), item(0x52, [latin1(ac.implementationClassUid)])];
  if (ac.asyncOps) user.push(item(0x53, [uint16(ac.asyncOps.invoked), uint16(ac.asyncOps.performed)]));
  for (const r of ac.roleSelections) {
    const uid = latin1(r.sopClassUid);
    user.push(item(0x54, [uint16(uid.length), uid, Buffer.from([r.scu ? 1 : 0, r.scp ? 1 : 0])]));
  }
  user.push(item(0x55, [latin1(ac.implementationVersionName)]));
  if (ac.userIdentityServerResponse !== undefined) {
    const response = latin1(ac.userIdentityServerResponse);
    user.push(item(0x59, [uint16(response.length), response]));
  }
  parts.push(item(0x50, user));
  return pdu(PduType.AssociateAc, parts);
}

/** PS3.8 9.3.4: result 1 permanent / 2 transient; source 1 user, 2 ACSE, 3 presentation. */
export function encodeAssociateRj(result: number, source: number, reason: number): Buffer {
  return pdu(PduType.AssociateRj, [Buffer.from([0, result, source, reason])]);
}

function pdu(type: number, parts: Buffer[]): Buffer {
  const head = Buffer.alloc(PDU_HEADER_BYTES);
  head[0] = type;
  head.writeUInt32BE(
    parts.reduce((n, p) => n + p.length, 0),
    2,
  );
  return Buffer.concat([head, ...parts]);
}
