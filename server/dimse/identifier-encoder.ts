import dcmjs from 'dcmjs';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';

/**
 * C-FIND response identifiers as bytes. A response holds stored values as they are: an object is
 * stored as received, so a value can be longer than its VR allows (a 1000-character name); a
 * C-FIND response may carry the stored value (PS3.4 C.4.1.1.3.2; DCMTK's dcmqrscp does), and
 * findscu and dcmdump read it.
 *
 * Identifiers made of text values and empty sequences (every C-FIND match) are written here
 * directly, in the bytes dcmjs writes for them (identifier-encoder.test.ts holds the two side by
 * side): dcmjs's writer costs about 0.3 ms and a dozen growing buffers per match, most of the
 * work of answering a selective query. Anything else (binary VRs, sequences with items,
 * keywords dcmjs does not know) goes through dcmjs, denaturalized here and written without its
 * length checks: dcmjs would refuse such a PN, DA, DT or TM on write and silently cut a CS, IS,
 * DS, AS or AE while denaturalizing.
 */
export function encodeIdentifier(elements: Record<string, unknown>, transferSyntaxUid: string): Buffer {
  const direct =
    transferSyntaxUid === IMPLICIT_VR_LE || transferSyntaxUid === EXPLICIT_VR_LE
      ? encodeDirect(elements, transferSyntaxUid === EXPLICIT_VR_LE)
      : undefined;
  return direct ?? encodeWithDcmjs(elements, transferSyntaxUid);
}

const dictionary = dcmjs.data.DicomMetaDictionary;

/** dcmjs's writers: these text VRs as latin1 (one byte per UTF-16 unit), the others as UTF-8. */
const ONE_BYTE_TEXT_VRS = new Set(['AE', 'AS', 'CS', 'DA', 'DT', 'TM', 'UI', 'UR', 'DS', 'IS']);
const UTF8_TEXT_VRS = new Set(['LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UT']);
/** Explicit VR elements whose length field is 32 bits (PS3.5 7.1.2; dcmjs's list). */
const LENGTH32_VRS = new Set(['UC', 'UR', 'UT', 'SQ']);
const UNDEFINED_LENGTH = 0xffffffff;

interface KnownKeyword {
  tag: number;
  vr: string;
}
const keywords = new Map<string, KnownKeyword | null>();

/** The keyword's tag and VR, or null when dcmjs has no single VR for it. */
function known(keyword: string): KnownKeyword | null {
  let entry = keywords.get(keyword);
  if (entry === undefined) {
    const found = dictionary.nameMap[keyword] as { tag: string; vr: string } | undefined;
    entry =
      found && /^[A-Z]{2}$/.test(found.vr) && /^\([0-9A-F]{4},[0-9A-F]{4}\)$/.test(found.tag)
        ? { tag: parseInt(found.tag.slice(1, 5) + found.tag.slice(6, 10), 16), vr: found.vr }
        : null;
    keywords.set(keyword, entry);
  }
  return entry;
}

interface Element {
  tag: number;
  vr: string;
  /** Undefined for an empty sequence. */
  value: Buffer | undefined;
}

