import type { CapturedElement } from './dataset-walker.ts';

export type Level = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

export interface IndexedAttribute {
  keyword: string;
  tag: number;
  vr: string;
  level: Level;
}

/**
 * The attributes the index keeps per level, read from every received object's top level.
 * Values are stored as DICOM strings (multi-values joined with a backslash) so that C-FIND
 * matching and responses see them as they were sent.
 */
export const indexedAttributes: readonly IndexedAttribute[] = [
  { keyword: 'SpecificCharacterSet', tag: 0x00080005, vr: 'CS', level: 'IMAGE' },
  { keyword: 'ImageType', tag: 0x00080008, vr: 'CS', level: 'IMAGE' },
  { keyword: 'SOPClassUID', tag: 0x00080016, vr: 'UI', level: 'IMAGE' },
  { keyword: 'SOPInstanceUID', tag: 0x00080018, vr: 'UI', level: 'IMAGE' },
  { keyword: 'StudyDate', tag: 0x00080020, vr: 'DA', level: 'STUDY' },
  { keyword: 'SeriesDate', tag: 0x00080021, vr: 'DA', level: 'SERIES' },
  { keyword: 'AcquisitionDate', tag: 0x00080022, vr: 'DA', level: 'IMAGE' },
  { keyword: 'ContentDate', tag: 0x00080023, vr: 'DA', level: 'IMAGE' },
  { keyword: 'StudyTime', tag: 0x00080030, vr: 'TM', level: 'STUDY' },
  { keyword: 'SeriesTime', tag: 0x00080031, vr: 'TM', level: 'SERIES' },
  { keyword: 'AcquisitionTime', tag: 0x00080032, vr: 'TM', level: 'IMAGE' },
  { keyword: 'ContentTime', tag: 0x00080033, vr: 'TM', level: 'IMAGE' },
  { keyword: 'AccessionNumber', tag: 0x00080050, vr: 'SH', level: 'STUDY' },
  { keyword: 'Modality', tag: 0x00080060, vr: 'CS', level: 'SERIES' },
  { keyword: 'Manufacturer', tag: 0x00080070, vr: 'LO', level: 'SERIES' },
  { keyword: 'InstitutionName', tag: 0x00080080, vr: 'LO', level: 'STUDY' },
  { keyword: 'ReferringPhysicianName', tag: 0x00080090, vr: 'PN', level: 'STUDY' },
  { keyword: 'StationName', tag: 0x00081010, vr: 'SH', level: 'SERIES' },
  { keyword: 'StudyDescription', tag: 0x00081030, vr: 'LO', level: 'STUDY' },
  { keyword: 'SeriesDescription', tag: 0x0008103e, vr: 'LO', level: 'SERIES' },
  { keyword: 'PatientName', tag: 0x00100010, vr: 'PN', level: 'PATIENT' },
  { keyword: 'PatientID', tag: 0x00100020, vr: 'LO', level: 'PATIENT' },
  { keyword: 'IssuerOfPatientID', tag: 0x00100021, vr: 'LO', level: 'PATIENT' },
  { keyword: 'PatientBirthDate', tag: 0x00100030, vr: 'DA', level: 'PATIENT' },
  { keyword: 'PatientBirthTime', tag: 0x00100032, vr: 'TM', level: 'PATIENT' },
  { keyword: 'PatientSex', tag: 0x00100040, vr: 'CS', level: 'PATIENT' },
  { keyword: 'PatientAge', tag: 0x00101010, vr: 'AS', level: 'STUDY' },
  { keyword: 'PatientSize', tag: 0x00101020, vr: 'DS', level: 'STUDY' },
  { keyword: 'PatientWeight', tag: 0x00101030, vr: 'DS', level: 'STUDY' },
  { keyword: 'BodyPartExamined', tag: 0x00180015, vr: 'CS', level: 'SERIES' },
  { keyword: 'ProtocolName', tag: 0x00181030, vr: 'LO', level: 'SERIES' },
  { keyword: 'StudyInstanceUID', tag: 0x0020000d, vr: 'UI', level: 'STUDY' },
  { keyword: 'SeriesInstanceUID', tag: 0x0020000e, vr: 'UI', level: 'SERIES' },
  { keyword: 'StudyID', tag: 0x00200010, vr: 'SH', level: 'STUDY' },
  { keyword: 'SeriesNumber', tag: 0x00200011, vr: 'IS', level: 'SERIES' },
  { keyword: 'AcquisitionNumber', tag: 0x00200012, vr: 'IS', level: 'IMAGE' },
  { keyword: 'InstanceNumber', tag: 0x00200013, vr: 'IS', level: 'IMAGE' },
  { keyword: 'FrameOfReferenceUID', tag: 0x00200052, vr: 'UI', level: 'SERIES' },
  { keyword: 'NumberOfFrames', tag: 0x00280008, vr: 'IS', level: 'IMAGE' },
  { keyword: 'Rows', tag: 0x00280010, vr: 'US', level: 'IMAGE' },
  { keyword: 'Columns', tag: 0x00280011, vr: 'US', level: 'IMAGE' },
  { keyword: 'PerformedProcedureStepStartDate', tag: 0x00400244, vr: 'DA', level: 'SERIES' },
  { keyword: 'SeriesType', tag: 0x00541000, vr: 'CS', level: 'SERIES' },
  { keyword: 'Units', tag: 0x00541001, vr: 'CS', level: 'SERIES' },
];

const byTag = new Map(indexedAttributes.map((a) => [a.tag, a]));
const SPECIFIC_CHARACTER_SET = 0x00080005;

