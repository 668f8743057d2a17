import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Grid, Volume } from '../../../core/dicom/volume.ts';
import { readNifti } from '../../../core/dicom/nifti-read.ts';
import { encodeNifti } from '../../../core/dicom/nifti.ts';
import {
  VOI_GRID,
  VOI_TRUTH,
  voiLabelMapNifti,
  voiPetSeries,
  voiSegmentation,
  voiTruthLabel,
  voiTruthValue,
  type VoiPetSeries,
} from '../../../test/fixtures/voi.ts';
import { labelMapOf, labelVois, parseLabelTable, resampleLabels } from './label-map.ts';
import { computeVoiStatistics, frameTimes, toPmodTac } from './report.ts';
import { readSegmentation, segmentationVois } from './seg.ts';
import { PEAK_SPHERE_RADIUS_MM, peakKernel, voiFrameStatistics } from './statistics.ts';
import { decayCorrectedDoses, leanBodyMassKg, suvFactors } from './suv.ts';
import { shapeVoi } from './voi.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-voi-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** The PET fixture's grid, built from its description (not from any loader). */
const grid: Grid = {
  dims: [VOI_GRID.cols, VOI_GRID.rows, VOI_GRID.slices],
  spacingMm: [2.0, 2.5, 3],
  affine: new Float64Array([2.0, 0, 0, VOI_GRID.originMm[0], 0, 2.5, 0, VOI_GRID.originMm[1], 0, 0, 3, VOI_GRID.originMm[2], 0, 0, 0, 1]),
};
const [nx, ny, nz] = grid.dims;
const voxels = nx * ny * nz;

function truthVolume(): Volume {
  const frames = VOI_TRUTH.frameDurationsSec.map((_, f) => {
    const data = new Float32Array(voxels);
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) data[i + nx * (j + ny * k)] = voiTruthValue(f, i, j, k);
    return data;
  });
  return {
    ...grid,
    frames,
    // What a converter trusting AcquisitionTime would give: every frame at 0.
    timing: VOI_TRUTH.frameDurationsSec.map((d) => ({ startMs: 0, durationMs: d * 1000 })),
    units: 'BQML',
    sources: [],
    varyingRescale: false,
  };
}

function truthMask(label: number): Uint8Array {
  const mask = new Uint8Array(voxels);
  for (let k = 0; k < nz; k++)
    for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) mask[i + nx * (j + ny * k)] = voiTruthLabel(i, j, k) === label ? 1 : 0;
  return mask;
}

const relativeError = (a: number, b: number) => Math.abs(a - b) / Math.abs(b);

let pet: VoiPetSeries;
beforeAll(async () => {
  pet = await voiPetSeries(path.join(root, 'pet'));
});

