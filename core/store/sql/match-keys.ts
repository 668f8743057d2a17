/**
 * The match-key columns of the index's levels (see core/query/match-keys.ts for what a key holds)
 * and the SQL of their tests. Every test lets OPAQUE_KEY through, so a row one key cannot stand
 * for is read and left to the matcher.
 */
import { OPAQUE_KEY, storedMatchKey } from '../../query/match-keys.ts';
import type { Attributes, KeyTest, MatchKey } from '../index-store.ts';

export type KeyedLevel = 'PATIENT' | 'STUDY' | 'SERIES';
export type QueryLevel = KeyedLevel | 'IMAGE';

/** Keyword → column, per level; the order is the order of the *_KEY_COLUMNS lists. */
const keyColumns: Record<KeyedLevel, readonly (readonly [keyword: string, column: string])[]> = {
  PATIENT: [
    ['PatientID', 'k_patient_id'],
    ['PatientName', 'k_patient_name'],
  ],
  STUDY: [
    ['StudyDate', 'k_study_date'],
    ['AccessionNumber', 'k_accession_number'],
    ['StudyID', 'k_study_id'],
  ],
  SERIES: [
    ['Modality', 'k_modality'],
    ['SeriesNumber', 'k_series_number'],
  ],
};

const columnList = (level: KeyedLevel): string => keyColumns[level].map(([, column]) => column).join(', ');
export const PATIENT_KEY_COLUMNS = columnList('PATIENT');
export const STUDY_KEY_COLUMNS = columnList('STUDY');
export const SERIES_KEY_COLUMNS = columnList('SERIES');

/** A level row's match keys, in its column order, from its (merged) attributes. */
export function matchKeysOf(level: KeyedLevel, attributes: Attributes): (string | null)[] {
  return keyColumns[level].map(([keyword]) => storedMatchKey(keyword, attributes[keyword]));
}

const tableAlias: Record<KeyedLevel, string> = { PATIENT: 'p', STUDY: 'st', SERIES: 'se' };
const depth: Record<QueryLevel, number> = { PATIENT: 0, STUDY: 1, SERIES: 2, IMAGE: 3 };

/** Where a keyword's key is, for a listing at `level`: a column of a joined row, or undefined. */
function keyColumnOf(keyword: string, level: QueryLevel): string | undefined {
  for (const keyed of ['PATIENT', 'STUDY', 'SERIES'] as const) {
    if (depth[keyed] > depth[level]) continue;
    const found = keyColumns[keyed].find(([k]) => k === keyword);
    if (found) return `${tableAlias[keyed]}.${found[1]}`;
  }
  return undefined;
}

/** Appends to `where`/`args` the tests of the keys a listing at `level` can apply. */
export function matchKeyClauses(level: QueryLevel, keys: readonly MatchKey[], where: string[], args: unknown[]): void {
  for (const { keyword, test } of keys) {
    if (keyword === 'ModalitiesInStudy') {
      if (level === 'PATIENT') continue;
      // The study's value is its series' modalities: some series' key passes the test (read
      // through the series' key index, not study by study).
      const clause = testClause('ms.k_modality', test, args);
      if (clause) where.push(`st.id IN (SELECT ms.study_row_id FROM series ms WHERE ${clause})`);
      continue;
    }
    const column = keyColumnOf(keyword, level);
    if (column === undefined) continue;
    const clause = testClause(column, test, args);
    if (clause) where.push(clause);
  }
}

function testClause(column: string, test: KeyTest, args: unknown[]): string | undefined {
  switch (test.kind) {
    case 'in':
      args.push(...test.values, OPAQUE_KEY);
      return `${column} IN (${[...test.values, OPAQUE_KEY].map(() => '?').join(', ')})`;
    case 'prefix': {
      // A range, not LIKE: it uses the column's index on both back ends, and compares code
      // points (BINARY on SQLite, COLLATE "C" on PostgreSQL), case-sensitive as the keys are.
      const upper = prefixUpperBound(test.prefix);
      args.push(test.prefix, ...(upper === undefined ? [] : [upper]), OPAQUE_KEY);
      return `(${column} >= ?${upper === undefined ? '' : ` AND ${column} < ?`} OR ${column} = ?)`;
    }
    case 'range': {
      if (test.from === undefined && test.to === undefined) return undefined;
      const bounds: string[] = [];
      if (test.from !== undefined) {
        bounds.push(`${column} >= ?`);
        args.push(test.from);
      }
      if (test.to !== undefined) {
        bounds.push(`${column} <= ?`);
        args.push(test.to);
      }
      args.push(OPAQUE_KEY);
      return `(${bounds.join(' AND ')} OR ${column} = ?)`;
    }
  }
}

/** The least string after every string that starts with `prefix` (undefined: there is none). */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = Array.from(prefix, (c) => c.codePointAt(0)!);
  while (points.length > 0) {
    let last = points.pop()! + 1;
    if (last === 0xd800) last = 0xe000; // surrogates are not characters
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return undefined;
}

/** Rows of each level whose keys a migration left to compute (they hold OPAQUE_KEY meanwhile). */
export const KEYED_TABLES: readonly { level: KeyedLevel; table: string }[] = [
  { level: 'PATIENT', table: 'patients' },
  { level: 'STUDY', table: 'studies' },
  { level: 'SERIES', table: 'series' },
];
