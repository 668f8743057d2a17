import { describe, expect, it } from 'vitest';
import { encodeIdentifier, writers } from './identifier-encoder.ts';

const IMPLICIT = '1.2.840.10008.1.2';
const EXPLICIT = '1.2.840.10008.1.2.1';

// Identifiers as C-FIND builds them (text values, empty sequences), with the values that make
// writers differ: odd lengths, UI padding, multiple values, empty values, PN with empty values,
// text outside ASCII, values longer than their VR allows, one too long for a 16-bit length.
const IDENTIFIERS: Record<string, unknown>[] = [
  { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '1.2.3', PatientName: 'DOE^JOHN', PatientID: 'P1', StudyDate: '20240101' },
  { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '1.2.34', PatientName: '', PatientID: '', StudyDate: '', AccessionNumber: '' },
  { QueryRetrieveLevel: 'SERIES', Modality: 'CT', SeriesNumber: '7', SeriesInstanceUID: '1.2.840.99.1' },
  { QueryRetrieveLevel: 'STUDY', ModalitiesInStudy: 'CT\\MR\\PT', StudyDescription: 'A\\B', NumberOfStudyRelatedInstances: '12' },
  { QueryRetrieveLevel: 'PATIENT', PatientName: 'A\\\\B', OtherPatientNames: '\\X^Y\\', PatientBirthDate: '19600101' },
  { QueryRetrieveLevel: 'PATIENT', PatientName: '\\', PatientComments: 'line one\\line two', PatientSex: 'F' },
  { SpecificCharacterSet: 'ISO_IR 192', QueryRetrieveLevel: 'STUDY', PatientName: 'Müller^Jürgen=山田^太郎', StudyDescription: 'Ünïcode' },
  { QueryRetrieveLevel: 'STUDY', PatientName: `${'X'.repeat(1000)}^LONG`, StudyDescription: 'Y'.repeat(81), StudyID: 'Z'.repeat(17) },
  { QueryRetrieveLevel: 'STUDY', AccessionNumber: 'ACC-Ā-odd', StudyTime: '083000.12', StudyDate: '2024.01.01' },
  { QueryRetrieveLevel: 'IMAGE', SOPInstanceUID: '1.2.3.4.5', InstanceNumber: '1', SliceThickness: '1.25', ContentDate: '' },
  { QueryRetrieveLevel: 'STUDY', ReferencedStudySequence: [], ProcedureCodeSequence: [], StudyInstanceUID: '1.2' },
  { QueryRetrieveLevel: 'STUDY', PatientName: 'N'.repeat(70_001), StudyDescription: 'D'.repeat(65_535) },
  { QueryRetrieveLevel: 'STUDY', TextValue: 'C'.repeat(65_537), LongCodeValue: 'odd', RetrieveURL: 'http://x/y?z=1', StudyInstanceUID: '' },
  { QueryRetrieveLevel: 'SERIES', SeriesDescription: 'odd', PerformedProcedureStepStartDate: '2024', Laterality: 'L' },
];

describe('encodeIdentifier', () => {
  for (const [i, identifier] of IDENTIFIERS.entries()) {
    for (const syntax of [IMPLICIT, EXPLICIT]) {
      it(`writes identifier ${i} in ${syntax === IMPLICIT ? 'implicit' : 'explicit'} VR as dcmjs does`, () => {
        const direct = writers.direct(identifier, syntax === EXPLICIT);
        expect(direct).toBeDefined();
        expect(direct!.equals(writers.dcmjs(identifier, syntax))).toBe(true);
        expect(encodeIdentifier(identifier, syntax).equals(direct!)).toBe(true);
      });
    }
  }

  it('leaves to dcmjs what is not text: binary VRs, sequences with items, unknown keywords', () => {
    for (const identifier of [
      { QueryRetrieveLevel: 'IMAGE', Rows: '512' },
      { QueryRetrieveLevel: 'STUDY', ReferencedStudySequence: [{ ReferencedSOPInstanceUID: '1.2' }] },
      { QueryRetrieveLevel: 'STUDY', NotAKeyword: 'x' },
    ]) {
      for (const syntax of [IMPLICIT, EXPLICIT]) {
        expect(writers.direct(identifier, syntax === EXPLICIT)).toBeUndefined();
        expect(encodeIdentifier(identifier, syntax).equals(writers.dcmjs(identifier, syntax))).toBe(true);
      }
    }
  });
});