/** The identifier's bytes when every element is text or an empty sequence; undefined otherwise. */
function encodeDirect(elements: Record<string, unknown>, explicitVr: boolean): Buffer | undefined {
  const list: Element[] = [];
  let total = 0;
  for (const keyword in elements) {
    const value = elements[keyword];
    const entry = known(keyword);
    if (entry === null) return undefined;
    if (entry.vr === 'SQ') {
      if (!Array.isArray(value) || value.length > 0) return undefined;
      list.push({ tag: entry.tag, vr: 'SQ', value: undefined });
      // Header, then the sequence delimitation item (dcmjs writes every sequence with undefined length).
      total += (explicitVr ? 12 : 8) + 8;
      continue;
    }
    if (typeof value !== 'string') return undefined;
    let bytes: Buffer;
    if (ONE_BYTE_TEXT_VRS.has(entry.vr)) bytes = Buffer.from(value, 'latin1');
    // dcmjs writes a PN's values without the empty ones (its pnObjectToString filters them).
    else if (entry.vr === 'PN') bytes = Buffer.from(value.includes('\\') ? value.split('\\').filter(Boolean).join('\\') : value, 'utf8');
    else if (UTF8_TEXT_VRS.has(entry.vr)) bytes = Buffer.from(value, 'utf8');
    else return undefined;
    const padded = bytes.length + (bytes.length & 1);
    list.push({ tag: entry.tag, vr: entry.vr, value: bytes });
    total += headerBytes(entry.vr, padded, explicitVr) + padded;
  }
  list.sort((a, b) => a.tag - b.tag);
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const { tag, vr, value } of list) {
    out.writeUInt16LE(tag >>> 16, at);
    out.writeUInt16LE(tag & 0xffff, at + 2);
    at += 4;
    const length = value === undefined ? UNDEFINED_LENGTH : value.length + (value.length & 1);
    if (!explicitVr) {
      out.writeUInt32LE(length, at);
      at += 4;
    } else if (LENGTH32_VRS.has(vr) || length >= 0x10000) {
      // dcmjs writes a value too long for a 16-bit length as UN, with a 32-bit one.
      out.write(LENGTH32_VRS.has(vr) ? vr : 'UN', at, 'latin1');
      out.writeUInt16LE(0, at + 2);
      out.writeUInt32LE(length, at + 4);
      at += 8;
    } else {
      out.write(vr, at, 'latin1');
      out.writeUInt16LE(length, at + 2);
      at += 4;
    }
    if (value === undefined) {
      out.writeUInt32LE(0xe0ddfffe, at);
      out.writeUInt32LE(0, at + 4);
      at += 8;
      continue;
    }
    value.copy(out, at);
    at += value.length;
    if (value.length & 1) out[at++] = vr === 'UI' ? 0 : 0x20;
  }
  return out;
}

function headerBytes(vr: string, length: number, explicitVr: boolean): number {
  if (!explicitVr) return 8;
  return LENGTH32_VRS.has(vr) || length >= 0x10000 ? 12 : 8;
}

function encodeWithDcmjs(elements: Record<string, unknown>, transferSyntaxUid: string): Buffer {
  const stream = new dcmjs.data.WriteBufferStream(1024);
  dcmjs.data.DicomMessage.write(denaturalize(elements), stream, transferSyntaxUid, { allowInvalidVRLength: true });
  return Buffer.from(stream.getBuffer());
}

/** VRs whose one value may hold a backslash (PS3.5 6.2): every other string VR splits on it. */
const SINGLE_VALUED_VRS = new Set(['LT', 'ST', 'UT', 'UR']);

function denaturalize(elements: Record<string, unknown>): Record<string, { vr: string; Value: unknown[] }> {
  const out: Record<string, { vr: string; Value: unknown[] }> = {};
  for (const [keyword, value] of Object.entries(elements)) {
    const entry = dictionary.nameMap[keyword] as { tag: string; vr: string } | undefined;
    if (entry === undefined || !/^[A-Z]{2}$/.test(entry.vr) || value === undefined || value === null) {
      // Keywords of ambiguous VR (US or SS) and private ones: the library's own rules, as before.
      Object.assign(out, dictionary.denaturalizeDataset({ [keyword]: value }));
      continue;
    }
    const tag = entry.tag.replace(/[(),]/g, '');
    if (entry.vr === 'SQ') out[tag] = { vr: 'SQ', Value: (value as Record<string, unknown>[]).map(denaturalize) };
    else if (typeof value === 'string' && !SINGLE_VALUED_VRS.has(entry.vr))
      out[tag] = { vr: entry.vr, Value: value === '' ? [] : value.split('\\') };
    else out[tag] = { vr: entry.vr, Value: Array.isArray(value) ? value : [value] };
  }
  return out;
}

/** The two writers alone, for the test that holds one against the other. */
export const writers = { direct: encodeDirect, dcmjs: encodeWithDcmjs };
