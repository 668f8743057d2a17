import { isStorageSopClass, queryRetrieveSopClasses } from '../../core/dicom/sop-classes.ts';
import { isKnownTransferSyntax } from '../../core/dicom/transfer-syntaxes.ts';

const VERIFICATION = '1.2.840.10008.1.1';
const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
// Storage SOP classes all live under this root (PS3.4 B.5); private ones elsewhere.
const STORAGE_ROOT = '1.2.840.10008.5.1.4.1.1.';

export interface ProposedContext {
  id: number;
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export type ContextDecision =
  | { id: number; accept: true; transferSyntax: string; service: 'verification' | 'storage' | 'find' | 'move' }
  | { id: number; accept: false; reason: 'abstract-syntax' | 'transfer-syntax' };

export interface NegotiationPolicy {
  acceptUnknownSopClasses: boolean;
}

const MOVE_CLASSES = new Set<string>([
  queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelMove,
  queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelMove,
]);

const FIND_CLASSES = new Set<string>([
  queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelFind,
  queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelFind,
]);

/**
 * Decides each proposed presentation context. Storage keeps objects in the transfer syntax they
 * were sent in, so the SCU's own order of preference wins among the syntaxes we know; for
 * commands we answer ourselves, little endian explicit is preferred, then implicit.
 */
export function decideContext(proposed: ProposedContext, policy: NegotiationPolicy): ContextDecision {
  const { id, abstractSyntax, transferSyntaxes } = proposed;
  let service: 'verification' | 'storage' | 'find' | 'move' | undefined;
  if (abstractSyntax === VERIFICATION) service = 'verification';
  else if (FIND_CLASSES.has(abstractSyntax)) service = 'find';
  else if (MOVE_CLASSES.has(abstractSyntax)) service = 'move';
  else if (isStorageSopClass(abstractSyntax) || abstractSyntax.startsWith(STORAGE_ROOT) || policy.acceptUnknownSopClasses) service = 'storage';
  if (!service) return { id, accept: false, reason: 'abstract-syntax' };
  if (service === 'storage') {
    const ts = transferSyntaxes.find((t) => isKnownTransferSyntax(t));
    return ts ? { id, accept: true, transferSyntax: ts, service } : { id, accept: false, reason: 'transfer-syntax' };
  }
  const ts = [EXPLICIT_VR_LE, IMPLICIT_VR_LE].find((t) => transferSyntaxes.includes(t));
  return ts ? { id, accept: true, transferSyntax: ts, service } : { id, accept: false, reason: 'transfer-syntax' };
}
