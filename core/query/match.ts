/**
 * C-FIND attribute matching (PS3.4 C.2.2.2) over the index's rows. Pure: the store fetches rows,
 * this module decides. The match keys (match-keys.ts) only narrow what the store reads;
 * `matches` is the authority.
 */
import { dfError, type DfError } from '../errors.ts';
import { queryKey, queryLevels, rowOf, type RowName } from './keys.ts';
import type { ParsedQuery } from './identifier.ts';
import type { HierarchyFilter } from '../store/index-store.ts';

export type StoredValue = string | null | undefined;
export type Row = Readonly<Record<string, StoredValue>>;
export type Rows = Readonly<Partial<Record<RowName, Row>>>;

/** A test of one stored string. Values are already trimmed (and, for PN, normalized). */
export type StringTest =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'wildcard'; readonly pattern: string; readonly glob: { test(value: string): boolean } };

/** One PN component group; `components` is how many `^`-separated parts the query wrote. */
export type PersonNameGroupTest = StringTest & { readonly components: number };

/** One alternative of a key's value; a key matches when any alternative does. */
export type ValueMatcher =
  | StringTest
  | {
      readonly kind: 'personName';
      /** Alphabetic, ideographic, phonetic; undefined where the query left the group empty. */
      readonly groups: readonly (PersonNameGroupTest | undefined)[];
    }
  | { readonly kind: 'number'; readonly value: number }
  /** Inclusive YYYYMMDD bounds; an absent bound is open. */
  | { readonly kind: 'dateRange'; readonly from?: string; readonly to?: string }
  /** Inclusive microseconds of the day, and the bounds as written (normalized) for combining. */
  | {
      readonly kind: 'timeRange';
      readonly fromUs?: number;
      readonly toUs?: number;
      readonly fromText: string;
      readonly toText: string;
    }
  /** Inclusive microseconds since 1970-01-01T00:00 UTC. */
  | { readonly kind: 'dateTimeRange'; readonly fromUs?: bigint; readonly toUs?: bigint };

interface ConditionBase {
  /** The attribute read from the row (for a combined date-time, the date attribute). */
  readonly keyword: string;
  readonly vr: string;
  /** The value as the request held it, in DICOM string form. */
  readonly queryValue: string;
}

export type Condition =
  | (ConditionBase & { readonly kind: 'universal' })
  | (ConditionBase & { readonly kind: 'uidList'; readonly uids: readonly string[] })
  | (ConditionBase & {
      readonly kind: 'values';
      readonly anyOf: readonly ValueMatcher[];
      /**
       * PS3.4 C.2.2.2.8 Multiple Value Matching: every query value must match some stored value.
       * Without it, several query values mean "any of them".
       */
      readonly allValues: boolean;
    })
  | (ConditionBase & {
      readonly kind: 'combinedDateTime';
      readonly timeKeyword: string;
      readonly fromUs?: bigint;
      readonly toUs?: bigint;
      /** The date part alone, for SQL prefiltering. */
      readonly dateFrom?: string;
      readonly dateTo?: string;
    });

export interface CompileOptions {
  /** Multiple Value Matching was negotiated and the attribute has VM > 1. */
  readonly allValues?: boolean;
}

// PS3.4 C.2.2.2.4: wildcard matching applies to these VRs only.
const wildcardVrs: ReadonlySet<string> = new Set(['AE', 'CS', 'LO', 'LT', 'PN', 'SH', 'ST', 'UC', 'UT']);
// PS3.5 6.2: single-valued text whose backslash is a character, and whose leading spaces count.
const textVrs: ReadonlySet<string> = new Set(['LT', 'ST', 'UT', 'UR']);
const numericVrs: ReadonlySet<string> = new Set(['DS', 'FD', 'FL', 'IS', 'SL', 'SS', 'SV', 'UL', 'US', 'UV']);

const hasWildcard = (text: string): boolean => /[*?]/.test(text);

/** PS3.5 6.2: which padding is insignificant depends on the VR. UIDs are padded with NUL. */
function trimValue(vr: string, value: string): string {
  if (vr === 'UI') return value.replace(/^[\s\0]+|[\s\0]+$/g, '');
  if (textVrs.has(vr) || vr === 'UC') return value.trimEnd();
  return value.trim();
}

export function splitValues(vr: string, value: string): string[] {
  const parts = textVrs.has(vr) ? [value] : value.split('\\');
  return parts.map((part) => trimValue(vr, part)).filter((part) => part !== '');
}

