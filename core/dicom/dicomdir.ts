/**
 * A DICOM File-set (PS3.10 8) kept as data, and its DICOMDIR (the Basic Directory IOD, PS3.3
 * Annex F) written from that data. Pure: no I/O, the caller reads and writes the bytes.
 *
 * The state is a list of entries, one per SOP Instance, each with the File ID it was given and
 * the directory keys written for it. Every update regenerates the whole DICOMDIR from the list,
 * so the same list always gives the same bytes.
 *
 * File IDs never come from DICOM values (a UID or a Patient ID may hold anything): the layout is
 * numbered, DICOM/Pnnnnnnn/Snnnnnnn/Ennnnnnn/Innnnnnn, one folder per patient, study and series
 * in order of arrival.
 */
import path from 'node:path';
import { fileMetaHeader } from './part10.ts';
import { EXPLICIT_VR_LE } from './transfer-syntaxes.ts';
import { elementHeader, encodeElement as encodeExplicit, encodeItem, LONG_VRS } from './element-encoding.ts';

/** PS3.6 Annex A: Media Storage Directory Storage, the SOP Class of a DICOMDIR. */
export const MEDIA_STORAGE_DIRECTORY_STORAGE = '1.2.840.10008.1.3.10';

// PS3.10 8.2: a File ID has 1 to 8 components of 1 to 8 characters from A-Z, 0-9 and underscore.
const FILE_ID_COMPONENT = /^[A-Z0-9_]{1,8}$/;
const MAX_FILE_ID_COMPONENTS = 8;
// PS3.10 8.2 limits a File-set ID to 16 characters of the same repertoire (ISO 9660 d-characters).
const FILE_SET_ID = /^[A-Z0-9_]{0,16}$/;

// PS3.5 9.1; leading zeros within a component are tolerated, as most readers do.
const UID = /^[0-9]+(\.[0-9]+)*$/;
const MAX_UID_LENGTH = 64;

const TOP_FOLDER = 'DICOM';
const NUMBER_DIGITS = 7;
const MAX_NUMBER = 10 ** NUMBER_DIGITS - 1;

export function isFileIdComponent(component: string): boolean {
  return FILE_ID_COMPONENT.test(component);
}

export function isFileId(fileId: readonly string[]): boolean {
  return fileId.length >= 1 && fileId.length <= MAX_FILE_ID_COMPONENTS && fileId.every(isFileIdComponent);
}

export function isFileSetId(id: string): boolean {
  return FILE_SET_ID.test(id);
}

/**
 * Where a File ID lives under the file-set's root directory. Throws on a File ID that is not
 * conformant, so a tampered index cannot make a caller write outside the root.
 */
export function fileIdPath(root: string, fileId: readonly string[]): string {
  if (!isFileId(fileId)) throw new Error(`not a conformant File ID: ${JSON.stringify(fileId)}`);
  return path.join(root, ...fileId);
}

/** The keys a directory record carries (PS3.3 F.5.1–F.5.4), as they are written. */
export interface DirectoryKeys {
  PatientName: string;
  PatientID: string;
  StudyDate: string;
  StudyTime: string;
  StudyDescription: string;
  StudyID: string;
  AccessionNumber: string;
  Modality: string;
  SeriesNumber: string;
  InstanceNumber: string;
}

/** One SOP Instance of the file-set. */
export interface FileSetEntry {
  fileId: string[];
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** What grouped the instance into its patient: the Patient ID, or the name when there is none. */
  patientKey: string;
  keys: DirectoryKeys;
  /** Size and SHA-256 of the file's bytes, when the caller records them. */
  size?: number;
  sha256?: string;
}

export interface FileSet {
  format: 'dicomflow-fileset';
  version: 1;
  /** PS3.10 7.1: the Media Storage SOP Instance UID of the DICOMDIR identifies the file-set. */
  fileSetUid: string;
  entries: FileSetEntry[];
}

/** What the caller knows about an object to file: UIDs from its File Meta Information, and its top-level attributes. */
export interface FileSetInstance {
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  /** Keyword → DICOM string value (multiple values joined by a backslash), already decoded. */
  attributes: Record<string, string | undefined>;
  /** ISO date-time the object arrived: the last resort for a missing Study Date or Time. */
  receivedAt: string;
}

