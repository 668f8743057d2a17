// A match key's test must keep every stored value the matcher accepts (the index applies it in
// SQL, the matcher decides after): checked here without a database, value by value.
import { describe, expect, it } from 'vitest';
import { combineDateTime, compileCondition, matches } from './match.ts';
import { keyTestOf, OPAQUE_KEY, storedMatchKey } from './match-keys.ts';
import type { KeyTest } from '../store/index-store.ts';

/** What the SQL of a test keeps (code-point order, as BINARY and COLLATE "C" compare). */
function keeps(test: KeyTest, key: string | null): boolean {
  if (key === null) return false;
  if (key === OPAQUE_KEY) return true;
  switch (test.kind) {
    case 'in':
      return test.values.includes(key);
    case 'prefix':
      return key.startsWith(test.prefix);
    case 'range':
      return (test.from === undefined || key >= test.from) && (test.to === undefined || key <= test.to);
  }
}

describe('match keys', () => {
  it.each<[string, string, string, KeyTest | undefined]>([
    ['PatientID', 'LO', 'P1', { kind: 'in', values: ['P1'] }],
    ['PatientID', 'LO', 'P1\\P2', { kind: 'in', values: ['P1', 'P2'] }],
    ['PatientID', 'LO', 'P_1%*', { kind: 'prefix', prefix: 'P_1%' }],
    ['PatientID', 'LO', '*1', undefined],
    ['PatientName', 'PN', 'Doe^John', { kind: 'in', values: ['doe^john'] }],
    ['PatientName', 'PN', 'DOE^*', { kind: 'prefix', prefix: 'doe' }],
    ['PatientName', 'PN', 'Do?^J*', { kind: 'prefix', prefix: 'do' }],
    ['PatientName', 'PN', 'Yamada^Tarou=山田^太郎', undefined],
    ['StudyDate', 'DA', '20240101-', { kind: 'range', from: '20240101', to: undefined }],
    ['StudyDate', 'DA', '2024.01.05', { kind: 'range', from: '20240105', to: '20240105' }],
    ['StudyDate', 'DA', '20240101\\20240105', undefined],
    ['StudyTime', 'TM', '10-11', undefined],
    ['SeriesNumber', 'IS', '01', { kind: 'in', values: ['1'] }],
    ['ModalitiesInStudy', 'CS', 'CT\\MR', { kind: 'in', values: ['CT', 'MR'] }],
    ['ModalitiesInStudy', 'CS', 'C?', { kind: 'prefix', prefix: 'C' }],
    ['StudyDescription', 'LO', 'CT*', undefined],
  ])('%s %j → %j', (keyword, vr, query, test) => {
    expect(keyTestOf(compileCondition(keyword, vr, query))).toEqual(test);
  });

  it('combined date-time matching is narrowed by its dates', () => {
    const condition = combineDateTime(
      compileCondition('StudyDate', 'DA', '20240105-20240107'),
      compileCondition('StudyTime', 'TM', '1000-1800'),
    );
    expect(keyTestOf(condition!)).toEqual({ kind: 'range', from: '20240105', to: '20240107' });
  });

  it('never drops a stored value the matcher accepts', () => {
    const cases: [string, string, string[], string[]][] = [
      ['PatientID', 'LO', ['P1', 'P_1%*', 'P?', 'p1', 'P1\\Q'], ['P1', ' P1 ', 'p1', 'P_1%x', 'P%1', 'PX', 'P1\\P2', '']],
      [
        'PatientName',
        'PN',
        ['doe*', 'DOE^J*', 'D?E*', 'doe^*', 'A%B*', 'a_b^c', '山田*', 'X', 'Doe^John\\A_B^C'],
        ['Doe^John', 'DOE^JANE', 'doe', 'Doe ^ John ', 'A%B^C', 'A_B^C', 'Yamada^Tarou=山田^太郎', 'X\\Y', '', 'Doe^John^^'],
      ],
      [
        'StudyDate',
        'DA',
        ['20240101-20240131', '20240107', '-20231231', '20240301-'],
        ['20240105', '2024.01.07', '20231231', 'bad', '', '20240101\\20240301'],
      ],
      ['AccessionNumber', 'SH', ['A%1', 'A_*', 'A?1', 'a1'], ['A1', 'a1', 'A%1', 'A_1', 'AX1', 'A1\\B1']],
      ['ModalitiesInStudy', 'CS', ['CT', 'PT\\MR', 'C*'], ['CT', ' CT', 'PT', 'MR', 'CT\\PT', 'OT', 'C,T']],
      ['SeriesNumber', 'IS', ['1', '2'], ['1', '01', ' 2', 'x', '', '1e0']],
    ];
    let kept = 0;
    for (const [keyword, vr, queries, stored] of cases) {
      for (const query of queries) {
        const condition = compileCondition(keyword, vr, query);
        const test = keyTestOf(condition);
        if (test === undefined) continue;
        for (const value of stored) {
          // ModalitiesInStudy is matched on the study's joined value, keyed per series' Modality.
          const keys =
            keyword === 'ModalitiesInStudy'
              ? value.split('\\').map((m) => storedMatchKey('Modality', m))
              : [storedMatchKey(keyword, value)];
          if (matches(condition, value)) {
            expect(
              keys.some((k) => keeps(test, k)),
              `${keyword} ${query} vs ${JSON.stringify(value)}`,
            ).toBe(true);
            kept++;
          }
        }
      }
    }
    expect(kept).toBeGreaterThan(20);
  });
});