export function compileCondition(keyword: string, vr: string, queryValue: string, options: CompileOptions = {}): Condition {
  const base = { keyword, vr, queryValue };
  const invalid = (problem: string): DfError =>
    dfError('DF_ERR_QUERY_INVALID', `${keyword} ${JSON.stringify(queryValue)}: ${problem}`, {
      details: { keyword, value: queryValue },
    });
  if (vr === 'SQ') throw invalid('sequence matching is not supported; send the sequence empty to have it returned');
  const parts = splitValues(vr, queryValue);
  const allValues = options.allValues === true && parts.length > 1;
  if (allValues && parts.some(hasWildcard)) {
    throw invalid('PS3.4 C.2.2.2.8: values for multiple value matching cannot hold wildcards');
  }
  // PS3.4 C.2.2.2.4: a value of only "*" is universal matching, whatever the VR; some SCUs send it
  // for dates and UIDs too.
  if (parts.length === 0 || parts.some((part) => /^\*+$/.test(part))) return { ...base, kind: 'universal' };
  if (vr === 'UI') {
    if (parts.some(hasWildcard)) throw invalid('UIDs take no wildcards; send one UID or a backslash-separated list');
    return { ...base, kind: 'uidList', uids: parts };
  }
  const anyOf: ValueMatcher[] = [];
  for (const part of parts) {
    const matcher = compileValue(vr, part, invalid);
    if (matcher === 'universal') return { ...base, kind: 'universal' };
    anyOf.push(matcher);
  }
  return { ...base, kind: 'values', anyOf, allValues };
}

function compileValue(vr: string, value: string, invalid: (problem: string) => DfError): ValueMatcher | 'universal' {
  if (vr === 'DA') return compileDateRange(value, invalid);
  if (vr === 'TM') return compileTimeRange(value, invalid);
  if (vr === 'DT') return compileDateTimeRange(value, invalid);
  if (hasWildcard(value) && !wildcardVrs.has(vr)) {
    throw invalid(`wildcards are not allowed for VR ${vr} (PS3.4 C.2.2.2.4)`);
  }
  if (vr === 'PN') return compilePersonName(value);
  if (numericVrs.has(vr)) {
    const number = Number(value);
    if (!Number.isFinite(number)) throw invalid(`not a number, as VR ${vr} requires`);
    return { kind: 'number', value: number };
  }
  return compileStringTest(value);
}

function compileStringTest(value: string): StringTest {
  if (!hasWildcard(value)) return { kind: 'exact', value };
  return { kind: 'wildcard', pattern: value, glob: wildcardMatcher(value) };
}

/**
 * `*` is any run of characters, `?` exactly one; everything else is literal (`A.B+C` is not a
 * regex). Matched greedily with one backtrack point, in time proportional to the pattern's length
 * times the value's: a RegExp of `.*` groups backtracks exponentially, and `a*a*a*a*a*a*a*a*a*a*a*b` against
 * a stored value of 40 a's held the event loop for 26 s (issue 8's fuzzing).
 */
function wildcardMatcher(pattern: string): { test(value: string): boolean } {
  // Code points, so `?` stands for one character, not one UTF-16 unit.
  const p = Array.from(pattern);
  return {
    test(value: string): boolean {
      const v = Array.from(value);
      let i = 0;
      let j = 0;
      let star = -1;
      let resumeAt = 0;
      while (i < v.length) {
        if (j < p.length && p[j] === '*') {
          star = j++;
          resumeAt = i;
        } else if (j < p.length && (p[j] === '?' || p[j] === v[i])) {
          i++;
          j++;
        } else if (star !== -1) {
          j = star + 1;
          i = ++resumeAt;
        } else {
          return false;
        }
      }
      while (j < p.length && p[j] === '*') j++;
      return j === p.length;
    },
  };
}

// ---- Person names -------------------------------------------------------------------------------

/**
 * PN matching ignores case. PS3.4 C.2.2.2.1 makes single value matching case-sensitive except for
 * PN, where an SCP may be insensitive to case; it is common practice (Orthanc's default) because
 * names are stored and typed in either case. Components compare after trimming, and trailing
 * empty components are insignificant (`Doe^John^^` is `Doe^John`, PS3.5 6.2.1).
 */
