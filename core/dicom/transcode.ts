import dcmjs from 'dcmjs';
import { dfError } from '../errors.ts';
import { fileMetaHeader, readFileMeta } from './part10.ts';
import { decodeEncapsulatedPixelData, imagePixelModule, parsePart10 } from './pixel-data.ts';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, transferSyntaxByUid } from './transfer-syntaxes.ts';
import { elementHeader, LONG_VRS, uint16Value } from './element-encoding.ts';

/**
 * Rewrites a Part 10 object into Explicit or Implicit VR Little Endian, for a peer that accepts
 * only those. The data set is re-framed element by element: every value's bytes are copied as
 * they are (private tags, character sets and sequences included); only element headers change.
 * dcmjs was not used for this: writing through it re-encodes every string as UTF-8 and changes
 * Specific Character Set. Encapsulated pixel data is decoded with ./pixel-data.ts to native
 * little-endian bytes, and Photometric Interpretation / Planar Configuration follow the decoder.
 */

const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;
const UNDEFINED = 0xffffffff;
const PIXEL_DATA = 0x7fe00010;
const EXTENDED_OFFSET_TABLE = 0x7fe00001;
const EXTENDED_OFFSET_TABLE_LENGTHS = 0x7fe00002;
const PHOTOMETRIC_INTERPRETATION = 0x00280004;
const PLANAR_CONFIGURATION = 0x00280006;
const PIXEL_REPRESENTATION = 0x00280103;

interface Element {
  tag: number;
  vr: string;
  value?: Buffer;
  items?: Element[][];
  /** Encapsulated pixel data: the items, without the sequence delimiter. */
  encapsulated?: Buffer;
}

const dictionary = dcmjs.data.DicomMetaDictionary.dictionary as Record<string, { vr: string } | undefined>;