describe('VOIs from a label map, a SEG and shapes', () => {
  it('resamples the flipped, finer label-map NIfTI onto the PET grid voxel for voxel', async () => {
    for (const name of ['labels.nii.gz', 'labels.nii']) {
      const file = path.join(root, name);
      await voiLabelMapNifti(file);
      const image = readNifti(file);
      expect(image.transform).toBe('sform');
      expect(image.dims).toEqual([48, 40, 12]);
      // RAS → LPS: x and y negated; i runs to the patient's right, so LPS x decreases.
      expect(Array.from(image.affine)).toEqual([-1, 0, 0, 17, 0, -1.25, 0, 27.5, 0, 0, 3, -50, 0, 0, 0, 1]);
      const labels = resampleLabels(labelMapOf(image), grid);
      const vois = labelVois(labels, parseLabelTable('1 hot\n2 "cold region"\n3 absent\n'));
      expect(vois.map((v) => [v.name, v.label])).toEqual([
        ['hot', 1],
        ['cold region', 2],
        ['absent', 3],
      ]);
      expect(vois[0].mask).toEqual(truthMask(1));
      expect(vois[1].mask).toEqual(truthMask(2));
      expect(vois[2].mask.includes(1)).toBe(false);
    }
  });

  it('reads back what core/dicom/nifti.ts writes (rows flipped, sform and qform) onto the original grid', () => {
    const labels = new Float32Array(voxels);
    for (let k = 0; k < nz; k++)
      for (let j = 0; j < ny; j++) for (let i = 0; i < nx; i++) labels[i + nx * (j + ny * k)] = voiTruthLabel(i, j, k);
    const bytes = encodeNifti({
      ...grid,
      frames: [labels],
      timing: [],
      sources: [],
      varyingRescale: false,
      rescale: { slope: 1, intercept: 0 },
    });
    const sformFile = path.join(root, 'written.nii');
    fs.writeFileSync(sformFile, bytes);
    const expected = Int32Array.from(labels);
    expect(resampleLabels(labelMapOf(readNifti(sformFile)), grid)).toEqual(expected);
    // The same file with sform_code 0: the quaternion (qform) alone must give the same mapping.
    const qformOnly = Buffer.from(bytes);
    qformOnly.writeInt16LE(0, 254);
    const qformFile = path.join(root, 'written-qform.nii');
    fs.writeFileSync(qformFile, qformOnly);
    const image = readNifti(qformFile);
    expect(image.transform).toBe('qform');
    readNifti(sformFile).affine.forEach((v, n) => expect(image.affine[n]).toBeCloseTo(v, 4));
    expect(resampleLabels(labelMapOf(image), grid)).toEqual(expected);
  });

  it('without a table, every label present becomes a VOI named after its value', () => {
    const labels = new Int32Array([0, 5, 5, 2, 0]);
    expect(labelVois(labels).map((v) => [v.name, Array.from(v.mask)])).toEqual([
      ['label 2', [0, 0, 0, 1, 0]],
      ['label 5', [0, 1, 1, 0, 0]],
    ]);
  });

  it('reads label tables as JSON, FreeSurfer LUT and ITK-SNAP lines', () => {
    expect([...parseLabelTable('{"0": "bg", "1": "a", "12": "b c"}')]).toEqual([
      [1, 'a'],
      [12, 'b c'],
    ]);
    expect([...parseLabelTable('# comment\n  0  Unknown 0 0 0 0\n17 Left-Hippocampus 220 216 20 0\n')]).toEqual([[17, 'Left-Hippocampus']]);
    expect([...parseLabelTable('    1   255    0    0        1  1  1    "Left caudate"\n')]).toEqual([[1, 'Left caudate']]);
    expect(() => parseLabelTable('x striatum')).toThrow(/line 1/);
  });

  it('decodes the binary SEG (cropped grid, shuffled frames, bits packed across frames) onto the PET grid', async () => {
    const file = path.join(root, 'seg.dcm');
    await voiSegmentation(file, pet);
    const seg = readSegmentation(file);
    expect(seg.segmentationType).toBe('BINARY');
    expect(seg.frames.length).toBe(10);
    expect((seg.rows * seg.columns) % 8).not.toBe(0);
    const vois = segmentationVois(seg, grid);
    expect(vois.map((v) => [v.name, v.label, v.source])).toEqual([
      ['hot', 1, 'seg'],
      ['cold', 2, 'seg'],
    ]);
    expect(vois[0].mask).toEqual(truthMask(1));
    expect(vois[1].mask).toEqual(truthMask(2));
  });

  it('thresholds a FRACTIONAL SEG: the 100/255 rim is out at 0.5 and in at 0.3', async () => {
    const file = path.join(root, 'seg-fractional.dcm');
    await voiSegmentation(file, pet, { fractional: true });
    const seg = readSegmentation(file);
    expect(seg.segmentationType).toBe('FRACTIONAL');
    const [hot] = segmentationVois(seg, grid);
    expect(hot.mask).toEqual(truthMask(1));
    const [hotWithRim] = segmentationVois(seg, grid, 0.3);
    // Rim: one voxel more on each side in i and j (10 × 8 × 6).
    expect(hotWithRim.mask.reduce((a, b) => a + b, 0)).toBe(10 * 8 * 6);
  });

  it('rasterises spheres and boxes in LPS mm by voxel centre', () => {
    // Lattice points within radius 10 of a lattice point, counted directly: 4169.
    let lattice = 0;
    for (let a = -10; a <= 10; a++)
      for (let b = -10; b <= 10; b++) for (let c = -10; c <= 10; c++) if (a * a + b * b + c * c <= 100) lattice++;
    const fine: Grid = {
      dims: [40, 40, 40],
      spacingMm: [1, 1, 1],
      affine: new Float64Array([1, 0, 0, -100, 0, 1, 0, 50, 0, 0, 1, 7, 0, 0, 0, 1]),
    };
    const sphere = shapeVoi(fine, { kind: 'sphere', name: 's', centerMm: [-80, 70, 27], radiusMm: 10 });
    expect(sphere.mask.reduce((a, b) => a + b, 0)).toBe(lattice);
    expect(lattice).toBe(4169);
    // The cold region's box, with corners half a voxel outside its outer voxel centres.
    const [x0, y0, z0] = VOI_GRID.originMm;
    const box = shapeVoi(grid, {
      kind: 'box',
      name: 'b',
      cornerMm: [x0 + 15 * 2 - 1, y0 + 15 * 2.5 + 1.25, z0 + 2 * 3 - 1.5],
      oppositeCornerMm: [x0 + 19 * 2 + 1, y0 + 10 * 2.5 - 1.25, z0 + 5 * 3 + 1.5],
    });
    expect(box.mask).toEqual(truthMask(2));
  });
});

