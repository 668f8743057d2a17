import { describe, expect, it } from 'vitest';
import { isDfError } from '../errors.ts';
import { parseIdentifier } from './identifier.ts';
import {
  buildResponse,
  combineDateTime,
  compileCondition,
  matches,
  matchesRow,
  storedValueFor,
  type Condition,
  type Rows,
  type StoredValue,
} from './match.ts';

type Case = readonly [vr: string, query: string, stored: StoredValue, expected: boolean];

const check = ([vr, query, stored, expected]: Case): void => {
  expect(matches(compileCondition('Attribute', vr, query), stored)).toBe(expected);
};

const expectInvalid = (run: () => unknown): void => {
  let thrown: unknown;
  try {
    run();
  } catch (err) {
    thrown = err;
  }
  expect(isDfError(thrown, 'DF_ERR_QUERY_INVALID')).toBe(true);
};

describe('single value and wildcard matching (PS3.4 C.2.2.2.1, C.2.2.2.4)', () => {
  it.each<Case>([
    ['LO', 'ABC', 'ABC', true],
    ['LO', 'ABC', 'ABCD', false],
    ['LO', 'abc', 'ABC', false], // case-sensitive outside PN
    ['CS', 'ct', 'CT', false],
    ['SH', 'ACC1', 'ACC1  ', true], // trailing padding is insignificant
    ['LO', 'A*', 'ABC', true],
    ['LO', 'A*', 'A', true],
    ['LO', 'A*', 'BA', false],
    ['LO', '*C', 'ABC', true],
    ['LO', '*B*', 'ABC', true],
    ['LO', 'A?C', 'ABC', true],
    ['LO', 'A?C', 'AC', false],
    ['LO', 'A?C', 'ABBC', false],
    ['LO', '??', 'AB', true],
    ['LO', '??', 'ABC', false],
    ['LO', 'a*', 'ABC', false],
    ['LO', 'A?', 'Aé', true], // `?` is one character, not one UTF-16 unit
    ['LO', 'A?', 'A😀', true],
    ['LO', 'A.B+C', 'A.B+C', true], // regex metacharacters in values are literal
    ['LO', 'A.B+C', 'AxBBC', false],
    ['LO', 'A.B*', 'A.B+C', true],
    ['LO', 'A.B*', 'AxB', false],
    ['LO', '(x)[y]{1}|^$/*', '(x)[y]{1}|^$/z', true],
    ['LO', '(x)[y]{1}|^$/*', 'x', false],
    ['SH', 'A*', 'A\nB', true],
    ['AE', 'PACS?', 'PACS1', true],
    ['ST', 'free *', 'free text\\with backslash', true], // ST is one value; the backslash is a character
  ])('%s %j against %j → %s', (...c) => check(c));
});

describe('person names', () => {
  it.each<Case>([
    ['PN', 'Doe^John', 'Doe^John', true],
    ['PN', 'doe^john', 'DOE^JOHN', true],
    ['PN', 'MÜLLER^HANS', 'Müller^Hans', true],
    ['PN', 'Doe^John', 'Doe^John^^^', true], // trailing empty components are insignificant
    ['PN', 'Doe^John^^', 'Doe^John', true],
    ['PN', ' Doe ^ John ', 'Doe^John', true],
    ['PN', 'Doe', 'Doe^John', false],
    ['PN', 'Doe^Jane', 'Doe^John', false],
    ['PN', 'Doe*', 'DOE^JOHN', true],
    ['PN', 'do?^*', 'Doe^John', true],
    ['PN', 'Doe^*', 'Doe', true],
    ['PN', 'Doe^?*', 'Doe', false],
    ['PN', 'Doe^J*', 'Doe^John^^^', true],
    ['PN', '*^john', 'Doe^John^^^', true],
    ['PN', '*^jane', 'Doe^John', false],
    ['PN', 'Yamada^Tarou', 'Yamada^Tarou=山田^太郎=やまだ^たろう', true],
    ['PN', '山田^太郎', 'Yamada^Tarou=山田^太郎=やまだ^たろう', true], // one group matches any group
    ['PN', '=山田*', 'Yamada^Tarou=山田^太郎', true],
    ['PN', '=山田*', 'Yamada^Tarou', false],
    ['PN', 'Yamada^Tarou=山田^太郎', 'Yamada^Tarou=山田^太郎', true],
    ['PN', 'Yamada^Tarou=山田^花子', 'Yamada^Tarou=山田^太郎', false],
    ['PN', 'Doe^John', 'Roe^Richard\\Doe^John', true], // a multi-valued PN matches on any value
  ])('%s %j against %j → %s', (...c) => check(c));
});

