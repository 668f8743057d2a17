import { describe, expect, it } from 'vitest';
import { isDfError, type DfError } from '../errors.ts';
import { parseIdentifier, toDicomString, type ParseOptions, type ParsedQuery } from './identifier.ts';
import type { QueryModel } from './keys.ts';

const rejection = (identifier: Record<string, unknown>, model: QueryModel, options?: ParseOptions): DfError => {
  try {
    parseIdentifier(identifier, model, options);
  } catch (err) {
    if (isDfError(err, 'DF_ERR_QUERY_INVALID')) return err;
    throw err;
  }
  throw new Error('the identifier was accepted');
};

const problemKeys = (err: DfError): string[] => (err.details!.problems as { keyword: string }[]).map((problem) => problem.keyword);

const keywordsOf = (parsed: ParsedQuery, level: keyof ParsedQuery['conditions']): string[] =>
  parsed.conditions[level].map((condition) => condition.keyword);

describe('values as dcmjs naturalizes them', () => {
  it.each<[unknown, string | undefined]>([
    [null, ''],
    [undefined, ''],
    [[], ''],
    ['CT', 'CT'],
    [['CT', 'PT'], 'CT\\PT'],
    [3, '3'],
    [[1, 2], '1\\2'],
    [{ Alphabetic: 'Doe^John' }, 'Doe^John'],
    [[{ Alphabetic: 'Doe^John' }], 'Doe^John'],
    [[{ Alphabetic: 'Yamada^Tarou', Ideographic: '山田^太郎', Phonetic: 'やまだ^たろう' }], 'Yamada^Tarou=山田^太郎=やまだ^たろう'],
    [[{ Ideographic: '山田^太郎' }], '=山田^太郎'],
    [[{ Alphabetic: 'Doe^John' }, { Alphabetic: 'Roe^Rick' }], 'Doe^John\\Roe^Rick'],
    [{ CodeValue: 'x' }, undefined],
    [[[1]], undefined],
    [true, undefined],
    [{ Alphabetic: 3 }, undefined],
  ])('%j → %j', (value, expected) => {
    expect(toDicomString(value)).toBe(expected);
  });
});

describe('the Query/Retrieve Level', () => {
  it.each<[unknown, QueryModel, string]>([
    [undefined, 'STUDY', 'missing'],
    ['', 'PATIENT', 'missing'],
    ['PATIENT', 'STUDY', 'Study Root has no PATIENT level'],
    ['FRAME', 'PATIENT', 'not one of PATIENT, STUDY, SERIES, IMAGE'],
  ])('%j in the %s Root model is rejected', (level, model, says) => {
    expect(rejection({ QueryRetrieveLevel: level }, model).message).toContain(says);
  });

  it('reads every level of each model', () => {
    for (const level of ['PATIENT', 'STUDY', 'SERIES', 'IMAGE']) {
      expect(parseIdentifier({ QueryRetrieveLevel: level }, 'PATIENT').level).toBe(level);
    }
    expect(parseIdentifier({ QueryRetrieveLevel: 'IMAGE ' }, 'STUDY').level).toBe('IMAGE');
  });
});

