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
  | { id: number; accept: true; transferSyntax: string; service: Service }
  | { id: number; accept: false; reason: 'abstract-syntax' | 'transfer-syntax' };

export type Service = 'verification' | 'storage' | 'find' | 'move' | 'get';

export interface NegotiationPolicy {
  acceptUnknownSopClasses: boolean;
}

const MOVE_CLASSES = new Set<string>([
  queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelMove,
  queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelMove,
]);

const GET_CLASSES = new Set<string>([
  queryRetrieveSopClasses.PatientRootQueryRetrieveInformationModelGet,
  queryRetrieveSopClasses.StudyRootQueryRetrieveInformationModelGet,
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
  let service: Service | undefined;
  if (abstractSyntax === VERIFICATION) service = 'verification';
  else if (FIND_CLASSES.has(abstractSyntax)) service = 'find';
  else if (MOVE_CLASSES.has(abstractSyntax)) service = 'move';
  else if (GET_CLASSES.has(abstractSyntax)) service = 'get';
  else if (isStorageSopClass(abstractSyntax) || abstractSyntax.startsWith(STORAGE_ROOT) || policy.acceptUnknownSopClasses)
    service = 'storage';
  if (!service) return { id, accept: false, reason: 'abstract-syntax' };
  if (service === 'storage') {
    const ts = transferSyntaxes.find((t) => isKnownTransferSyntax(t));
    return ts ? { id, accept: true, transferSyntax: ts, service } : { id, accept: false, reason: 'transfer-syntax' };
  }
  const ts = [EXPLICIT_VR_LE, IMPLICIT_VR_LE].find((t) => transferSyntaxes.includes(t));
  return ts ? { id, accept: true, transferSyntax: ts, service } : { id, accept: false, reason: 'transfer-syntax' };
}

/** What an SCP/SCU Role Selection item proposes or answers for one SOP class (PS3.7 D.3.3.4). */
export interface Roles {
  scu: boolean;
  scp: boolean;
}

/**
 * The answer to a proposed role selection. The requestor may always be SCU. It may be SCP only
 * for storage, where C-GET sends its sub-operations back on the same association (PS3.4 C.4.3);
 * for any other service we stay SCP ourselves, so the proposal is declined.
 */
export function answerRoles(service: Service | undefined, proposed: Roles): Roles {
  return { scu: proposed.scu, scp: proposed.scp && service === 'storage' };
}
