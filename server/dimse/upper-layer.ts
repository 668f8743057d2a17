/**
 * The DICOM upper-layer protocol (PS3.8 9.3) and DIMSE command sets (PS3.7 E.1) as the SCU side
 * of dicomflow speaks them: C-STORE now, C-MOVE/C-GET sub-operations and routing later. Pure
 * encoding and decoding, no sockets. Dataset bytes never pass through here: a P-DATA-TF is
 * written as a 12-byte header followed by the caller's bytes, so stored objects go out exactly as
 * they are on disk.
 */
import { dfError } from '../../core/errors.ts';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/part10.ts';

// PS3.8 9.3.1: PDU types.
export const PduType = {
  AssociateRq: 0x01,
  AssociateAc: 0x02,
  AssociateRj: 0x03,
  PData: 0x04,
  ReleaseRq: 0x05,
  ReleaseRp: 0x06,
  Abort: 0x07,
} as const;

// PS3.7 A.2.1: the one application context name of DICOM.
export const APPLICATION_CONTEXT_NAME = '1.2.840.10008.3.1.1.1';

const PDU_HEADER_BYTES = 6;
/** PDU header + PDV item length (4) + presentation context id + message control header. */
export const P_DATA_HEADER_BYTES = 12;
// Replies other than P-DATA-TF are small; an A-ASSOCIATE-AC answering 128 contexts is ~10 KB.
const MAX_ASSOCIATE_AC_BYTES = 1 << 20;
const MAX_OTHER_PDU_BYTES = 1 << 16;

export interface Pdu {
  type: number;
  /** The bytes after the 6-byte PDU header. */
  body: Buffer;
}

// ---------------------------------------------------------------------------------------------
// Reading PDUs off a byte stream

/**
 * Cuts a byte stream into whole PDUs. Refuses unknown types and declared lengths above what was
 * negotiated (a P-DATA-TF longer than our max PDU) or plausible, so a peer cannot make us buffer
 * gigabytes. Throws DF_ERR_PDU_INVALID; the caller aborts the association.
 */
export class PduReader {
  readonly #maxPDataLength: number;
  #buffered: Buffer = Buffer.alloc(0);

  /** maxPDataLength: the max PDU length we announced (0: no limit). */
  constructor(maxPDataLength: number) {
    this.#maxPDataLength = maxPDataLength;
  }