export interface Placement {
  entry: FileSetEntry;
  /** False when the SOP Instance was already in the file-set (same File ID, no new record). */
  added: boolean;
  /** Values the DICOMDIR could not take as they were, and what was written instead. */
  notes: string[];
}

export function emptyFileSet(fileSetUid: string): FileSet {
  return { format: 'dicomflow-fileset', version: 1, fileSetUid, entries: [] };
}

/**
 * Gives each instance its File ID and keys. Returns a new file-set (the given one is not
 * changed) and one placement per instance, in order. An instance already present keeps its File
 * ID. A study stays under the patient it first came with (PS3.3 F.5.2: one Study record per
 * Study Instance UID), a series under its first study.
 */
export function placeInstances(fileSet: FileSet, instances: readonly FileSetInstance[]): { fileSet: FileSet; placements: Placement[] } {
  const entries = [...fileSet.entries];
  const bySop = new Map<string, FileSetEntry>();
  const patientFolder = new Map<string, string>();
  const studyFolders = new Map<string, string[]>();
  const seriesFolders = new Map<string, string[]>();
  // Highest number used under each parent folder ('' for the patients' level).
  const highest = new Map<string, number>();
  // A folder belongs to the patient, study or series of the first instance filed in it (the one
  // that made it); instances filed there later because of their study or series do not claim it.
  const owner = new Map<string, string>();
  const remember = (entry: FileSetEntry) => {
    const [, patient, study, series, instance] = entry.fileId;
    bySop.set(entry.sopInstanceUid, entry);
    const claim = <V>(folder: string, map: Map<string, V>, key: string, value: V) => {
      if (owner.has(folder)) return;
      owner.set(folder, key);
      if (!map.has(key)) map.set(key, value);
    };
    claim(patient, patientFolder, entry.patientKey, patient);
    claim(`${patient}/${study}`, studyFolders, entry.studyInstanceUid, [patient, study]);
    claim(`${patient}/${study}/${series}`, seriesFolders, entry.seriesInstanceUid, [patient, study, series]);
    const parents = ['', patient, `${patient}/${study}`, `${patient}/${study}/${series}`];
    [patient, study, series, instance].forEach((folder, level) => {
      const n = folderNumber(folder);
      if (n > (highest.get(parents[level]) ?? 0)) highest.set(parents[level], n);
    });
  };
  [...entries].sort(byFileId).forEach(remember);
  const next = (parent: string, prefix: string): string => {
    const n = (highest.get(parent) ?? 0) + 1;
    if (n > MAX_NUMBER) throw new Error(`file-set folder ${parent || '(root)'} is full (${MAX_NUMBER} entries)`);
    highest.set(parent, n);
    return `${prefix}${String(n).padStart(NUMBER_DIGITS, '0')}`;
  };

  const placements: Placement[] = [];
  for (const instance of instances) {
    for (const uid of ['sopClassUid', 'sopInstanceUid', 'transferSyntaxUid', 'studyInstanceUid', 'seriesInstanceUid'] as const) {
      // The DICOMDIR repeats these UIDs; one that is not a UID would make the whole file invalid.
      if (!UID.test(instance[uid] ?? '') || instance[uid].length > MAX_UID_LENGTH)
        throw new Error(
          `cannot file SOP Instance ${JSON.stringify(instance.sopInstanceUid)}: its ${uid} ${JSON.stringify(instance[uid])} is not a UID (PS3.5 9.1: digits and dots, at most 64)`,
        );
    }
    const existing = bySop.get(instance.sopInstanceUid);
    if (existing) {
      placements.push({ entry: existing, added: false, notes: [] });
      continue;
    }
    const notes: string[] = [];
    const patientKey = patientKeyOf(instance.attributes);
    let folders = seriesFolders.get(instance.seriesInstanceUid);
    if (!folders) {
      let study = studyFolders.get(instance.studyInstanceUid);
      if (!study) {
        const patient = patientFolder.get(patientKey) ?? next('', 'P');
        study = [patient, next(patient, 'S')];
      }
      folders = [...study, next(study.join('/'), 'E')];
    }
    const fileId = [TOP_FOLDER, ...folders, next(folders.join('/'), 'I')];
    const entry: FileSetEntry = {
      fileId,
      sopClassUid: instance.sopClassUid,
      sopInstanceUid: instance.sopInstanceUid,
      transferSyntaxUid: instance.transferSyntaxUid,
      studyInstanceUid: instance.studyInstanceUid,
      seriesInstanceUid: instance.seriesInstanceUid,
      patientKey,
      keys: directoryKeys(instance, fileId, notes),
    };
    entries.push(entry);
    remember(entry);
    // Folders just made are this instance's own; an older one may belong to another study or patient.
    const [, patient, study] = fileId;
    if (owner.get(`${patient}/${study}`) !== instance.studyInstanceUid) {
      notes.push(
        `series ${instance.seriesInstanceUid} is already filed under study ${owner.get(`${patient}/${study}`)}; filed with its series`,
      );
    } else if (owner.get(patient) !== patientKey) {
      notes.push(`study ${instance.studyInstanceUid} is already filed under another patient; filed with its study`);
    }
    placements.push({ entry, added: true, notes });
  }
  return { fileSet: { ...fileSet, entries }, placements };
}

