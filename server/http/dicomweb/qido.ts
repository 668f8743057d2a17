/**
 * QIDO-RS (PS3.18 10.6): a search's query parameters become a C-FIND identifier, matched by the
 * same code as our C-FIND SCP (core/query: wildcards, ranges, UID lists, combined date-time), and
 * each match is answered as a DICOM JSON dataset.
 */
import { indexedAttributeByKeyword } from '../../../core/dicom/indexed-attributes.ts';
import { dfError } from '../../../core/errors.ts';
import { parseIdentifier, type ParsedQuery } from '../../../core/query/identifier.ts';
import { isEntityKey, keyLevelIn, queryKey, queryKeys, type QueryLevel } from '../../../core/query/keys.ts';
import { buildResponse, matchesRow, type Rows } from '../../../core/query/match.ts';
import { indexFilterOf } from '../../../core/query/match-keys.ts';
import type { QuerySource, StudyRow } from '../../../core/store/index-store.ts';
import { attributeOf, datasetFromStrings, type DicomJsonDataset } from './dicom-json.ts';

export type QidoLevel = 'STUDY' | 'SERIES' | 'IMAGE';

export interface QidoRequest {
  level: QidoLevel;
  /** From the path: /studies/{study}/series… */
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  /** The query string as Fastify parsed it (a repeated key is an array). */
  query: Readonly<Record<string, QueryValue>>;
  /** `…/dicomweb/<db>`, to make each match's RetrieveURL. */
  serviceUrl: string;
}

export interface QidoResult {
  matches: DicomJsonDataset[];
  /** PS3.18 8.3.4: what the search did not do as asked, for a `Warning: 299` header. */
  warnings: string[];
}

/** Fastify has coerced limit/offset to numbers and fuzzymatching to a boolean. */
type QueryValue = string | string[] | number | boolean | undefined;

const levelDepth: Record<QidoLevel, number> = { STUDY: 0, SERIES: 1, IMAGE: 2 };
const RESERVED = new Set(['limit', 'offset', 'fuzzymatching', 'includefield', 'orderby']);

// PS3.18 Tables 10.6.3-3 to -5: the attributes every match carries, of those the index keeps.
const defaultsOf: Record<QidoLevel, string[]> = {
  STUDY: [
    'StudyDate',
    'StudyTime',
    'AccessionNumber',
    'InstanceAvailability',
    'ModalitiesInStudy',
    'ReferringPhysicianName',
    'PatientName',
    'PatientID',
    'PatientBirthDate',
    'PatientSex',
    'StudyInstanceUID',
    'StudyID',
    'StudyDescription',
    'NumberOfStudyRelatedSeries',
    'NumberOfStudyRelatedInstances',
  ],
  SERIES: [
    'Modality',
    'SeriesDescription',
    'SeriesInstanceUID',
    'SeriesNumber',
    'NumberOfSeriesRelatedInstances',
    'PerformedProcedureStepStartDate',
    'StudyInstanceUID',
  ],
  IMAGE: [
    'SOPClassUID',
    'SOPInstanceUID',
    'InstanceAvailability',
    'InstanceNumber',
    'Rows',
    'Columns',
    'NumberOfFrames',
    'StudyInstanceUID',
    'SeriesInstanceUID',
  ],
};

const LEVEL_OF_INDEXED: Record<string, QueryLevel> = { PATIENT: 'PATIENT', STUDY: 'STUDY', SERIES: 'SERIES', IMAGE: 'IMAGE' };

/** The level an attribute is kept at (Study Root: patient attributes are the study's). */
function levelOfKeyword(keyword: string): QidoLevel | 'RESPONSE' | undefined {
  const key = queryKey(keyword);
  if (key) return isEntityKey(key) ? (keyLevelIn(key, 'STUDY') as QidoLevel) : 'RESPONSE';
  const indexed = indexedAttributeByKeyword.get(keyword);
  if (!indexed) return undefined;
  const level = LEVEL_OF_INDEXED[indexed.level];
  return level === 'PATIENT' ? 'STUDY' : (level as QidoLevel);
}

const single = (value: QueryValue): string | undefined =>
  value === undefined ? undefined : String(Array.isArray(value) ? value[value.length - 1] : value);

function nonNegativeInteger(name: string, value: QueryValue): number | undefined {
  const text = single(value);
  if (text === undefined || text === '') return undefined;
  if (!/^\d{1,9}$/.test(text)) throw dfError('DF_ERR_QUERY_INVALID', `${name}=${JSON.stringify(text)} is not a non-negative integer`);
  return Number(text);
}