export function normalizePersonNameGroup(group: string): string {
  const components = group.split('^').map((component) => component.trim().toLowerCase());
  while (components.length > 0 && components[components.length - 1] === '') components.pop();
  return components.join('^');
}

function compilePersonName(value: string): ValueMatcher | 'universal' {
  const written = value.split('=');
  while (written.length > 1 && written[written.length - 1].trim() === '') written.pop();
  const groups = written.map((group): PersonNameGroupTest | undefined => {
    const normalized = normalizePersonNameGroup(group);
    if (normalized === '') return undefined;
    return { ...compileStringTest(normalized), components: normalized.split('^').length };
  });
  if (groups.every((group) => group === undefined)) return 'universal';
  return { kind: 'personName', groups };
}

function personNameMatches(groups: readonly (PersonNameGroupTest | undefined)[], stored: string): boolean {
  const storedGroups = stored.split('=').map(normalizePersonNameGroup);
  // A query written in one group matches any group of the stored name: a user types the name the
  // way they know it, and the SCU puts it in the first group whatever the script.
  const [only] = groups;
  if (groups.length === 1) return only !== undefined && storedGroups.some((storedGroup) => personNameGroupMatches(only, storedGroup));
  return groups.every((group, i) => group === undefined || personNameGroupMatches(group, storedGroups[i] ?? ''));
}

function personNameGroupMatches(test: PersonNameGroupTest, storedGroup: string): boolean {
  if (test.kind === 'exact') return storedGroup === test.value;
  // Pad the stored name to the components the query wrote, so `Doe^*` matches a bare `Doe`.
  let padded = storedGroup;
  for (let n = storedGroup.split('^').length; n < test.components; n++) padded += '^';
  return test.glob.test(padded);
}

// ---- Dates and times ----------------------------------------------------------------------------

/** `YYYYMMDD`, or the ACR-NEMA `YYYY.MM.DD` older objects and SCUs still hold (PS3.5 6.2 DA note). */
export function normalizeDate(text: string): string | undefined {
  const match = /^(\d{4})(\d{2})(\d{2})$/.exec(text) ?? /^(\d{4})\.(\d{2})\.(\d{2})$/.exec(text);
  if (match === null) return undefined;
  const month = Number(match[2]);
  const day = Number(match[3]);
  if (month < 1 || month > 12 || day < 1 || day > 31) return undefined;
  return `${match[1]}${match[2]}${match[3]}`;
}

/** Splits `A-B`, `A-`, `-B` or `A` into its two bounds; a single value is both. */
function splitRange(value: string): [string, string] | undefined {
  const dash = value.indexOf('-');
  if (dash === -1) return [value, value];
  if (value.indexOf('-', dash + 1) !== -1) return undefined;
  return [value.slice(0, dash), value.slice(dash + 1)];
}

function compileDateRange(value: string, invalid: (problem: string) => DfError): ValueMatcher {
  if (hasWildcard(value)) throw invalid('dates take no wildcards; use a range such as 20240101-20241231');
  const bounds = splitRange(value);
  const bad = (): DfError => invalid('not a date or date range; write YYYYMMDD, YYYYMMDD-YYYYMMDD, YYYYMMDD- or -YYYYMMDD');
  if (bounds === undefined) throw bad();
  const [fromText, toText] = bounds;
  const from = fromText === '' ? undefined : (normalizeDate(fromText) ?? badBound(bad));
  const to = toText === '' ? undefined : (normalizeDate(toText) ?? badBound(bad));
  return { kind: 'dateRange', from, to };
}

function badBound(bad: () => DfError): never {
  throw bad();
}

interface TimeSpan {
  /** Without colons: `HHMMSS.FFFFFF` or a prefix of it. */
  readonly text: string;
  readonly startUs: number;
  /** The last microsecond the (possibly partial) time covers: `10` runs to 10:59:59.999999. */
  readonly endUs: number;
}

const US_PER_SECOND = 1_000_000;

