/**
 * The seeds every mutation starts from: valid upper-layer streams and datasets, as a peer that
 * follows PS3.7/PS3.8 would send them. The fuzzer corrupts copies of these.
 */
import {
  encodeAssociateRq,
  encodeCommandSet,
  encodePData,
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  VERIFICATION_SOP_CLASS,
} from '../helpers/raw-scu.ts';
import { instanceDataset, type InstanceIds } from './dicom-bytes.ts';

export const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';
export const CALLED_AE = 'DICOMFLOW';
export const CALLING_AE = 'FUZZER';
/** Context ids of seedAssociateRq: 1 Verification, 3 CT explicit VR LE, 5 CT implicit VR LE. */
export const CONTEXT = { echo: 1, ctExplicit: 3, ctImplicit: 5 } as const;

export function seedAssociateRq(callingAe = CALLING_AE): Buffer {
  return encodeAssociateRq({
    callingAe,
    calledAe: CALLED_AE,
    maxPdu: 16384,
    contexts: [
      { id: CONTEXT.echo, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
      { id: CONTEXT.ctExplicit, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
      { id: CONTEXT.ctImplicit, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
    ],
  });
}

export function seedEchoCommand(messageId = 1): Buffer {
  return encodeCommandSet([
    [0x0002, { ui: VERIFICATION_SOP_CLASS }],
    [0x0100, { us: 0x0030 }],
    [0x0110, { us: messageId }],
    [0x0800, { us: 0x0101 }],
  ]);
}

export function seedStoreCommand(sopInstanceUid: string, messageId = 1, sopClassUid = CT_IMAGE_STORAGE): Buffer {
  return encodeCommandSet([
    [0x0002, { ui: sopClassUid }],
    [0x0100, { us: 0x0001 }],
    [0x0110, { us: messageId }],
    [0x0700, { us: 0 }],
    [0x0800, { us: 0x0000 }],
    [0x1000, { ui: sopInstanceUid }],
  ]);
}

/** Unique per case, so every log line and index row is traced to the case that made it. */
export function caseIds(seed: number, index: number): InstanceIds {
  const root = `2.25.${seed >>> 0}${String(index).padStart(6, '0')}`;
  return { sopClassUid: CT_IMAGE_STORAGE, sopInstanceUid: `${root}.3`, studyInstanceUid: `${root}.1`, seriesInstanceUid: `${root}.2` };
}

export function seedDataset(ids: InstanceIds): Buffer {
  return instanceDataset(ids);
}

/** A whole C-ECHO as P-DATA-TF bytes on the Verification context. */
export function seedEchoPData(): Buffer {
  return encodePData(CONTEXT.echo, true, true, seedEchoCommand());
}

export const STUDY_ROOT_FIND = '1.2.840.10008.5.1.4.1.2.2.1';
export const STUDY_ROOT_MOVE = '1.2.840.10008.5.1.4.1.2.2.2';
export const STUDY_ROOT_GET = '1.2.840.10008.5.1.4.1.2.2.3';
/** Query/Retrieve contexts the runner proposes beside CONTEXT's (not in seedAssociateRq). */
export const QUERY_CONTEXT = { find: 7, move: 9, get: 11 } as const;

/** C-FIND-RQ, C-MOVE-RQ or C-GET-RQ (PS3.7 9.3.2-9.3.4) with an identifier to follow. */
export function seedQueryCommand(kind: 'find' | 'move' | 'get', messageId = 1): Buffer {
  const sopClass = kind === 'find' ? STUDY_ROOT_FIND : kind === 'move' ? STUDY_ROOT_MOVE : STUDY_ROOT_GET;
  const field = kind === 'find' ? 0x0020 : kind === 'move' ? 0x0021 : 0x0010;
  return encodeCommandSet([
    [0x0002, { ui: sopClass }],
    [0x0100, { us: field }],
    [0x0110, { us: messageId }],
    ...(kind === 'move' ? [[0x0600, { ae: 'NOWHERE' }] as [number, { ae: string }]] : []),
    [0x0700, { us: 0 }],
    [0x0800, { us: 0x0000 }],
  ]);
}

/** A stored object whose long values make a backtracking wildcard matcher slow (bait for query cases). */
export const BAIT_PATIENT = 'a'.repeat(64);
