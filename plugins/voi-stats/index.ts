import fs from 'node:fs';
import path from 'node:path';
import { loadVolume } from '../../core/dicom/volume.ts';
import { readNifti } from '../../core/dicom/nifti-read.ts';
import { dfError } from '../../core/errors.ts';
import { definePlugin, type StepContext } from '../../core/plugin.ts';
import { lineChartPng, lineChartSvg } from '../shared/plot/line-chart.ts';
import { labelMapOf, labelVois, parseLabelTable, resampleLabels } from './voi/label-map.ts';
import { readPetDoseInfo } from './voi/pet-attributes.ts';
import { computeVoiStatistics, rowsToCsv, statisticsRows, tacChart, toPmodTac, type VoiStatisticsResult } from './voi/report.ts';
import { readSegmentation, segmentationVois, SEGMENTATION_STORAGE } from './voi/seg.ts';
import { PEAK_SPHERE_RADIUS_MM } from './voi/statistics.ts';
import { shapeVoi, type ShapeVoi, type Voi } from './voi/voi.ts';

const PET_SOP_CLASSES = new Set(['1.2.840.10008.5.1.4.1.1.128', '1.2.840.10008.5.1.4.1.1.130', '1.2.840.10008.5.1.4.1.1.128.1']);

const vec3 = { type: 'array', items: { type: 'number' }, minItems: 3, maxItems: 3 } as const;

/**
 * VOI statistics of a PET series (static or dynamic): per VOI and frame mean, SD, min, max,
 * median, peak, voxel count and volume, SUVs, time-activity curves. VOIs come from a label-map
 * NIfTI, from spheres and boxes in patient mm, and from DICOM SEG objects of the study.
 */
