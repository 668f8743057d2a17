import fs from 'node:fs';
import * as nifti from 'nifti-reader-js';
import type { Grid } from './volume.ts';

/** A NIfTI-1/2 image read into the shared model's geometry (LPS mm, i fastest). */
export interface NiftiImage extends Grid {
  /** Voxel values of the first 3D volume, scl_slope/scl_inter applied when set. */
  data: Float64Array;
  /** Which transform gave the affine (NIfTI codes: 'sform', 'qform' or 'pixdim' when neither is set). */
  transform: 'sform' | 'qform' | 'pixdim';
}

// NIfTI datatype codes (nifti1.h) → how to read one value.
const READERS: Record<number, { bytes: number; get: (view: DataView, offset: number, little: boolean) => number }> = {
  2: { bytes: 1, get: (v, o) => v.getUint8(o) },
  4: { bytes: 2, get: (v, o, l) => v.getInt16(o, l) },
  8: { bytes: 4, get: (v, o, l) => v.getInt32(o, l) },
  16: { bytes: 4, get: (v, o, l) => v.getFloat32(o, l) },
  64: { bytes: 8, get: (v, o, l) => v.getFloat64(o, l) },
  256: { bytes: 1, get: (v, o) => v.getInt8(o) },
  512: { bytes: 2, get: (v, o, l) => v.getUint16(o, l) },
  768: { bytes: 4, get: (v, o, l) => v.getUint32(o, l) },
};

/**
 * Reads a .nii or .nii.gz file (nifti-reader-js parses the header). The affine follows nibabel's
 * and FSL's choice: the sform when sform_code > 0, else the qform when qform_code > 0, else the
 * pixel sizes alone. NIfTI world space is RAS; it is turned into DICOM's LPS by negating x and y.
 */
export function readNifti(file: string): NiftiImage {
  const bytes = fs.readFileSync(file);
  let data: ArrayBuffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  if (nifti.isCompressed(data)) data = nifti.decompress(data) as ArrayBuffer;
  if (!nifti.isNIFTI(data)) throw new Error(`${file} is not a NIfTI-1 or NIfTI-2 file`);
  const header = nifti.readHeader(data);
  const reader = READERS[header.datatypeCode];
  if (!reader) throw new Error(`${file}: NIfTI datatype ${header.datatypeCode} is not supported (integer or float scalars only)`);
  const dims: [number, number, number] = [header.dims[1], Math.max(1, header.dims[2]), Math.max(1, header.dims[3])];
  const { affine: ras, transform } = rasAffine(header, data);
  const affine = new Float64Array(16);
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) affine[r * 4 + c] = (r < 2 ? -1 : 1) * ras[r][c] || 0; // || 0: no −0
  affine[12] = affine[13] = affine[14] = 0;
  affine[15] = 1;
  const spacingMm = [0, 1, 2].map((c) => Math.hypot(affine[c], affine[4 + c], affine[8 + c])) as [number, number, number];

  const image = nifti.readImage(header, data);
  const view = new DataView(image);
  const count = dims[0] * dims[1] * dims[2];
  if (view.byteLength < count * reader.bytes)
    throw new Error(`${file}: the image holds ${view.byteLength} bytes, ${count * reader.bytes} expected`);
  const slope = header.scl_slope;
  const scaled = Number.isFinite(slope) && slope !== 0 && (slope !== 1 || header.scl_inter !== 0);
  const values = new Float64Array(count);
  for (let v = 0; v < count; v++) {
    const raw = reader.get(view, v * reader.bytes, header.littleEndian);
    values[v] = scaled ? raw * slope + header.scl_inter : raw;
  }
  return { dims, spacingMm, affine, data: values, transform };
}

function rasAffine(header: nifti.NIFTI1 | nifti.NIFTI2, data: ArrayBuffer): { affine: number[][]; transform: NiftiImage['transform'] } {
  if (header.sform_code > 0) {
    // nifti-reader-js prefers the qform when both are set; read the sform rows ourselves.
    const srow = header instanceof nifti.NIFTI1 ? sformNifti1(header, data) : header.affine;
    return { affine: srow, transform: 'sform' };
  }
  if (header.qform_code > 0) {
    const qfac = header.pixDims[0] === -1 ? -1 : 1;
    const m = header.convertNiftiQFormToNiftiSForm(
      header.quatern_b,
      header.quatern_c,
      header.quatern_d,
      header.qoffset_x,
      header.qoffset_y,
      header.qoffset_z,
      header.pixDims[1],
      header.pixDims[2],
      header.pixDims[3],
      qfac,
    );
    return { affine: m, transform: 'qform' };
  }
  return {
    affine: [
      [header.pixDims[1], 0, 0, 0],
      [0, header.pixDims[2], 0, 0],
      [0, 0, header.pixDims[3], 0],
      [0, 0, 0, 1],
    ],
    transform: 'pixdim',
  };
}

/** NIfTI-1 srow_x/y/z: 12 float32 at byte 280 (nifti1.h). */
function sformNifti1(header: nifti.NIFTI1, data: ArrayBuffer): number[][] {
  const view = new DataView(data);
  const rows: number[][] = [];
  for (let r = 0; r < 3; r++) rows.push([0, 1, 2, 3].map((c) => view.getFloat32(280 + (r * 4 + c) * 4, header.littleEndian)));
  rows.push([0, 0, 0, 1]);
  return rows;
}
