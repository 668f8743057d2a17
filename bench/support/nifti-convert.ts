// The dicomflow side of `npm run bench -- nifti`: the convert-nifti step's code (planVolume,
// writeSeriesNifti, the BIDS sidecar as dcm2niix -b y writes one), imported as a worker imports it.
//   node bench/support/nifti-convert.ts <series dir> <out.nii|out.nii.gz>   one conversion, then exit
//   node bench/support/nifti-convert.ts --serve                             "ready", then one
//     conversion per stdin line `<series dir>\t<out file>`, answering "done" or "error <message>":
//     a warm process, as the pipeline's worker pool is when a job's step starts.
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { bidsSidecar, writeSeriesNifti } from '../../core/dicom/nifti.ts';
import { planVolume } from '../../core/dicom/volume.ts';

async function convert(dir: string, file: string): Promise<void> {
  const plan = planVolume(fs.readdirSync(dir).map((f) => path.join(dir, f)));
  await writeSeriesNifti(plan, file);
  fs.writeFileSync(
    file.replace(/\.nii(\.gz)?$/, '.json'),
    `${JSON.stringify(bidsSidecar(plan, { name: 'dicomflow convert-nifti', version: 'bench' }), null, 2)}\n`,
  );
}

if (process.argv[2] === '--serve') {
  console.log('ready');
  for await (const line of createInterface({ input: process.stdin })) {
    const [dir, file] = line.split('\t');
    try {
      await convert(dir, file);
      console.log('done');
    } catch (err) {
      console.log(`error ${(err as Error).message.replace(/\s+/g, ' ')}`);
    }
  }
} else {
  const [dir, file] = process.argv.slice(2);
  await convert(dir, file);
}