export default definePlugin({
  name: 'voi-stats',
  version: '1.0.0',
  description: 'VOI statistics and time-activity curves of a PET series (label map, shapes, DICOM SEG); CSV, JSON, PMOD .tac, plot, table.',
  runsIn: 'worker',
  consumes: ['instances'],
  produces: ['files', 'tables'],
  defaultTimeoutSeconds: 600,
  options: {
    type: 'object',
    additionalProperties: false,
    properties: {
      series: {
        enum: ['auto', 'inputs', 'previous'],
        default: 'auto',
        description:
          'Which PET series: "previous" the instances an earlier step emitted (e.g. motion-corrected), "inputs" the job’s PET inputs, "auto" the former when there are any.',
      },
      labelMap: {
        type: 'object',
        additionalProperties: false,
        required: ['path'],
        description: 'A label-map NIfTI (.nii or .nii.gz), resampled onto the PET grid by nearest neighbour through both affines.',
        properties: {
          path: { type: 'string', minLength: 1, description: 'Absolute, or relative to the directory dicomflow runs in.' },
          labelTable: {
            type: 'string',
            minLength: 1,
            description: 'Label table file: JSON {"1": "name"} or lines "<value> <name> …" (FreeSurfer LUT, ITK-SNAP with quoted names).',
          },
          labels: {
            type: 'object',
            propertyNames: { pattern: '^[0-9]+$' },
            additionalProperties: { type: 'string', minLength: 1 },
            description: 'Label names inline, {"1": "striatum"}; merged over labelTable.',
          },
        },
      },
      shapes: {
        type: 'array',
        default: [],
        description: 'Geometric VOIs in patient coordinates (DICOM LPS, mm): a voxel belongs when its centre is inside.',
        items: {
          oneOf: [
            {
              type: 'object',
              additionalProperties: false,
              required: ['kind', 'name', 'centerMm', 'radiusMm'],
              properties: {
                kind: { const: 'sphere' },
                name: { type: 'string', minLength: 1 },
                centerMm: vec3,
                radiusMm: { type: 'number', exclusiveMinimum: 0 },
              },
            },
            {
              type: 'object',
              additionalProperties: false,
              required: ['kind', 'name', 'cornerMm', 'oppositeCornerMm'],
              properties: { kind: { const: 'box' }, name: { type: 'string', minLength: 1 }, cornerMm: vec3, oppositeCornerMm: vec3 },
            },
          ],
        },
      },
      segmentations: {
        type: 'boolean',
        default: true,
        description: 'Use the DICOM SEG objects of the same study among the job’s inputs (each segment a VOI).',
      },
      segFractionThreshold: {
        type: 'number',
        exclusiveMinimum: 0,
        maximum: 1,
        default: 0.5,
        description: 'A FRACTIONAL segment covers a voxel when its fraction there is at least this.',
      },
      lbmFormula: { enum: ['janmahasatian', 'james'], default: 'janmahasatian', description: 'Lean body mass formula for SUVlbm.' },
      peakCandidates: {
        type: 'integer',
        minimum: 1,
        default: 20000,
        description: 'SUVpeak: the sphere centre is sought among this many of the hottest voxels of each VOI.',
      },
      table: { type: 'string', pattern: '^[a-z0-9][a-z0-9-]*$', default: 'voi-stats', description: 'Name of the emitted table.' },
      plot: {
        type: 'array',
        items: { enum: ['svg', 'png'] },
        uniqueItems: true,
        default: ['svg', 'png'],
        description: 'TAC plot formats (tac.svg, tac.png).',
      },
    },
  },
  async run(ctx, options) {
    const petFiles = petSeriesFiles(ctx, options.series);
    const volume = await loadVolume(petFiles, { onProgress: (f) => ctx.progress(0.4 * f, 'loading the series') });
    const header = readPetDoseInfo(volume.sources[0][0].path);
    ctx.log.info(
      `${volume.series.seriesInstanceUid}: ${volume.dims.join('×')} voxels, ${volume.frames.length} frame(s), units ${volume.units ?? 'unknown'}`,
    );

    const vois: Voi[] = [];
    if (options.labelMap) vois.push(...labelMapVois(options.labelMap, volume));
    for (const shape of options.shapes as ShapeVoi[]) vois.push(shapeVoi(volume, shape));
    if (options.segmentations) vois.push(...segVois(ctx, volume, header, options.segFractionThreshold));
    if (vois.length === 0) {
      throw dfError('DF_ERR_VOI_INVALID', 'no VOIs: give a labelMap or shapes, or send a DICOM SEG of the study with the series');
    }
    for (const voi of vois) if (!voi.mask.includes(1)) ctx.log.warn(`VOI "${voi.name}" (${voi.source}) covers no voxel of the image`);
    ctx.progress(0.45, 'VOIs ready');

    const result = computeVoiStatistics(volume, vois, header, {
      lbmFormula: options.lbmFormula,
      peakCandidates: options.peakCandidates,
      frameReferenceTimesMs: volume.series.pet?.frameReferenceTimesMs,
      onFrame: (done, total) => ctx.progress(0.45 + (0.45 * done) / total, `frame ${done} of ${total}`),
    });
    if (result.suv.bwUnavailable) ctx.log.warn(`no SUVbw: ${result.suv.bwUnavailable}`);
    if (result.suv.lbmUnavailable) ctx.log.info(`no SUVlbm: ${result.suv.lbmUnavailable}`);

    // Fixed names, written whole: a second attempt overwrites (idempotent).
    const rows = statisticsRows(result);
    const write = (name: string, content: string | Buffer, description: string) => {
      const file = path.join(ctx.outputDir, name);
      fs.writeFileSync(file, content);
      ctx.emitFile(file, description);
    };
    write('voi-stats.csv', rowsToCsv(rows), 'VOI statistics per VOI and frame (CSV)');
    write(
      'voi-stats.json',
      `${JSON.stringify(jsonReport(result, volume.series, header, options.lbmFormula), null, 2)}\n`,
      'VOI statistics, frame times and SUV parameters (JSON)',
    );
    write('tac.tac', toPmodTac(result), 'Time-activity curves, PMOD .tac format');
    const svg = lineChartSvg(
      tacChart(result, `Time-activity curves: ${volume.series.seriesDescription ?? volume.series.seriesInstanceUid}`),
    );
    if (options.plot.includes('svg')) write('tac.svg', svg, 'Time-activity curves (SVG)');
    if (options.plot.includes('png')) write('tac.png', await lineChartPng(svg), 'Time-activity curves (PNG)');
    // The unit of mean…peak (DICOM Units, e.g. BQML) in each row: the web page labels its axis with it.
    ctx.emitTable(
      options.table,
      rows.map((r) => ({ ...r, unit: result.units ?? null })),
      'VOI statistics per VOI and frame',
    );
    ctx.progress(1);
  },
});

/** The PET series' files: an earlier step's emitted instances, or the job's PET inputs. */
function petSeriesFiles(ctx: StepContext, series: 'auto' | 'inputs' | 'previous'): string[] {
  const previous = ctx.previousOutputs.filter((o) => o.kind === 'instance' && o.path).map((o) => o.path!);
  if (series === 'previous' || (series === 'auto' && previous.length > 0)) {
    if (previous.length === 0) throw dfError('DF_ERR_VOI_INVALID', 'series "previous": no earlier step emitted instances');
    return previous;
  }
  const pet = ctx.inputs.filter((i) => PET_SOP_CLASSES.has(i.sopClassUid) || i.attributes.Modality === 'PT');
  if (pet.length === 0) throw dfError('DF_ERR_VOI_INVALID', `no PET image among the job's ${ctx.inputs.length} input(s)`);
  const seriesUids = [...new Set(pet.map((i) => i.seriesInstanceUid))];
  if (seriesUids.length > 1) {
    throw dfError(
      'DF_ERR_VOI_INVALID',
      `the inputs hold ${seriesUids.length} PET series (${seriesUids.join(', ')}); narrow them with a filter step before voi-stats`,
    );
  }
  return pet.map((i) => i.path);
}