describe('numbers and UID lists', () => {
  it.each<Case>([
    ['IS', '1', '1', true],
    ['IS', '1', '01', true],
    ['IS', '2', '1', false],
    ['IS', '1\\2', '2', true],
    ['US', '512', '512', true],
    ['DS', '70.5', '70.50', true],
    ['UI', '1.2.3', '1.2.3', true],
    ['UI', '1.2.3', '1.2.30', false],
    ['UI', '1.2.3', '1.2.3\0', true], // UIDs are padded with NUL
    ['UI', '1.2.3\\1.2.4', '1.2.4', true],
    ['UI', '1.2.3\\1.2.4', '1.2.5', false],
    ['UI', '1.2.840.10008.5.1.4.1.1.2', '1.2.840.10008.5.1.4.1.1.128\\1.2.840.10008.5.1.4.1.1.2', true],
  ])('%s %j against %j → %s', (...c) => check(c));
});

describe('multi-valued attributes', () => {
  it.each<Case>([
    ['CS', 'PT', 'CT\\PT', true],
    ['CS', 'CT', 'CT\\PT', true],
    ['CS', 'MR', 'CT\\PT', false],
    ['CS', 'CT\\MR', 'CT\\PT', true], // several query values: any of them
    ['CS', 'MR\\US', 'CT\\PT', false],
    ['CS', 'P?', 'CT\\PT', true],
    ['CS', 'C', 'CT\\PT', false],
  ])('%s %j against %j → %s', (...c) => check(c));

  it('matches every value under multiple value matching (C.2.2.2.8)', () => {
    const both = compileCondition('ModalitiesInStudy', 'CS', 'CT\\PT', { allValues: true });
    expect(matches(both, 'PT\\SR\\CT')).toBe(true);
    expect(matches(both, 'CT\\MR')).toBe(false);
    expectInvalid(() => compileCondition('ModalitiesInStudy', 'CS', 'CT\\P*', { allValues: true }));
  });
});

describe('date, time and date-time ranges (C.2.2.2.5)', () => {
  it.each<Case>([
    ['DA', '20240105', '20240105', true],
    ['DA', '20240105', '20240106', false],
    ['DA', '20240101-20240131', '20240101', true],
    ['DA', '20240101-20240131', '20240131', true],
    ['DA', '20240101-20240131', '20240115', true],
    ['DA', '20240101-20240131', '20240201', false],
    ['DA', '20240101-20240131', '20231231', false],
    ['DA', '20240101-', '20991231', true],
    ['DA', '20240101-', '20231231', false],
    ['DA', '-20240101', '19000101', true],
    ['DA', '-20240101', '20240102', false],
    ['DA', '2024.01.05', '20240105', true], // ACR-NEMA dates, in the query
    ['DA', '20240105', '2024.01.05', true], // and in the store
    ['DA', '2024.01.01-2024.01.31', '20240115', true],
    ['DA', '20240131-20240101', '20240115', false],
    ['DA', '20240105', 'not a date', false],
    ['TM', '10', '100000', true], // a partial time covers its whole hour
    ['TM', '10', '105959.999999', true],
    ['TM', '10', '110000', false],
    ['TM', '10', '095959.999999', false],
    ['TM', '1030', '103059.5', true],
    ['TM', '1030', '1031', false],
    ['TM', '1030', '10:30:15', true], // ACR-NEMA time in the store
    ['TM', '10:30-11', '115959', true], // and in the query
    ['TM', '0800-1200', '0800', true],
    ['TM', '0800-1200', '1200', true],
    ['TM', '0800-1200', '120059.999999', true],
    ['TM', '0800-1200', '120100', false],
    ['TM', '0800-1200', '075959', false],
    ['TM', '-0800', '0000', true],
    ['TM', '-0800', '0801', false],
    ['TM', '1700-', '2359', true],
    ['TM', '1700-', '1659', false],
    ['TM', '103015.5', '103015.55', true],
    ['TM', '103015.5', '103015.6', false],
    ['TM', '103015.5', '103015.499999', false],
    ['TM', '2200-0200', '2300', false], // no wrap past midnight
    ['DT', '2024', '20240615120000', true],
    ['DT', '2024', '20250101', false],
    ['DT', '202402', '20240229235959.999999', true],
    ['DT', '202402', '20240301', false],
    ['DT', '20240101-20240131', '20240131235959', true],
    ['DT', '20240101-20240131', '20240201', false],
    ['DT', '202401-', '20231231', false],
    ['DT', '-2023', '20231231235959', true],
    ['DT', '20240101120000+0100', '20240101110000+0000', true], // offsets are honoured
    ['DT', '20240101120000+0100', '20240101120000+0000', false],
    ['DT', '20240101-0500-20240102', '20240101120000', true], // `-` as a range and as an offset sign
    ['DT', '20240101-0500-20240102', '20240101030000', false],
  ])('%s %j against %j → %s', (...c) => check(c));
});