function folderNumber(folder: string): number {
  const n = Number(folder.slice(1));
  return Number.isInteger(n) ? n : 0;
}

function patientKeyOf(attributes: Record<string, string | undefined>): string {
  const id = firstValue(attributes.PatientID);
  return id ? `id:${id}` : `name:${firstValue(attributes.PatientName)}`;
}

// ---------------------------------------------------------------------------------------------
// Keys: the record's values must be valid even when the object's are not, or the whole
// DICOMDIR fails validation. Type 1 keys (PS3.3 F.5) that are missing or malformed get a
// stand-in, and a note says so.

const DATE = /^\d{4}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])$/;
const TIME = /^([01]\d|2[0-3])([0-5]\d([0-5]\d(\.\d{1,6})?)?)?$/;
const INTEGER = /^[+-]?\d{1,12}$/;
const CODE = /^[A-Z0-9_ ]{1,16}$/;

function directoryKeys(instance: FileSetInstance, fileId: string[], notes: string[]): DirectoryKeys {
  const a = instance.attributes;
  const [, patient, study, series, image] = fileId;
  const received = instance.receivedAt.replace(/[-:]/g, '');
  const problem = (keyword: string) => `${keyword} ${a[keyword] ? `"${a[keyword]}" is not valid` : 'is missing'}`;
  // The first valid value among the keywords; taking another attribute's value is worth a note.
  const firstOf = (keywords: string[], valid: (v: string) => string | undefined): string | undefined => {
    for (const k of keywords) {
      const v = valid(firstValue(a[k]));
      if (v === undefined) continue;
      if (k !== keywords[0]) notes.push(`${problem(keywords[0])}; wrote the ${k} "${v}"`);
      return v;
    }
    return undefined;
  };
  const required = (keyword: string, value: string | undefined, standIn: string): string => {
    if (value !== undefined) return value;
    notes.push(`${problem(keyword)}; wrote "${standIn}"`);
    return standIn;
  };
  const date = (v: string) =>
    DATE.test(v) ? v : /^\d{4}\.\d{2}\.\d{2}$/.test(v) && DATE.test(v.replace(/\./g, '')) ? v.replace(/\./g, '') : undefined;
  const time = (v: string) => {
    const t = v.replace(/:/g, '');
    return TIME.test(t) ? t : undefined;
  };
  const integer = (v: string) => (INTEGER.test(v) && Math.abs(Number(v)) <= 2 ** 31 - 1 ? String(Number(v)) : undefined);
  const text = (max: number) => (v: string) => cleanText(v, max) || undefined;
  return {
    PatientName: cleanName(firstValue(a.PatientName)),
    PatientID: required('PatientID', text(64)(firstValue(a.PatientID)), patient),
    StudyDate: required(
      'StudyDate',
      firstOf(['StudyDate', 'SeriesDate', 'AcquisitionDate', 'ContentDate'], date),
      date(received.slice(0, 8)) ?? '19700101',
    ),
    StudyTime: required(
      'StudyTime',
      firstOf(['StudyTime', 'SeriesTime', 'AcquisitionTime', 'ContentTime'], time),
      time(received.slice(9, 15)) ?? '000000',
    ),
    StudyDescription: cleanText(firstValue(a.StudyDescription), 64),
    StudyID: required('StudyID', text(16)(firstValue(a.StudyID)), study),
    AccessionNumber: cleanText(firstValue(a.AccessionNumber), 16),
    Modality: required('Modality', CODE.test(firstValue(a.Modality)) ? firstValue(a.Modality) : undefined, 'OT'),
    SeriesNumber: required('SeriesNumber', integer(firstValue(a.SeriesNumber)), String(folderNumber(series))),
    InstanceNumber: required('InstanceNumber', integer(firstValue(a.InstanceNumber)), String(folderNumber(image))),
  };
}

