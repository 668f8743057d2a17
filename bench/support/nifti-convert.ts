// The dicomflow side of `npm run bench -- nifti`, in a process of its own (as dcm2niix runs in
// its own): node bench/support/nifti-convert.ts <series dir> <out.nii|out.nii.gz>. Imports only
// what a worker converting a series imports, and does what the convert-nifti step does: the
// NIfTI file and its BIDS sidecar (as dcm2niix -b y writes one).
import fs from 'node:fs';
import path from 'node:path';
import { bidsSidecar, writeSeriesNifti } from '../../core/dicom/nifti.ts';
import { planVolume } from '../../core/dicom/volume.ts';

const [dir, file] = process.argv.slice(2);
const plan = planVolume(fs.readdirSync(dir).map((f) => path.join(dir, f)));
await writeSeriesNifti(plan, file);
fs.writeFileSync(file.replace(/\.nii(\.gz)?$/, '.json'), `${JSON.stringify(bidsSidecar(plan, { name: 'dicomflow convert-nifti', version: 'bench' }), null, 2)}\n`);
