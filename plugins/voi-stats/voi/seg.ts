import fs from 'node:fs';
import dcmjs from 'dcmjs';
import type { Grid } from '../../../core/dicom/volume.ts';
import { applyAffine, voxelCount, type Vec3 } from './grid-space.ts';
import type { Voi } from './voi.ts';

export const SEGMENTATION_STORAGE = '1.2.840.10008.5.1.4.1.1.66.4';
const UNCOMPRESSED = new Set(['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);

type Item = Record<string, any>;

/** A decoded DICOM Segmentation (PS3.3 A.51): its segments and frames, before any resampling. */
export interface Segmentation {
  sopInstanceUid: string;
  studyInstanceUid: string;
  frameOfReferenceUid?: string;
  segmentationType: 'BINARY' | 'FRACTIONAL';
  rows: number;
  columns: number;
  segments: { number: number; label: string }[];
  frames: SegFrame[];
}

export interface SegFrame {
  segmentNumber: number;
  positionMm: Vec3;
  /** Row direction cosine (along a row, i.e. towards increasing column), then column direction. */
  rowCosine: Vec3;
  columnCosine: Vec3;
  /** [between rows, between columns] as in PixelSpacing. */
  pixelSpacingMm: [number, number];
  /** Slice thickness or spacing between slices, when given. */
  thicknessMm?: number;
  /** Per pixel of the frame, the fraction in the segment (0–1; binary: 0 or 1). */
  values: Float32Array;
}

/** Items of a naturalized sequence (dcmjs gives arrays; tolerate a lone object too). */
function items(value: unknown): Item[] {
  if (Array.isArray(value)) return value as Item[];
  return value && typeof value === 'object' ? [value as Item] : [];
}

function functionalGroup(frame: Item, shared: Item, name: string): Item | undefined {
  return items(frame[name])[0] ?? items(shared[name])[0];
}

/**
 * Reads a SEG file: binary segments (1 bit per pixel, packed across frame boundaries without
 * padding, PS3.5 8.1.1) or fractional ones (8 bits, scaled by MaximumFractionalValue). Each
 * frame's segment comes from its Segment Identification (Referenced Segment Number), its plane
 * from Plane Position / Plane Orientation (per-frame, else shared).
 */
export function readSegmentation(file: string): Segmentation {
  const bytes = fs.readFileSync(file);
  const message = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  const transferSyntax = message.meta['00020010']?.Value?.[0] as string | undefined;
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict) as Item;
  if (ds.SOPClassUID !== SEGMENTATION_STORAGE) throw new Error(`${file} is not a Segmentation (SOP Class ${ds.SOPClassUID})`);
  if (transferSyntax !== undefined && !UNCOMPRESSED.has(transferSyntax)) {
    throw new Error(`${file}: SEG in transfer syntax ${transferSyntax} is not supported (uncompressed little endian only)`);
  }
  const type = ds.SegmentationType;
  if (type !== 'BINARY' && type !== 'FRACTIONAL')
    throw new Error(`${file}: SegmentationType ${type} is not supported (BINARY or FRACTIONAL)`);
  const rows = Number(ds.Rows);
  const columns = Number(ds.Columns);
  const frameCount = Number(ds.NumberOfFrames ?? 1);
  const bitsAllocated = Number(ds.BitsAllocated);
  if ((type === 'BINARY' && bitsAllocated !== 1) || (type === 'FRACTIONAL' && bitsAllocated !== 8)) {
    throw new Error(`${file}: a ${type} SEG needs BitsAllocated ${type === 'BINARY' ? 1 : 8}, not ${bitsAllocated}`);
  }
  const pixelValue = Array.isArray(ds.PixelData) ? ds.PixelData[0] : ds.PixelData;
  const pixels = new Uint8Array(pixelValue as ArrayBuffer);
  const perFrame = frameCount * rows * columns;
  const needed = type === 'BINARY' ? Math.ceil(perFrame / 8) : perFrame;
  if (pixels.length < needed)
    throw new Error(`${file}: PixelData holds ${pixels.length} bytes, ${needed} needed for ${frameCount} frame(s) of ${rows}×${columns}`);
  const maxFraction = type === 'FRACTIONAL' ? Number(ds.MaximumFractionalValue ?? 255) : 1;

  const shared = items(ds.SharedFunctionalGroupsSequence)[0] ?? {};
  const perFrameGroups = items(ds.PerFrameFunctionalGroupsSequence);
  if (perFrameGroups.length !== frameCount)
    throw new Error(`${file}: ${perFrameGroups.length} per-frame functional groups for ${frameCount} frames`);
  const frames: SegFrame[] = perFrameGroups.map((group, f) => {
    const position = functionalGroup(group, shared, 'PlanePositionSequence')?.ImagePositionPatient;
    const orientation = functionalGroup(group, shared, 'PlaneOrientationSequence')?.ImageOrientationPatient;
    const measures = functionalGroup(group, shared, 'PixelMeasuresSequence');
    const segmentNumber = Number(functionalGroup(group, shared, 'SegmentIdentificationSequence')?.ReferencedSegmentNumber);
    if (!position || !orientation || !measures?.PixelSpacing || !Number.isInteger(segmentNumber)) {
      throw new Error(`${file}: frame ${f + 1} lacks Plane Position, Plane Orientation, Pixel Measures or Referenced Segment Number`);
    }
    const values = new Float32Array(rows * columns);
    const first = f * rows * columns;
    for (let p = 0; p < values.length; p++) {
      const index = first + p;
      values[p] = type === 'BINARY' ? (pixels[index >> 3] >> (index & 7)) & 1 : pixels[index] / maxFraction;
    }
    const thickness = Number(measures.SpacingBetweenSlices ?? measures.SliceThickness);
    return {
      segmentNumber,
      positionMm: position.map(Number) as Vec3,
      rowCosine: orientation.slice(0, 3).map(Number) as Vec3,
      columnCosine: orientation.slice(3, 6).map(Number) as Vec3,
      pixelSpacingMm: [Number(measures.PixelSpacing[0]), Number(measures.PixelSpacing[1])],
      ...(Number.isFinite(thickness) && thickness > 0 ? { thicknessMm: thickness } : {}),
      values,
    };
  });
  return {
    sopInstanceUid: ds.SOPInstanceUID,
    studyInstanceUid: ds.StudyInstanceUID,
    frameOfReferenceUid: ds.FrameOfReferenceUID,
    segmentationType: type,
    rows,
    columns,
    segments: items(ds.SegmentSequence).map((s) => ({
      number: Number(s.SegmentNumber),
      label: String(s.SegmentLabel ?? `segment ${s.SegmentNumber}`),
    })),
    frames,
  };
}

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];

