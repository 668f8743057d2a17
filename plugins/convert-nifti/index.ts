import fs from 'node:fs/promises';
import path from 'node:path';
import { isDfError } from '../../core/errors.ts';
import { bidsSidecar, writeSeriesNifti } from '../../core/dicom/nifti.ts';
import { planVolume, type VolumePlan } from '../../core/dicom/volume.ts';
import { definePlugin, type StepInput } from '../../core/plugin.ts';

const VERSION = '1.0.0';

/**
 * Converts each series of the job's instances to one NIfTI-1 file (3D, or 4D for dynamic
 * series) with a BIDS-style JSON sidecar, laid out as dcm2niix lays them out. Compressed
 * transfer syntaxes are decoded; a series that is not one regular volume fails the step (or is
 * skipped, on request) with the reason.
 */
export default definePlugin({
  name: 'convert-nifti',
  version: VERSION,
  description: 'Convert each series to NIfTI-1 (.nii or .nii.gz, 3D or 4D) with a BIDS/PET-BIDS JSON sidecar.',
  runsIn: 'worker',
  consumes: ['instances'],
  produces: ['files'],
  defaultTimeoutSeconds: 600,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      gzip: { type: 'boolean', default: true, description: 'Write .nii.gz (gzip level 6) rather than .nii.' },
      fileName: {
        type: 'string',
        minLength: 1,
        maxLength: 200,
        default: '{Modality}_{SeriesNumber}_{SeriesDescription}',
        description:
          'Name of each series’ files, without extension. Placeholders: {PatientID}, {StudyDate}, {Modality}, {SeriesNumber}, {SeriesDescription}, {ProtocolName}, {SeriesInstanceUID}. Characters other than letters, digits, ".", "-" and "_" become "_".',
      },
      folder: {
        type: 'string',
        minLength: 1,
        description:
          'Write the files into this folder instead of the job’s output directory (relative: against the server’s working directory). A file of the same name is replaced, so give fileName placeholders that keep series apart (e.g. {PatientID} and {SeriesInstanceUID}).',
      },
      sidecar: {
        type: 'boolean',
        default: true,
        description: 'Also write <name>.json, the BIDS-style sidecar (FrameTimesStart, FrameDuration, Units, tracer…).',
      },
      onInconsistent: {
        type: 'string',
        enum: ['fail', 'skip'],
        default: 'fail',
        description:
          'A series that is not one regular volume (missing slice, gantry tilt, mixed orientations, not an image): fail the step, or skip it with a warning.',
      },
    },
  },
  async run(ctx, options) {
    const series = groupBySeries(ctx.inputs);
    const outDir = options.folder === undefined ? ctx.outputDir : path.resolve(options.folder);
    await fs.mkdir(outDir, { recursive: true });
    const used = new Set<string>();
    let converted = 0;
    for (const [index, group] of series.entries()) {
      const share = (fraction: number) => ctx.progress((index + fraction) / series.length);
      let volume: VolumePlan;
      let encoding: Awaited<ReturnType<typeof writeSeriesNifti>>;
      let niftiFile: string;
      try {
        volume = planVolume(group, { signal: ctx.signal, onProgress: (f) => share(0.3 * f) });
        niftiFile = path.join(
          outDir,
          `${uniqueName(expandName(options.fileName, group[0], volume), used)}${options.gzip ? '.nii.gz' : '.nii'}`,
        );
        // Stored values go from each file into the NIfTI file, decoded plane by plane.
        encoding = await writeSeriesNifti(volume, niftiFile, {
          gzip: options.gzip,
          description: `dicomflow ${volume.series.modality} ${volume.series.seriesDescription ?? ''}`.trim(),
          onProgress: (f) => share(0.3 + 0.7 * f),
          signal: ctx.signal,
        });
      } catch (err) {
        if (options.onInconsistent === 'skip' && (isDfError(err, 'DF_ERR_VOLUME_INCONSISTENT') || isDfError(err, 'DF_ERR_PIXEL_DECODE'))) {
          ctx.log.warn(`series skipped: ${(err as Error).message}`, { seriesInstanceUid: group[0].seriesInstanceUid });
          continue;
        }
        throw err;
      }
      const shape = `${volume.dims.join('×')}${volume.sources.length > 1 ? `×${volume.sources.length}` : ''}`;
      ctx.emitFile(
        niftiFile,
        `NIfTI of series ${volume.series.seriesNumber ?? ''} ${volume.series.seriesDescription ?? ''} (${shape})`.replace(/\s+/g, ' '),
      );
      if (options.sidecar) {
        const jsonFile = niftiFile.replace(/\.nii(\.gz)?$/, '.json');
        await fs.writeFile(
          jsonFile,
          `${JSON.stringify(bidsSidecar(volume, { name: 'dicomflow convert-nifti', version: VERSION }), null, 2)}\n`,
        );
        ctx.emitFile(jsonFile, `BIDS sidecar of ${path.basename(niftiFile)}`);
      }
      converted++;
      ctx.log.info(
        `wrote ${path.basename(niftiFile)} (${shape}, ${encoding.datatype}${volume.varyingRescale ? ', rescale varies per slice' : ''})`,
        { seriesInstanceUid: volume.series.seriesInstanceUid },
      );
      share(1);
    }
    ctx.log.info(`${converted} of ${series.length} series converted`);
  },
});

/** Inputs per series, each instance once (an object sent twice arrives twice), in UID order. */
function groupBySeries(inputs: StepInput[]): StepInput[][] {
  const bySeries = new Map<string, Map<string, StepInput>>();
  for (const input of inputs) {
    const key = input.seriesInstanceUid ?? '';
    const instances = bySeries.get(key) ?? new Map<string, StepInput>();
    if (!instances.has(input.sopInstanceUid)) instances.set(input.sopInstanceUid, input);
    bySeries.set(key, instances);
  }
  return [...bySeries.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, instances]) => [...instances.values()]);
}

function expandName(pattern: string, input: StepInput, volume: VolumePlan): string {
  const values: Record<string, string | number | undefined> = {
    PatientID: input.attributes.PatientID,
    StudyDate: input.attributes.StudyDate,
    Modality: volume.series.modality,
    SeriesNumber: volume.series.seriesNumber,
    SeriesDescription: volume.series.seriesDescription,
    ProtocolName: volume.series.protocolName,
    SeriesInstanceUID: volume.series.seriesInstanceUid,
  };
  // Values come from the data set: nothing in them may steer the path (no separators, no "..").
  const name = pattern
    .replace(/\{(\w+)\}/g, (whole, key: string) => (key in values ? String(values[key] ?? '') : whole))
    .replace(/[^A-Za-z0-9._-]+/g, '_')
    .replace(/^[._]+|_+$/g, '');
  return name === '' ? 'series' : name.slice(0, 200);
}

function uniqueName(name: string, used: Set<string>): string {
  let candidate = name;
  for (let n = 2; used.has(candidate); n++) candidate = `${name}_${n}`;
  used.add(candidate);
  return candidate;
}
