// The dicomflow side of `npm run bench -- nifti`, in a process of its own (as dcm2niix runs in
// its own): node bench/support/nifti-convert.ts <series dir> <out.nii|out.nii.gz>. Imports only
// what a worker converting a series imports.
import fs from 'node:fs';
import path from 'node:path';
import { writeNifti } from '../../core/dicom/nifti.ts';
import { loadVolume } from '../../core/dicom/volume.ts';

const [dir, file] = process.argv.slice(2);
const volume = await loadVolume(fs.readdirSync(dir).map((f) => path.join(dir, f)));
await writeNifti(volume, file);