describe('universal matching (C.2.2.2.3)', () => {
  it.each([
    ['LO', ''],
    ['LO', '*'],
    ['DA', '*'],
    ['UI', '*'],
    ['CS', 'CT\\*'],
    ['PN', '^'],
    ['CS', '\\'],
  ])('%s %j is universal and matches even absent values', (vr, query) => {
    const condition = compileCondition('Attribute', vr, query);
    expect(condition.kind).toBe('universal');
    expect(matches(condition, undefined)).toBe(true);
    expect(matches(condition, null)).toBe(true);
    expect(matches(condition, '')).toBe(true);
  });

  it.each([undefined, null, '', '   '])('a non-universal key never matches a stored %j', (stored) => {
    expect(matches(compileCondition('Attribute', 'LO', 'A*'), stored)).toBe(false);
    expect(matches(compileCondition('Attribute', 'DA', '-20240101'), stored)).toBe(false);
  });
});

describe('invalid query values', () => {
  it.each([
    ['DA', '2024*'],
    ['DA', '2024-01-01'],
    ['DA', '20241301'],
    ['DA', '2024'],
    ['TM', '25'],
    ['TM', '10?'],
    ['TM', '1061'],
    ['DT', '2024?'],
    ['DT', '2020-0100-0200'], // ambiguous: two readings of the dashes
    ['UI', '1.2.*'],
    ['IS', 'abc'],
    ['IS', '1*'],
    ['UI', '1.2?'],
    ['SQ', 'x'],
  ])('%s %j is rejected with DF_ERR_QUERY_INVALID', (vr, query) => {
    expectInvalid(() => compileCondition('Attribute', vr, query));
  });
});

describe('combined date-time matching (C.2.2.2.5.1)', () => {
  const combined = (date: string, time: string): Condition => {
    const condition = combineDateTime(compileCondition('StudyDate', 'DA', date), compileCondition('StudyTime', 'TM', time));
    if (condition === undefined) throw new Error('not combinable');
    return condition;
  };
  const at = (condition: Condition, StudyDate: string | undefined, StudyTime: string | undefined): boolean =>
    matches(condition, storedValueFor(condition, { StudyDate, StudyTime }));

  it.each([
    ['20240106', '0300', true], // the middle day, at any time (independent matching would refuse it)
    ['20240105', '0959', false],
    ['20240105', '1000', true],
    ['20240107', '1800', true],
    ['20240107', '180059', true],
    ['20240107', '1801', false],
    ['20240106', undefined, true], // no time: the start of the day
    ['20240105', undefined, false],
    ['2024.01.06', '03:00:00', true],
    [undefined, '1200', false],
  ] as const)('20240105-20240107 with 1000-1800 against %s %s → %s', (date, time, expected) => {
    expect(at(combined('20240105-20240107', '1000-1800'), date, time)).toBe(expected);
  });

  it('keeps the open ends open', () => {
    const from = combined('20240105-', '1000-');
    expect(at(from, '20240105', '0959')).toBe(false);
    expect(at(from, '20240105', '1000')).toBe(true);
    expect(at(from, '20300101', '0000')).toBe(true);
    const until = combined('-20240105', '-1000');
    expect(at(until, '19990101', '2359')).toBe(true);
    expect(at(until, '20240105', '1000')).toBe(true);
    expect(at(until, '20240105', '1100')).toBe(false);
  });

  it('leaves lists and universal keys to independent matching', () => {
    const time = compileCondition('StudyTime', 'TM', '1000-1800');
    expect(combineDateTime(compileCondition('StudyDate', 'DA', '20240105\\20240107'), time)).toBeUndefined();
    expect(combineDateTime(compileCondition('StudyDate', 'DA', ''), time)).toBeUndefined();
  });
});