/** Runs a search; throws DF_ERR_QUERY_INVALID naming every problem of the query string. */
export async function search(source: QuerySource, request: QidoRequest): Promise<QidoResult> {
  const { level, query } = request;
  const warnings: string[] = [];
  const limit = nonNegativeInteger('limit', query.limit);
  const offset = nonNegativeInteger('offset', query.offset) ?? 0;
  const fuzzy = single(query.fuzzymatching);
  if (fuzzy !== undefined && fuzzy !== 'false' && fuzzy !== 'true')
    throw dfError('DF_ERR_QUERY_INVALID', `fuzzymatching must be true or false, not ${JSON.stringify(fuzzy)}`);
  // PS3.18 8.3.4.6: a server without fuzzy matching matches exactly and says so.
  if (fuzzy === 'true') warnings.push('fuzzymatching is not supported; person names were matched literally');
  if (query.orderby !== undefined) warnings.push('orderby is not supported; matches are in index order');

  const identifier: Record<string, string> = { QueryRetrieveLevel: level };
  const returnKeys = new Set<string>();
  const depth = levelDepth[level];
  const fitsLevel = (keyword: string) => {
    const at = levelOfKeyword(keyword);
    return at === 'RESPONSE' || (at !== undefined && levelDepth[at] <= depth);
  };
  // /series and /instances also describe the study (and series) each match belongs to (PS3.18 10.6.3.3.1).
  const scope: QidoLevel[] =
    level === 'STUDY'
      ? ['STUDY']
      : level === 'SERIES'
        ? request.studyInstanceUid
          ? ['SERIES']
          : ['STUDY', 'SERIES']
        : request.seriesInstanceUid
          ? ['IMAGE']
          : request.studyInstanceUid
            ? ['SERIES', 'IMAGE']
            : ['STUDY', 'SERIES', 'IMAGE'];
  for (const l of scope) for (const keyword of defaultsOf[l]) returnKeys.add(keyword);

  const problems: string[] = [];
  for (const [name, raw] of Object.entries(query)) {
    if (raw === undefined || RESERVED.has(name.toLowerCase())) continue;
    if (name.includes('.')) {
      problems.push(`${name}: sequence attribute paths are not matched (the index keeps no sequence items)`);
      continue;
    }
    const attribute = attributeOf(name);
    if (!attribute) {
      problems.push(`${name} is neither a query parameter nor a DICOM keyword or tag`);
      continue;
    }
    const value = Array.isArray(raw) ? raw.join('\\') : String(raw);
    const keyword = attribute.keyword;
    if (!fitsLevel(keyword)) {
      if (value !== '') problems.push(`${keyword} is an attribute of a level below this ${level.toLowerCase()} search`);
      continue;
    }
    const key = queryKey(keyword);
    if (value !== '' && (!key || key.computed)) {
      warnings.push(`${keyword} is not a matching key of this server; it was not used for matching`);
      returnKeys.add(keyword);
      continue;
    }
    identifier[keyword] = value;
  }
  if (request.studyInstanceUid) identifier.StudyInstanceUID = request.studyInstanceUid;
  if (request.seriesInstanceUid) identifier.SeriesInstanceUID = request.seriesInstanceUid;
  for (const field of includeFields(query.includefield)) {
    if (field === 'all') {
      for (const keyword of allKeywords()) if (fitsLevel(keyword)) returnKeys.add(keyword);
      continue;
    }
    const attribute = attributeOf(field);
    if (!attribute) problems.push(`includefield ${field} is neither a DICOM keyword nor a tag`);
    else if (fitsLevel(attribute.keyword)) returnKeys.add(attribute.keyword);
  }
  if (problems.length > 0) throw dfError('DF_ERR_QUERY_INVALID', problems.join('; '));
  for (const keyword of returnKeys) if (!(keyword in identifier) && queryKey(keyword)) identifier[keyword] = '';

  const parsed = parseIdentifier(identifier, 'STUDY', { relational: true, combinedDateTime: true });
  const found = await matchRows(source, parsed);
  const page = found.slice(offset, limit === undefined ? undefined : offset + limit);
  const matches = page.map(({ rows, extras }) => {
    const response: Record<string, string | number> = { ...buildResponse(parsed, rows, extras) } as Record<string, string>;
    delete response.QueryRetrieveLevel;
    // Attributes the index keeps but C-FIND does not match on: from the rows themselves.
    for (const keyword of returnKeys) {
      if (response[keyword] !== undefined && response[keyword] !== '') continue;
      const value =
        rows.instance?.[keyword] ?? rows.series?.[keyword] ?? rows.study?.[keyword] ?? rows.patient?.[keyword] ?? extras[keyword];
      if (value !== undefined && value !== null) response[keyword] = value;
    }
    const study = rows.study?.StudyInstanceUID ?? '';
    const series = rows.series?.SeriesInstanceUID ?? '';
    const instance = rows.instance?.SOPInstanceUID ?? '';
    response.RetrieveURL =
      level === 'STUDY'
        ? `${request.serviceUrl}/studies/${study}`
        : level === 'SERIES'
          ? `${request.serviceUrl}/studies/${study}/series/${series}`
          : `${request.serviceUrl}/studies/${study}/series/${series}/instances/${instance}`;
    return datasetFromStrings(response);
  });
  return { matches, warnings };
}

