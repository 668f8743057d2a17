import type { Grid } from '../../../core/dicom/volume.ts';
import { applyAffine, invertAffine, multiplyAffine, voxelCount } from './grid-space.ts';
import type { Voi } from './voi.ts';

/** A label image on its own grid (e.g. a NIfTI atlas): integer labels, 0 = background. */
export interface LabelMap extends Grid {
  labels: Int32Array;
}

/**
 * Resamples a label map onto the image grid by nearest neighbour (labels must never be
 * interpolated): each image voxel centre is carried through image affine, then the inverse of
 * the label map's affine, into the label map's index space and rounded. Voxels that fall
 * outside the label map get label 0.
 */
export function resampleLabels(labelMap: LabelMap, target: Grid): Int32Array {
  const toLabel = multiplyAffine(invertAffine(labelMap.affine), target.affine);
  const [nx, ny, nz] = target.dims;
  const [lx, ly, lz] = labelMap.dims;
  const out = new Int32Array(voxelCount(target));
  for (let k = 0; k < nz; k++) {
    for (let j = 0; j < ny; j++) {
      // Along a row only i changes: step by the matrix's first column.
      let [x, y, z] = applyAffine(toLabel, 0, j, k);
      for (let i = 0; i < nx; i++, x += toLabel[0], y += toLabel[4], z += toLabel[8]) {
        // Round half away from zero consistently; a tiny tolerance keeps exact half-voxel
        // alignments (identical grids with float noise) on the intended voxel.
        const li = Math.round(x + 1e-9);
        const lj = Math.round(y + 1e-9);
        const lk = Math.round(z + 1e-9);
        if (li < 0 || lj < 0 || lk < 0 || li >= lx || lj >= ly || lk >= lz) continue;
        out[i + nx * (j + ny * k)] = labelMap.labels[li + lx * (lj + ly * lk)];
      }
    }
  }
  return out;
}

/**
 * One VOI per label: those of the table, in its order (a label absent from the map gives an
 * empty VOI, reported with zero voxels), or every non-zero label present, named "label N".
 */
export function labelVois(labels: Int32Array, table?: Map<number, string>): Voi[] {
  const wanted = table ? [...table.keys()] : [...new Set(labels)].filter((l) => l !== 0).sort((a, b) => a - b);
  const masks = new Map(wanted.map((l) => [l, new Uint8Array(labels.length)]));
  for (let v = 0; v < labels.length; v++) {
    const mask = masks.get(labels[v]);
    if (mask) mask[v] = 1;
  }
  return wanted.map((label) => ({ name: table?.get(label) ?? `label ${label}`, source: 'label-map', label, mask: masks.get(label)! }));
}

/**
 * Reads a label table: JSON ({"1": "striatum", …}) or text lines `<value> <name> [more]` as in
 * FreeSurfer's LUT, where the name may be double-quoted with spaces (ITK-SNAP's label
 * description file puts it last in quotes). `#` starts a comment; label 0 is background.
 */
export function parseLabelTable(text: string): Map<number, string> {
  const table = new Map<number, string>();
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    for (const [key, name] of Object.entries(JSON.parse(trimmed) as Record<string, unknown>)) {
      const value = Number(key);
      if (!Number.isInteger(value) || typeof name !== 'string')
        throw new Error(`label table: "${key}": "${String(name)}" is not an integer label with a name`);
      if (value !== 0) table.set(value, name);
    }
    return table;
  }
  for (const [n, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    const value = Number(line.split(/\s+/)[0]);
    if (!Number.isInteger(value)) throw new Error(`label table line ${n + 1}: "${raw}" does not start with an integer label`);
    const quoted = /"([^"]*)"/.exec(line);
    const name = quoted ? quoted[1] : line.split(/\s+/)[1];
    if (name === undefined || name === '') throw new Error(`label table line ${n + 1}: label ${value} has no name`);
    if (value !== 0) table.set(value, name);
  }
  return table;
}

/** A NIfTI image as a label map: its values must be integers (labels are never interpolated). */
export function labelMapOf(image: Grid & { data: ArrayLike<number> }, name = 'label map'): LabelMap {
  const labels = new Int32Array(image.data.length);
  for (let v = 0; v < labels.length; v++) {
    const value = image.data[v];
    if (!Number.isInteger(value)) throw new Error(`${name}: voxel ${v} holds ${value}, not an integer label`);
    labels[v] = value;
  }
  return { dims: image.dims, spacingMm: image.spacingMm, affine: image.affine, labels };
}