describe('hierarchical search (PS3.4 C.4.1.2.2.1)', () => {
  it('accepts a single Patient ID above a Patient Root study query and filters on it', () => {
    const parsed = parseIdentifier(
      { QueryRetrieveLevel: 'STUDY', PatientID: 'P1', StudyDate: '2024.01.01-', StudyInstanceUID: '' },
      'PATIENT',
    );
    expect(keywordsOf(parsed, 'PATIENT')).toEqual(['PatientID']);
    expect(keywordsOf(parsed, 'STUDY')).toEqual(['StudyDate']);
    expect(parsed.uniqueKeyFilters).toEqual([{ level: 'PATIENT', keyword: 'PatientID', uids: ['P1'] }]);
  });

  it.each<[string, Record<string, unknown>, QueryModel, string[]]>([
    ['a wildcard Patient ID above the level', { QueryRetrieveLevel: 'STUDY', PatientID: 'P*' }, 'PATIENT', ['PatientID']],
    ['a list of Patient IDs above the level', { QueryRetrieveLevel: 'STUDY', PatientID: ['P1', 'P2'] }, 'PATIENT', ['PatientID']],
    ['a matching non-unique key above the level', { QueryRetrieveLevel: 'STUDY', PatientName: 'Doe*' }, 'PATIENT', ['PatientName']],
    ['a study date above a series query', { QueryRetrieveLevel: 'SERIES', StudyDate: '20240101' }, 'STUDY', ['StudyDate']],
    ['a range on a unique key above', { QueryRetrieveLevel: 'IMAGE', SeriesInstanceUID: '1.2.*' }, 'STUDY', ['SeriesInstanceUID']],
    ['a series key in a study query', { QueryRetrieveLevel: 'STUDY', Modality: 'CT' }, 'STUDY', ['Modality']],
    ['an empty series key in a study query', { QueryRetrieveLevel: 'STUDY', Modality: '' }, 'STUDY', ['Modality']],
    ['an instance UID in a series query', { QueryRetrieveLevel: 'SERIES', SOPInstanceUID: '1.2' }, 'PATIENT', ['SOPInstanceUID']],
    ['a study key in a patient query', { QueryRetrieveLevel: 'PATIENT', StudyInstanceUID: '' }, 'PATIENT', ['StudyInstanceUID']],
    [
      'a series count in a study query',
      { QueryRetrieveLevel: 'STUDY', NumberOfSeriesRelatedInstances: '' },
      'STUDY',
      ['NumberOfSeriesRelatedInstances'],
    ],
    ['a malformed date', { QueryRetrieveLevel: 'STUDY', StudyDate: '2024-01-01' }, 'STUDY', ['StudyDate']],
    ['a sequence in a plain key', { QueryRetrieveLevel: 'STUDY', StudyDescription: [{ CodeValue: 'x' }] }, 'STUDY', ['StudyDescription']],
  ])('rejects %s', (_, identifier, model, keys) => {
    const err = rejection(identifier, model);
    expect(problemKeys(err)).toEqual(keys);
  });

  it('gathers every problem, with tags, in one error', () => {
    const err = rejection({ QueryRetrieveLevel: 'STUDY', PatientName: 'Doe*', StudyDate: '2024*', Modality: 'CT' }, 'PATIENT');
    expect(problemKeys(err)).toEqual(['PatientName', 'StudyDate', 'Modality']);
    expect((err.details!.problems as { tag: string }[]).map((problem) => problem.tag)).toEqual(['00100010', '00080020', '00080060']);
    expect(err.message).toContain('below this STUDY-level query');
    expect(err.message).toContain('dates take no wildcards');
  });

  it('takes keys above the level empty, as return keys', () => {
    const parsed = parseIdentifier(
      { QueryRetrieveLevel: 'SERIES', PatientName: '', PatientID: '', StudyInstanceUID: '', Modality: 'CT' },
      'PATIENT',
    );
    expect(keywordsOf(parsed, 'PATIENT')).toEqual([]);
    expect(keywordsOf(parsed, 'STUDY')).toEqual([]);
    expect(keywordsOf(parsed, 'SERIES')).toEqual(['Modality']);
    expect(parsed.returnKeys).toEqual(['QueryRetrieveLevel', 'PatientName', 'PatientID', 'StudyInstanceUID', 'Modality']);
  });

  it('accepts a list of UIDs above the level and at it', () => {
    const parsed = parseIdentifier(
      {
        QueryRetrieveLevel: 'IMAGE',
        StudyInstanceUID: '1.2.3',
        SeriesInstanceUID: ['1.2.3.1', '1.2.3.2'],
        SOPInstanceUID: '1.2.3.1.1\\1.2.3.1.2',
      },
      'STUDY',
    );
    expect(parsed.uniqueKeyFilters).toEqual([
      { level: 'STUDY', keyword: 'StudyInstanceUID', uids: ['1.2.3'] },
      { level: 'SERIES', keyword: 'SeriesInstanceUID', uids: ['1.2.3.1', '1.2.3.2'] },
      { level: 'IMAGE', keyword: 'SOPInstanceUID', uids: ['1.2.3.1.1', '1.2.3.1.2'] },
    ]);
  });

  it('lets the unique key at the query level use wildcards, without a filter', () => {
    const parsed = parseIdentifier({ QueryRetrieveLevel: 'PATIENT', PatientID: 'P*' }, 'PATIENT');
    expect(keywordsOf(parsed, 'PATIENT')).toEqual(['PatientID']);
    expect(parsed.uniqueKeyFilters).toEqual([]);
  });

  it('treats patient keys as study keys in Study Root, stored on the patient row', () => {
    const parsed = parseIdentifier(
      { QueryRetrieveLevel: 'STUDY', PatientName: 'doe*', PatientID: 'P*', PatientAge: '', StudyDate: '20240101' },
      'STUDY',
    );
    expect(keywordsOf(parsed, 'PATIENT')).toEqual(['PatientName', 'PatientID']);
    expect(keywordsOf(parsed, 'STUDY')).toEqual(['StudyDate']);
    expect(parsed.uniqueKeyFilters).toEqual([]); // PatientID is no unique key in Study Root
  });

  it('lets any key above the level match under relational search', () => {
    const parsed = parseIdentifier({ QueryRetrieveLevel: 'SERIES', PatientName: 'Doe*', StudyDate: '2024.01.01-' }, 'PATIENT', {
      relational: true,
    });
    expect(keywordsOf(parsed, 'PATIENT')).toEqual(['PatientName']);
    expect(keywordsOf(parsed, 'STUDY')).toEqual(['StudyDate']);
    expect(problemKeys(rejection({ QueryRetrieveLevel: 'STUDY', Modality: 'CT' }, 'STUDY', { relational: true }))).toEqual(['Modality']);
  });
});