/** The first of a multi-valued string, trimmed (every key here has VM 1). */
function firstValue(value: string | undefined): string {
  return (value ?? '').split('\\')[0].trim();
}

/** SH/LO text: no control characters, at most max characters (PS3.5 6.2). */
function cleanText(value: string, max: number): string {
  return [...value.replace(/[\u0000-\u001f\u007f]/g, ' ')].slice(0, max).join('').trim();
}

/** PN: up to three component groups of at most 64 characters each (PS3.5 6.2). */
function cleanName(value: string): string {
  return value
    .split('=')
    .slice(0, 3)
    .map((group) => cleanText(group, 64))
    .join('=')
    .replace(/=+$/, '');
}

// ---------------------------------------------------------------------------------------------
// The index file: read back with checks, since it lives in a directory people can edit.

/** Parses and checks a saved file-set (the JSON of a FileSet). Throws on anything unexpected. */
export function parseFileSet(json: string): FileSet {
  const data = JSON.parse(json) as FileSet;
  if (data?.format !== 'dicomflow-fileset' || data.version !== 1)
    throw new Error('not a dicomflow file-set index (format "dicomflow-fileset", version 1)');
  if (typeof data.fileSetUid !== 'string' || !Array.isArray(data.entries)) throw new Error('file-set index lacks fileSetUid or entries');
  const seen = new Set<string>();
  for (const [i, e] of data.entries.entries()) {
    const where = `file-set index entry ${i}`;
    if (!Array.isArray(e?.fileId) || e.fileId.length !== 5 || e.fileId[0] !== TOP_FOLDER || !isFileId(e.fileId))
      throw new Error(`${where}: bad fileId ${JSON.stringify(e?.fileId)}`);
    for (const k of [
      'sopClassUid',
      'sopInstanceUid',
      'transferSyntaxUid',
      'studyInstanceUid',
      'seriesInstanceUid',
      'patientKey',
    ] as const) {
      if (typeof e[k] !== 'string') throw new Error(`${where}: ${k} is not a string`);
    }
    if (typeof e.keys !== 'object' || e.keys === null) throw new Error(`${where}: keys missing`);
    const id = e.fileId.join('/');
    if (seen.has(id) || seen.has(e.sopInstanceUid)) throw new Error(`${where}: duplicate File ID or SOP Instance UID`);
    seen.add(id);
    seen.add(e.sopInstanceUid);
  }
  return data;
}

// ---------------------------------------------------------------------------------------------
// The DICOMDIR bytes: Explicit VR Little Endian, every sequence and item of explicit length, so
// each record's position is known before it is written.

type RecordType = 'PATIENT' | 'STUDY' | 'SERIES' | 'IMAGE';

interface Element {
  tag: number;
  vr: string;
  value: Buffer;
}

interface DirectoryRecord {
  type: RecordType;
  /** The keys and references, without the three Directory Elements that hold offsets. */
  elements: Element[];
  children: DirectoryRecord[];
}