  push(chunk: Buffer): Pdu[] {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const pdus: Pdu[] = [];
    while (this.#buffered.length >= PDU_HEADER_BYTES) {
      const type = this.#buffered[0];
      const length = this.#buffered.readUInt32BE(2);
      const limit = pduLengthLimit(type, this.#maxPDataLength);
      if (limit === undefined) {
        throw dfError('DF_ERR_PDU_INVALID', `the peer sent a PDU of unknown type 0x${hex2(type)}`, { details: { abortReason: 1 } });
      }
      if (length > limit) {
        throw dfError(
          'DF_ERR_PDU_INVALID',
          `the peer sent a PDU of type 0x${hex2(type)} declaring ${length} bytes, more than the ${limit} allowed`,
          {
            details: { abortReason: 6 },
          },
        );
      }
      if (this.#buffered.length < PDU_HEADER_BYTES + length) break;
      pdus.push({ type, body: this.#buffered.subarray(PDU_HEADER_BYTES, PDU_HEADER_BYTES + length) });
      this.#buffered = this.#buffered.subarray(PDU_HEADER_BYTES + length);
    }
    return pdus;
  }
}

function pduLengthLimit(type: number, maxPDataLength: number): number | undefined {
  switch (type) {
    case PduType.PData:
      return maxPDataLength === 0 ? 0xffffffff : maxPDataLength;
    case PduType.AssociateAc:
    case PduType.AssociateRq:
      return MAX_ASSOCIATE_AC_BYTES;
    case PduType.AssociateRj:
    case PduType.ReleaseRq:
    case PduType.ReleaseRp:
    case PduType.Abort:
      return MAX_OTHER_PDU_BYTES;
    default:
      return undefined;
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

export function hex4(n: number): string {
  return n.toString(16).toUpperCase().padStart(4, '0');
}

// ---------------------------------------------------------------------------------------------
// A-ASSOCIATE-RQ (PS3.8 9.3.2)

export interface ProposedContext {
  /** Odd, 1–255 (PS3.8 9.3.2.2). */
  id: number;
  abstractSyntax: string;
  transferSyntaxes: readonly string[];
}

/** SCP/SCU Role Selection (PS3.7 D.3.3.4), e.g. to receive C-GET's C-STORE sub-operations. */
export interface RoleSelection {
  sopClassUid: string;
  scuRole: boolean;
  scpRole: boolean;
}

export interface AssociateRqOptions {
  callingAeTitle: string;
  calledAeTitle: string;
  contexts: readonly ProposedContext[];
  /** The largest P-DATA-TF we accept (user information sub-item 0x51); 0: no limit. */
  maxPduLength: number;
  roleSelections?: readonly RoleSelection[];
}

function pdu(type: number, body: Buffer): Buffer {
  const header = Buffer.alloc(PDU_HEADER_BYTES);
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

function uidItem(type: number, uid: string): Buffer {
  // PS3.8 9.3.2.2: UIDs in items are not padded.
  return item(type, Buffer.from(uid, 'latin1'));
}

/**
 * PS3.5 6.2 AE: 16 characters at most, no backslash or control characters; leading and trailing
 * spaces are not significant, so an all-space title is empty. Returns a reason when invalid.
 */
export function aeTitleProblem(title: string): string | undefined {
  const trimmed = title.trim();
  if (trimmed.length === 0) return 'it is empty';
  if (title.length > 16) return `it has ${title.length} characters, more than 16`;
  if (/[\\\x00-\x1f\x7f-\uffff]/.test(title)) return 'it holds a backslash, a control or a non-ASCII character';
  return undefined;
}

function aeTitleField(title: string): Buffer {
  return Buffer.from(title.trim().padEnd(16, ' '), 'latin1');
}

export function encodeAssociateRq(options: AssociateRqOptions): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(0x0001, 0); // protocol version 1
  aeTitleField(options.calledAeTitle).copy(fixed, 4);
  aeTitleField(options.callingAeTitle).copy(fixed, 20);
  const items: Buffer[] = [uidItem(0x10, APPLICATION_CONTEXT_NAME)];
  for (const context of options.contexts) {
    const subItems = [uidItem(0x30, context.abstractSyntax), ...context.transferSyntaxes.map((ts) => uidItem(0x40, ts))];
    items.push(item(0x20, Buffer.concat([Buffer.from([context.id, 0, 0, 0]), ...subItems])));
  }
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(options.maxPduLength);
  const userItems = [item(0x51, maxLength), uidItem(0x52, IMPLEMENTATION_CLASS_UID)];
  // PS3.7 D.3.3.4: role selection sub-items come after the implementation class UID and the
  // (absent) asynchronous operations window, before the version name.
  for (const role of options.roleSelections ?? []) {
    const uid = Buffer.from(role.sopClassUid, 'latin1');
    const head = Buffer.alloc(2);
    head.writeUInt16BE(uid.length, 0);
    userItems.push(item(0x54, Buffer.concat([head, uid, Buffer.from([role.scuRole ? 1 : 0, role.scpRole ? 1 : 0])])));
  }
  userItems.push(item(0x55, Buffer.from(IMPLEMENTATION_VERSION_NAME, 'latin1')));
  items.push(item(0x50, Buffer.concat(userItems)));
  return pdu(PduType.AssociateRq, Buffer.concat([fixed, ...items]));
}

// ---------------------------------------------------------------------------------------------
// A-ASSOCIATE-AC / -RJ (PS3.8 9.3.3, 9.3.4)

/** PS3.8 Table 9-18: the result of one presentation context. */
export const ContextResult = {
  Acceptance: 0,
  UserRejection: 1,
  NoReason: 2,
  AbstractSyntaxNotSupported: 3,
  TransferSyntaxesNotSupported: 4,
} as const;

const contextResultText: Record<number, string> = {
  0: 'accepted',
  1: 'rejected by the called application',
  2: 'rejected (no reason given)',
  3: 'abstract syntax (SOP class) not supported',
  4: 'none of the proposed transfer syntaxes supported',
};

export function describeContextResult(result: number): string {
  return contextResultText[result] ?? `rejected (result ${result})`;
}

export interface NegotiatedContext {
  id: number;
  abstractSyntax: string;
  /** Proposed transfer syntaxes, in our order. */
  proposedTransferSyntaxes: readonly string[];
  /** ContextResult: 0 acceptance. */
  result: number;
  /** The one transfer syntax the peer chose; only when accepted. */
  transferSyntax: string | undefined;
}

export interface AssociateAc {
  contexts: NegotiatedContext[];
  /** The largest P-DATA-TF the peer accepts (0: no limit, PS3.8 D.1). */
  peerMaxPduLength: number;
  peerImplementationClassUid: string | undefined;
  peerImplementationVersionName: string | undefined;
  roleSelections: RoleSelection[];
}

function parseItems(body: Buffer, from: number): Array<{ type: number; value: Buffer }> {
  const items: Array<{ type: number; value: Buffer }> = [];
  let offset = from;
  while (offset + 4 <= body.length) {
    const length = body.readUInt16BE(offset + 2);
    if (offset + 4 + length > body.length)
      throw dfError('DF_ERR_PDU_INVALID', `an item of type 0x${hex2(body[offset])} declares ${length} bytes past the end of its PDU`);
    items.push({ type: body[offset], value: body.subarray(offset + 4, offset + 4 + length) });
    offset += 4 + length;
  }
  return items;
}

function text(value: Buffer): string {
  return value
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
}

export function decodeAssociateAc(body: Buffer, proposed: readonly ProposedContext[]): AssociateAc {
  if (body.length < 68) throw dfError('DF_ERR_PDU_INVALID', `the A-ASSOCIATE-AC has ${body.length} bytes, fewer than its 68 fixed ones`);
  const contexts: NegotiatedContext[] = [];
  let peerMaxPduLength = 0;
  let peerImplementationClassUid: string | undefined;
  let peerImplementationVersionName: string | undefined;
  const roleSelections: RoleSelection[] = [];
  // 68 fixed bytes: protocol version, reserved, AE titles (echoed), 32 reserved (PS3.8 9.3.3).
  for (const { type, value } of parseItems(body, 68)) {
    if (type === 0x21 && value.length >= 4) {
      const id = value[0];
      const result = value[2];
      const asked = proposed.find((c) => c.id === id);
      if (asked === undefined) continue; // PS3.8 9.3.3.2: an answer to nothing we asked is ignored
      const transferSyntax = parseItems(value, 4).find((sub) => sub.type === 0x40);
      contexts.push({
        id,
        abstractSyntax: asked.abstractSyntax,
        proposedTransferSyntaxes: asked.transferSyntaxes,
        result,
        transferSyntax: result === ContextResult.Acceptance && transferSyntax !== undefined ? text(transferSyntax.value) : undefined,
      });
    } else if (type === 0x50) {
      for (const sub of parseItems(value, 0)) {
        if (sub.type === 0x51 && sub.value.length >= 4) peerMaxPduLength = sub.value.readUInt32BE(0);
        else if (sub.type === 0x52) peerImplementationClassUid = text(sub.value);
        else if (sub.type === 0x55) peerImplementationVersionName = text(sub.value);
        else if (sub.type === 0x54 && sub.value.length >= 2) {
          const uidLength = sub.value.readUInt16BE(0);
          if (sub.value.length < 2 + uidLength + 2) continue;
          roleSelections.push({
            sopClassUid: text(sub.value.subarray(2, 2 + uidLength)),
            scuRole: sub.value[2 + uidLength] === 1,
            scpRole: sub.value[3 + uidLength] === 1,
          });
        }
      }
    }
  }
  // A context the peer did not answer counts as rejected without reason.
  for (const asked of proposed) {
    if (!contexts.some((c) => c.id === asked.id)) {
      contexts.push({
        id: asked.id,
        abstractSyntax: asked.abstractSyntax,
        proposedTransferSyntaxes: asked.transferSyntaxes,
        result: ContextResult.NoReason,
        transferSyntax: undefined,
      });
    }
  }
  contexts.sort((a, b) => a.id - b.id);
  return { contexts, peerMaxPduLength, peerImplementationClassUid, peerImplementationVersionName, roleSelections };
}

export interface AssociateRj {
  /** 1 rejected-permanent, 2 rejected-transient. */
  result: number;
  /** 1 service user, 2 service provider (ACSE), 3 service provider (presentation). */
  source: number;
  reason: number;
}

export function decodeAssociateRj(body: Buffer): AssociateRj {
  return { result: body[1] ?? 0, source: body[2] ?? 0, reason: body[3] ?? 0 };
}

/** PS3.8 Table 9-21 in words, e.g. "permanent; service user: called AE title not recognized". */
export function describeRejection(rj: AssociateRj): string {
  const result = rj.result === 1 ? 'permanent' : rj.result === 2 ? 'transient' : `result ${rj.result}`;
  const reasons: Record<number, Record<number, string>> = {
    1: {
      1: 'no reason given',
      2: 'application context name not supported',
      3: 'calling AE title not recognized',
      7: 'called AE title not recognized',
    },
    2: { 1: 'no reason given', 2: 'protocol version not supported' },
    3: { 1: 'temporary congestion', 2: 'local limit exceeded' },
  };
  const source =
    rj.source === 1
      ? 'service user'
      : rj.source === 2
        ? 'service provider (ACSE)'
        : rj.source === 3
          ? 'service provider (presentation)'
          : `source ${rj.source}`;
  return `${result}; ${source}: ${reasons[rj.source]?.[rj.reason] ?? `reason ${rj.reason}`}`;
}

// ---------------------------------------------------------------------------------------------
// Release and abort (PS3.8 9.3.6 – 9.3.8)

export function encodeReleaseRq(): Buffer {
  return pdu(PduType.ReleaseRq, Buffer.alloc(4));
}

export function encodeReleaseRp(): Buffer {
  return pdu(PduType.ReleaseRp, Buffer.alloc(4));
}

/** A-ABORT; source 0 service user, 2 service provider (PS3.8 Table 9-26). */
export function encodeAbort(source: 0 | 2 = 0, reason = 0): Buffer {
  return pdu(PduType.Abort, Buffer.from([0, 0, source, reason]));
}

export interface Abort {
  source: number;
  reason: number;
}

export function decodeAbort(body: Buffer): Abort {
  return { source: body[2] ?? 0, reason: body[3] ?? 0 };
}

/** PS3.8 Table 9-26 in words, e.g. "source: service provider, reason: unexpected PDU". */
export function describeAbort(abort: Abort): string {
  if (abort.source === 0) return 'source: service user';
  const reasons: Record<number, string> = {
    0: 'not specified',
    1: 'unrecognized PDU',
    2: 'unexpected PDU',
    4: 'unrecognized PDU parameter',
    5: 'unexpected PDU parameter',
    6: 'invalid PDU parameter value',
  };
  return `source: service provider, reason: ${reasons[abort.reason] ?? abort.reason}`;
}

// ---------------------------------------------------------------------------------------------
// P-DATA-TF (PS3.8 9.3.5, Annex E.2)

/** Message control header bits. */
export const PdvControl = { Command: 0x01, Last: 0x02 } as const;

/**
 * The 12 bytes in front of a one-PDV P-DATA-TF whose value is `valueLength` bytes: send them and
 * then the value itself, which is never copied.
 */
export function pDataHeader(contextId: number, control: number, valueLength: number): Buffer {
  return writePDataHeader(Buffer.alloc(P_DATA_HEADER_BYTES), contextId, control, valueLength);
}

/** pDataHeader written into `header` (its first 12 bytes), for senders that reuse their buffers. */
export function writePDataHeader(header: Buffer, contextId: number, control: number, valueLength: number): Buffer {
  header[0] = PduType.PData;
  header[1] = 0;
  header.writeUInt32BE(6 + valueLength, 2);
  header.writeUInt32BE(2 + valueLength, 6);
  header[10] = contextId;
  header[11] = control;
  return header.subarray(0, P_DATA_HEADER_BYTES);
}

/** A whole one-PDV P-DATA-TF, for small values (command sets). */
export function encodePData(contextId: number, control: number, value: Buffer): Buffer {
  return Buffer.concat([pDataHeader(contextId, control, value.length), value]);
}

export interface Pdv {
  contextId: number;
  control: number;
  value: Buffer;
}

export function decodePData(body: Buffer): Pdv[] {
  const pdvs: Pdv[] = [];
  let offset = 0;
  while (offset < body.length) {
    if (offset + 6 > body.length) throw dfError('DF_ERR_PDU_INVALID', 'a P-DATA-TF ends inside a PDV item header');
    const length = body.readUInt32BE(offset);
    if (length < 2 || offset + 4 + length > body.length) {
      throw dfError('DF_ERR_PDU_INVALID', `a PDV item declares ${length} bytes, which does not fit its P-DATA-TF`, {
        details: { abortReason: 6 },
      });
    }
    pdvs.push({ contextId: body[offset + 4], control: body[offset + 5], value: body.subarray(offset + 6, offset + 4 + length) });
    offset += 4 + length;
  }
  return pdvs;
}

// ---------------------------------------------------------------------------------------------
// DIMSE command sets (PS3.7 9.3, E.1): implicit VR little endian, group 0000, group length first.

/** PS3.7 E.1-1: command field values. */
export const CommandField = {
  CStoreRq: 0x0001,
  CStoreRsp: 0x8001,
  CGetRq: 0x0010,
  CGetRsp: 0x8010,
  CFindRq: 0x0020,
  CFindRsp: 0x8020,
  CMoveRq: 0x0021,
  CMoveRsp: 0x8021,
  CEchoRq: 0x0030,
  CEchoRsp: 0x8030,
  CCancelRq: 0x0fff,
} as const;

/** CommandDataSetType (0000,0800): this value means "no data set follows"; anything else, one does. */
export const NO_DATA_SET = 0x0101;

/** PS3.7 Annex C priority values. */
export const Priority = { Medium: 0x0000, High: 0x0001, Low: 0x0002 } as const;

type CommandVr = 'UL' | 'US' | 'UI' | 'AE' | 'LO' | 'AT';

// PS3.7 Table E.1-1, by standard keyword.
const commandElements = {
  AffectedSOPClassUID: { element: 0x0002, vr: 'UI' },
  RequestedSOPClassUID: { element: 0x0003, vr: 'UI' },
  CommandField: { element: 0x0100, vr: 'US' },
  MessageID: { element: 0x0110, vr: 'US' },
  MessageIDBeingRespondedTo: { element: 0x0120, vr: 'US' },
  MoveDestination: { element: 0x0600, vr: 'AE' },
  Priority: { element: 0x0700, vr: 'US' },
  CommandDataSetType: { element: 0x0800, vr: 'US' },
  Status: { element: 0x0900, vr: 'US' },
  OffendingElement: { element: 0x0901, vr: 'AT' },
  ErrorComment: { element: 0x0902, vr: 'LO' },
  ErrorID: { element: 0x0903, vr: 'US' },
  AffectedSOPInstanceUID: { element: 0x1000, vr: 'UI' },
  RequestedSOPInstanceUID: { element: 0x1001, vr: 'UI' },
  EventTypeID: { element: 0x1002, vr: 'US' },
  AttributeIdentifierList: { element: 0x1005, vr: 'AT' },
  ActionTypeID: { element: 0x1008, vr: 'US' },
  NumberOfRemainingSuboperations: { element: 0x1020, vr: 'US' },
  NumberOfCompletedSuboperations: { element: 0x1021, vr: 'US' },
  NumberOfFailedSuboperations: { element: 0x1022, vr: 'US' },
  NumberOfWarningSuboperations: { element: 0x1023, vr: 'US' },
  MoveOriginatorApplicationEntityTitle: { element: 0x1030, vr: 'AE' },
  MoveOriginatorMessageID: { element: 0x1031, vr: 'US' },
} as const satisfies Record<string, { element: number; vr: CommandVr }>;

type CommandKeyword = keyof typeof commandElements;
type ValueOf<V extends CommandVr> = V extends 'US' | 'UL' ? number : V extends 'AT' ? number[] : string;

/** A command set by PS3.6 keyword; AT values are tags as numbers (0x00100010). */
export type DimseCommand = { -readonly [K in CommandKeyword]?: ValueOf<(typeof commandElements)[K]['vr']> };

const keywordByElement = new Map<number, CommandKeyword>(
  (Object.entries(commandElements) as Array<[CommandKeyword, { element: number }]>).map(([keyword, { element }]) => [element, keyword]),
);

function commandValueBytes(vr: CommandVr, value: number | string | number[]): Buffer {
  switch (vr) {
    case 'US': {
      const b = Buffer.alloc(2);
      b.writeUInt16LE(value as number);
      return b;
    }
    case 'UL': {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(value as number);
      return b;
    }
    case 'AT': {
      const tags = value as number[];
      const b = Buffer.alloc(4 * tags.length);
      tags.forEach((tag, i) => {
        b.writeUInt16LE(tag >>> 16, 4 * i);
        b.writeUInt16LE(tag & 0xffff, 4 * i + 2);
      });
      return b;
    }
    default: {
      // PS3.5 6.2: UI pads with NUL, text VRs with a space, to an even length.
      const s = value as string;
      const pad = vr === 'UI' ? '\0' : ' ';
      return Buffer.from(s.length % 2 === 1 ? s + pad : s, 'latin1');
    }
  }
}

/** Encodes a command set with its CommandGroupLength (0000,0000) first, elements in tag order. */
export function encodeCommand(command: DimseCommand): Buffer {
  const entries = (Object.entries(command) as Array<[CommandKeyword, number | string | number[] | undefined]>)
    .filter((entry): entry is [CommandKeyword, number | string | number[]] => entry[1] !== undefined)
    .map(([keyword, value]) => ({ ...commandElements[keyword], value }))
    .sort((a, b) => a.element - b.element);
  const parts = entries.map(({ element, vr, value }) => {
    const bytes = commandValueBytes(vr, value);
    const header = Buffer.alloc(8);
    header.writeUInt16LE(0x0000, 0);
    header.writeUInt16LE(element, 2);
    header.writeUInt32LE(bytes.length, 4);
    return Buffer.concat([header, bytes]);
  });
  const body = Buffer.concat(parts);
  const groupLength = Buffer.alloc(12);
  groupLength.writeUInt32LE(4, 4); // (0000,0000) UL, length 4
  groupLength.writeUInt32LE(body.length, 8);
  return Buffer.concat([groupLength, body]);
}

/** Decodes an implicit VR little endian command set; elements not in PS3.7 E.1-1 are skipped. */
export function decodeCommand(bytes: Buffer): DimseCommand {
  const command: Record<string, number | string | number[]> = {};
  let offset = 0;
  while (offset + 8 <= bytes.length) {
    const group = bytes.readUInt16LE(offset);
    const element = bytes.readUInt16LE(offset + 2);
    const length = bytes.readUInt32LE(offset + 4);
    const value = bytes.subarray(offset + 8, offset + 8 + length);
    if (group !== 0x0000 || value.length !== length) {
      throw dfError(
        'DF_ERR_PDU_INVALID',
        `the command set holds element (${hex4(group)},${hex4(element)}) of ${length} bytes, which is not a well-formed group 0000 element`,
      );
    }
    offset += 8 + length;
    const keyword = keywordByElement.get(element);
    if (keyword === undefined) continue;
    const vr = commandElements[keyword].vr as CommandVr;
    if (vr === 'US') {
      if (length >= 2) command[keyword] = value.readUInt16LE(0);
    } else if (vr === 'UL') {
      if (length >= 4) command[keyword] = value.readUInt32LE(0);
    } else if (vr === 'AT') {
      const tags: number[] = [];
      for (let i = 0; i + 4 <= length; i += 4) tags.push(((value.readUInt16LE(i) << 16) | value.readUInt16LE(i + 2)) >>> 0);
      command[keyword] = tags;
    } else {
      command[keyword] = text(value);
    }
  }
  return command as DimseCommand;
}

// ---------------------------------------------------------------------------------------------
// Status (PS3.7 Annex C)

export type StatusCategory = 'success' | 'warning' | 'failure' | 'cancel' | 'pending';

/**
 * PS3.7 C.1–C.4: 0000 success; 0001, 0107, 0116 and Bxxx warnings (C-STORE's B000 coercion of
 * data elements, B007 data set does not match SOP class, B006 elements discarded); FE00 cancel;
 * FF00/FF01 pending; everything else a failure.
 */
export function statusCategory(status: number): StatusCategory {
  if (status === 0x0000) return 'success';
  if (status === 0x0001 || status === 0x0107 || status === 0x0116 || (status & 0xf000) === 0xb000) return 'warning';
  if (status === 0xfe00) return 'cancel';
  if (status === 0xff00 || status === 0xff01) return 'pending';
  return 'failure';
}
