import { checkedFrameTiming, type FrameTiming, type Volume } from '../../../core/dicom/volume.ts';
import type { LineChartOptions } from '../../shared/plot/line-chart.ts';
import { maskIndices, peakKernel, voiFrameStatistics, type VoiFrameStatistics } from './statistics.ts';
import { suvFactors, type LbmFormula, type PetDoseInfo, type SuvFactors } from './suv.ts';
import type { Voi } from './voi.ts';

/** Frame times in seconds from the series reference time (the frame timing, never AcquisitionTime). */
export interface FrameTimes {
  frame: number;
  startS: number;
  endS: number;
  midS: number;
  durationS: number;
}

export interface SuvValues {
  mean: number | null;
  max: number | null;
  peak: number | null;
}

export interface VoiFrameResult extends VoiFrameStatistics {
  suvbw?: SuvValues;
  suvlbm?: SuvValues;
}

export interface VoiResult {
  name: string;
  source: Voi['source'];
  label?: number;
  voxels: number;
  volumeMl: number;
  frames: VoiFrameResult[];
}

export interface VoiStatisticsResult {
  units?: string;
  frames: FrameTimes[];
  suv: SuvFactors;
  vois: VoiResult[];
}

/**
 * Frame start, end and mid-times (s from the series reference time). The loader has already
 * checked the starts against FrameReferenceTime (checkedFrameTiming in core/dicom/volume.ts);
 * given reference times, volumes built some other way are checked the same way here.
 */
export function frameTimes(timing: FrameTiming[], frameCount: number, referenceTimesMs?: number[]): FrameTimes[] {
  const checked = referenceTimesMs ? checkedFrameTiming(timing, referenceTimesMs) : timing;
  return Array.from({ length: frameCount }, (_, f) => {
    if (checked[f] === undefined) return { frame: f + 1, startS: 0, endS: 0, midS: 0, durationS: 0 };
    const startS = checked[f].startMs / 1000;
    const durationS = checked[f].durationMs / 1000;
    return { frame: f + 1, startS, endS: startS + durationS, midS: startS + durationS / 2, durationS };
  });
}

const scale = (value: number | null, factor: number | undefined) => (value === null || factor === undefined ? null : value * factor);

/** Statistics of every VOI in every frame, with SUVs where the PET attributes allow them. */
export function computeVoiStatistics(
  volume: Volume,
  vois: Voi[],
  dose: PetDoseInfo | undefined,
  options: {
    lbmFormula?: LbmFormula;
    peakCandidates?: number;
    /** FrameReferenceTime of each frame (ms), for frameTimes. */
    frameReferenceTimesMs?: number[];
    onFrame?: (done: number, total: number) => void;
  } = {},
): VoiStatisticsResult {
  const times = frameTimes(volume.timing, volume.frames.length, options.frameReferenceTimesMs);
  const timing: FrameTiming[] =
    volume.timing.length === 0 ? [] : times.map((t) => ({ startMs: t.startS * 1000, durationMs: t.durationS * 1000 }));
  const suv = suvFactors({ units: volume.units, ...dose }, timing, options.lbmFormula);
  const kernel = peakKernel(volume);
  const indices = vois.map((voi) => maskIndices(voi.mask));
  const results: VoiResult[] = vois.map((voi) => ({
    name: voi.name,
    source: voi.source,
    ...(voi.label === undefined ? {} : { label: voi.label }),
    voxels: 0,
    volumeMl: 0,
    frames: [],
  }));
  volume.frames.forEach((frame, f) => {
    vois.forEach((voi, v) => {
      const stats: VoiFrameResult = voiFrameStatistics(volume, frame, voi.mask, {
        kernel,
        peakCandidates: options.peakCandidates,
        indices: indices[v],
      });
      if (suv.bw)
        stats.suvbw = { mean: scale(stats.mean, suv.bw[f]), max: scale(stats.max, suv.bw[f]), peak: scale(stats.peak, suv.bw[f]) };
      if (suv.lbm)
        stats.suvlbm = { mean: scale(stats.mean, suv.lbm[f]), max: scale(stats.max, suv.lbm[f]), peak: scale(stats.peak, suv.lbm[f]) };
      results[v].voxels = stats.voxels;
      results[v].volumeMl = stats.volumeMl;
      results[v].frames.push(stats);
    });
    options.onFrame?.(f + 1, volume.frames.length);
  });
  return { ...(volume.units === undefined ? {} : { units: volume.units }), frames: times, suv, vois: results };
}