function encodeElement({ tag, vr, value }: Element): Buffer {
  if (!LONG_VRS.has(vr) && value.length > 0xfffe)
    throw new Error(`value of (${tag.toString(16).padStart(8, '0')}) is too long for VR ${vr}`);
  return encodeExplicit(tag, vr, value, true);
}

function elementLength(e: Element): number {
  return (LONG_VRS.has(e.vr) ? 12 : 8) + e.value.length;
}

/** PS3.5 7.1.1: values have even length; UIDs are padded with NUL, text with a space. */
function padded(bytes: Buffer, pad: number): Buffer {
  return bytes.length % 2 === 0 ? bytes : Buffer.concat([bytes, Buffer.from([pad])]);
}

const ascii = (tag: number, vr: string, value: string): Element => ({
  tag,
  vr,
  value: padded(Buffer.from(value, 'latin1'), vr === 'UI' ? 0 : 0x20),
});
const ul = (tag: number, value: number): Element => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value, 0);
  return { tag, vr: 'UL', value: b };
};
const us = (tag: number, value: number): Element => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value, 0);
  return { tag, vr: 'US', value: b };
};

/**
 * Text keys of one record, with Specific Character Set (0008,0005) only when a value leaves the
 * default repertoire (PS3.3 F.5: "Required if an extended or replacement character set is used").
 */
function textKeys(keys: { tag: number; vr: string; value: string }[]): Element[] {
  const all = keys.map((k) => k.value).join('');
  const charset = /^[\u0000-\u007f]*$/.test(all) ? undefined : /^[\u0000-\u00ff]*$/.test(all) ? 'ISO_IR 100' : 'ISO_IR 192';
  const encoding: BufferEncoding = charset === 'ISO_IR 192' ? 'utf8' : 'latin1';
  const elements = keys.map((k) => ({ tag: k.tag, vr: k.vr, value: padded(Buffer.from(k.value, encoding), 0x20) }));
  if (charset) elements.push(ascii(0x00080005, 'CS', charset));
  return elements;
}

/** The directory records of a file-set: patients, their studies, series and images, in File ID order. */
function directoryRecords(fileSet: FileSet): DirectoryRecord[] {
  const sorted = [...fileSet.entries].sort(byFileId);
  const patients: DirectoryRecord[] = [];
  let last: FileSetEntry | undefined;
  let patient: DirectoryRecord | undefined;
  let study: DirectoryRecord | undefined;
  let series: DirectoryRecord | undefined;
  for (const e of sorted) {
    const same = (level: number) =>
      last !== undefined && last.fileId.slice(0, level + 1).join('/') === e.fileId.slice(0, level + 1).join('/');
    if (!same(1) || !patient) {
      patient = {
        type: 'PATIENT',
        children: [],
        elements: textKeys([
          { tag: 0x00100010, vr: 'PN', value: e.keys.PatientName },
          { tag: 0x00100020, vr: 'LO', value: e.keys.PatientID },
        ]),
      };
      patients.push(patient);
    }
    if (!same(2) || !study) {
      study = {
        type: 'STUDY',
        children: [],
        elements: [
          ascii(0x00080020, 'DA', e.keys.StudyDate),
          ascii(0x00080030, 'TM', e.keys.StudyTime),
          ascii(0x0020000d, 'UI', e.studyInstanceUid),
          ...textKeys([
            { tag: 0x00080050, vr: 'SH', value: e.keys.AccessionNumber },
            { tag: 0x00081030, vr: 'LO', value: e.keys.StudyDescription },
            { tag: 0x00200010, vr: 'SH', value: e.keys.StudyID },
          ]),
        ],
      };
      patient.children.push(study);
    }
    if (!same(3) || !series) {
      series = {
        type: 'SERIES',
        children: [],
        elements: [
          ascii(0x00080060, 'CS', e.keys.Modality),
          ascii(0x0020000e, 'UI', e.seriesInstanceUid),
          ascii(0x00200011, 'IS', e.keys.SeriesNumber),
        ],
      };
      study.children.push(series);
    }
    series.children.push({
      type: 'IMAGE',
      children: [],
      elements: [
        // PS3.10 8.5 / PS3.3 F.3.2.2: the File ID as a multi-valued CS, one value per component.
        ascii(0x00041500, 'CS', e.fileId.join('\\')),
        ascii(0x00041510, 'UI', e.sopClassUid),
        ascii(0x00041511, 'UI', e.sopInstanceUid),
        ascii(0x00041512, 'UI', e.transferSyntaxUid),
        ascii(0x00200013, 'IS', e.keys.InstanceNumber),
      ],
    });
    last = e;
  }
  return patients;
}

