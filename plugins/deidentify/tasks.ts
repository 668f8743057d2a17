import { createHmac } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { scanPart10 } from '../../core/dicom/dataset-scan.ts';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/part10.ts';
import { DEFLATED_EXPLICIT_VR_LE, EXPLICIT_VR_BE, IMPLICIT_VR_LE } from '../../core/dicom/transfer-syntaxes.ts';
import { dfError } from '../../core/errors.ts';
import { burnedInReason } from './burned-in.ts';
import { DatasetDeidentifier, uidFor, type DcmjsDict, type DcmjsElement, type SafePrivateTag } from './deidentify-dataset.ts';
import { Profile, type ProfileOptions } from './profile.ts';

/**
 * The deidentify step's work in the worker pool (ctx.runTask): read who each object's patient
 * is, then, with the pseudonyms the main thread took from the index, rewrite the objects. The
 * data set is parsed with its private elements (dcmjs's tag dictionary, not its naturalized
 * form, which drops them) and written back in its own transfer syntax. When the pixel data
 * element ends the data set (as it does but for trailing padding, which the profile removes),
 * only the elements before it are parsed and rewritten, and its bytes are copied after them as
 * they are: untouched, and never decoded or held twice (a 2 GB multi-frame object costs no more
 * than its header). Otherwise the whole data set goes through dcmjs.
 */

interface DcmjsDicomDict {
  meta: DcmjsDict;
  dict: DcmjsDict;
  write(options?: Record<string, unknown>): ArrayBuffer;
}
const { DicomMessage } = dcmjs.data as unknown as {
  DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DcmjsDicomDict };
};
dcmjs.log.setLevel('error');

export interface PatientIdentity {
  file: string;
  /** "<PatientID>\\<IssuerOfPatientID>", or "name:<PatientName>\\<BirthDate>" without a Patient ID. */
  key: string;
  name: string;
}

export interface PatientPseudonym {
  pseudonym: string;
  dateOffsetDays: number;
}

export interface DeidentifyFilesArg {
  files: string[];
  outDir: string;
  secretHex: string;
  patients: Record<string, PatientPseudonym>;
  profile: ProfileOptions;
  safePrivate: SafePrivateTag[];
  burnedIn: 'refuse' | 'fail' | 'allow';
}

export interface DeidentifiedFile {
  source: string;
  status: 'written' | 'refused';
  reason?: string;
  path?: string;
  originalSopInstanceUid: string;
  sopInstanceUid?: string;
  studyInstanceUid?: [string, string];
  seriesInstanceUid?: [string, string];
  removed?: number;
  replaced?: number;
  scrubbed?: number;
}

// PS3.16 CID 7050 "De-identification Method".
const METHOD_CODES = {
  basic: ['113100', 'Basic Application Confidentiality Profile'],
  cleanStructuredContent: ['113104', 'Clean Structured Content Option'],
  cleanDescriptors: ['113105', 'Clean Descriptors Option'],
  full: ['113106', 'Retain Longitudinal Temporal Information Full Dates Option'],
  modified: ['113107', 'Retain Longitudinal Temporal Information Modified Dates Option'],
  retainPatientCharacteristics: ['113108', 'Retain Patient Characteristics Option'],
  retainDeviceIdentity: ['113109', 'Retain Device Identity Option'],
  retainUids: ['113110', 'Retain UIDs Option'],
  retainSafePrivate: ['113111', 'Retain Safe Private Option'],
  retainInstitutionIdentity: ['113112', 'Retain Institution Identity Option'],
} as const;

const str = (dict: DcmjsDict, tag: string): string => {
  const v = dict[tag]?.Value?.[0];
  if (v && typeof v === 'object' && 'Alphabetic' in v) return String((v as { Alphabetic?: string }).Alphabetic ?? '');
  return v === undefined || v === null ? '' : String(v).trim();
};

export function patientKey(dict: DcmjsDict): string {
  const id = str(dict, '00100020');
  return id !== '' ? `${id}\\${str(dict, '00100021')}` : `name:${str(dict, '00100010')}\\${str(dict, '00100030')}`;
}