describe('rows and responses', () => {
  const rows: Rows = {
    patient: { PatientName: 'DOE^JANE', PatientID: 'P1', PatientBirthDate: '19700101' },
    study: {
      StudyInstanceUID: '1.2.3',
      StudyDate: '20240105',
      StudyTime: '101500',
      ModalitiesInStudy: 'CT\\PT',
      StudyDescription: null,
    },
  };
  const studyQuery = (extra: Record<string, unknown> = {}) =>
    parseIdentifier(
      {
        QueryRetrieveLevel: 'STUDY',
        PatientName: [{ Alphabetic: 'doe*' }],
        PatientID: '',
        StudyDate: '20240101-',
        ModalitiesInStudy: 'PT',
        StudyInstanceUID: '',
        StudyDescription: '',
        NumberOfStudyRelatedInstances: '',
        ...extra,
      },
      'STUDY',
    );

  it('matches a row when every level matches', () => {
    expect(matchesRow(studyQuery(), rows)).toBe(true);
    expect(matchesRow(studyQuery({ ModalitiesInStudy: 'MR' }), rows)).toBe(false);
    expect(matchesRow(studyQuery({ PatientName: 'ROE*' }), rows)).toBe(false);
    expect(matchesRow(studyQuery({ StudyDate: '-20231231' }), rows)).toBe(false);
    expect(matchesRow(studyQuery({ StudyTime: '10' }), rows)).toBe(true);
    expect(matchesRow(studyQuery({ StudyTime: '11' }), rows)).toBe(false);
    expect(matchesRow(studyQuery({ PatientBirthDate: '19710101' }), rows)).toBe(false);
  });

  it('answers every requested key, in request order, and nothing unrequested', () => {
    const parsed = parseIdentifier(
      {
        QueryRetrieveLevel: 'STUDY',
        PatientName: '',
        StudyInstanceUID: '',
        StudyDescription: '',
        InstitutionAddress: '',
        ReferencedStudySequence: [{}],
        NumberOfStudyRelatedInstances: '',
        InstanceAvailability: '',
        RetrieveAETitle: '',
        SpecificCharacterSet: 'ISO_IR 192',
      },
      'STUDY',
    );
    const response = buildResponse(parsed, rows, {
      NumberOfStudyRelatedInstances: 42,
      RetrieveAETitle: 'DICOMFLOW',
      NumberOfStudyRelatedSeries: 3,
    });
    expect(response).toEqual({
      QueryRetrieveLevel: 'STUDY',
      PatientName: 'DOE^JANE',
      StudyInstanceUID: '1.2.3',
      StudyDescription: '', // null in the store
      InstitutionAddress: '', // not a key this server knows
      ReferencedStudySequence: [], // sequences come back empty
      NumberOfStudyRelatedInstances: '42',
      InstanceAvailability: 'ONLINE',
      RetrieveAETitle: 'DICOMFLOW',
      // SpecificCharacterSet: never zero-length, left to the encoder when extras do not say
    });
    expect(Object.keys(response)).toEqual([
      'QueryRetrieveLevel',
      'PatientName',
      'StudyInstanceUID',
      'StudyDescription',
      'InstitutionAddress',
      'ReferencedStudySequence',
      'NumberOfStudyRelatedInstances',
      'InstanceAvailability',
      'RetrieveAETitle',
    ]);
    expect(buildResponse(parsed, rows, { SpecificCharacterSet: 'ISO_IR 192' }).SpecificCharacterSet).toBe('ISO_IR 192');
  });

  it('adds the Query/Retrieve Level when the request left it out of its keys', () => {
    const parsed = { ...studyQuery(), returnKeys: ['PatientID'] };
    expect(buildResponse(parsed, rows)).toEqual({ PatientID: 'P1', QueryRetrieveLevel: 'STUDY' });
  });
});