function byFileId(x: FileSetEntry, y: FileSetEntry): number {
  const a = x.fileId.join('/');
  const b = y.fileId.join('/');
  return a < b ? -1 : a > b ? 1 : 0;
}

// Item (FFFE,E000) tag and length: 8 bytes, in every transfer syntax.
const ITEM_HEADER = 8;

function recordElements(record: DirectoryRecord, nextOffset: number, lowerOffset: number): Element[] {
  return [
    ul(0x00041400, nextOffset),
    // PS3.3 F.3.2.2: FFFFH, the record is in use.
    us(0x00041410, 0xffff),
    ul(0x00041420, lowerOffset),
    ascii(0x00041430, 'CS', record.type),
    ...record.elements,
  ].sort((x, y) => x.tag - y.tag);
}

export interface DicomdirOptions {
  /** File-set ID (0004,1130): up to 16 of A–Z, 0–9, underscore; may be empty (Type 2). */
  fileSetId: string;
}

/**
 * The DICOMDIR of a file-set, as the bytes of a Part 10 file. Offsets are counted from the
 * first byte of the file: PS3.3 F.3.2.2 counts from the File Meta Information, which includes
 * the 128-byte preamble and the DICM prefix (PS3.10 7.1).
 */
export function buildDicomdir(fileSet: FileSet, options: DicomdirOptions): Buffer {
  if (!isFileSetId(options.fileSetId)) throw new Error(`File-set ID "${options.fileSetId}" is not up to 16 of A-Z, 0-9, _ (PS3.10 8.2)`);
  const meta = fileMetaHeader({
    sopClassUid: MEDIA_STORAGE_DIRECTORY_STORAGE,
    sopInstanceUid: fileSet.fileSetUid,
    transferSyntaxUid: EXPLICIT_VR_LE,
  });

  // Depth-first order: each record, then its lower-level entity, then its next sibling.
  const order: { record: DirectoryRecord; siblings: DirectoryRecord[]; index: number }[] = [];
  const visit = (records: DirectoryRecord[]) =>
    records.forEach((record, index) => {
      order.push({ record, siblings: records, index });
      visit(record.children);
    });
  const patients = directoryRecords(fileSet);
  visit(patients);

  const head = (first: number, last: number, sequenceLength: number): Buffer =>
    Buffer.concat([
      encodeElement(ascii(0x00041130, 'CS', options.fileSetId)),
      encodeElement(ul(0x00041200, first)),
      encodeElement(ul(0x00041202, last)),
      // PS3.3 F.3.2.1: 0000H, no known inconsistencies.
      encodeElement(us(0x00041212, 0)),
      elementHeader(0x00041220, 'SQ', sequenceLength, true),
    ]);
  // The offsets' values do not change any length: size everything first, then place it.
  const sizes = order.map(({ record }) => ITEM_HEADER + recordElements(record, 0, 0).reduce((n, e) => n + elementLength(e), 0));
  const offsets = new Map<DirectoryRecord, number>();
  let at = meta.length + head(0, 0, 0).length;
  order.forEach(({ record }, i) => {
    offsets.set(record, at);
    at += sizes[i];
  });
  const offsetOf = (record: DirectoryRecord | undefined) => (record ? offsets.get(record)! : 0);

  const items = order.map(({ record, siblings, index }) => {
    return encodeItem(
      Buffer.concat(recordElements(record, offsetOf(siblings[index + 1]), offsetOf(record.children[0])).map(encodeElement)),
    );
  });
  const sequenceLength = sizes.reduce((n, s) => n + s, 0);
  return Buffer.concat([meta, head(offsetOf(patients[0]), offsetOf(patients.at(-1)), sequenceLength), ...items]);
}
