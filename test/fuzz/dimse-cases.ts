/**
 * Generated hostile input for the DIMSE port. Each case is a pure function of (seed, index), so
 * a finding is replayed with `node test/fuzz/run.ts --seed S --only N`.
 */
import {
  encodeAssociateRq,
  encodePData,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  VERIFICATION_SOP_CLASS,
} from '../helpers/raw-scu.ts';
import {
  CALLED_AE,
  CONTEXT,
  CT_IMAGE_STORAGE,
  QUERY_CONTEXT,
  caseIds,
  seedAssociateRq,
  seedDataset,
  seedEchoCommand,
  seedQueryCommand,
  seedStoreCommand,
} from './corpus.ts';
import {
  element,
  elementHeader,
  instanceDataset,
  item,
  nestedSequences,
  FUZZ_SEQUENCE,
  sequence,
  UNDEFINED_LENGTH,
} from './dicom-bytes.ts';
import { mutate, overwriteU16, overwriteU32 } from './mutate.ts';
import { Random } from './random.ts';

interface CaseBase {
  seed: number;
  index: number;
  family: string;
  what: string;
}

/** Bytes sent on a fresh connection in place of a valid A-ASSOCIATE-RQ. */
export interface AssociateCase extends CaseBase {
  kind: 'associate';
  bytes: Buffer;
}

/** Bytes sent after a valid association was accepted. */
export interface StreamCase extends CaseBase {
  kind: 'stream';
  bytes: Buffer;
}

/** A C-STORE (valid command) whose dataset is hostile. */
export interface StoreCase extends CaseBase {
  kind: 'store';
  contextId: number;
  sopInstanceUid: string;
  command: Buffer;
  dataset: Buffer;
  /** Bytes per data PDV. */
  fragmentBytes: number;
  /** false: the last-fragment bit never comes; the object must not be kept. */
  lastFragment: boolean;
  /** 'fail': must be refused; 'succeed': a valid object, must be stored; 'either': may be stored. */
  expect: 'fail' | 'succeed' | 'either';
}

export type DimseCase = AssociateCase | StreamCase | StoreCase;

export function dimseCase(seed: number, index: number): DimseCase {
  const r = Random.forCase(seed, index);
  const roll = r.next();
  if (roll < 0.25) return associateCase(r, seed, index);
  if (roll < 0.5) return streamCase(r, seed, index);
  return storeCase(r, seed, index);
}

function pdu(type: number, body: Buffer, declared = body.length): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(declared >>> 0, 2);
  return Buffer.concat([head, body]);
}

