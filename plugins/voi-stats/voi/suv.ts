import type { FrameTiming } from '../../../core/dicom/volume.ts';

/**
 * Standardised uptake values. SUV is linear in the concentration C (Bq/ml), so each frame gets a
 * factor and SUV = C × factor:
 *
 *   SUVbw  = C × weight[g] / dose[Bq]            (1 ml of tissue taken as 1 g)
 *   SUVlbm = C × leanBodyMass[g] / dose[Bq]      ("SUL")
 *
 * where dose is the injected activity decay-corrected to the time the image values refer to,
 * following the image's Decay Correction (0054,1102):
 *   START: values are decay-corrected to the series reference time (SeriesDate/SeriesTime, the
 *          acquisition start, PS3.3 C.8.9.1.1): dose × 2^(−(seriesTime − injectionTime)/T½);
 *   ADMIN: values are corrected to the administration time: the dose as given;
 *   NONE:  values are the mean activity over the frame, not corrected: the dose decayed to the
 *          frame and averaged over it, dose × e^(−λ(t₀ − tᵢ)) × (1 − e^(−λΔ)) / (λΔ) for a frame
 *          starting at t₀ lasting Δ (exact for a decaying source; the mid-time would be close).
 */

export interface PetDoseInfo {
  /** Units (0054,1001); SUV needs BQML. */
  units?: string;
  /** Decay Correction (0054,1102): START, ADMIN or NONE. */
  decayCorrection?: string;
  patientWeightKg?: number;
  /** PatientSize (0010,1020) is in metres. */
  patientSizeM?: number;
  patientSex?: string;
  /** RadionuclideTotalDose (0018,1074), Bq. */
  injectedDoseBq?: number;
  /** RadionuclideHalfLife (0018,1075), seconds. */
  halfLifeSec?: number;
  /** Injection time (RadiopharmaceuticalStartDateTime, else SeriesDate + RadiopharmaceuticalStartTime), ms on a naive UTC clock. */
  injectionMs?: number;
  /** SeriesDate + SeriesTime on the same clock: the reference time of the frame timing. */
  seriesMs?: number;
}

export type LbmFormula = 'janmahasatian' | 'james';

export interface SuvFactors {
  /** Per frame; undefined with `bwUnavailable` saying why. */
  bw?: number[];
  bwUnavailable?: string;
  lbm?: number[];
  lbmUnavailable?: string;
  /** Lean body mass used (kg) and the formula. */
  leanBodyMassKg?: number;
  lbmFormula: LbmFormula;
  /** Seconds from injection to the series reference time. */
  injectionToSeriesSec?: number;
}

/**
 * Lean body mass in kg. Janmahasatian et al. (Clin Pharmacokinet 2005), the default: it stays
 * sensible for obese patients, where James's formula (used by PERCIST 1.0, Wahl 2009) falls
 * and even turns negative:
 *   Janmahasatian  male 9270·W / (6680 + 216·BMI),  female 9270·W / (8780 + 244·BMI)
 *   James          male 1.10·W − 128·(W/H)²,        female 1.07·W − 148·(W/H)²   (H in cm)
 */
export function leanBodyMassKg(formula: LbmFormula, sex: 'M' | 'F', weightKg: number, heightM: number): number {
  if (formula === 'james') {
    const ratio = weightKg / (heightM * 100);
    return sex === 'M' ? 1.1 * weightKg - 128 * ratio * ratio : 1.07 * weightKg - 148 * ratio * ratio;
  }
  const bmi = weightKg / (heightM * heightM);
  return sex === 'M' ? (9270 * weightKg) / (6680 + 216 * bmi) : (9270 * weightKg) / (8780 + 244 * bmi);
}

/** The dose (Bq) the image values of each frame are to be divided by, or why it cannot be known. */
export function decayCorrectedDoses(info: PetDoseInfo, timing: FrameTiming[]): { doses: number[] } | { unavailable: string } {
  const { injectedDoseBq: dose, decayCorrection } = info;
  if (info.units?.toUpperCase() !== 'BQML') return { unavailable: `Units is ${info.units ?? 'absent'}, not BQML` };
  if (!(dose! > 0)) return { unavailable: 'no RadionuclideTotalDose' };
  const frames = timing.length > 0 ? timing : [{ startMs: 0, durationMs: 0 }];
  if (decayCorrection === 'ADMIN') return { doses: frames.map(() => dose!) };
  if (decayCorrection !== 'START' && decayCorrection !== 'NONE')
    return { unavailable: `DecayCorrection is ${decayCorrection ?? 'absent'} (START, ADMIN or NONE needed)` };
  if (!(info.halfLifeSec! > 0)) return { unavailable: 'no RadionuclideHalfLife' };
  if (info.injectionMs === undefined || info.seriesMs === undefined)
    return { unavailable: 'no injection time (RadiopharmaceuticalStartDateTime/Time) or SeriesDate/SeriesTime' };
  const lambda = Math.LN2 / info.halfLifeSec!;
  const toSeriesSec = (info.seriesMs - info.injectionMs) / 1000;
  if (decayCorrection === 'START') return { doses: frames.map(() => dose! * Math.exp(-lambda * toSeriesSec)) };
  if (timing.length === 0) return { unavailable: 'DecayCorrection NONE needs frame timing' };
  return {
    doses: timing.map(({ startMs, durationMs }) => {
      const start = toSeriesSec + startMs / 1000;
      const lambdaDuration = lambda * (durationMs / 1000);
      const average = lambdaDuration > 0 ? -Math.expm1(-lambdaDuration) / lambdaDuration : 1;
      return dose! * Math.exp(-lambda * start) * average;
    }),
  };
}

/** Per-frame factors for SUVbw and SUVlbm (SUV = value × factor). */
export function suvFactors(info: PetDoseInfo, timing: FrameTiming[], lbmFormula: LbmFormula = 'janmahasatian'): SuvFactors {
  const out: SuvFactors = { lbmFormula };
  if (info.injectionMs !== undefined && info.seriesMs !== undefined) out.injectionToSeriesSec = (info.seriesMs - info.injectionMs) / 1000;
  const doses = decayCorrectedDoses(info, timing);
  if ('unavailable' in doses) {
    out.bwUnavailable = out.lbmUnavailable = doses.unavailable;
    return out;
  }
  const weight = info.patientWeightKg;
  if (weight! > 0) out.bw = doses.doses.map((d) => (weight! * 1000) / d);
  else out.bwUnavailable = 'no PatientWeight';
  const sex = info.patientSex?.toUpperCase();
  if (!(weight! > 0)) out.lbmUnavailable = 'no PatientWeight';
  else if (!(info.patientSizeM! > 0)) out.lbmUnavailable = 'no PatientSize (height)';
  else if (sex !== 'M' && sex !== 'F') out.lbmUnavailable = `PatientSex is ${sex || 'absent'} (M or F needed for lean body mass)`;
  else {
    const lbm = leanBodyMassKg(lbmFormula, sex, weight!, info.patientSizeM!);
    if (lbm > 0) {
      out.leanBodyMassKg = lbm;
      out.lbm = doses.doses.map((d) => (lbm * 1000) / d);
    } else out.lbmUnavailable = `the ${lbmFormula} formula gives no positive lean body mass for these patient data`;
  }
  return out;
}
