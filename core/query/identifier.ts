/**
 * Reads a C-FIND request identifier (a naturalized dcmjs dataset) into the conditions each row of
 * the index must meet, checking it against the rules of hierarchical search (PS3.4 C.4.1.2.2.1).
 */
import { dfError, isDfError } from '../errors.ts';
import {
  dateTimePairs,
  isEntityKey,
  keyLevelIn,
  levelsOf,
  queryKey,
  queryLevels,
  uniqueKeyOf,
  type QueryLevel,
  type QueryModel,
} from './keys.ts';
import { combineDateTime, compileCondition, type Condition } from './match.ts';

/** Values of a unique key the store can look up directly (PatientID holds one; UIDs may be a list). */
export interface UniqueKeyFilter {
  readonly level: QueryLevel;
  readonly keyword: string;
  readonly uids: readonly string[];
}

export interface ParsedQuery {
  readonly model: QueryModel;
  readonly level: QueryLevel;
  /** Matching keys, grouped by the row that stores the attribute (in Study Root, patient keys are on the patient row). */
  readonly conditions: Readonly<Record<QueryLevel, readonly Condition[]>>;
  /** Every key of the request, in request order; each is answered, empty when unknown or absent. */
  readonly returnKeys: readonly string[];
  /** Return keys that are sequences; answered as empty sequences. */
  readonly sequenceKeys: readonly string[];
  readonly uniqueKeyFilters: readonly UniqueKeyFilter[];
}

export interface ParseOptions {
  /** PS3.4 C.2.2.2.5.1 combined datetime matching, when the SCU negotiated it. */
  readonly combinedDateTime?: boolean;
  /** PS3.4 C.4.1.2.2.2 relational search, when negotiated: any key above the query level may match. */
  readonly relational?: boolean;
  /** PS3.4 C.2.2.2.8 multiple value matching ("all of"), when negotiated; otherwise "any of". */
  readonly multipleValueMatching?: boolean;
  /**
   * The VR of a keyword this module does not know, e.g. from dcmjs's dictionary. Without it an
   * empty sequence in the request (`null` or `[]` once naturalized) cannot be told from an empty
   * value, and is answered as an empty value.
   */
  readonly vrOf?: (keyword: string) => string | undefined;
}

interface Problem {
  readonly keyword: string;
  readonly tag?: string;
  readonly message: string;
}

// PS3.4 C.2.2.2.8: the VRs multiple value matching applies to.
const multipleValueMatchingVrs: ReadonlySet<string> = new Set(['AE', 'AS', 'AT', 'CS', 'LO', 'PN', 'SH', 'UC']);
const personNameGroups: readonly string[] = ['Alphabetic', 'Ideographic', 'Phonetic'];
const modelName = (model: QueryModel): string => (model === 'PATIENT' ? 'Patient Root' : 'Study Root');

export function parseIdentifier(identifier: Readonly<Record<string, unknown>>, model: QueryModel, options: ParseOptions = {}): ParsedQuery {
  const levels = levelsOf(model);
  const level = parseLevel(identifier.QueryRetrieveLevel, model);
  const queryDepth = levels.indexOf(level);
  const conditions: Record<QueryLevel, Condition[]> = { PATIENT: [], STUDY: [], SERIES: [], IMAGE: [] };
  const returnKeys: string[] = [];
  const sequenceKeys: string[] = [];
  const uniqueKeyFilters: UniqueKeyFilter[] = [];
  const problems: Problem[] = [];

  for (const [keyword, value] of Object.entries(identifier)) {
    // dcmjs keeps its bookkeeping (_vrMap, _meta) beside the attributes.
    if (keyword.startsWith('_')) continue;
    returnKeys.push(keyword);
    const key = queryKey(keyword);
    if (key === undefined) {
      const vr = options.vrOf?.(keyword);
      if (vr === 'SQ' || (vr === undefined && isSequenceValue(value))) sequenceKeys.push(keyword);
      continue;
    }
    if (!isEntityKey(key)) continue;
    const problem = (message: string): void => {
      problems.push({ keyword, tag: key.tag, message });
    };
    const keyLevel = keyLevelIn(key, model);
    const depth = levels.indexOf(keyLevel);
    if (depth > queryDepth) {
      problem(`${keyword} is a ${keyLevel}-level key, below this ${level}-level query; remove it or query at ${keyLevel} level`);
      continue;
    }
    // PS3.4 C.6.1.1: the "Number of ... Related ..." keys are return keys; a value in them is ignored.
    if (key.computed === true) continue;
    const text = toDicomString(value);
    if (text === undefined) {
      problem(`${keyword} holds ${describe(value)}, not a ${key.vr} value`);
      continue;
    }
    let condition: Condition;
    try {
      condition = compileCondition(keyword, key.vr, text, {
        allValues: options.multipleValueMatching === true && key.multiValued === true && multipleValueMatchingVrs.has(key.vr),
      });
    } catch (err) {
      if (!isDfError(err, 'DF_ERR_QUERY_INVALID')) throw err;
      problem(err.message.replace(/^DF_ERR_QUERY_INVALID: /, ''));
      continue;
    }
    if (condition.kind === 'universal') continue;
    const uniqueKey = uniqueKeyOf(keyLevel, model);
    const exactValues = exactValuesOf(condition);
    if (depth < queryDepth && options.relational !== true) {
      if (keyword !== uniqueKey) {
        problem(
          `${keyword} is a ${keyLevel}-level key; above the query level a hierarchical query may hold only ` +
            `${uniqueKey} (PS3.4 C.4.1.2.2.1); send it empty to have it returned, or query at ${keyLevel} level`,
        );
        continue;
      }
      if (exactValues === undefined || (key.vr !== 'UI' && exactValues.length > 1)) {
        problem(`${keyword} above the query level must be a single value${key.vr === 'UI' ? ' or a list of UIDs' : ''}, without wildcards`);
        continue;
      }
    }
    conditions[key.level].push(condition);
    if (keyword === uniqueKey && exactValues !== undefined) {
      uniqueKeyFilters.push({ level: keyLevel, keyword, uids: exactValues });
    }
  }

  if (problems.length > 0) {
    throw dfError('DF_ERR_QUERY_INVALID', `${modelName(model)} ${level}-level query: ${problems.map((p) => p.message).join('; ')}`, {
      details: { model, level, problems },
    });
  }
  if (options.combinedDateTime === true) combineDateTimePairs(conditions);
  return { model, level, conditions, returnKeys, sequenceKeys, uniqueKeyFilters };
}

