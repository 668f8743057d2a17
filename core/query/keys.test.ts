import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { dateTimePairs, isEntityKey, keyLevelIn, levelsOf, queryKey, queryKeys, rowOf, uniqueKeyOf, type EntityKey } from './keys.ts';

interface DictionaryEntry {
  tag: string;
  vr: string;
  vm: string;
}
// dcmjs ships no types; only its data dictionary is read here.
const dcmjs = createRequire(import.meta.url)('dcmjs') as {
  data: { DicomMetaDictionary: { nameMap: Record<string, DictionaryEntry | undefined> } };
};
const dictionary = dcmjs.data.DicomMetaDictionary.nameMap;

const entityKey = (keyword: string): EntityKey => {
  const key = queryKey(keyword);
  if (key === undefined || !isEntityKey(key)) throw new Error(`${keyword} is not an entity key`);
  return key;
};

describe('query keys', () => {
  it.each(queryKeys.map((key) => [key.keyword, key] as const))('%s has the tag and VR of the DICOM dictionary', (keyword, key) => {
    const entry = dictionary[keyword];
    expect(entry).toBeDefined();
    expect(`(${key.tag.slice(0, 4)},${key.tag.slice(4)})`).toBe(entry!.tag);
    expect(key.vr).toBe(entry!.vr);
    expect(key.multiValued === true).toBe(entry!.vm !== '1');
  });

  it('lists each keyword once', () => {
    expect(new Set(queryKeys.map((key) => key.keyword)).size).toBe(queryKeys.length);
  });

  it('names the unique key of each level of each model', () => {
    expect(levelsOf('PATIENT')).toEqual(['PATIENT', 'STUDY', 'SERIES', 'IMAGE']);
    expect(levelsOf('STUDY')).toEqual(['STUDY', 'SERIES', 'IMAGE']);
    expect(uniqueKeyOf('PATIENT', 'PATIENT')).toBe('PatientID');
    expect(uniqueKeyOf('PATIENT', 'STUDY')).toBeUndefined();
    expect(uniqueKeyOf('STUDY', 'STUDY')).toBe('StudyInstanceUID');
    expect(uniqueKeyOf('SERIES', 'PATIENT')).toBe('SeriesInstanceUID');
    expect(uniqueKeyOf('IMAGE', 'STUDY')).toBe('SOPInstanceUID');
  });

  it('matches patient keys at the study level in Study Root but keeps them on the patient row', () => {
    const patientName = entityKey('PatientName');
    expect(keyLevelIn(patientName, 'PATIENT')).toBe('PATIENT');
    expect(keyLevelIn(patientName, 'STUDY')).toBe('STUDY');
    expect(rowOf(patientName.level)).toBe('patient');
    expect(keyLevelIn(entityKey('Modality'), 'STUDY')).toBe('SERIES');
    expect(rowOf('IMAGE')).toBe('instance');
  });

  it('pairs dates with times on the same row', () => {
    for (const { date, time } of dateTimePairs) {
      expect(entityKey(date).vr).toBe('DA');
      expect(entityKey(time).vr).toBe('TM');
      expect(entityKey(date).level).toBe(entityKey(time).level);
    }
  });

  it('keeps response-only keys off the rows', () => {
    for (const keyword of ['SpecificCharacterSet', 'QueryRetrieveLevel', 'RetrieveAETitle', 'InstanceAvailability']) {
      expect(queryKey(keyword)?.level).toBe('RESPONSE');
    }
  });
});