/** Whether readIndexedAttributes reads this top-level element (an indexed attribute, or the character set). */
export function isIndexedTag(tag: number): boolean {
  return byTag.has(tag) || tag === SPECIFIC_CHARACTER_SET;
}
export const indexedAttributeByKeyword = new Map(indexedAttributes.map((a) => [a.keyword, a]));

const TEXT_VRS = new Set(['PN', 'LO', 'SH', 'LT', 'ST', 'UT', 'UC']);

// PS3.3 C.12.1.1.2 defined terms → WHATWG encoding labels (TextDecoder knows all of these).
const CHARSETS: Record<string, string> = {
  '': 'latin1',
  ISO_IR_6: 'latin1',
  'ISO 2022 IR 6': 'latin1',
  ISO_IR_100: 'latin1',
  'ISO 2022 IR 100': 'latin1',
  ISO_IR_101: 'iso-8859-2',
  ISO_IR_109: 'iso-8859-3',
  ISO_IR_110: 'iso-8859-4',
  ISO_IR_144: 'iso-8859-5',
  ISO_IR_127: 'iso-8859-6',
  ISO_IR_126: 'iso-8859-7',
  ISO_IR_138: 'iso-8859-8',
  ISO_IR_148: 'iso-8859-9',
  ISO_IR_166: 'windows-874',
  ISO_IR_13: 'shift_jis',
  'ISO 2022 IR 87': 'iso-2022-jp',
  'ISO 2022 IR 149': 'euc-kr',
  ISO_IR_192: 'utf-8',
  GB18030: 'gb18030',
  GBK: 'gbk',
};

/** One decoder per label, made once: every received object decodes its attributes. */
const decoders = new Map<string, TextDecoder>();

function decoderFor(specificCharacterSet: string | undefined): TextDecoder {
  // With code extensions (several values) the first names the default repertoire; ISO 2022
  // escape handling beyond that is left to the decoder of the extension, which is what most
  // archives do too.
  const terms = (specificCharacterSet ?? '').split('\\').map((t) => t.trim().replace(/^ISO_IR (\d+)$/, 'ISO_IR_$1'));
  const label = CHARSETS[terms.find((t) => t !== '') ?? ''] ?? 'latin1';
  let decoder = decoders.get(label);
  if (!decoder) {
    try {
      decoder = new TextDecoder(label);
    } catch {
      decoder = new TextDecoder('latin1');
    }
    decoders.set(label, decoder);
  }
  return decoder;
}

function decodeValue(vr: string, value: Buffer, littleEndian: boolean, text: TextDecoder): string {
  const numbers = (size: number, read: (at: number) => number) => {
    const out: number[] = [];
    for (let i = 0; i + size <= value.length; i += size) out.push(read(i));
    return out.join('\\');
  };
  switch (vr) {
    case 'US':
      return numbers(2, (i) => (littleEndian ? value.readUInt16LE(i) : value.readUInt16BE(i)));
    case 'SS':
      return numbers(2, (i) => (littleEndian ? value.readInt16LE(i) : value.readInt16BE(i)));
    case 'UL':
      return numbers(4, (i) => (littleEndian ? value.readUInt32LE(i) : value.readUInt32BE(i)));
    case 'SL':
      return numbers(4, (i) => (littleEndian ? value.readInt32LE(i) : value.readInt32BE(i)));
    case 'FL':
      return numbers(4, (i) => (littleEndian ? value.readFloatLE(i) : value.readFloatBE(i)));
    case 'FD':
      return numbers(8, (i) => (littleEndian ? value.readDoubleLE(i) : value.readDoubleBE(i)));
    case 'OB':
    case 'OW':
    case 'OF':
    case 'OD':
    case 'OL':
    case 'OV':
    case 'UN':
    case 'SQ':
      return '';
    case 'UI':
      return value.toString('latin1').replace(/[\0 ]+$/, '');
    default: {
      const s = TEXT_VRS.has(vr) ? text.decode(value) : value.toString('latin1');
      // PS3.5 6.2: trailing spaces are padding; leading spaces are significant only for LT/ST/UT.
      const trimmed = s.replace(/[\0 ]+$/, '');
      return vr === 'LT' || vr === 'ST' || vr === 'UT' ? trimmed : trimmed.replace(/^ +/, '');
    }
  }
}

/** Decodes the indexed attributes from a walker's captured top-level elements. */
export function readIndexedAttributes(
  elements: Map<number, CapturedElement>,
  littleEndian: boolean,
  extra?: ReadonlyMap<number, { keyword: string; vr: string }>,
): Record<string, string> {
  const charsetElement = elements.get(SPECIFIC_CHARACTER_SET);
  const charset = charsetElement ? charsetElement.value.toString('latin1').replace(/[\0 ]+$/, '') : undefined;
  const text = decoderFor(charset);
  const out: Record<string, string> = {};
  for (const [tag, element] of elements) {
    const attribute = byTag.get(tag) ?? extra?.get(tag);
    if (!attribute) continue;
    // In implicit VR the walker has no VR; the dictionary's is the right one for these keys.
    const vr = element.vr === '' || element.vr === 'UN' ? attribute.vr : element.vr;
    out[attribute.keyword] = decodeValue(vr, element.value, littleEndian, text);
  }
  return out;
}

export function attributesOfLevel(attributes: Record<string, string>, level: Level): Record<string, string> {
  const out: Record<string, string> = {};
  for (const a of indexedAttributes) {
    if (a.level === level && attributes[a.keyword] !== undefined) out[a.keyword] = attributes[a.keyword];
  }
  return out;
}
