// Writes pipelines/data/brain-labels.nii.gz and brain-labels.txt: the example label map of the
// seed dynamic-PET pipeline. Regions are ellipsoids in DICOM patient coordinates (LPS, mm)
// around a head centred at the origin, the layout of the test phantom
// (test/fixtures/dynamic-brain-phantom.ts), on a 2 mm grid. A real study would use an atlas
// registered to the subject; this one shows the format and works on the phantom.
import fs from 'node:fs';
import path from 'node:path';
import { writeNifti } from '../core/dicom/nifti.ts';
import type { Volume } from '../core/dicom/volume.ts';

type Vec3 = [number, number, number];
interface Region {
  label: number;
  name: string;
  centre: Vec3;
  radiiMm: Vec3;
}

// Painted in order: a later region overwrites an earlier one where they overlap.
const REGIONS: Region[] = [
  { label: 1, name: 'cortex', centre: [0, 0, 0], radiiMm: [63, 79, 42] },
  { label: 2, name: 'white-matter', centre: [0, 2, 2], radiiMm: [55, 70, 33] },
  { label: 3, name: 'striatum-right', centre: [-22, -4, 6], radiiMm: [9, 15, 10] },
  { label: 4, name: 'striatum-left', centre: [23, -2, 5], radiiMm: [10, 14, 11] },
  { label: 5, name: 'cerebellum', centre: [0, 52, -28], radiiMm: [38, 20, 12] },
];

const dims: Vec3 = [80, 96, 56];
const spacingMm: Vec3 = [2, 2, 2];
const origin: Vec3 = dims.map((n, a) => -((n - 1) * spacingMm[a]) / 2) as Vec3;

const labels = new Float32Array(dims[0] * dims[1] * dims[2]);
for (let k = 0; k < dims[2]; k++) {
  for (let j = 0; j < dims[1]; j++) {
    for (let i = 0; i < dims[0]; i++) {
      const p = [origin[0] + i * spacingMm[0], origin[1] + j * spacingMm[1], origin[2] + k * spacingMm[2]];
      for (const r of REGIONS) {
        const d = p.reduce((sum, x, a) => sum + ((x - r.centre[a]) / r.radiiMm[a]) ** 2, 0);
        if (d <= 1) labels[i + dims[0] * (j + dims[1] * k)] = r.label;
      }
    }
  }
}

// An axial grid: i along +x (patient left), j along +y (posterior), k along +z (head).
const affine = new Float64Array([spacingMm[0], 0, 0, origin[0], 0, spacingMm[1], 0, origin[1], 0, 0, spacingMm[2], origin[2], 0, 0, 0, 1]);
const volume: Volume = { dims, spacingMm, affine, frames: [labels], timing: [], sources: [], varyingRescale: false };

const out = path.resolve(import.meta.dirname, '../pipelines/data');
fs.mkdirSync(out, { recursive: true });
await writeNifti(volume, path.join(out, 'brain-labels.nii.gz'), { gzip: true, description: 'dicomflow example brain label map' });
fs.writeFileSync(path.join(out, 'brain-labels.txt'), `${REGIONS.map((r) => `${r.label} ${r.name}`).join('\n')}\n`);
console.log(`wrote ${path.join(out, 'brain-labels.nii.gz')} and brain-labels.txt`);