describe('statistics', () => {
  it('gives exact mean, SD, min, max, median, count and volume per region and frame', () => {
    const volume = truthVolume();
    const result = computeVoiStatistics(
      volume,
      [
        { name: 'hot', source: 'label-map', label: 1, mask: truthMask(1) },
        { name: 'cold', source: 'label-map', label: 2, mask: truthMask(2) },
      ],
      undefined,
    );
    const [hot, cold] = result.vois;
    expect(hot.voxels).toBe(288);
    expect(hot.volumeMl).toBeCloseTo(288 * VOI_GRID.voxelMl, 12);
    expect(cold.voxels).toBe(120);
    expect(cold.volumeMl).toBeCloseTo(1.8, 12);
    VOI_TRUTH.frameDurationsSec.forEach((_, f) => {
      expect(hot.frames[f]).toMatchObject({
        mean: VOI_TRUTH.hot.values[f],
        sd: 0,
        min: VOI_TRUTH.hot.values[f],
        max: VOI_TRUTH.hot.values[f],
        median: VOI_TRUTH.hot.values[f],
        peak: VOI_TRUTH.hot.values[f],
      });
      // Five columns of 24 voxels each: base + 0…4 steps.
      const { base, step } = { base: VOI_TRUTH.cold.base[f], step: VOI_TRUTH.cold.step[f] };
      const c = cold.frames[f];
      expect([c.mean, c.min, c.max, c.median]).toEqual([base + 2 * step, base, base + 4 * step, base + 2 * step]);
      expect(relativeError(c.sd!, step * Math.sqrt(240 / 119))).toBeLessThan(1e-12);
    });
  });

  it('an empty VOI has zero voxels and null statistics', () => {
    const s = voiFrameStatistics(grid, truthVolume().frames[0], new Uint8Array(voxels));
    expect(s).toEqual({ voxels: 0, volumeMl: 0, mean: null, sd: null, min: null, max: null, median: null, peak: null });
  });

  it('the peak sphere holds 1 cm³ and is placed where its mean is highest, not on the hottest voxel', () => {
    expect(PEAK_SPHERE_RADIUS_MM).toBeCloseTo(6.2035, 4);
    const iso: Grid = {
      dims: [30, 30, 30],
      spacingMm: [2, 2, 2],
      affine: new Float64Array([2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 2, 0, 0, 0, 0, 1]),
    };
    const kernel = peakKernel(iso);
    const volumeMm3 = kernel.weights.reduce((a, b) => a + b, 0) * 8;
    expect(relativeError(volumeMm3, 1000)).toBeLessThan(0.005);
    const data = new Float32Array(30 ** 3);
    const at = (i: number, j: number, k: number) => i + 30 * (j + 30 * k);
    data[at(5, 5, 5)] = 1000; // the hottest voxel, alone
    for (let k = 19; k <= 21; k++) for (let j = 19; j <= 21; j++) for (let i = 19; i <= 21; i++) data[at(i, j, k)] = 500; // a 6 mm cube, wholly inside a sphere centred on it
    const mask = new Uint8Array(data.length).fill(1);
    const s = voiFrameStatistics(iso, data, mask, { kernel });
    expect(s.max).toBe(1000);
    // 27 voxels of 500 over a sphere of 1000 mm³ = 125 voxels of 8 mm³.
    expect(relativeError(s.peak!, (27 * 500) / 125)).toBeLessThan(0.005);
    // With one candidate, only the hottest voxel is tried: 1000 × its weight (1) / 125 voxels.
    const hottestOnly = voiFrameStatistics(iso, data, mask, { kernel, peakCandidates: 1 });
    expect(relativeError(hottestOnly.peak!, 1000 / 125)).toBeLessThan(0.005);
  });
});