export function parseTime(raw: string): TimeSpan | undefined {
  // ACR-NEMA wrote HH:MM:SS.frac (PS3.5 6.2 TM note); still found in old objects and SCUs.
  const text = /^\d{2}:\d{2}/.test(raw) ? raw.replace(/:/g, '') : raw;
  const match = /^(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{0,6}))?)?)?$/.exec(text);
  if (match === null) return undefined;
  const [, hh, mm, ss, fraction] = match;
  const hours = Number(hh);
  const minutes = Number(mm ?? '0');
  const seconds = Number(ss ?? '0');
  if (hours > 23 || minutes > 59 || seconds > 60) return undefined;
  const fractionUs = Number((fraction ?? '').padEnd(6, '0'));
  const startUs = ((hours * 60 + minutes) * 60 + seconds) * US_PER_SECOND + fractionUs;
  const unitUs =
    ss === undefined
      ? (mm === undefined ? 3600 : 60) * US_PER_SECOND
      : fraction === undefined || fraction === ''
        ? US_PER_SECOND
        : 10 ** (6 - fraction.length);
  return { text, startUs, endUs: startUs + unitUs - 1 };
}

function compileTimeRange(value: string, invalid: (problem: string) => DfError): ValueMatcher {
  if (hasWildcard(value)) throw invalid('times take no wildcards; use a range such as 0800-1200');
  const bounds = splitRange(value);
  const bad = (): DfError => invalid('not a time or time range; write HH, HHMM, HHMMSS or HHMMSS.FFFFFF, alone or as A-B, A- or -B');
  if (bounds === undefined) throw bad();
  const from = bounds[0] === '' ? undefined : (parseTime(bounds[0]) ?? badBound(bad));
  const to = bounds[1] === '' ? undefined : (parseTime(bounds[1]) ?? badBound(bad));
  // A range that runs past midnight (2200-0200) matches nothing: PS3.4 leaves it to combined
  // date-time matching, which this module offers.
  return {
    kind: 'timeRange',
    fromUs: from?.startUs,
    toUs: to?.endUs,
    fromText: from?.text ?? '',
    toText: to?.text ?? '',
  };
}

interface DateTimeSpan {
  readonly startUs: bigint;
  readonly endUs: bigint;
}

const US_PER_DAY = 86_400_000_000n;

/** Days from 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * (month > 2 ? month - 3 : month + 9) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146097 + dayOfEra - 719468;
}

/**
 * DT `YYYY[MM[DD[HH[MM[SS[.F{1,6}]]]]]][&ZZXX]`. Without an offset the value is taken as UTC, so
 * two values without offsets compare as written (PS3.5 6.2: they are in the same local time).
 */
export function parseDateTime(text: string): DateTimeSpan | undefined {
  const match = /^(\d{4})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:(\d{2})(?:\.(\d{0,6}))?)?)?)?)?)?([+-]\d{4})?$/.exec(text);
  if (match === null) return undefined;
  const [, yyyy, mo, dd, hh, mi, ss, fraction, offset] = match;
  const year = Number(yyyy);
  const month = Number(mo ?? '1');
  const day = Number(dd ?? '1');
  const hours = Number(hh ?? '0');
  const minutes = Number(mi ?? '0');
  const seconds = Number(ss ?? '0');
  if (month < 1 || month > 12 || day < 1 || day > 31 || hours > 23 || minutes > 59 || seconds > 60) return undefined;
  const dayStartUs = (y: number, m: number, d: number): bigint => BigInt(daysFromCivil(y, m, d)) * US_PER_DAY;
  const timeUs = BigInt(((hours * 60 + minutes) * 60 + seconds) * US_PER_SECOND) + BigInt((fraction ?? '').padEnd(6, '0'));
  let startUs = dayStartUs(year, month, day) + timeUs;
  let endUs: bigint;
  if (mo === undefined) endUs = dayStartUs(year + 1, 1, 1) - 1n;
  else if (dd === undefined) endUs = (month === 12 ? dayStartUs(year + 1, 1, 1) : dayStartUs(year, month + 1, 1)) - 1n;
  else if (hh === undefined) endUs = startUs + US_PER_DAY - 1n;
  else if (mi === undefined) endUs = startUs + 3_600_000_000n - 1n;
  else if (ss === undefined) endUs = startUs + 60_000_000n - 1n;
  else if (fraction === undefined || fraction === '') endUs = startUs + 1_000_000n - 1n;
  else endUs = startUs + 10n ** BigInt(6 - fraction.length) - 1n;
  if (offset !== undefined) {
    const sign = offset.startsWith('-') ? -1 : 1;
    const offsetUs = BigInt(sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(3, 5))) * 60) * 1_000_000n;
    startUs -= offsetUs;
    endUs -= offsetUs;
  }
  return { startUs, endUs };
}

