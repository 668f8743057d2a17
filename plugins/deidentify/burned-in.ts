/**
 * Whether an object may carry identifying text in its pixels, which a header-only profile cannot
 * remove (PS3.15 E.3.1, Clean Pixel Data, is not offered here). Decided from:
 * - Burned In Annotation (0028,0301) = YES, or Recognizable Visual Features (0028,0302) = YES;
 * - otherwise, without an explicit Burned In Annotation NO: modalities that usually hold
 *   screen captures or photographs (SC secondary capture, US ultrasound, XC external camera,
 *   OT other) and the Secondary Capture SOP classes (PS3.4 B.5: 1.2.840.10008.5.1.4.1.1.7[.x]),
 *   whatever their modality (dose screens and scanned requests are sent as SC under the
 *   modality of the scan).
 */

const SUSPECT_MODALITIES = new Set(['SC', 'US', 'XC', 'OT']);
const SECONDARY_CAPTURE = '1.2.840.10008.5.1.4.1.1.7';

export interface BurnedInFacts {
  burnedInAnnotation?: string;
  recognizableVisualFeatures?: string;
  modality?: string;
  sopClassUid?: string;
}

/** The reason the object is taken to have burned-in annotation, or undefined. */
export function burnedInReason(facts: BurnedInFacts): string | undefined {
  const bia = facts.burnedInAnnotation?.trim().toUpperCase();
  if (bia === 'YES') return 'Burned In Annotation is YES';
  if (facts.recognizableVisualFeatures?.trim().toUpperCase() === 'YES') return 'Recognizable Visual Features is YES';
  if (bia === 'NO') return undefined;
  const modality = facts.modality?.trim().toUpperCase() ?? '';
  if (SUSPECT_MODALITIES.has(modality)) return `modality ${modality} without Burned In Annotation NO`;
  const sopClass = facts.sopClassUid?.trim() ?? '';
  if (sopClass === SECONDARY_CAPTURE || sopClass.startsWith(`${SECONDARY_CAPTURE}.`))
    return 'a Secondary Capture object without Burned In Annotation NO';
  return undefined;
}