function associateCase(r: Random, seed: number, index: number): AssociateCase {
  const base = { seed, index, kind: 'associate' as const };
  const valid = seedAssociateRq();
  switch (r.int(0, 7)) {
    case 0:
    case 1: {
      // Mostly past the fixed header, where the variable items are.
      const m = mutate(r, valid, { from: r.chance(0.3) ? 0 : 74, bigEndian: true });
      return { ...base, family: 'associate-mutated', what: m.what, bytes: m.bytes };
    }
    case 2: {
      const m = overwriteU16(r, valid, 74);
      return { ...base, family: 'associate-item-length', what: m.what, bytes: m.bytes };
    }
    case 3: {
      const b = Buffer.from(valid);
      const declared = r.hostileLength(valid.length - 6);
      b.writeUInt32BE(declared, 2);
      return { ...base, family: 'associate-pdu-length', what: `PDU length 0x${declared.toString(16)}`, bytes: b };
    }
    case 4: {
      const contexts = Array.from({ length: r.int(130, 400) }, (_, i) => ({
        id: (2 * i + 1) & 0xff,
        abstractSyntax: CT_IMAGE_STORAGE,
        transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN],
      }));
      return {
        ...base,
        family: 'associate-many-contexts',
        what: `${contexts.length} presentation contexts`,
        bytes: encodeAssociateRq({ calledAe: CALLED_AE, callingAe: 'FUZZER', contexts }),
      };
    }
    case 5: {
      const uid = r.pick(['', '1.2.840.10008.1.1'.repeat(r.int(100, 3000)), '../../x', '\u0000\u0001', '1.2.840.10008.1.1\\1.2']);
      const ts = r.pick([[], [''], ['x'.repeat(5000)], [IMPLICIT_VR_LITTLE_ENDIAN, '../../etc']]);
      return {
        ...base,
        family: 'associate-hostile-syntaxes',
        what: `abstract syntax of ${uid.length} chars, ${ts.length} transfer syntaxes`,
        bytes: encodeAssociateRq({
          calledAe: CALLED_AE,
          callingAe: 'FUZZER',
          contexts: [{ id: 1, abstractSyntax: uid, transferSyntaxes: ts }],
        }),
      };
    }
    case 6: {
      const type = r.pick([0x00, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x41, 0xff]);
      return {
        ...base,
        family: 'associate-wrong-pdu-type',
        what: `PDU type 0x${type.toString(16)} first`,
        bytes: pdu(type, r.bytes(r.int(0, 80))),
      };
    }
    default: {
      if (r.chance(0.5)) return { ...base, family: 'associate-user-identity', ...withUserIdentity(r, valid) };
      const junk = r.bytes(r.int(1, 400));
      return { ...base, family: 'associate-garbage', what: `${junk.length} random bytes`, bytes: junk };
    }
  }
}

/**
 * A-ASSOCIATE-RQ with a User Identity sub-item (PS3.7 D.3.3.7.1) appended to its user
 * information item: fields whose lengths lie, unknown identity types, huge or empty fields.
 */
function withUserIdentity(r: Random, rq: Buffer): { what: string; bytes: Buffer } {
  const user = Buffer.from(r.pick(['alice', '', 'x'.repeat(r.int(300, 3000)), '../../x', '\u0000admin']), 'latin1');
  const pass = Buffer.from(r.pick(['secret', '', 'y'.repeat(r.int(300, 3000))]), 'latin1');
  const type = r.pick([1, 2, 2, 3, 4, 5, 0, 6, 255]);
  const userLength = r.chance(0.5) ? user.length : r.int(0, 0xffff);
  const passLength = r.chance(0.5) ? pass.length : r.int(0, 0xffff);
  const body = Buffer.concat([Buffer.from([type, r.int(0, 1)]), u16(userLength), user, u16(passLength), pass]);
  const sub = Buffer.concat([Buffer.from([0x58, 0]), u16(r.chance(0.8) ? body.length : r.int(0, 0xffff)), body]);
  // The user information item (0x50) is the last item of our seed: grow it and the PDU.
  const b = Buffer.concat([rq, sub]);
  let at = 74;
  while (at < rq.length && rq[at] !== 0x50) at += 4 + rq.readUInt16BE(at + 2);
  b.writeUInt16BE(Math.min(0xffff, rq.readUInt16BE(at + 2) + sub.length), at + 2);
  b.writeUInt32BE(b.length - 6, 2);
  return {
    what: `user identity type ${type}, user ${user.length} bytes (says ${userLength}), passcode ${pass.length} (says ${passLength})`,
    bytes: b,
  };
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n & 0xffff);
  return b;
}