/** The pseudonym a new patient gets: "ANON" + 12 base-32 characters of an HMAC of the key. */
export function pseudonymFor(secretHex: string, key: string): PatientPseudonym {
  const mac = createHmac('sha256', Buffer.from(secretHex, 'hex')).update(`patient\0${key}`).digest();
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0n;
  for (const b of mac.subarray(0, 8)) bits = (bits << 8n) | BigInt(b);
  let code = '';
  for (let i = 0; i < 12; i++) code += alphabet[Number((bits >> BigInt(59 - 5 * i)) & 31n)];
  // One offset per patient, 1 to 10 years back: dates stay in the past, intervals unchanged.
  const dateOffsetDays = -(365 + (mac.readUInt32BE(8) % (3650 - 365 + 1)));
  return { pseudonym: `ANON${code}`, dateOffsetDays };
}

/**
 * The byte range of the pixel data element (header and value) when nothing but Data Set Trailing
 * Padding follows it, in a transfer syntax whose bytes are the file's (not deflated, not big
 * endian); else undefined.
 */
export function pixelDataRange(bytes: Buffer): { start: number; end: number } | undefined {
  let scan;
  try {
    scan = scanPart10(bytes);
  } catch {
    return undefined;
  }
  const syntax = (scan.string('x00020010') ?? '').replace(/\0/g, '').trim();
  if (syntax === '' || syntax === EXPLICIT_VR_BE || syntax === DEFLATED_EXPLICIT_VR_LE) return undefined;
  const pixel = scan.elements.x7fe00010;
  if (!pixel) return undefined;
  const after = Object.entries(scan.elements).filter(([, e]) => e.dataOffset > pixel.dataOffset);
  if (after.some(([tag]) => tag !== 'xfffcfffc')) return undefined;
  const headerLength = syntax === IMPLICIT_VR_LE ? 8 : 12;
  const start = pixel.dataOffset - headerLength;
  if (start < 0 || bytes.readUInt32LE(start) !== 0x00107fe0) return undefined;
  const padding = scan.elements.xfffcfffc;
  return { start, end: padding ? padding.dataOffset - headerLength : bytes.length };
}

function read(bytes: Buffer, untilPixelData: boolean): DcmjsDicomDict {
  const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  return DicomMessage.readFile(buffer, untilPixelData ? { ignoreErrors: true, untilTag: '7FE00010' } : { ignoreErrors: true });
}

export async function identifyPatients(arg: { files: string[] }): Promise<PatientIdentity[]> {
  const out: PatientIdentity[] = [];
  for (const file of arg.files) {
    const { dict } = read(await readFile(file), true);
    out.push({ file, key: patientKey(dict), name: str(dict, '00100010') });
  }
  return out;
}

function scrubTerms(dict: DcmjsDict): { identifiers: string[]; names: string[] } {
  const identifiers = [
    str(dict, '00100020'),
    str(dict, '00080050'),
    str(dict, '00100030'),
    ...((dict['00101000']?.Value ?? []) as unknown[]).map((v) => String(v ?? '').trim()),
  ];
  const fullName = str(dict, '00100010');
  const components = fullName
    .split(/[\^=]/)
    .map((c) => c.trim())
    .filter((c) => c.length >= 3);
  // Short IDs ("1", "42") would strip digits from every value; they are replaced, not searched for.
  return {
    identifiers: identifiers.filter((v) => v.length >= 4),
    names: [fullName, fullName.replace(/\^+/g, ' ').trim(), ...components].filter((v) => v.length >= 3),
  };
}

function methodElements(profile: ProfileOptions): { method: string[]; codes: (typeof METHOD_CODES)[keyof typeof METHOD_CODES][] } {
  const codes: (typeof METHOD_CODES)[keyof typeof METHOD_CODES][] = [METHOD_CODES.basic];
  if (profile.retainSafePrivate) codes.push(METHOD_CODES.retainSafePrivate);
  if (profile.retainUids) codes.push(METHOD_CODES.retainUids);
  if (profile.retainDeviceIdentity) codes.push(METHOD_CODES.retainDeviceIdentity);
  if (profile.retainInstitutionIdentity) codes.push(METHOD_CODES.retainInstitutionIdentity);
  if (profile.retainPatientCharacteristics) codes.push(METHOD_CODES.retainPatientCharacteristics);
  if (profile.longitudinalTemporal !== 'remove') codes.push(METHOD_CODES[profile.longitudinalTemporal]);
  if (profile.cleanDescriptors) codes.push(METHOD_CODES.cleanDescriptors);
  if (profile.cleanStructuredContent) codes.push(METHOD_CODES.cleanStructuredContent);
  return { method: ['DICOMFLOW DEIDENTIFY 1', 'PS3.15 E.1-1'], codes };
}