describe('frame times and SUV', () => {
  it('takes frame times from FrameReferenceTime and ActualFrameDuration, not the timing a converter got from AcquisitionTime', () => {
    const volume = truthVolume();
    const reference = VOI_TRUTH.frameStartsSec.map((s, f) => (s + VOI_TRUTH.frameDurationsSec[f] / 2) * 1000);
    expect(frameTimes(volume.timing, 4, reference).map((t) => [t.startS, t.endS, t.midS])).toEqual([
      [0, 30, 15],
      [30, 60, 45],
      [60, 120, 90],
      [120, 240, 180],
    ]);
    // A gap after frame 2: reference times outside back-to-back frames are taken as mid-times.
    const gapped = [15000, 45000, 390000, 480000];
    expect(frameTimes(volume.timing, 4, gapped).map((t) => [t.startS, t.endS])).toEqual([
      [0, 30],
      [30, 60],
      [360, 420],
      [420, 540],
    ]);
    // Timing that agrees with the reference times is kept, gaps and all.
    const measured = [0, 30000, 360000, 420000].map((startMs, f) => ({ startMs, durationMs: volume.timing[f].durationMs }));
    expect(frameTimes(measured, 4, [14000, 46000, 389000, 481000]).map((t) => t.startS)).toEqual([0, 30, 360, 420]);
    // Without reference times the given timing stands.
    expect(frameTimes(volume.timing, 4).map((t) => t.startS)).toEqual([0, 0, 0, 0]);
  });

  const info = {
    units: 'BQML',
    decayCorrection: 'START',
    patientWeightKg: VOI_TRUTH.patientWeightKg,
    patientSizeM: VOI_TRUTH.patientSizeM,
    patientSex: 'M',
    injectedDoseBq: VOI_TRUTH.injectedDoseBq,
    halfLifeSec: VOI_TRUTH.halfLifeSec,
    injectionMs: 1_000_000,
    seriesMs: 1_000_000 + VOI_TRUTH.injectionToSeriesSec * 1000,
  };
  const timing = VOI_TRUTH.frameStartsSec.map((s, f) => ({ startMs: s * 1000, durationMs: VOI_TRUTH.frameDurationsSec[f] * 1000 }));

  it('SUVbw and SUVlbm with the dose decayed to the series start (START), by hand', () => {
    const decayed = 350e6 * 0.5 ** (600 / 6586.2);
    const bmi = 72.5 / (1.76 * 1.76);
    const lbm = (9270 * 72.5) / (6680 + 216 * bmi);
    const suv = suvFactors(info, timing);
    expect(suv.bw!.every((f) => relativeError(f, 72500 / decayed) < 1e-13)).toBe(true);
    expect(relativeError(suv.leanBodyMassKg!, lbm)).toBeLessThan(1e-13);
    expect(relativeError(suv.lbm![3], (lbm * 1000) / decayed)).toBeLessThan(1e-13);
    // The hot region in the last frame: 12000 Bq/ml.
    expect(relativeError(12000 * suv.bw![3], (12000 * 72500) / decayed)).toBeLessThan(1e-13);
    expect(relativeError(leanBodyMassKg('james', 'M', 72.5, 1.76), 1.1 * 72.5 - 128 * (72.5 / 176) ** 2)).toBeLessThan(1e-13);
    expect(relativeError(leanBodyMassKg('janmahasatian', 'F', 60, 1.6), (9270 * 60) / (8780 + 244 * (60 / 2.56)))).toBeLessThan(1e-13);
  });

  it('ADMIN uses the dose as given; NONE the dose decayed over each frame (checked by numerical integration)', () => {
    expect(decayCorrectedDoses({ ...info, decayCorrection: 'ADMIN' }, timing)).toEqual({ doses: [350e6, 350e6, 350e6, 350e6] });
    const none = decayCorrectedDoses({ ...info, decayCorrection: 'NONE' }, timing);
    if (!('doses' in none)) throw new Error(none.unavailable);
    const lambda = Math.LN2 / 6586.2;
    timing.forEach(({ startMs, durationMs }, f) => {
      // Simpson's rule over the frame, 1000 intervals: the mean of the decaying dose.
      const t0 = 600 + startMs / 1000;
      const d = durationMs / 1000;
      let integral = 0;
      for (let n = 0; n <= 1000; n++) integral += (n === 0 || n === 1000 ? 1 : n % 2 ? 4 : 2) * Math.exp(-lambda * (t0 + (n * d) / 1000));
      const mean = (350e6 * ((integral * d) / 3000)) / d;
      expect(relativeError(none.doses[f], mean)).toBeLessThan(1e-12);
    });
  });

  it('says why SUV is unavailable', () => {
    expect(suvFactors({ ...info, units: 'CNTS' }, timing).bwUnavailable).toBe('Units is CNTS, not BQML');
    expect(suvFactors({ ...info, decayCorrection: undefined }, timing).bwUnavailable).toMatch(/DecayCorrection is absent/);
    const noHeight = suvFactors({ ...info, patientSizeM: undefined }, timing);
    expect(noHeight.bw).toBeDefined();
    expect(noHeight.lbmUnavailable).toBe('no PatientSize (height)');
    expect(suvFactors({ ...info, patientSex: 'O' }, timing).lbmUnavailable).toMatch(/PatientSex is O/);
  });

  it('writes the PMOD TAC table in kBq/cc', () => {
    const volume = truthVolume();
    const result = computeVoiStatistics(
      volume,
      [
        { name: 'hot', source: 'label-map', mask: truthMask(1) },
        { name: 'cold\tregion', source: 'box', mask: truthMask(2) },
      ],
      info,
      {
        frameReferenceTimesMs: [15000, 45000, 90000, 180000],
      },
    );
    expect(toPmodTac(result)).toBe(
      'start[seconds]\tend[kBq/cc]\thot\tcold region\n0\t30\t1\t0.52\n30\t60\t4\t0.84\n60\t120\t9\t1.08\n120\t240\t12\t1.2\n',
    );
  });
});