function compileDateTimeRange(value: string, invalid: (problem: string) => DfError): ValueMatcher {
  if (hasWildcard(value)) throw invalid('date-times take no wildcards; use a range');
  // `-` both separates a range and signs a UTC offset, so try the whole value first, then every
  // split; more than one reading is an error rather than a guess.
  const single = parseDateTime(value);
  if (single !== undefined) return { kind: 'dateTimeRange', fromUs: single.startUs, toUs: single.endUs };
  const readings: ValueMatcher[] = [];
  for (let dash = value.indexOf('-'); dash !== -1; dash = value.indexOf('-', dash + 1)) {
    const fromText = value.slice(0, dash);
    const toText = value.slice(dash + 1);
    const from = fromText === '' ? undefined : parseDateTime(fromText);
    const to = toText === '' ? undefined : parseDateTime(toText);
    if ((fromText !== '' && from === undefined) || (toText !== '' && to === undefined)) continue;
    readings.push({ kind: 'dateTimeRange', fromUs: from?.startUs, toUs: to?.endUs });
  }
  if (readings.length === 1) return readings[0];
  if (readings.length > 1) throw invalid('ambiguous date-time range; give both bounds with a UTC offset or none');
  throw invalid('not a date-time or range; write YYYYMMDDHHMMSS.FFFFFF&ZZXX or a prefix, alone or as A-B, A- or -B');
}

/**
 * PS3.4 C.2.2.2.5.1 combined datetime matching: a date range and a time range on a pair of
 * attributes (StudyDate, StudyTime) read as one span, `20240105-20240107` with `1000-1800` being
 * 5 Jan 10:00 to 7 Jan 18:00 rather than 10:00-18:00 on each of the three days. Returns undefined
 * when the two cannot be combined (a list of values, or either side universal); the caller then
 * keeps them independent.
 */
export function combineDateTime(date: Condition, time: Condition): Condition | undefined {
  if (date.kind !== 'values' || time.kind !== 'values' || date.anyOf.length !== 1 || time.anyOf.length !== 1) {
    return undefined;
  }
  const dateRange = date.anyOf[0];
  const timeRange = time.anyOf[0];
  if (dateRange.kind !== 'dateRange' || timeRange.kind !== 'timeRange') return undefined;
  const from = dateRange.from === undefined ? undefined : parseDateTime(dateRange.from + timeRange.fromText);
  const to = dateRange.to === undefined ? undefined : parseDateTime(dateRange.to + timeRange.toText);
  return {
    kind: 'combinedDateTime',
    keyword: date.keyword,
    vr: 'DT',
    queryValue: `${date.queryValue} ${time.queryValue}`,
    timeKeyword: time.keyword,
    fromUs: from?.startUs,
    toUs: to?.endUs,
    dateFrom: dateRange.from,
    dateTo: dateRange.to,
  };
}

// ---- Matching -----------------------------------------------------------------------------------

const inRange = <T extends number | bigint | string>(point: T, from: T | undefined, to: T | undefined): boolean =>
  (from === undefined || point >= from) && (to === undefined || point <= to);

function valueMatches(matcher: ValueMatcher, stored: string): boolean {
  switch (matcher.kind) {
    case 'exact':
      return stored === matcher.value;
    case 'wildcard':
      return matcher.glob.test(stored);
    case 'personName':
      return personNameMatches(matcher.groups, stored);
    case 'number':
      return Number(stored) === matcher.value;
    case 'dateRange': {
      const date = normalizeDate(stored);
      return date !== undefined && inRange(date, matcher.from, matcher.to);
    }
    case 'timeRange': {
      // A stored time is a moment: its start. `1030` stored is 10:30:00.
      const time = parseTime(stored);
      return time !== undefined && inRange(time.startUs, matcher.fromUs, matcher.toUs);
    }
    case 'dateTimeRange': {
      const dateTime = parseDateTime(stored);
      return dateTime !== undefined && inRange(dateTime.startUs, matcher.fromUs, matcher.toUs);
    }
  }
}

/**
 * Whether a stored value satisfies a condition. A stored value with several values (`CT\PT`)
 * matches when any of them does. An absent or empty stored value matches only universal matching.
 */