function parseLevel(value: unknown, model: QueryModel): QueryLevel {
  const text = toDicomString(value)?.trim() ?? '';
  const levels = levelsOf(model);
  const found = levels.find((level) => level === text);
  if (found !== undefined) return found;
  const message =
    text === ''
      ? `QueryRetrieveLevel (0008,0052) is missing; set it to ${levels.join(', ')}`
      : text === 'PATIENT'
        ? 'Study Root has no PATIENT level; query at STUDY level or use Patient Root'
        : `QueryRetrieveLevel ${JSON.stringify(text)} is not one of ${levels.join(', ')}`;
  throw dfError('DF_ERR_QUERY_INVALID', message, {
    details: { model, problems: [{ keyword: 'QueryRetrieveLevel', tag: '00080052', message }] },
  });
}

/** The values of a condition that names its matches outright: a UID list, or values without wildcards. */
function exactValuesOf(condition: Condition): string[] | undefined {
  if (condition.kind === 'uidList') return [...condition.uids];
  if (condition.kind !== 'values' || condition.allValues) return undefined;
  const values: string[] = [];
  for (const matcher of condition.anyOf) {
    if (matcher.kind !== 'exact') return undefined;
    values.push(matcher.value);
  }
  return values;
}

function combineDateTimePairs(conditions: Record<QueryLevel, Condition[]>): void {
  for (const level of queryLevels) {
    const list = conditions[level];
    for (const pair of dateTimePairs) {
      const date = list.findIndex((condition) => condition.keyword === pair.date);
      const time = list.findIndex((condition) => condition.keyword === pair.time);
      if (date === -1 || time === -1) continue;
      const combined = combineDateTime(list[date], list[time]);
      if (combined === undefined) continue;
      list[date] = combined;
      list.splice(time, 1);
    }
  }
}

// ---- Values as dcmjs naturalizes them -----------------------------------------------------------

function isPersonNameObject(value: unknown): value is Readonly<Record<string, unknown>> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length > 0 && keys.every((key) => personNameGroups.includes(key));
}

/** A sequence naturalizes to an array of item objects (an item may be empty: PS3.4 C.2.2.1.2 lets an SCU send one). */
function isSequenceValue(value: unknown): boolean {
  return (
    Array.isArray(value) &&
    value.some((item) => typeof item === 'object' && item !== null && !Array.isArray(item) && !isPersonNameObject(item))
  );
}

/** `{ Alphabetic, Ideographic, Phonetic }` to `Alphabetic=Ideographic=Phonetic`, trailing groups dropped. */
function personNameToString(name: Readonly<Record<string, unknown>>): string | undefined {
  const groups: string[] = [];
  for (const group of personNameGroups) {
    const text = name[group];
    if (text !== undefined && text !== null && typeof text !== 'string') return undefined;
    groups.push(text ?? '');
  }
  while (groups.length > 1 && groups[groups.length - 1] === '') groups.pop();
  return groups.join('=');
}

/**
 * The DICOM string form of a value: strings as they are, numbers in decimal, several values
 * joined by backslashes, PN objects as component groups. Undefined when it is no such value.
 */
export function toDicomString(value: unknown): string | undefined {
  if (value === null || value === undefined) return '';
  if (Array.isArray(value)) {
    const parts: string[] = [];
    for (const item of value as unknown[]) {
      const part = Array.isArray(item) ? undefined : toDicomString(item);
      if (part === undefined) return undefined;
      parts.push(part);
    }
    return parts.join('\\');
  }
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  if (isPersonNameObject(value)) return personNameToString(value);
  return undefined;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'a sequence or list of non-string values';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}
