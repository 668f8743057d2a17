import dimse from 'dcmjs-dimse';
import { describe, expect, it } from 'vitest';
import { readIdentifier } from './find.ts';
import { encodeIdentifier } from './identifier-encoder.ts';

// C-FIND identifiers were read by dcmjs-dimse (its Dataset from an element buffer) until the SCP
// took C-FIND over: readIdentifier must give the same keywords and values.
const IDENTIFIERS: Record<string, unknown>[] = [
  { QueryRetrieveLevel: 'STUDY', StudyInstanceUID: '', PatientName: 'FAMILY012*', StudyDate: '20220301-20220307', PatientID: '' },
  { QueryRetrieveLevel: 'SERIES', StudyInstanceUID: '1.2.3.4', Modality: 'CT', SeriesNumber: '', NumberOfSeriesRelatedInstances: '' },
  { QueryRetrieveLevel: 'IMAGE', SOPInstanceUID: '1.2.3\\1.2.4', InstanceNumber: '', Rows: '', ContentDate: '' },
  { SpecificCharacterSet: 'ISO_IR 192', QueryRetrieveLevel: 'PATIENT', PatientName: 'Müller^Jürgen', PatientBirthDate: '' },
  { QueryRetrieveLevel: 'STUDY', ReferencedStudySequence: [], ModalitiesInStudy: 'CT\\MR', StudyDescription: 'odd' },
];

describe('readIdentifier', () => {
  for (const [i, identifier] of IDENTIFIERS.entries()) {
    for (const syntax of ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']) {
      it(`reads identifier ${i} in ${syntax} as dcmjs-dimse did`, () => {
        const bytes = encodeIdentifier(identifier, syntax);
        const theirs = new dimse.Dataset(bytes, syntax).getElements();
        expect(readIdentifier(bytes, syntax)).toEqual(theirs);
        expect(readIdentifier(bytes, syntax).QueryRetrieveLevel).toBe(identifier.QueryRetrieveLevel);
      });
    }
  }

  it('reads no bytes as no keys', () => {
    expect(readIdentifier(Buffer.alloc(0), '1.2.840.10008.1.2')).toEqual({});
  });
});