export function matches(condition: Condition, storedValue: StoredValue): boolean {
  if (condition.kind === 'universal') return true;
  if (storedValue === undefined || storedValue === null) return false;
  if (condition.kind === 'combinedDateTime') {
    const dateTime = parseDateTime(storedValue);
    return dateTime !== undefined && inRange(dateTime.startUs, condition.fromUs, condition.toUs);
  }
  const stored = splitValues(condition.vr, storedValue);
  if (stored.length === 0) return false;
  if (condition.kind === 'uidList') return stored.some((uid) => condition.uids.includes(uid));
  if (condition.allValues) {
    return condition.anyOf.every((matcher) => stored.some((value) => valueMatches(matcher, value)));
  }
  return stored.some((value) => condition.anyOf.some((matcher) => valueMatches(matcher, value)));
}

/** What the index prefilters by: the unique keys of the query (the matcher decides the rest). */
export function hierarchyFilterOf(parsed: ParsedQuery): HierarchyFilter {
  const filter: HierarchyFilter = {};
  for (const f of parsed.uniqueKeyFilters) {
    if (f.keyword === 'PatientID') filter.patientId = f.uids[0];
    if (f.keyword === 'StudyInstanceUID') filter.studyInstanceUids = [...f.uids];
    if (f.keyword === 'SeriesInstanceUID') filter.seriesInstanceUids = [...f.uids];
    if (f.keyword === 'SOPInstanceUID') filter.sopInstanceUids = [...f.uids];
  }
  return filter;
}

/**
 * The value `matches` expects for a condition from a row: the attribute itself, or for a combined
 * date-time the date and time joined into one DT (a missing time is the start of the day).
 */
export function storedValueFor(condition: Condition, row: Row | undefined): StoredValue {
  if (row === undefined) return undefined;
  if (condition.kind !== 'combinedDateTime') return row[condition.keyword];
  const date = normalizeDate(trimValue('DA', row[condition.keyword] ?? ''));
  if (date === undefined) return undefined;
  const time = parseTime(trimValue('TM', row[condition.timeKeyword] ?? ''));
  return date + (time?.text ?? '');
}

export function matchesRow(parsed: ParsedQuery, rows: Rows): boolean {
  for (const level of queryLevels) {
    const row = rows[rowOf(level)];
    for (const condition of parsed.conditions[level]) {
      if (!matches(condition, storedValueFor(condition, row))) return false;
    }
  }
  return true;
}

// ---- Responses ----------------------------------------------------------------------------------

/** A string in DICOM form (PN as `Family^Given=...`, several values joined by `\`), or an empty sequence. */
export type ResponseValue = string | [];
export type QueryResponse = Record<string, ResponseValue>;
/** Values the store computes or knows beyond the rows: counts, RetrieveAETitle, SpecificCharacterSet. */
export type ResponseExtras = Readonly<Record<string, string | number | undefined>>;

/**
 * The response identifier for one match. PS3.4 C.4.1.1.3.2: it holds the keys of the request and
 * the Query/Retrieve Level, nothing else, so unrequested extras are left out.
 */
export function buildResponse(parsed: ParsedQuery, rows: Rows, extras: ResponseExtras = {}): QueryResponse {
  const response: QueryResponse = {};
  for (const keyword of parsed.returnKeys) {
    const value = responseValue(parsed, rows, extras, keyword);
    if (value !== undefined) response[keyword] = value;
  }
  response.QueryRetrieveLevel = parsed.level;
  return response;
}

function responseValue(parsed: ParsedQuery, rows: Rows, extras: ResponseExtras, keyword: string): ResponseValue | undefined {
  if (keyword === 'QueryRetrieveLevel') return parsed.level;
  // PS3.4 C.2.2.2: Specific Character Set is never zero length; the encoder writes the one it used.
  if (keyword === 'SpecificCharacterSet' && extras.SpecificCharacterSet === undefined) return undefined;
  // Sequence matching (C.2.2.2.6) is not supported: the index keeps flat rows, not item contents,
  // so a sequence comes back zero-length, which C.2.2.1.2 allows for keys the SCP cannot fill.
  if (parsed.sequenceKeys.includes(keyword)) return [];
  const extra = extras[keyword];
  if (extra !== undefined) return String(extra);
  const key = queryKey(keyword);
  if (key === undefined) return '';
  // Everything this server lists is on its own disk.
  if (keyword === 'InstanceAvailability') return 'ONLINE';
  if (key.level === 'RESPONSE' || key.computed === true) return '';
  return rows[rowOf(key.level)]?.[keyword] ?? '';
}