export type StatisticsRow = {
  voi: string;
  source: string;
  label: number | null;
  frame: number;
  startS: number;
  endS: number;
  midS: number;
  voxels: number;
  volumeMl: number;
  mean: number | null;
  sd: number | null;
  min: number | null;
  max: number | null;
  median: number | null;
  peak: number | null;
  suvbwMean: number | null;
  suvbwMax: number | null;
  suvbwPeak: number | null;
  suvlbmMean: number | null;
  suvlbmMax: number | null;
  suvlbmPeak: number | null;
};

export const ROW_COLUMNS: (keyof StatisticsRow)[] = [
  'voi',
  'source',
  'label',
  'frame',
  'startS',
  'endS',
  'midS',
  'voxels',
  'volumeMl',
  'mean',
  'sd',
  'min',
  'max',
  'median',
  'peak',
  'suvbwMean',
  'suvbwMax',
  'suvbwPeak',
  'suvlbmMean',
  'suvlbmMax',
  'suvlbmPeak',
];

/** One row per VOI and frame, VOI by VOI. */
export function statisticsRows(result: VoiStatisticsResult): StatisticsRow[] {
  return result.vois.flatMap((voi) =>
    voi.frames.map((s, f) => ({
      voi: voi.name,
      source: voi.source,
      label: voi.label ?? null,
      frame: result.frames[f].frame,
      startS: result.frames[f].startS,
      endS: result.frames[f].endS,
      midS: result.frames[f].midS,
      voxels: s.voxels,
      volumeMl: s.volumeMl,
      mean: s.mean,
      sd: s.sd,
      min: s.min,
      max: s.max,
      median: s.median,
      peak: s.peak,
      suvbwMean: s.suvbw?.mean ?? null,
      suvbwMax: s.suvbw?.max ?? null,
      suvbwPeak: s.suvbw?.peak ?? null,
      suvlbmMean: s.suvlbm?.mean ?? null,
      suvlbmMax: s.suvlbm?.max ?? null,
      suvlbmPeak: s.suvlbm?.peak ?? null,
    })),
  );
}

/** RFC 4180: text quoted with quotes doubled, numbers as JavaScript prints them (round-trip exact), nulls empty. */
export function rowsToCsv(rows: StatisticsRow[]): string {
  const cell = (v: unknown) =>
    typeof v === 'number' ? String(v) : v === null || v === undefined ? '' : `"${String(v).replace(/"/g, '""')}"`;
  return `${[ROW_COLUMNS.join(','), ...rows.map((r) => ROW_COLUMNS.map((c) => cell(r[c])).join(','))].join('\r\n')}\r\n`;
}

/**
 * PMOD's TAC text format (.tac), as PMOD, tacmagic and imlook4d read it: a tab-separated header
 * `start[seconds] <TAB> end[kBq/cc] <TAB> VOI names…` (the unit of the activity columns sits in
 * the second column's header), then one line per frame: start, end, mean of each VOI. BQML values
 * are written in kBq/cc (÷1000); other units are written as stored, with their DICOM name in the
 * brackets. Tabs and line breaks in VOI names become spaces.
 */
export function toPmodTac(result: VoiStatisticsResult): string {
  const bqml = result.units?.toUpperCase() === 'BQML';
  const unit = bqml ? 'kBq/cc' : (result.units ?? 'counts');
  const factor = bqml ? 1 / 1000 : 1;
  const header = ['start[seconds]', `end[${unit}]`, ...result.vois.map((v) => v.name.replace(/[\t\r\n]/g, ' '))];
  const lines = result.frames.map((t, f) =>
    [
      String(t.startS),
      String(t.endS),
      ...result.vois.map((v) => {
        const mean = v.frames[f].mean;
        return mean === null ? 'NaN' : String(mean * factor);
      }),
    ].join('\t'),
  );
  return `${[header.join('\t'), ...lines].join('\n')}\n`;
}

/** The time-activity curves (mean per VOI at frame mid-times) as a chart. */
export function tacChart(result: VoiStatisticsResult, title = 'Time-activity curves'): LineChartOptions {
  const bqml = result.units?.toUpperCase() === 'BQML';
  const factor = bqml ? 1 / 1000 : 1;
  return {
    title,
    xLabel: 'Time from series start, frame mid-time (min)',
    yLabel: bqml ? 'Mean activity concentration (kBq/ml)' : `Mean (${result.units ?? 'stored units'})`,
    series: result.vois.map((v) => ({
      name: v.name,
      x: result.frames.map((t) => t.midS / 60),
      y: v.frames.map((s) => (s.mean === null ? null : s.mean * factor)),
    })),
    xFromZero: true,
    legend: result.vois.length > 6 ? 'right' : 'inside',
  };
}
