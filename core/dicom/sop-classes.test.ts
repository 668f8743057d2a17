import { describe, expect, it } from 'vitest';
import {
  isStorageSopClass,
  queryRetrieveSopClasses,
  sopClassByKeyword,
  sopClassKeyword,
  sopClassUidFromNameOrUid,
  storageSopClasses,
} from './sop-classes.ts';

const uidPattern = /^[0-9]+(\.[0-9]+)*$/;

describe('storageSopClasses table', () => {
  it('has unique UIDs and keywords, also when keywords are compared without case', () => {
    const uids = storageSopClasses.map((c) => c.uid);
    const keywords = storageSopClasses.map((c) => c.keyword);
    expect(new Set(uids).size).toBe(uids.length);
    expect(new Set(keywords).size).toBe(keywords.length);
    expect(new Set(keywords.map((k) => k.toLowerCase())).size).toBe(keywords.length);
  });

  it('holds only well-formed UIDs of at most 64 characters', () => {
    for (const { uid } of storageSopClasses) {
      expect(uid).toMatch(uidPattern);
      expect(uid.length).toBeLessThanOrEqual(64);
    }
  });

  it('has a PS3.6-style keyword and a name for every entry', () => {
    for (const c of storageSopClasses) {
      expect(c.keyword).toMatch(/^[A-Za-z0-9]+$/);
      expect(c.name.length).toBeGreaterThan(0);
    }
  });

  it('covers at least the 186 classes DCMTK 3.6.7 storescp accepts', () => {
    expect(storageSopClasses.length).toBeGreaterThanOrEqual(186);
  });

  it.each([
    ['1.2.840.10008.5.1.4.1.1.2', 'CTImageStorage', 'CT Image Storage'],
    ['1.2.840.10008.5.1.4.1.1.4', 'MRImageStorage', 'MR Image Storage'],
    ['1.2.840.10008.5.1.4.1.1.7', 'SecondaryCaptureImageStorage', 'Secondary Capture Image Storage'],
    ['1.2.840.10008.5.1.4.1.1.128', 'PositronEmissionTomographyImageStorage', 'Positron Emission Tomography Image Storage'],
    ['1.2.840.10008.5.1.4.1.1.130', 'EnhancedPETImageStorage', 'Enhanced PET Image Storage'],
    ['1.2.840.10008.5.1.4.1.1.66.4', 'SegmentationStorage', 'Segmentation Storage'],
    ['1.2.840.10008.5.1.4.1.1.481.2', 'RTDoseStorage', 'RT Dose Storage'],
    ['1.2.840.10008.5.1.4.1.1.104.1', 'EncapsulatedPDFStorage', 'Encapsulated PDF Storage'],
    [
      '1.2.840.10008.5.1.4.1.1.7.4',
      'MultiFrameTrueColorSecondaryCaptureImageStorage',
      'Multi-frame True Color Secondary Capture Image Storage',
    ],
  ])('knows %s as %s', (uid, keyword, name) => {
    expect(sopClassByKeyword(keyword)).toEqual({ uid, keyword, name, retired: false });
  });

  it('marks retired and trial classes as retired', () => {
    expect(sopClassByKeyword('NuclearMedicineImageStorageRetired')).toMatchObject({ uid: '1.2.840.10008.5.1.4.1.1.5', retired: true });
    expect(sopClassByKeyword('NuclearMedicineImageStorage')).toMatchObject({ uid: '1.2.840.10008.5.1.4.1.1.20', retired: false });
    expect(sopClassByKeyword('UltrasoundMultiFrameImageStorageRetired')?.retired).toBe(true);
    expect(sopClassByKeyword('StandaloneOverlayStorage')?.retired).toBe(true);
    expect(sopClassByKeyword('TextSRStorageTrial')?.retired).toBe(true);
    expect(sopClassByKeyword('XRayAngiographicBiPlaneImageStorage')?.retired).toBe(true);
  });
});

describe('isStorageSopClass', () => {
  it.each([
    ['CT', '1.2.840.10008.5.1.4.1.1.2'],
    ['retired US multi-frame', '1.2.840.10008.5.1.4.1.1.3'],
    ['trial waveform (DCMTK DRAFT_)', '1.2.840.10008.5.1.4.1.1.9.1'],
    ['DICOS CT', '1.2.840.10008.5.1.4.1.1.501.1'],
    ['DICONDE eddy current', '1.2.840.10008.5.1.4.1.1.601.1'],
    ['RT Beams Delivery Instruction', '1.2.840.10008.5.1.4.34.7'],
    ['Hanging Protocol (non-patient)', '1.2.840.10008.5.1.4.38.1'],
    ['Color Palette (non-patient)', '1.2.840.10008.5.1.4.39.1'],
  ])('accepts %s', (_label, uid) => {
    expect(isStorageSopClass(uid)).toBe(true);
  });

  it.each([
    ['Verification', '1.2.840.10008.1.1'],
    ['Study Root FIND', '1.2.840.10008.5.1.4.1.2.2.1'],
    ['Storage Commitment Push Model', '1.2.840.10008.1.20.1'],
    ['Media Storage Directory (DICOMDIR)', '1.2.840.10008.1.3.10'],
    ['a private class', '1.2.3.4.5'],
    ['an empty string', ''],
    ['a keyword instead of a UID', 'CTImageStorage'],
  ])('rejects %s', (_label, uid) => {
    expect(isStorageSopClass(uid)).toBe(false);
  });
});