function tagKey(tag: number): string {
  const hex = (tag >>> 0).toString(16).toUpperCase().padStart(8, '0');
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

/** The VR of an implicit-VR element (PS3.5 A.1: from the data dictionary; private ones UN). */
function impliedVr(tag: number, length: number, pixelRepresentation: number): string {
  const group = tag >>> 16;
  const element = tag & 0xffff;
  if (length === UNDEFINED) return 'SQ'; // CP-246: an undefined-length element of unknown VR is a sequence
  if (element === 0) return 'UL';
  if (group % 2 === 1) return element >= 0x10 && element <= 0xff ? 'LO' : 'UN';
  // Repeating groups (overlays 60xx, curves 50xx) are listed under their first group.
  const entry =
    dictionary[tagKey(tag)] ??
    ((group & 0xff00) === 0x6000 || (group & 0xff00) === 0x5000 ? dictionary[tagKey(((group & 0xff00) << 16) | element)] : undefined);
  const vr = entry?.vr;
  if (vr === undefined || vr.length !== 2 || vr === 'na') return 'UN';
  if (vr === 'xs') return pixelRepresentation === 1 ? 'SS' : 'US';
  if (vr === 'ox' || vr === 'lt') return 'OW';
  return vr;
}

class Reader {
  readonly src: Buffer;
  pixelRepresentation = 0;
  constructor(src: Buffer) {
    this.src = src;
  }

  tagAt(pos: number): number {
    return ((this.src.readUInt16LE(pos) << 16) | this.src.readUInt16LE(pos + 2)) >>> 0;
  }

  /** Elements from pos up to end, or up to (and past) an item delimiter. */
  dataset(pos: number, end: number, explicit: boolean): { elements: Element[]; pos: number } {
    const elements: Element[] = [];
    while (pos < end && pos + 8 <= this.src.length) {
      const tag = this.tagAt(pos);
      if (tag === ITEM_DELIMITER) return { elements, pos: pos + 8 };
      let vr: string;
      let length: number;
      let header: number;
      if (explicit) {
        vr = this.src.toString('latin1', pos + 4, pos + 6);
        if (LONG_VRS.has(vr)) {
          length = this.src.readUInt32LE(pos + 8);
          header = 12;
        } else {
          length = this.src.readUInt16LE(pos + 6);
          header = 8;
        }
      } else {
        length = this.src.readUInt32LE(pos + 4);
        header = 8;
        vr = impliedVr(tag, length, this.pixelRepresentation);
      }
      const at = pos + header;
      if (tag === PIXEL_DATA && length === UNDEFINED) {
        const end = this.skipItems(at);
        elements.push({ tag, vr: 'OB', encapsulated: this.src.subarray(at, end) });
        pos = end + 8;
      } else if (vr === 'SQ' || length === UNDEFINED) {
        // An undefined-length UN is a sequence encoded in implicit VR (CP-246).
        const { items, pos: next } = this.items(at, length, explicit && vr !== 'UN');
        elements.push({ tag, vr: 'SQ', items });
        pos = next;
      } else {
        if (at + length > this.src.length)
          throw dfError('DF_ERR_DATASET_MALFORMED', `element ${tagKey(tag)} runs past the end of the data set`);
        const value = this.src.subarray(at, at + length);
        if (tag === PIXEL_REPRESENTATION && length >= 2) this.pixelRepresentation = value.readUInt16LE(0);
        elements.push({ tag, vr, value });
        pos = at + length;
      }
    }
    return { elements, pos };
  }

  items(pos: number, length: number, explicit: boolean): { items: Element[][]; pos: number } {
    const end = length === UNDEFINED ? Infinity : pos + length;
    const items: Element[][] = [];
    while (pos < end) {
      if (pos + 8 > this.src.length) throw dfError('DF_ERR_DATASET_MALFORMED', 'a sequence runs past the end of the data set');
      const tag = this.tagAt(pos);
      const itemLength = this.src.readUInt32LE(pos + 4);
      if (tag === SEQUENCE_DELIMITER) return { items, pos: pos + 8 };
      if (tag !== ITEM) throw dfError('DF_ERR_DATASET_MALFORMED', `expected an item in a sequence, found ${tagKey(tag)}`);
      const parsed = this.dataset(pos + 8, itemLength === UNDEFINED ? Infinity : pos + 8 + itemLength, explicit);
      items.push(parsed.elements);
      pos = itemLength === UNDEFINED ? parsed.pos : pos + 8 + itemLength;
    }
    return { items, pos };
  }

  /** Past the fragments of encapsulated pixel data: the offset of its sequence delimiter. */
  skipItems(pos: number): number {
    while (pos + 8 <= this.src.length) {
      const tag = this.tagAt(pos);
      if (tag === SEQUENCE_DELIMITER) return pos;
      if (tag !== ITEM) break;
      pos += 8 + this.src.readUInt32LE(pos + 4);
    }
    throw dfError('DF_ERR_DATASET_MALFORMED', 'encapsulated pixel data has no sequence delimiter');
  }
}

function write(elements: Element[], explicit: boolean, out: Buffer[]): void {
  for (const e of elements) {
    if (e.encapsulated)
      throw dfError('DF_ERR_DATASET_MALFORMED', 'encapsulated pixel data cannot be written in a native transfer syntax without decoding');
    if (e.items) {
      // Undefined lengths: the items' sizes change with the encoding, delimiters need no sums.
      out.push(elementHeader(e.tag, 'SQ', UNDEFINED, explicit));
      for (const item of e.items) {
        out.push(elementHeader(ITEM, '', UNDEFINED, false));
        write(item, explicit, out);
        out.push(elementHeader(ITEM_DELIMITER, '', 0, false));
      }
      out.push(elementHeader(SEQUENCE_DELIMITER, '', 0, false));
      continue;
    }
    const value = e.value!;
    // A short VR holds at most 0xFFFF bytes in explicit VR; a longer value (only possible from
    // implicit VR) goes as UN.
    const vr = explicit && !LONG_VRS.has(e.vr) && value.length > 0xffff ? 'UN' : e.vr;
    out.push(elementHeader(e.tag, vr, value.length, explicit), value);
  }
}

function csValue(text: string): Buffer {
  return Buffer.from(text.length % 2 === 0 ? text : `${text} `, 'latin1');
}

/** Whether transcodeTo can turn an object of this transfer syntax into Explicit/Implicit VR LE. */
export function canTranscode(transferSyntaxUid: string): boolean {
  const ts = transferSyntaxByUid(transferSyntaxUid);
  // biome-ignore lint/complexity/useOptionalChain: the answer is a boolean, never undefined
  return ts !== undefined && ts.littleEndian && !ts.deflated;
}

/**
 * The Part 10 bytes of `file` (its whole content) re-encoded in `targetTransferSyntaxUid`
 * (Explicit or Implicit VR Little Endian). The file meta keeps the SOP class and instance and
 * the source AE title.
 */
export async function transcodeTo(file: Buffer, targetTransferSyntaxUid: string): Promise<Buffer> {
  if (targetTransferSyntaxUid !== EXPLICIT_VR_LE && targetTransferSyntaxUid !== IMPLICIT_VR_LE) {
    throw new RangeError(`transcoding writes Explicit or Implicit VR Little Endian, not ${targetTransferSyntaxUid}`);
  }
  const meta = readFileMeta(file.subarray(0, Math.min(file.length, 1 << 20)));
  const source = transferSyntaxByUid(meta.transferSyntaxUid);
  if (source === undefined || !canTranscode(meta.transferSyntaxUid)) {
    throw dfError(
      'DF_ERR_PIXEL_DECODE',
      `cannot transcode from transfer syntax ${meta.transferSyntaxUid} (${source?.name ?? 'unknown'}): only little endian, non-deflated syntaxes are read`,
    );
  }
  const reader = new Reader(file);
  const { elements } = reader.dataset(meta.datasetOffset, file.length, source.explicitVr);
  const pixelData = elements.find((e) => e.tag === PIXEL_DATA);
  let result = elements;
  if (pixelData?.encapsulated) {
    const dataSet = parsePart10(new Uint8Array(file.buffer, file.byteOffset, file.byteLength));
    const eot = elements.find((e) => e.tag === EXTENDED_OFFSET_TABLE)?.value;
    const offsets = eot ? Array.from({ length: eot.length / 8 }, (_, i) => Number(eot.readBigUInt64LE(i * 8))) : undefined;
    const decoded = await decodeEncapsulatedPixelData(pixelData.encapsulated, meta.transferSyntaxUid, imagePixelModule(dataSet), offsets);
    const bytes = Buffer.from(decoded.bytes.buffer, decoded.bytes.byteOffset, decoded.bytes.byteLength);
    result = elements
      .filter((e) => e.tag !== EXTENDED_OFFSET_TABLE && e.tag !== EXTENDED_OFFSET_TABLE_LENGTHS)
      .map((e) => {
        if (e.tag === PIXEL_DATA) return { tag: e.tag, vr: decoded.pixel.bitsAllocated > 8 ? 'OW' : 'OB', value: bytes };
        if (e.tag === PHOTOMETRIC_INTERPRETATION) return { ...e, value: csValue(decoded.pixel.photometricInterpretation) };
        if (e.tag === PLANAR_CONFIGURATION) return { ...e, value: uint16Value(decoded.pixel.planarConfiguration) };
        return e;
      });
  }
  const out: Buffer[] = [
    fileMetaHeader({
      sopClassUid: meta.sopClassUid,
      sopInstanceUid: meta.sopInstanceUid,
      transferSyntaxUid: targetTransferSyntaxUid,
      sourceAeTitle: meta.sourceAeTitle,
    }),
  ];
  write(result, targetTransferSyntaxUid === EXPLICIT_VR_LE, out);
  return Buffer.concat(out);
}
