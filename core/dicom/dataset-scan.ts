import { createRequire } from 'node:module';
import type { DataSet, Element } from 'dicom-parser';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE } from './transfer-syntaxes.ts';
import { LONG_VRS } from './element-encoding.ts';

/**
 * A fast read of a Part 10 file's top-level elements, for loading series of thousands of images:
 * it records where each element's value is and decodes nothing until asked, skipping sequences
 * by length (or by their delimiters). dicom-parser builds every element and sequence item as
 * objects, which made parsing most of a dynamic PET series' conversion time (0.15 ms per file
 * here). Sequence items come from `sequenceItems()`, which has dicom-parser read the file once.
 *
 * The result has the part of dicom-parser's DataSet API the pixel and volume code use, so either
 * can be passed.
 */
export type DataSetLike = Pick<DataSet, 'byteArray' | 'elements' | 'string' | 'uint16' | 'uint32' | 'intString' | 'floatString'>;

// Loaded on first need, through require: importing the CommonJS bundle as ESM costs a lexer pass.
let parser: typeof import('dicom-parser') | undefined;
function dicomParser(): typeof import('dicom-parser') {
  parser ??= createRequire(import.meta.url)('dicom-parser') as typeof import('dicom-parser');
  return parser;
}

const UNDEFINED = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIMITER = 0xfffee00d;
const SEQUENCE_DELIMITER = 0xfffee0dd;
const PIXEL_DATA = 0x7fe00010;

/**
 * Reads a Part 10 file's bytes. Explicit and Implicit VR Little Endian data sets (and every
 * encapsulated syntax, which are explicit LE) are scanned; Big Endian and Deflated ones, rare,
 * go through dicom-parser. Throws (a string or an Error, as dicom-parser does) on malformed data.
 */
export function scanPart10(bytes: Uint8Array): DataSetLike {
  if (bytes.length < 144 || bytes[128] !== 0x44 || bytes[129] !== 0x49 || bytes[130] !== 0x43 || bytes[131] !== 0x4d) {
    return dicomParser().parseDicom(bytes);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const elements: Record<string, Element> = {};
  // File meta group: always explicit VR little endian (PS3.10 7.1).
  const at = scanElements(bytes, view, 132, true, elements, 0x0002);
  const transferSyntaxUid = stringValue(bytes, elements.x00020010).replace(/\0/g, '');
  if (transferSyntaxUid === EXPLICIT_VR_BE || transferSyntaxUid === DEFLATED_EXPLICIT_VR_LE) return dicomParser().parseDicom(bytes);
  scanElements(bytes, view, at, transferSyntaxUid !== IMPLICIT_VR_LE, elements);
  return new ScannedDataSet(bytes, elements);
}

/** The data sets of a sequence's items (in implicit VR too, where a scan cannot tell an SQ). */
export function sequenceItems(dataSet: DataSetLike, tag: string): DataSet[] {
  const owner = dataSet instanceof ScannedDataSet ? dataSet.full() : dataSet;
  return (owner.elements[tag]?.items ?? []).flatMap((item) => (item.dataSet === undefined ? [] : [item.dataSet]));
}

class ScannedDataSet implements DataSetLike {
  readonly byteArray: Uint8Array;
  readonly elements: Record<string, Element>;
  #full: DataSet | undefined;

  constructor(bytes: Uint8Array, elements: Record<string, Element>) {
    this.byteArray = bytes;
    this.elements = elements;
  }

  /** The whole data set as dicom-parser reads it, sequences included: made once, on first need. */
  full(): DataSet {
    this.#full ??= dicomParser().parseDicom(this.byteArray);
    return this.#full;
  }

  string(tag: string, index?: number): string | undefined {
    const element = this.elements[tag];
    if (element === undefined || element.length === 0) return undefined;
    const value = stringValue(this.byteArray, element);
    if (index === undefined) return value.trim();
    return value.split('\\')[index]?.trim();
  }

  uint16(tag: string, index = 0): number | undefined {
    const element = this.elements[tag];
    if (element === undefined || element.length < 2 * (index + 1)) return undefined;
    const at = element.dataOffset + 2 * index;
    return this.byteArray[at] | (this.byteArray[at + 1] << 8);
  }

  uint32(tag: string, index = 0): number | undefined {
    const element = this.elements[tag];
    if (element === undefined || element.length < 4 * (index + 1)) return undefined;
    const b = this.byteArray;
    const at = element.dataOffset + 4 * index;
    return (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16)) + b[at + 3] * 0x1000000;
  }

  intString(tag: string, index?: number): number | undefined {
    const value = this.string(tag, index ?? 0);
    return value === undefined || value === '' ? undefined : Number.parseInt(value, 10);
  }

  floatString(tag: string, index?: number): number | undefined {
    const value = this.string(tag, index ?? 0);
    return value === undefined || value === '' ? undefined : Number.parseFloat(value);
  }
}