function streamCase(r: Random, seed: number, index: number): StreamCase {
  const base = { seed, index, kind: 'stream' as const };
  switch (r.int(0, 9)) {
    case 0: {
      const type = r.pick([0x00, 0x08, 0x09, 0x10, 0x55, 0xff]);
      return { ...base, family: 'stream-unknown-pdu', what: `PDU type 0x${type.toString(16)}`, bytes: pdu(type, r.bytes(r.int(0, 64))) };
    }
    case 1: {
      const declared = r.hostileLength(16);
      return {
        ...base,
        family: 'stream-pdata-length',
        what: `P-DATA-TF declaring 0x${declared.toString(16)}`,
        bytes: pdu(0x04, r.bytes(16), declared),
      };
    }
    case 2: {
      const valid = encodePData(CONTEXT.echo, true, true, seedEchoCommand());
      const itemLength = r.pick([0, 1, valid.length, 0xffffffff, 0x80000000]);
      const b = Buffer.from(valid);
      b.writeUInt32BE(itemLength >>> 0, 6);
      return { ...base, family: 'stream-pdv-length', what: `PDV item length 0x${itemLength.toString(16)}`, bytes: b };
    }
    case 3: {
      const contextId = r.pick([0, 2, 7, 9, 255]);
      return {
        ...base,
        family: 'stream-unknown-context',
        what: `C-ECHO on context ${contextId}`,
        bytes: encodePData(contextId, true, true, seedEchoCommand()),
      };
    }
    case 4:
    case 5: {
      const store = r.chance(0.5);
      const command = store ? seedStoreCommand(caseIds(seed, index).sopInstanceUid) : seedEchoCommand();
      const m = mutate(r, command);
      const contextId = store ? CONTEXT.ctExplicit : CONTEXT.echo;
      const dataset = store ? [encodePData(contextId, false, true, seedDataset(caseIds(seed, index)))] : [];
      return {
        ...base,
        family: 'stream-command-mutated',
        what: `${store ? 'C-STORE' : 'C-ECHO'} command ${m.what}`,
        bytes: Buffer.concat([encodePData(contextId, true, true, m.bytes), ...dataset]),
      };
    }
    case 6: {
      // Command elements whose lengths point past the command set.
      const command = seedEchoCommand();
      const m = overwriteU32(r, command, 4, false);
      return { ...base, family: 'stream-command-length', what: m.what, bytes: encodePData(CONTEXT.echo, true, true, m.bytes) };
    }
    case 7:
      return {
        ...base,
        family: 'stream-data-first',
        what: 'a data PDV with no command before it',
        bytes: encodePData(CONTEXT.ctExplicit, false, true, seedDataset(caseIds(seed, index))),
      };
    case 8: {
      const type = r.pick([0x01, 0x02, 0x03, 0x06]);
      const body = type === 0x01 ? seedAssociateRq().subarray(6) : Buffer.alloc(type === 0x02 ? 68 : 4);
      return {
        ...base,
        family: 'stream-out-of-state',
        what: `PDU type 0x${type.toString(16)} on an open association`,
        bytes: pdu(type, body),
      };
    }
    default: {
      if (r.chance(0.5)) return { ...base, family: 'stream-query', ...queryCase(r) };
      const junk = r.bytes(r.int(1, 2000));
      return { ...base, family: 'stream-garbage', what: `${junk.length} random bytes`, bytes: junk };
    }
  }
}

const TRAVERSAL_UIDS = ['../../x', '../../../../../../tmp/dffuzz-escape', '..', '/etc/passwd', '1.2.3/../../x', './.', '1.2/3'];
const NON_UIDS = ['', 'x'.repeat(65), '1.2.3\\4.5', '1.2.\u0001.3', '1.2.3\n', '1.2.\u00e9'];

