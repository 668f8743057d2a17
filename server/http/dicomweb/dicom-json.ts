/**
 * The DICOM JSON model of PS3.18 F.2: a dataset is an object keyed by eight upper-case hex digits
 * (group then element), each attribute `{ vr, Value | InlineBinary | BulkDataURI }`. Two ways in:
 * the index's attributes (keyword → DICOM string, for QIDO) and dcmjs's denaturalized dataset
 * (for WADO metadata, which already has this shape but binary values as ArrayBuffers).
 */
import dcmjs from 'dcmjs';
import { indexedAttributeByKeyword } from '../../../core/dicom/indexed-attributes.ts';
import { queryKey } from '../../../core/query/keys.ts';

export interface DicomJsonAttribute {
  vr: string;
  Value?: unknown[];
  InlineBinary?: string;
  BulkDataURI?: string;
}
export type DicomJsonDataset = Record<string, DicomJsonAttribute>;

const { DicomMetaDictionary } = dcmjs.data;

// PS3.5 6.2: these hold one value in which a backslash is a character.
const SINGLE_TEXT_VRS = new Set(['LT', 'ST', 'UT', 'UR']);
// PS3.18 F.2.3: numbers are JSON numbers.
const NUMBER_VRS = new Set(['DS', 'IS', 'SL', 'SS', 'UL', 'US', 'FL', 'FD', 'SV', 'UV']);
const BINARY_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'UN']);

/** Tag and VR of a keyword, or of an eight-hex-digit tag; undefined for neither. */
export function attributeOf(keywordOrTag: string): { keyword: string; tag: string; vr: string } | undefined {
  if (/^[0-9A-Fa-f]{8}$/.test(keywordOrTag)) {
    const tag = keywordOrTag.toUpperCase();
    const entry = DicomMetaDictionary.dictionary[`(${tag.slice(0, 4)},${tag.slice(4)})`] as { name: string; vr: string } | undefined;
    if (!entry) return undefined;
    return { keyword: entry.name, tag, vr: vrOf(entry.name, entry.vr) };
  }
  const known = queryKey(keywordOrTag);
  if (known) return { keyword: known.keyword, tag: known.tag, vr: known.vr };
  const entry = DicomMetaDictionary.nameMap[keywordOrTag] as { tag: string; vr: string } | undefined;
  if (!entry) return undefined;
  return { keyword: keywordOrTag, tag: entry.tag.replace(/[(),]/g, '').toUpperCase(), vr: vrOf(keywordOrTag, entry.vr) };
}

/** The dictionary lists alternatives (`US or SS`, `OB or OW`); the index knows what it keeps. */
function vrOf(keyword: string, dictionaryVr: string): string {
  const indexed = indexedAttributeByKeyword.get(keyword);
  if (indexed) return indexed.vr;
  return dictionaryVr.split(/\s+or\s+|\|/)[0];
}

/** One attribute from its DICOM string form (values joined by `\`, PN groups by `=`). */
export function attributeFromString(vr: string, text: string): DicomJsonAttribute {
  if (text === '') return { vr };
  const parts = SINGLE_TEXT_VRS.has(vr) ? [text] : text.split('\\');
  if (vr === 'PN') {
    return {
      vr,
      Value: parts.map((name) => {
        const [alphabetic, ideographic, phonetic] = name.split('=');
        return {
          ...(alphabetic ? { Alphabetic: alphabetic } : {}),
          ...(ideographic ? { Ideographic: ideographic } : {}),
          ...(phonetic ? { Phonetic: phonetic } : {}),
        };
      }),
    };
  }
  if (NUMBER_VRS.has(vr)) {
    return { vr, Value: parts.map((p) => (p.trim() === '' ? null : numberOrText(p.trim()))) };
  }
  return { vr, Value: parts.map((p) => (p === '' ? null : p)) };
}

const numberOrText = (text: string): number | string => {
  const n = Number(text);
  return Number.isFinite(n) ? n : text;
};

/** A dataset from keyword → DICOM string pairs, keys in tag order (PS3.18 F.2.1.1). */
export function datasetFromStrings(values: Readonly<Record<string, string | number>>): DicomJsonDataset {
  const entries: [string, DicomJsonAttribute][] = [];
  for (const [keyword, value] of Object.entries(values)) {
    const attribute = attributeOf(keyword);
    if (!attribute) continue;
    entries.push([attribute.tag, attributeFromString(attribute.vr, String(value))]);
  }
  return Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** A dcmjs dictionary (denaturalized dataset) as read by DicomMessage.readFile. */
export type DcmjsDict = Record<string, { vr: string; Value?: unknown[] }>;

export interface BulkDataPolicy {
  /** Binary values larger than this, at the top level, are referenced rather than inlined. */
  inlineMaxBytes: number;
  /** The BulkDataURI of a top-level attribute. */
  uriOf(tag: string): string;
}

/**
 * dcmjs's dictionary as DICOM JSON. Pixel data and large top-level binary values become
 * BulkDataURIs; other binary values are inlined in base64 (PS3.18 F.2.7). Bulk data inside
 * sequences is inlined: its URIs would need a path into the items.
 */
export function datasetFromDcmjs(dict: DcmjsDict, bulk: BulkDataPolicy | undefined): DicomJsonDataset {
  const out: DicomJsonDataset = {};
  for (const tag of Object.keys(dict).sort()) {
    const { vr, Value } = dict[tag];
    const upper = tag.toUpperCase();
    if (vr === 'SQ') {
      out[upper] = Value && Value.length > 0 ? { vr, Value: Value.map((item) => datasetFromDcmjs(item as DcmjsDict, undefined)) } : { vr };
      continue;
    }
    if (BINARY_VRS.has(vr) || upper === '7FE00010') {
      const buffers = (Value ?? []).filter((v): v is ArrayBuffer => v instanceof ArrayBuffer);
      const bytes = buffers.reduce((n, b) => n + b.byteLength, 0);
      if (bulk && (upper === '7FE00010' || bytes > bulk.inlineMaxBytes)) out[upper] = { vr, BulkDataURI: bulk.uriOf(upper) };
      else if (bytes > 0) out[upper] = { vr, InlineBinary: Buffer.concat(buffers.map((b) => Buffer.from(b))).toString('base64') };
      else out[upper] = { vr };
      continue;
    }
    const values = (Value ?? []).map((v) => (typeof v === 'string' && NUMBER_VRS.has(vr) ? numberOrText(v.trim()) : v));
    out[upper] =
      values.length > 0 && values.some((v) => v !== '' && v !== null && v !== undefined)
        ? { vr, Value: values.map((v) => (v === '' ? null : v)) }
        : { vr };
  }
  return out;
}

/** The JSON Schema of a DICOM JSON dataset, for route schemas and the OpenAPI document. */
export const dicomJsonDatasetSchema = {
  type: 'object',
  description: 'A dataset in the DICOM JSON model (PS3.18 F.2): tag (8 hex digits) → { vr, Value | InlineBinary | BulkDataURI }.',
  propertyNames: { pattern: '^[0-9A-F]{8}$' },
  additionalProperties: {
    type: 'object',
    required: ['vr'],
    properties: {
      vr: { type: 'string', pattern: '^[A-Z]{2}$' },
      Value: { type: 'array', items: {} },
      InlineBinary: { type: 'string' },
      BulkDataURI: { type: 'string' },
    },
  },
} as const;