function includeFields(value: QueryValue): string[] {
  if (value === undefined) return [];
  return (Array.isArray(value) ? value : [String(value)])
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

function allKeywords(): string[] {
  return [
    ...new Set([
      ...queryKeys.filter((k) => k.level !== 'RESPONSE' || k.keyword === 'InstanceAvailability').map((k) => k.keyword),
      ...indexedAttributeByKeyword.keys(),
    ]),
  ];
}

interface Match {
  rows: Rows;
  extras: Record<string, string>;
}

const studyExtras = (s: StudyRow) => ({
  NumberOfStudyRelatedSeries: String(s.numberOfSeries),
  NumberOfStudyRelatedInstances: String(s.numberOfInstances),
  ModalitiesInStudy: s.modalitiesInStudy.join('\\'),
  SOPClassesInStudy: s.sopClassesInStudy.join('\\'),
});

/** The index prefilters by unique keys and match keys; the C-FIND matcher decides. */
async function matchRows(source: QuerySource, parsed: ParsedQuery): Promise<Match[]> {
  const filter = indexFilterOf(parsed);
  const studies = new Map<string, StudyRow>();
  // Below the study level every study of the scope is read: its row answers the study keys.
  const studyFilter =
    parsed.level === 'STUDY'
      ? filter
      : filter.studyInstanceUids
        ? { studyInstanceUids: filter.studyInstanceUids }
        : filter.patientId
          ? { patientId: filter.patientId }
          : {};
  for (const s of await source.studies(studyFilter)) {
    studies.set(s.study.StudyInstanceUID ?? '', s);
  }
  const studyRow = (s: StudyRow) => ({
    ...s.study,
    ModalitiesInStudy: s.modalitiesInStudy.join('\\'),
    SOPClassesInStudy: s.sopClassesInStudy.join('\\'),
  });
  const out: Match[] = [];
  if (parsed.level === 'STUDY') {
    for (const s of studies.values()) {
      const rows: Rows = { patient: s.patient, study: studyRow(s) };
      if (matchesRow(parsed, rows)) out.push({ rows, extras: studyExtras(s) });
    }
    return out;
  }
  const rowsOf = (r: { patient: Record<string, string>; study: Record<string, string>; series: Record<string, string> }) => {
    const s = studies.get(r.study.StudyInstanceUID ?? '');
    return { rows: { patient: r.patient, study: s ? studyRow(s) : r.study, series: r.series }, extras: s ? studyExtras(s) : {} };
  };
  if (parsed.level === 'SERIES') {
    for (const r of await source.series(filter)) {
      const { rows, extras } = rowsOf(r);
      if (matchesRow(parsed, rows)) out.push({ rows, extras: { ...extras, NumberOfSeriesRelatedInstances: String(r.numberOfInstances) } });
    }
    return out;
  }
  // Counts of whole series, whatever instances the filter picks.
  const { sopInstanceUids: _picked, ...seriesFilter } = filter;
  const seriesCounts = new Map((await source.series(seriesFilter)).map((r) => [r.series.SeriesInstanceUID ?? '', r.numberOfInstances]));
  for (const i of await source.instances(filter)) {
    const { rows, extras } = rowsOf(i);
    const all: Rows = { ...rows, instance: i.instance };
    if (!matchesRow(parsed, all)) continue;
    out.push({
      rows: all,
      extras: { ...extras, NumberOfSeriesRelatedInstances: String(seriesCounts.get(i.series.SeriesInstanceUID ?? '') ?? 0) },
    });
  }
  return out;
}