/**
 * Maps each segment onto the image grid by nearest neighbour: for every image voxel centre, the
 * segment's frame whose plane is nearest (within half the slice spacing) and, in it, the nearest
 * pixel. A voxel belongs to the segment when that pixel's fraction is ≥ `fractionThreshold`
 * (binary pixels are 0 or 1). Frames may lie on any grid in the same frame of reference.
 */
export function segmentationVois(seg: Segmentation, grid: Grid, fractionThreshold = 0.5): Voi[] {
  const count = voxelCount(grid);
  const [nx, ny, nz] = grid.dims;
  return seg.segments.map((segment) => {
    const mask = new Uint8Array(count);
    const frames = seg.frames.filter((f) => f.segmentNumber === segment.number);
    if (frames.length === 0) return { name: segment.label, source: 'seg', label: segment.number, mask };
    const { rowCosine, columnCosine } = frames[0];
    for (const f of frames) {
      if (
        f.rowCosine.some((v, a) => Math.abs(v - rowCosine[a]) > 1e-4) ||
        f.columnCosine.some((v, a) => Math.abs(v - columnCosine[a]) > 1e-4)
      ) {
        throw new Error(`SEG ${seg.sopInstanceUid}: segment ${segment.number} has frames in different orientations`);
      }
    }
    const normal = cross(rowCosine, columnCosine);
    const planes = frames.map((f) => ({ frame: f, d: dot(f.positionMm, normal) })).sort((a, b) => a.d - b.d);
    const halfSpacing = planeTolerance(
      planes.map((p) => p.d),
      frames[0].thicknessMm,
      grid,
    );
    for (let k = 0; k < nz; k++) {
      for (let j = 0; j < ny; j++) {
        for (let i = 0; i < nx; i++) {
          const w = applyAffine(grid.affine, i, j, k);
          const plane = nearestPlane(planes, dot(w, normal));
          if (!plane || Math.abs(plane.d - dot(w, normal)) > halfSpacing) continue;
          const f = plane.frame;
          const rel: Vec3 = [w[0] - f.positionMm[0], w[1] - f.positionMm[1], w[2] - f.positionMm[2]];
          const column = Math.round(dot(rel, f.rowCosine) / f.pixelSpacingMm[1] + 1e-9);
          const row = Math.round(dot(rel, f.columnCosine) / f.pixelSpacingMm[0] + 1e-9);
          if (column < 0 || row < 0 || column >= seg.columns || row >= seg.rows) continue;
          if (f.values[row * seg.columns + column] >= fractionThreshold) mask[i + nx * (j + ny * k)] = 1;
        }
      }
    }
    return { name: segment.label, source: 'seg', label: segment.number, mask };
  });
}

/** Half the distance between the segment's planes (from the data, else SpacingBetweenSlices/SliceThickness, else the image's). */
function planeTolerance(ds: number[], thicknessMm: number | undefined, grid: Grid): number {
  let spacing = Infinity;
  for (let p = 1; p < ds.length; p++) if (ds[p] - ds[p - 1] > 1e-6) spacing = Math.min(spacing, ds[p] - ds[p - 1]);
  if (!Number.isFinite(spacing)) spacing = thicknessMm ?? grid.spacingMm[2];
  return spacing / 2 + 1e-6;
}

function nearestPlane<T extends { d: number }>(planes: T[], d: number): T | undefined {
  let lo = 0;
  let hi = planes.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (planes[mid].d < d) lo = mid + 1;
    else hi = mid;
  }
  const candidate = planes[lo];
  const before = planes[lo - 1];
  return before && Math.abs(before.d - d) < Math.abs(candidate.d - d) ? before : candidate;
}
