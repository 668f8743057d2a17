import fs from 'node:fs';
import dcmjs from 'dcmjs';
import type { PetDoseInfo } from './suv.ts';

/**
 * Reads what SUV needs from one image of a PET series (the header only): Units, Decay
 * Correction, patient weight, size and sex, and the first Radiopharmaceutical Information item.
 */
export function readPetDoseInfo(file: string): PetDoseInfo & { studyInstanceUid?: string; frameOfReferenceUid?: string } {
  const bytes = fs.readFileSync(file);
  const message = dcmjs.data.DicomMessage.readFile(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength), {
    untilTag: '7FE00010',
  });
  const ds = dcmjs.data.DicomMetaDictionary.naturalizeDataset(message.dict) as Record<string, any>;
  const radiopharmaceutical =
    (Array.isArray(ds.RadiopharmaceuticalInformationSequence)
      ? ds.RadiopharmaceuticalInformationSequence[0]
      : ds.RadiopharmaceuticalInformationSequence) ?? {};
  const seriesMs = dicomDateTimeMs(ds.SeriesDate, ds.SeriesTime);
  let injectionMs = parseDt(radiopharmaceutical.RadiopharmaceuticalStartDateTime);
  if (injectionMs === undefined && radiopharmaceutical.RadiopharmaceuticalStartTime && seriesMs !== undefined) {
    // Only a time of day: the injection's date is the series date, or the day before when the
    // scan starts after midnight (an injection "later" than the scan is the previous evening).
    injectionMs = dicomDateTimeMs(ds.SeriesDate, radiopharmaceutical.RadiopharmaceuticalStartTime);
    if (injectionMs !== undefined && injectionMs > seriesMs) injectionMs -= 86_400_000;
  }
  const number = (v: unknown) => (v === undefined || v === null || v === '' ? undefined : Number(v));
  return {
    units: ds.Units,
    decayCorrection: ds.DecayCorrection,
    patientWeightKg: number(ds.PatientWeight),
    patientSizeM: number(ds.PatientSize),
    patientSex: ds.PatientSex,
    injectedDoseBq: number(radiopharmaceutical.RadionuclideTotalDose),
    halfLifeSec: number(radiopharmaceutical.RadionuclideHalfLife),
    injectionMs,
    seriesMs,
    studyInstanceUid: ds.StudyInstanceUID,
    frameOfReferenceUid: ds.FrameOfReferenceUID,
  };
}

/** DA + TM → ms on a naive UTC clock (only differences matter). TM may be HHMMSS.ffffff or HH:MM:SS (ACR-NEMA). */
export function dicomDateTimeMs(date: string | undefined, time: string | undefined): number | undefined {
  if (!date || !time || !/^\d{8}$/.test(date.trim())) return undefined;
  const t = time.trim().replace(/:/g, '');
  const match = /^(\d{2})(\d{2})?(\d{2})?(\.\d+)?$/.exec(t);
  if (!match) return undefined;
  const d = date.trim();
  const seconds = Number(match[3] ?? 0) + Number(match[4] ?? 0);
  return (
    Date.UTC(Number(d.slice(0, 4)), Number(d.slice(4, 6)) - 1, Number(d.slice(6, 8)), Number(match[1]), Number(match[2] ?? 0)) +
    seconds * 1000
  );
}

/** DT (YYYYMMDDHHMMSS.ffffff, a UTC offset ignored: both times come from one site's clock). */
function parseDt(value: string | undefined): number | undefined {
  if (!value) return undefined;
  const match = /^(\d{8})(\d{2,6}(?:\.\d+)?)?/.exec(value.trim());
  if (!match?.[2]) return undefined;
  return dicomDateTimeMs(match[1], match[2]);
}