function storeCase(r: Random, seed: number, index: number): StoreCase {
  const ids = caseIds(seed, index);
  const base = {
    seed,
    index,
    kind: 'store' as const,
    contextId: CONTEXT.ctExplicit,
    sopInstanceUid: ids.sopInstanceUid,
    command: seedStoreCommand(ids.sopInstanceUid),
    fragmentBytes: r.pick([16370, 16370, 4096, 1000, r.int(1, 64)]),
    lastFragment: true,
  };
  const valid = seedDataset(ids);
  const pixelsAt = valid.length - 12 - 128;
  switch (r.int(0, 15)) {
    case 0:
      return {
        ...base,
        family: 'store-valid',
        what: `a valid object in ${base.fragmentBytes}-byte fragments`,
        dataset: valid,
        expect: 'succeed',
      };
    case 1: {
      const m = mutate(r, valid, { from: r.chance(0.5) ? 0 : pixelsAt });
      return { ...base, family: 'store-mutated', what: m.what, dataset: m.bytes, expect: 'either' };
    }
    case 2: {
      const cut = r.int(pixelsAt + 13, valid.length - 1);
      return {
        ...base,
        family: 'store-truncated',
        what: `cut inside Pixel Data at ${cut}`,
        dataset: valid.subarray(0, cut),
        expect: 'fail',
      };
    }
    case 3: {
      const b = Buffer.from(valid);
      const declared = r.hostileLength(128);
      b.writeUInt32LE(declared, pixelsAt + 8);
      return { ...base, family: 'store-pixel-length', what: `Pixel Data length 0x${declared.toString(16)}`, dataset: b, expect: 'fail' };
    }
    case 4: {
      // Huge only: a small length could match the random bytes that follow (seed 20261123, case 1423).
      const declared = r.hugeLength();
      const middle = Buffer.concat([elementHeader(0x00204000, 'UT', declared), r.bytes(r.int(0, 100))]);
      return {
        ...base,
        family: 'store-huge-element',
        what: `UT element declaring 0x${declared.toString(16)}`,
        dataset: instanceDataset(ids, { middle }),
        expect: 'fail',
      };
    }
    case 5: {
      const depth = r.int(1000, 30000);
      return {
        ...base,
        family: 'store-sequence-bomb',
        what: `${depth} nested undefined-length sequences, closed`,
        dataset: instanceDataset(ids, { middle: nestedSequences(depth, true) }),
        expect: 'either',
      };
    }
    case 6: {
      const depth = r.int(100, 30000);
      return {
        ...base,
        family: 'store-sequence-unclosed',
        what: `${depth} nested undefined-length sequences, never closed`,
        dataset: instanceDataset(ids, { middle: nestedSequences(depth, true, false) }),
        expect: 'fail',
      };
    }
    case 7: {
      const depth = r.int(50, 1500);
      return {
        ...base,
        family: 'store-defined-nesting',
        what: `${depth} nested defined-length sequences`,
        dataset: instanceDataset(ids, { middle: nestedSequences(depth, false) }),
        expect: 'either',
      };
    }
    case 8: {
      const open = Buffer.concat([elementHeader(FUZZ_SEQUENCE, 'SQ', UNDEFINED_LENGTH), item(element(0x00081150, 'UI', '1.2.3'), true)]);
      return {
        ...base,
        family: 'store-undefined-unclosed',
        what: 'undefined-length sequence with no sequence delimiter before Pixel Data',
        dataset: instanceDataset(ids, { middle: open }),
        expect: 'fail',
      };
    }
    case 9: {
      const uid = r.pick(TRAVERSAL_UIDS);
      const which = r.pick(['sop', 'study', 'series'] as const);
      const hostile = { ...ids, [which === 'sop' ? 'sopInstanceUid' : which === 'study' ? 'studyInstanceUid' : 'seriesInstanceUid']: uid };
      return {
        ...base,
        family: 'store-traversal-uid',
        what: `${which} UID "${uid}"`,
        sopInstanceUid: hostile.sopInstanceUid,
        command: seedStoreCommand(hostile.sopInstanceUid),
        dataset: instanceDataset(hostile),
        expect: 'fail',
      };
    }
    case 10: {
      const uid = r.pick(NON_UIDS);
      const which = r.pick(['sop', 'study', 'series'] as const);
      const hostile = { ...ids, [which === 'sop' ? 'sopInstanceUid' : which === 'study' ? 'studyInstanceUid' : 'seriesInstanceUid']: uid };
      return {
        ...base,
        family: 'store-non-uid',
        what: `${which} UID ${JSON.stringify(uid)}`,
        sopInstanceUid: hostile.sopInstanceUid,
        command: seedStoreCommand(hostile.sopInstanceUid),
        dataset: instanceDataset(hostile),
        expect: 'fail',
      };
    }
    case 11: {
      const other = caseIds(seed, index + 1_000_000);
      return {
        ...base,
        family: 'store-mismatch',
        what: "the dataset's SOP Instance UID differs from the command's",
        dataset: instanceDataset({ ...ids, sopInstanceUid: other.sopInstanceUid }),
        expect: 'fail',
      };
    }
    case 12: {
      const junk = r.bytes(r.int(0, 3000));
      return { ...base, family: 'store-garbage', what: `${junk.length} random bytes as the dataset`, dataset: junk, expect: 'fail' };
    }
    case 13:
      return {
        ...base,
        family: 'store-wrong-encoding',
        what: 'explicit VR bytes on the implicit VR context',
        contextId: CONTEXT.ctImplicit,
        dataset: valid,
        expect: 'either',
      };
    case 14:
      return {
        ...base,
        family: 'store-never-last',
        what: 'the last-fragment bit never comes',
        dataset: valid,
        lastFragment: false,
        expect: 'fail',
      };
    default: {
      // A sequence whose item lengths lie about their contents.
      const inner = item(element(0x00081150, 'UI', '1.2.840.10008.5.1.4.1.1.2'));
      const b = Buffer.from(inner);
      b.writeUInt32LE(r.hostileLength(inner.length - 8), 4);
      return {
        ...base,
        family: 'store-item-length',
        what: 'item length beyond its sequence',
        dataset: instanceDataset(ids, { middle: sequence(FUZZ_SEQUENCE, [b]) }),
        expect: 'fail',
      };
    }
  }
}