function stringValue(bytes: Uint8Array, element: Element | undefined): string {
  if (element === undefined) return '';
  let end = element.dataOffset + element.length;
  while (end > element.dataOffset && (bytes[end - 1] === 0x20 || bytes[end - 1] === 0)) end--;
  return Buffer.from(bytes.buffer, bytes.byteOffset + element.dataOffset, end - element.dataOffset).toString('latin1');
}

// Tag → dicom-parser's key ("x0020000d"), made once per tag rather than once per element.
const tagKeys = new Map<number, string>();
function tagKey(tag: number): string {
  let key = tagKeys.get(tag);
  if (key === undefined) {
    key = `x${(tag >>> 0).toString(16).padStart(8, '0')}`;
    if (tagKeys.size < 65536) tagKeys.set(tag, key);
  }
  return key;
}

/** Scans elements from `at` to the end (or while the group is `onlyGroup`); returns where it stopped. */
function scanElements(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  explicit: boolean,
  out: Record<string, Element>,
  onlyGroup?: number,
): number {
  while (at + 8 <= bytes.length) {
    const group = view.getUint16(at, true);
    if (onlyGroup !== undefined && group !== onlyGroup) break;
    const tag = (group << 16) | view.getUint16(at + 2, true);
    const header = readHeader(bytes, view, at, explicit);
    const key = tagKey(tag);
    let next: number;
    let length = header.length;
    if (header.length === UNDEFINED) {
      if (tag === PIXEL_DATA) {
        next = skipItems(bytes, view, header.dataOffset, explicit, true);
      } else {
        // UN of undefined length holds implicit VR little endian (PS3.5 6.2.2).
        next = skipItems(bytes, view, header.dataOffset, header.vr === 'UN' ? false : explicit, false);
      }
      length = next - 8 - header.dataOffset; // up to the sequence delimiter
    } else {
      next = header.dataOffset + header.length;
      if (next > bytes.length) throw new Error(`element ${key} runs past the end of the file`);
    }
    // One object per element, of one shape: a series of thousands of files makes millions.
    const element: Element = { tag: key, vr: header.vr, length, dataOffset: header.dataOffset };
    if (header.length === UNDEFINED) {
      element.hadUndefinedLength = true;
      if (tag === PIXEL_DATA) element.encapsulatedPixelData = true;
    }
    out[key] = element;
    at = next;
  }
  return at;
}

function readHeader(
  bytes: Uint8Array,
  view: DataView,
  at: number,
  explicit: boolean,
): { vr: string | undefined; length: number; dataOffset: number } {
  const group = view.getUint16(at, true);
  // Item and delimiter tags never have a VR (PS3.5 7.5).
  if (!explicit || group === 0xfffe) return { vr: undefined, length: view.getUint32(at + 4, true), dataOffset: at + 8 };
  const vr = String.fromCharCode(bytes[at + 4], bytes[at + 5]);
  if (LONG_VRS.has(vr)) return { vr, length: view.getUint32(at + 8, true), dataOffset: at + 12 };
  return { vr, length: view.getUint16(at + 6, true), dataOffset: at + 8 };
}

/** Walks items from `at` to the sequence delimiter; returns the position after it. */
function skipItems(bytes: Uint8Array, view: DataView, at: number, explicit: boolean, fragments: boolean): number {
  while (at + 8 <= bytes.length) {
    const tag = ((view.getUint16(at, true) << 16) | view.getUint16(at + 2, true)) >>> 0;
    const length = view.getUint32(at + 4, true);
    if (tag === SEQUENCE_DELIMITER) return at + 8;
    if (tag !== ITEM) throw new Error(`expected an item at byte ${at}`);
    if (length !== UNDEFINED) {
      at += 8 + length;
      continue;
    }
    if (fragments) throw new Error(`an encapsulated fragment of undefined length at byte ${at}`);
    at = skipItemElements(bytes, view, at + 8, explicit);
  }
  throw new Error('a sequence runs past the end of the file');
}

/** Walks the elements of an undefined-length item; returns the position after its delimiter. */
function skipItemElements(bytes: Uint8Array, view: DataView, at: number, explicit: boolean): number {
  while (at + 8 <= bytes.length) {
    const tag = ((view.getUint16(at, true) << 16) | view.getUint16(at + 2, true)) >>> 0;
    if (tag === ITEM_DELIMITER) return at + 8;
    const header = readHeader(bytes, view, at, explicit);
    at =
      header.length === UNDEFINED
        ? skipItems(bytes, view, header.dataOffset, header.vr === 'UN' ? false : explicit, false)
        : header.dataOffset + header.length;
  }
  throw new Error('an item runs past the end of the file');
}