describe('lookups by keyword and UID', () => {
  it('sopClassKeyword gives the keyword of a storage UID and undefined otherwise', () => {
    expect(sopClassKeyword('1.2.840.10008.5.1.4.1.1.128')).toBe('PositronEmissionTomographyImageStorage');
    expect(sopClassKeyword('1.2.840.10008.1.1')).toBeUndefined();
    expect(sopClassKeyword('9.9.9')).toBeUndefined();
  });

  it('sopClassByKeyword is exact and undefined for unknown keywords', () => {
    expect(sopClassByKeyword('ctimagestorage')).toBeUndefined();
    expect(sopClassByKeyword('NoSuchStorage')).toBeUndefined();
  });

  it('sopClassUidFromNameOrUid resolves storage and Query/Retrieve keywords', () => {
    expect(sopClassUidFromNameOrUid('CTImageStorage')).toBe('1.2.840.10008.5.1.4.1.1.2');
    expect(sopClassUidFromNameOrUid('EnhancedPETImageStorage')).toBe('1.2.840.10008.5.1.4.1.1.130');
    expect(sopClassUidFromNameOrUid('Verification')).toBe('1.2.840.10008.1.1');
    expect(sopClassUidFromNameOrUid('StudyRootQueryRetrieveInformationModelMove')).toBe('1.2.840.10008.5.1.4.1.2.2.2');
  });

  it('sopClassUidFromNameOrUid accepts DCMTK spellings that differ only in case, and trims', () => {
    expect(sopClassUidFromNameOrUid('MultiframeTrueColorSecondaryCaptureImageStorage')).toBe('1.2.840.10008.5.1.4.1.1.7.4');
    expect(sopClassUidFromNameOrUid('  RTDoseStorage ')).toBe('1.2.840.10008.5.1.4.1.1.481.2');
  });

  it('sopClassUidFromNameOrUid passes any well-formed UID through, known or private', () => {
    expect(sopClassUidFromNameOrUid('1.2.840.10008.5.1.4.1.1.66.4')).toBe('1.2.840.10008.5.1.4.1.1.66.4');
    expect(sopClassUidFromNameOrUid('1.2.826.0.1.3680043.2.1143.1')).toBe('1.2.826.0.1.3680043.2.1143.1');
  });

  it('sopClassUidFromNameOrUid gives undefined for unknown names and malformed UIDs', () => {
    expect(sopClassUidFromNameOrUid('CTImage')).toBeUndefined();
    expect(sopClassUidFromNameOrUid('')).toBeUndefined();
    expect(sopClassUidFromNameOrUid('1.2..3')).toBeUndefined();
    expect(sopClassUidFromNameOrUid(`1.${'2'.repeat(64)}`)).toBeUndefined();
  });
});

describe('queryRetrieveSopClasses', () => {
  it('holds the Verification and Q/R UIDs of PS3.6', () => {
    expect(queryRetrieveSopClasses).toMatchObject({
      Verification: '1.2.840.10008.1.1',
      PatientRootQueryRetrieveInformationModelFind: '1.2.840.10008.5.1.4.1.2.1.1',
      PatientRootQueryRetrieveInformationModelMove: '1.2.840.10008.5.1.4.1.2.1.2',
      PatientRootQueryRetrieveInformationModelGet: '1.2.840.10008.5.1.4.1.2.1.3',
      StudyRootQueryRetrieveInformationModelFind: '1.2.840.10008.5.1.4.1.2.2.1',
      StudyRootQueryRetrieveInformationModelMove: '1.2.840.10008.5.1.4.1.2.2.2',
      StudyRootQueryRetrieveInformationModelGet: '1.2.840.10008.5.1.4.1.2.2.3',
      PatientStudyOnlyQueryRetrieveInformationModelFind: '1.2.840.10008.5.1.4.1.2.3.1',
      PatientStudyOnlyQueryRetrieveInformationModelMove: '1.2.840.10008.5.1.4.1.2.3.2',
      PatientStudyOnlyQueryRetrieveInformationModelGet: '1.2.840.10008.5.1.4.1.2.3.3',
    });
  });

  it('has unique, well-formed UIDs that are not storage classes', () => {
    const uids = Object.values(queryRetrieveSopClasses);
    expect(new Set(uids).size).toBe(uids.length);
    for (const uid of uids) {
      expect(uid).toMatch(uidPattern);
      expect(uid.length).toBeLessThanOrEqual(64);
      expect(isStorageSopClass(uid)).toBe(false);
    }
  });
});
