/**
 * The index's match keys: for the attributes users query most, a column holding the stored value
 * in one comparable form, and for a C-FIND condition the test of that column that keeps every row
 * the matcher (match.ts) could accept. The index applies the tests in SQL over indexed columns;
 * the matcher still decides each row it reads, so answers are exactly the matcher's.
 *
 * A stored value that one key cannot stand for (several values, several person-name groups) is
 * kept as OPAQUE_KEY, which every test lets through: the matcher decides those rows.
 */
import type { HierarchyFilter, KeyTest, MatchKey } from '../store/index-store.ts';
import type { ParsedQuery } from './identifier.ts';
import { queryLevels } from './keys.ts';
import {
  hierarchyFilterOf,
  normalizeDate,
  normalizePersonNameGroup,
  splitValues,
  type Condition,
  type StringTest,
  type ValueMatcher,
} from './match.ts';

/** Lets every test through: the row is decided by the matcher alone. */
export const OPAQUE_KEY = '\u0001';

type KeyForm = 'string' | 'personName' | 'date' | 'number';

/** The keys the index keeps a column for, and the form of the stored value in it. */
export const matchKeyForms: Readonly<Record<string, KeyForm>> = {
  PatientID: 'string',
  PatientName: 'personName',
  StudyDate: 'date',
  AccessionNumber: 'string',
  StudyID: 'string',
  Modality: 'string',
  // Matched against the study's series' Modality keys (the index has no study column for it).
  ModalitiesInStudy: 'string',
  SeriesNumber: 'number',
};

const vrOfForm: Record<KeyForm, string> = { string: 'LO', personName: 'PN', date: 'DA', number: 'IS' };

/** The key of a stored value: null when absent or empty (only universal matching accepts it). */
export function storedMatchKey(keyword: string, stored: string | null | undefined): string | null {
  const form = matchKeyForms[keyword];
  if (form === undefined || stored === undefined || stored === null) return null;
  const values = splitValues(vrOfForm[form], stored);
  if (values.length === 0) return null;
  if (values.length > 1) return OPAQUE_KEY;
  const [value] = values;
  switch (form) {
    case 'string':
      // The index lists a study's modalities joined by commas: one holding a comma is not one key.
      return keyword === 'Modality' && value.includes(',') ? OPAQUE_KEY : value;
    case 'personName': {
      // A one-group query matches any group of the stored name: one key only for one group.
      const groups = [
        ...new Set(
          value
            .split('=')
            .map(normalizePersonNameGroup)
            .filter((g) => g !== ''),
        ),
      ];
      if (groups.length === 0) return OPAQUE_KEY;
      return groups.length === 1 ? groups[0] : OPAQUE_KEY;
    }
    case 'date':
      // A value that is not a date matches no date condition.
      return normalizeDate(value) ?? null;
    case 'number': {
      const number = Number(value);
      return Number.isFinite(number) ? String(number) : null;
    }
  }
}

/** The tests of the query's conditions that a key column can carry, per level of the row. */
export function matchKeysOf(parsed: ParsedQuery): MatchKey[] {
  const keys: MatchKey[] = [];
  for (const level of queryLevels) {
    for (const condition of parsed.conditions[level]) {
      const test = keyTestOf(condition);
      if (test !== undefined) keys.push({ keyword: condition.keyword, test });
    }
  }
  return keys;
}

/** A test of the condition's key column that keeps every stored value `matches` accepts. */
export function keyTestOf(condition: Condition): KeyTest | undefined {
  const form = matchKeyForms[condition.keyword];
  if (form === undefined) return undefined;
  if (condition.kind === 'combinedDateTime') {
    // The date part alone: a date-time before the first day is before the range too.
    if (form !== 'date' || (condition.dateFrom === undefined && condition.dateTo === undefined)) return undefined;
    return { kind: 'range', from: condition.dateFrom, to: condition.dateTo };
  }
  if (condition.kind !== 'values') return undefined;
  // Multiple value matching of ModalitiesInStudy: every value in some series; the matcher decides.
  if (condition.allValues) return undefined;
  const tests = condition.anyOf.map((m) => valueTest(form, m));
  if (tests.some((t) => t === undefined)) return undefined;
  if (tests.length === 1) return tests[0];
  // Several values: any of them. Only lists of exact values combine into one test.
  if (tests.every((t) => t!.kind === 'in'))
    return { kind: 'in', values: [...new Set(tests.flatMap((t) => (t as { values: string[] }).values))] };
  return undefined;
}

function valueTest(form: KeyForm, matcher: ValueMatcher): KeyTest | undefined {
  switch (matcher.kind) {
    case 'exact':
    case 'wildcard':
      return form === 'string' ? stringTest(matcher, '') : undefined;
    case 'personName': {
      // Several groups written: each matches its own group, which one key does not hold.
      if (form !== 'personName' || matcher.groups.length !== 1 || matcher.groups[0] === undefined) return undefined;
      // The stored group is padded with `^` to the components the query wrote, so a prefix
      // ending in `^` may run into that padding: without them it is a prefix of the stored group.
      return stringTest(matcher.groups[0], '^');
    }
    case 'dateRange':
      return form === 'date' ? { kind: 'range', from: matcher.from, to: matcher.to } : undefined;
    case 'number':
      return form === 'number' ? { kind: 'in', values: [String(matcher.value)] } : undefined;
    default:
      return undefined;
  }
}

/** Exact: the value. Wildcard: the literal text before its first `*` or `?`, as a prefix. */
function stringTest(test: StringTest, padding: string): KeyTest | undefined {
  if (test.kind === 'exact') return { kind: 'in', values: [test.value] };
  let prefix = Array.from(test.pattern.slice(0, test.pattern.search(/[*?]/)));
  while (padding !== '' && prefix.at(-1) === padding) prefix = prefix.slice(0, -1);
  return prefix.length === 0 ? undefined : { kind: 'prefix', prefix: prefix.join('') };
}

/** What the index prefilters a query by: its unique keys and the tests of its match keys. */
export function indexFilterOf(parsed: ParsedQuery): HierarchyFilter {
  const keys = matchKeysOf(parsed);
  return keys.length === 0 ? hierarchyFilterOf(parsed) : { ...hierarchyFilterOf(parsed), keys };
}