describe('return keys', () => {
  it('keeps request order, skips dcmjs bookkeeping and answers unknown keys', () => {
    const parsed = parseIdentifier(
      {
        _vrMap: {},
        QueryRetrieveLevel: 'STUDY',
        InstitutionAddress: 'x',
        ReferencedStudySequence: [{}],
        ProcedureCodeSequence: [{ CodeValue: 'X' }],
        RequestAttributesSequence: null,
        StudyDescription: '',
      },
      'STUDY',
    );
    expect(parsed.returnKeys).toEqual([
      'QueryRetrieveLevel',
      'InstitutionAddress',
      'ReferencedStudySequence',
      'ProcedureCodeSequence',
      'RequestAttributesSequence',
      'StudyDescription',
    ]);
    expect(parsed.sequenceKeys).toEqual(['ReferencedStudySequence', 'ProcedureCodeSequence']);
    expect(Object.values(parsed.conditions).flat()).toEqual([]);
  });

  it('recognises empty sequences when told the VR', () => {
    const vrOf = (keyword: string): string | undefined => (keyword.endsWith('Sequence') ? 'SQ' : undefined);
    const parsed = parseIdentifier({ QueryRetrieveLevel: 'STUDY', RequestAttributesSequence: null, ReferencedStudySequence: [] }, 'STUDY', {
      vrOf,
    });
    expect(parsed.sequenceKeys).toEqual(['RequestAttributesSequence', 'ReferencedStudySequence']);
  });

  it('does not match on counts', () => {
    const parsed = parseIdentifier({ QueryRetrieveLevel: 'STUDY', NumberOfStudyRelatedInstances: '5' }, 'STUDY');
    expect(keywordsOf(parsed, 'STUDY')).toEqual([]);
    expect(parsed.returnKeys).toContain('NumberOfStudyRelatedInstances');
  });
});

describe('negotiated matching options', () => {
  it('combines a date range with a time range into one span', () => {
    const identifier = { QueryRetrieveLevel: 'STUDY', StudyDate: '20240105-20240107', StudyTime: '1000-1800', AccessionNumber: 'A1' };
    const independent = parseIdentifier(identifier, 'STUDY');
    expect(independent.conditions.STUDY.map((condition) => condition.kind)).toEqual(['values', 'values', 'values']);
    const combined = parseIdentifier(identifier, 'STUDY', { combinedDateTime: true });
    expect(combined.conditions.STUDY.map((condition) => [condition.kind, condition.keyword])).toEqual([
      ['combinedDateTime', 'StudyDate'],
      ['values', 'AccessionNumber'],
    ]);
  });

  it('matches all values of ModalitiesInStudy under multiple value matching', () => {
    const parsed = parseIdentifier({ QueryRetrieveLevel: 'STUDY', ModalitiesInStudy: ['CT', 'PT'] }, 'STUDY', {
      multipleValueMatching: true,
    });
    const [condition] = parsed.conditions.STUDY;
    expect(condition.kind === 'values' && condition.allValues).toBe(true);
    expect(parseIdentifier({ QueryRetrieveLevel: 'STUDY', ModalitiesInStudy: ['CT', 'PT'] }, 'STUDY').conditions.STUDY[0]).toMatchObject({
      allValues: false,
    });
  });
});