export { VERIFICATION_SOP_CLASS };

/** C-FIND, C-MOVE or C-GET with a hostile identifier: wildcard bombs, lengths that lie, nesting. */
function queryCase(r: Random): { what: string; bytes: Buffer } {
  const kind = r.pick(['find', 'find', 'move', 'get'] as const);
  const contextId = QUERY_CONTEXT[kind];
  const level = r.pick(['STUDY', 'PATIENT', 'SERIES', 'IMAGE', '', 'X'.repeat(16), '../..']);
  const value = r.pick([
    `${'a*'.repeat(r.int(10, 32))}b`,
    `${'*?'.repeat(r.int(5, 30))}b`,
    '*'.repeat(64),
    'a'.repeat(r.int(65, 3000)),
    '\\'.repeat(r.int(1, 500)),
    '',
    '(a+)+$',
    '\u0000',
  ]);
  const key = r.pick([0x00100010, 0x00100020, 0x00081030, 0x0020000d] as const);
  const vr = key === 0x00100010 ? 'PN' : key === 0x0020000d ? 'UI' : 'LO';
  const elements = new Map<number, Buffer>([
    [0x00080052, element(0x00080052, 'CS', level)],
    [0x00100010, element(0x00100010, 'PN', '')],
    [0x00100020, element(0x00100020, 'LO', '')],
    [0x0020000d, element(0x0020000d, 'UI', '')],
  ]);
  elements.set(key, element(key, vr, value));
  let identifier: Buffer = Buffer.concat([...elements.entries()].sort((a, b) => a[0] - b[0]).map(([, e]) => e));
  let what = `${kind} at ${JSON.stringify(level)} with ${vr} (${key.toString(16)}) of ${value.length} chars: ${JSON.stringify(value.slice(0, 24))}`;
  if (r.chance(0.3)) {
    const m = mutate(r, identifier);
    identifier = m.bytes;
    what += `, ${m.what}`;
  } else if (r.chance(0.15)) {
    identifier = Buffer.concat([identifier.subarray(0, 12), nestedSequences(r.int(100, 20000), true, r.chance(0.5))]);
    what += ', with a sequence bomb';
  }
  return {
    what,
    bytes: Buffer.concat([encodePData(contextId, true, true, seedQueryCommand(kind)), encodePData(contextId, false, true, identifier)]),
  };
}
