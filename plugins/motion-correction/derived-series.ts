import { createHash } from 'node:crypto';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import dcmjs from 'dcmjs';
import { IMPLEMENTATION_CLASS_UID, IMPLEMENTATION_VERSION_NAME } from '../../core/dicom/part10.ts';

/**
 * The corrected frames as a new, derived DICOM series: each output slice starts from its source
 * slice's data set (so patient, study, timing, PET and private attributes are kept), with new
 * Series and SOP Instance UIDs, Image Type DERIVED, a Derivation Description, references to the
 * source image and series, and the new pixels (signed 16-bit, a rescale slope per slice as PET
 * scanners write them).
 */

interface DcmjsElement {
  vr: string;
  Value: unknown[];
}
type DcmjsDict = Record<string, DcmjsElement>;
interface DcmjsDicomDict {
  meta: DcmjsDict;
  dict: DcmjsDict;
  write(options?: Record<string, unknown>): ArrayBuffer;
}
const { DicomMessage } = dcmjs.data as {
  DicomMessage: { readFile(buffer: ArrayBuffer, options?: Record<string, unknown>): DcmjsDicomDict };
};
dcmjs.log.setLevel('error');

const EXPLICIT_VR_LITTLE_ENDIAN = '1.2.840.10008.1.2.1';
/** PS3.16 CID 7202: "Source image for image processing operation". */
const PURPOSE_SOURCE_FOR_PROCESSING = {
  '00080100': sh('121322'),
  '00080102': sh('DCM'),
  '00080104': lo('Source image for image processing operation'),
};

export interface DerivedSeriesSpec {
  seriesInstanceUid: string;
  /** Seed for the instances' UIDs: the same seed and source give the same UID (idempotent reruns). */
  uidSeed: string;
  seriesNumber?: number;
  seriesDescription?: string;
  derivationDescription: string;
  sourceSeriesInstanceUid: string;
  outDir: string;
}

/** A UID 2.25.<128 bits> from a name (PS3.5 B.2; RFC 9562 version 8, name-based). */
export function uidFromName(name: string): string {
  const bytes = createHash('sha256').update(name).digest().subarray(0, 16);
  bytes[6] = (bytes[6] & 0x0f) | 0x80;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${bytes.toString('hex')}`).toString(10)}`;
}

/**
 * Writes one frame's slices (voxel order: column fastest, then row, then slice) as derived
 * instances next to their sources' attributes. Returns the written paths, slice order.
 */
export async function writeDerivedFrame(
  voxels: Float32Array,
  dims: readonly [number, number, number],
  sources: readonly { sopInstanceUid: string; path: string; frameNumber?: number }[],
  spec: DerivedSeriesSpec,
): Promise<string[]> {
  const [columns, rows, slices] = dims;
  if (sources.length !== slices) throw new Error(`writeDerivedFrame: ${sources.length} source slices for ${slices} slices`);
  await mkdir(spec.outDir, { recursive: true });
  const now = new Date();
  const date = now.toISOString().slice(0, 10).replace(/-/g, '');
  const time = now.toISOString().slice(11, 19).replace(/:/g, '');
  const written: string[] = [];
  for (let k = 0; k < slices; k++) {
    const source = sources[k];
    if (source.frameNumber !== undefined)
      throw new Error('writeDerivedFrame: multi-frame sources are not supported; the series must hold one image per file');
    const bytes = await readFile(source.path);
    const dicom = DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer, {
      ignoreErrors: true,
    });
    const dict = dicom.dict;
    const sopClassUid = String(dict['00080016']?.Value?.[0] ?? '');
    const sopInstanceUid = uidFromName(`${spec.uidSeed}/${source.sopInstanceUid}`);
    const imageType = (dict['00080008']?.Value ?? []).map(String);
    // PET Image module (PS3.3 C.8.9.4.1.2): value 1 ORIGINAL or DERIVED, value 2 PRIMARY.
    dict['00080008'] = { vr: 'CS', Value: ['DERIVED', 'PRIMARY', ...imageType.slice(2)] };
    dict['00080012'] = { vr: 'DA', Value: [date] };
    dict['00080013'] = { vr: 'TM', Value: [time] };
    dict['00080018'] = { vr: 'UI', Value: [sopInstanceUid] };
    dict['0020000E'] = { vr: 'UI', Value: [spec.seriesInstanceUid] };
    if (spec.seriesNumber !== undefined) dict['00200011'] = { vr: 'IS', Value: [spec.seriesNumber] };
    if (spec.seriesDescription !== undefined) dict['0008103E'] = { vr: 'LO', Value: [spec.seriesDescription.slice(0, 64)] };
    dict['00082111'] = { vr: 'ST', Value: [spec.derivationDescription.slice(0, 1024)] };
    const reference = { '00081150': ui(sopClassUid), '00081155': ui(source.sopInstanceUid) };
    dict['00082112'] = { vr: 'SQ', Value: [{ ...reference, '0040A170': { vr: 'SQ', Value: [PURPOSE_SOURCE_FOR_PROCESSING] } }] };
    dict['00081115'] = {
      vr: 'SQ',
      Value: [{ '0020000E': ui(spec.sourceSeriesInstanceUid), '0008114A': { vr: 'SQ', Value: [reference] } }],
    };

    const slice = voxels.subarray(k * rows * columns, (k + 1) * rows * columns);
    let maxAbs = 0;
    for (let n = 0; n < slice.length; n++) maxAbs = Math.max(maxAbs, Math.abs(slice[n]));
    // The stored values use the full signed range; the slope brings them back to the units.
    const slope = maxAbs > 0 ? Number((maxAbs / 32767).toPrecision(8)) : 1;
    const pixels = new Int16Array(slice.length);
    for (let n = 0; n < slice.length; n++) pixels[n] = Math.max(-32768, Math.min(32767, Math.round(slice[n] / slope)));
    dict['00280100'] = { vr: 'US', Value: [16] };
    dict['00280101'] = { vr: 'US', Value: [16] };
    dict['00280102'] = { vr: 'US', Value: [15] };
    dict['00280103'] = { vr: 'US', Value: [1] };
    dict['00281052'] = { vr: 'DS', Value: [0] };
    dict['00281053'] = { vr: 'DS', Value: [slope] };
    // Attributes about the old stored values would now be wrong.
    for (const tag of [
      '00280106',
      '00280107',
      '00280108',
      '00280109',
      '00280120',
      '00282110',
      '00282112',
      '00282114',
      '7FE00001',
      '7FE00002',
    ])
      delete dict[tag];
    dict['7FE00010'] = { vr: 'OW', Value: [pixels.buffer] };

    dicom.meta['00020002'] = ui(sopClassUid);
    dicom.meta['00020003'] = ui(sopInstanceUid);
    dicom.meta['00020010'] = ui(EXPLICIT_VR_LITTLE_ENDIAN);
    dicom.meta['00020012'] = ui(IMPLEMENTATION_CLASS_UID);
    dicom.meta['00020013'] = { vr: 'SH', Value: [IMPLEMENTATION_VERSION_NAME] };
    delete dicom.meta['00020016'];
    const file = path.join(spec.outDir, `${sopInstanceUid}.dcm`);
    await writeFile(file, Buffer.from(dicom.write()));
    written.push(file);
  }
  return written;
}

function ui(value: string): DcmjsElement {
  return { vr: 'UI', Value: [value] };
}
function sh(value: string): DcmjsElement {
  return { vr: 'SH', Value: [value] };
}
function lo(value: string): DcmjsElement {
  return { vr: 'LO', Value: [value] };
}