const el = (vr: string, ...values: unknown[]): DcmjsElement => ({ vr, Value: values });

export async function deidentifyFiles(arg: DeidentifyFilesArg): Promise<DeidentifiedFile[]> {
  const profile = new Profile(arg.profile);
  const uids = new Map<string, string>();
  const uid = (original: string) => {
    let u = uids.get(original);
    if (u === undefined) uids.set(original, (u = uidFor(arg.secretHex, original)));
    return u;
  };
  const { method, codes } = methodElements(arg.profile);
  await mkdir(arg.outDir, { recursive: true });
  const results: DeidentifiedFile[] = [];
  for (const file of arg.files) {
    const bytes = await readFile(file);
    const pixels = pixelDataRange(bytes);
    const dicom = read(bytes, pixels !== undefined);
    const { dict, meta } = dicom;
    // dcmjs leaves a stub for the tag it stopped at.
    if (pixels) delete dict['7FE00010'];
    const originalSop = str(dict, '00080018');
    const reason = burnedInReason({
      burnedInAnnotation: str(dict, '00280301'),
      recognizableVisualFeatures: str(dict, '00280302'),
      modality: str(dict, '00080060'),
      sopClassUid: str(dict, '00080016'),
    });
    if (reason !== undefined && arg.burnedIn !== 'allow') {
      if (arg.burnedIn === 'fail')
        throw dfError('DF_ERR_DEIDENTIFY_REFUSED', `${file} (SOP Instance ${originalSop}) may have burned-in annotation: ${reason}`);
      results.push({ source: file, status: 'refused', reason, originalSopInstanceUid: originalSop });
      continue;
    }
    const key = patientKey(dict);
    const patient = arg.patients[key];
    if (!patient) throw new Error(`${file}: no pseudonym was prepared for its patient (the file changed since the step read it)`);
    const originalStudy = str(dict, '0020000D');
    const originalSeries = str(dict, '0020000E');
    const deidentifier = new DatasetDeidentifier({
      profile,
      uid,
      dateOffsetDays: arg.profile.longitudinalTemporal === 'modified' ? patient.dateOffsetDays : undefined,
      pseudonym: patient.pseudonym,
      scrub: scrubTerms(dict),
      safePrivate: arg.safePrivate,
    });
    deidentifier.apply(dict);
    dict['00120062'] = el('CS', 'YES');
    dict['00120063'] = el('LO', ...method);
    dict['00120064'] = {
      vr: 'SQ',
      Value: codes.map(([value, meaning]) => ({ '00080100': el('SH', value), '00080102': el('SH', 'DCM'), '00080104': el('LO', meaning) })),
    };
    // PS3.3 C.7.1.1: whether dates and times are the real ones.
    dict['00280303'] = el(
      'CS',
      arg.profile.longitudinalTemporal === 'modified' ? 'MODIFIED' : arg.profile.longitudinalTemporal === 'full' ? 'UNMODIFIED' : 'REMOVED',
    );

    const sopInstanceUid = str(dict, '00080018');
    meta['00020003'] = el('UI', sopInstanceUid);
    meta['00020012'] = el('UI', IMPLEMENTATION_CLASS_UID);
    meta['00020013'] = el('SH', IMPLEMENTATION_VERSION_NAME);
    // Who sent it, and any private meta information, would say where it came from.
    for (const tag of ['00020016', '00020017', '00020018', '00020100', '00020102']) delete meta[tag];
    const out = path.join(arg.outDir, `${sopInstanceUid}.dcm`);
    const head = Buffer.from(dicom.write());
    await writeFile(out, pixels ? [head, bytes.subarray(pixels.start, pixels.end)] : head);
    results.push({
      source: file,
      status: 'written',
      path: out,
      originalSopInstanceUid: originalSop,
      sopInstanceUid,
      studyInstanceUid: [originalStudy, str(dict, '0020000D')],
      seriesInstanceUid: [originalSeries, str(dict, '0020000E')],
      ...deidentifier.counts,
    });
  }
  return results;
}