function labelMapVois(
  options: { path: string; labelTable?: string; labels?: Record<string, string> },
  volume: Parameters<typeof resampleLabels>[1],
): Voi[] {
  const file = path.resolve(options.path);
  let table: Map<number, string> | undefined;
  try {
    if (options.labelTable) table = parseLabelTable(fs.readFileSync(path.resolve(options.labelTable), 'utf8'));
    if (options.labels) {
      table ??= new Map();
      for (const [value, name] of Object.entries(options.labels)) table.set(Number(value), name);
    }
    const labelMap = labelMapOf(readNifti(file), file);
    return labelVois(resampleLabels(labelMap, volume), table);
  } catch (err) {
    throw dfError('DF_ERR_VOI_INVALID', `label map ${file}: ${(err as Error).message}`, { cause: err });
  }
}

/** Segments of the SEG inputs of the PET's study, in the PET's frame of reference. */
function segVois(
  ctx: StepContext,
  volume: Parameters<typeof segmentationVois>[1],
  header: { studyInstanceUid?: string; frameOfReferenceUid?: string },
  threshold: number,
): Voi[] {
  const segs = ctx.inputs.filter(
    (i) =>
      i.sopClassUid === SEGMENTATION_STORAGE && (header.studyInstanceUid === undefined || i.studyInstanceUid === header.studyInstanceUid),
  );
  return segs.flatMap((input) => {
    let seg;
    try {
      seg = readSegmentation(input.path);
    } catch (err) {
      throw dfError('DF_ERR_VOI_INVALID', `SEG ${input.sopInstanceUid}: ${(err as Error).message}`, { cause: err });
    }
    if (seg.frameOfReferenceUid && header.frameOfReferenceUid && seg.frameOfReferenceUid !== header.frameOfReferenceUid) {
      ctx.log.warn(
        `SEG ${seg.sopInstanceUid} is in another frame of reference (${seg.frameOfReferenceUid}) than the PET (${header.frameOfReferenceUid}): skipped`,
      );
      return [];
    }
    ctx.log.info(`SEG ${seg.sopInstanceUid}: ${seg.segments.length} segment(s), ${seg.frames.length} frame(s), ${seg.segmentationType}`);
    return segmentationVois(seg, volume, threshold);
  });
}

function jsonReport(
  result: VoiStatisticsResult,
  series: { seriesInstanceUid: string; studyInstanceUid?: string; seriesDescription?: string },
  header: ReturnType<typeof readPetDoseInfo>,
  lbmFormula: string,
) {
  return {
    series: {
      studyInstanceUid: series.studyInstanceUid ?? null,
      seriesInstanceUid: series.seriesInstanceUid,
      seriesDescription: series.seriesDescription ?? null,
    },
    units: result.units ?? null,
    definitions: {
      times: 'seconds from the series reference time (SeriesDate/SeriesTime), from ActualFrameDuration and FrameReferenceTime',
      sd: 'sample standard deviation (n − 1)',
      peak: `mean in a ${PEAK_SPHERE_RADIUS_MM.toFixed(3)} mm radius sphere (1 cm³, partial voxels weighted), centred on the VOI voxel that maximises it`,
      suvbw: 'value × weight[g] / decay-corrected dose[Bq]',
      suvlbm: `value × lean body mass[g] / decay-corrected dose[Bq], lean body mass by ${lbmFormula}`,
    },
    suv: {
      decayCorrection: header.decayCorrection ?? null,
      injectedDoseBq: header.injectedDoseBq ?? null,
      halfLifeSec: header.halfLifeSec ?? null,
      injectionToSeriesSec: result.suv.injectionToSeriesSec ?? null,
      patientWeightKg: header.patientWeightKg ?? null,
      patientSizeM: header.patientSizeM ?? null,
      patientSex: header.patientSex ?? null,
      leanBodyMassKg: result.suv.leanBodyMassKg ?? null,
      lbmFormula,
      bwFactors: result.suv.bw ?? null,
      lbmFactors: result.suv.lbm ?? null,
      ...(result.suv.bwUnavailable ? { bwUnavailable: result.suv.bwUnavailable } : {}),
      ...(result.suv.lbmUnavailable ? { lbmUnavailable: result.suv.lbmUnavailable } : {}),
    },
    frames: result.frames,
    vois: result.vois,
  };
}
