/**
 * The C-FIND keys this server answers, per Query/Retrieve level (PS3.4 C.6.1 Patient Root,
 * C.6.2 Study Root). The store indexes exactly these attributes; every other key in a request is
 * a return key answered empty.
 */

export const queryLevels = ['PATIENT', 'STUDY', 'SERIES', 'IMAGE'] as const;
export type QueryLevel = (typeof queryLevels)[number];

/** The information model, named after its root level: Patient Root or Study Root. */
export type QueryModel = 'PATIENT' | 'STUDY';

/** The four rows of the index that a match is made of. */
export type RowName = 'patient' | 'study' | 'series' | 'instance';

export type Vr =
  | 'AE'
  | 'AS'
  | 'AT'
  | 'CS'
  | 'DA'
  | 'DS'
  | 'DT'
  | 'FD'
  | 'FL'
  | 'IS'
  | 'LO'
  | 'LT'
  | 'PN'
  | 'SH'
  | 'SL'
  | 'SQ'
  | 'SS'
  | 'ST'
  | 'SV'
  | 'TM'
  | 'UC'
  | 'UI'
  | 'UL'
  | 'UR'
  | 'US'
  | 'UT'
  | 'UV';

export interface QueryKey {
  readonly keyword: string;
  /** Eight upper-case hex digits, group then element: '00100010'. */
  readonly tag: string;
  readonly vr: Vr;
  /**
   * The entity the attribute belongs to, which is also the row that stores it. 'RESPONSE' keys
   * describe the response itself (PS3.4 C.4.1.1.3.2) and are never matched.
   */
  readonly level: QueryLevel | 'RESPONSE';
  /** The unique key of its level (PS3.4 C.6.1.1 / C.6.2.1). */
  readonly unique?: true;
  /** VM greater than 1: a stored value may hold several values separated by backslashes. */
  readonly multiValued?: true;
  /** Counted by the store over the levels below (PS3.4 C.6.1.1.x "Number of ..."); return key only. */
  readonly computed?: true;
}

export const queryKeys: readonly QueryKey[] = [
  { keyword: 'PatientName', tag: '00100010', vr: 'PN', level: 'PATIENT' },
  { keyword: 'PatientID', tag: '00100020', vr: 'LO', level: 'PATIENT', unique: true },
  { keyword: 'IssuerOfPatientID', tag: '00100021', vr: 'LO', level: 'PATIENT' },
  { keyword: 'PatientBirthDate', tag: '00100030', vr: 'DA', level: 'PATIENT' },
  { keyword: 'PatientBirthTime', tag: '00100032', vr: 'TM', level: 'PATIENT' },
  { keyword: 'PatientSex', tag: '00100040', vr: 'CS', level: 'PATIENT' },
  // Retired in PS3.6 in favour of OtherPatientIDsSequence, but still what many SCUs send.
  { keyword: 'OtherPatientIDs', tag: '00101000', vr: 'LO', level: 'PATIENT', multiValued: true },
  { keyword: 'NumberOfPatientRelatedStudies', tag: '00201200', vr: 'IS', level: 'PATIENT', computed: true },
  { keyword: 'NumberOfPatientRelatedSeries', tag: '00201202', vr: 'IS', level: 'PATIENT', computed: true },
  { keyword: 'NumberOfPatientRelatedInstances', tag: '00201204', vr: 'IS', level: 'PATIENT', computed: true },

  { keyword: 'StudyInstanceUID', tag: '0020000D', vr: 'UI', level: 'STUDY', unique: true },
  { keyword: 'StudyDate', tag: '00080020', vr: 'DA', level: 'STUDY' },
  { keyword: 'StudyTime', tag: '00080030', vr: 'TM', level: 'STUDY' },
  { keyword: 'AccessionNumber', tag: '00080050', vr: 'SH', level: 'STUDY' },
  { keyword: 'StudyID', tag: '00200010', vr: 'SH', level: 'STUDY' },
  { keyword: 'StudyDescription', tag: '00081030', vr: 'LO', level: 'STUDY' },
  { keyword: 'ReferringPhysicianName', tag: '00080090', vr: 'PN', level: 'STUDY' },
  // PS3.4 C.6.2.1.2 lists these patient facts at the study level: they change from study to study.
  { keyword: 'PatientAge', tag: '00101010', vr: 'AS', level: 'STUDY' },
  { keyword: 'PatientSize', tag: '00101020', vr: 'DS', level: 'STUDY' },
  { keyword: 'PatientWeight', tag: '00101030', vr: 'DS', level: 'STUDY' },
  { keyword: 'ModalitiesInStudy', tag: '00080061', vr: 'CS', level: 'STUDY', multiValued: true },
  { keyword: 'SOPClassesInStudy', tag: '00080062', vr: 'UI', level: 'STUDY', multiValued: true },
  { keyword: 'NumberOfStudyRelatedSeries', tag: '00201206', vr: 'IS', level: 'STUDY', computed: true },
  { keyword: 'NumberOfStudyRelatedInstances', tag: '00201208', vr: 'IS', level: 'STUDY', computed: true },

  { keyword: 'SeriesInstanceUID', tag: '0020000E', vr: 'UI', level: 'SERIES', unique: true },
  { keyword: 'Modality', tag: '00080060', vr: 'CS', level: 'SERIES' },
  { keyword: 'SeriesNumber', tag: '00200011', vr: 'IS', level: 'SERIES' },
  { keyword: 'SeriesDescription', tag: '0008103E', vr: 'LO', level: 'SERIES' },
  { keyword: 'SeriesDate', tag: '00080021', vr: 'DA', level: 'SERIES' },
  { keyword: 'SeriesTime', tag: '00080031', vr: 'TM', level: 'SERIES' },
  { keyword: 'BodyPartExamined', tag: '00180015', vr: 'CS', level: 'SERIES' },
  { keyword: 'ProtocolName', tag: '00181030', vr: 'LO', level: 'SERIES' },
  { keyword: 'PerformedProcedureStepStartDate', tag: '00400244', vr: 'DA', level: 'SERIES' },
  { keyword: 'NumberOfSeriesRelatedInstances', tag: '00201209', vr: 'IS', level: 'SERIES', computed: true },

  { keyword: 'SOPInstanceUID', tag: '00080018', vr: 'UI', level: 'IMAGE', unique: true },
  { keyword: 'SOPClassUID', tag: '00080016', vr: 'UI', level: 'IMAGE' },
  { keyword: 'InstanceNumber', tag: '00200013', vr: 'IS', level: 'IMAGE' },
  { keyword: 'ContentDate', tag: '00080023', vr: 'DA', level: 'IMAGE' },
  { keyword: 'ContentTime', tag: '00080033', vr: 'TM', level: 'IMAGE' },
  { keyword: 'AcquisitionDate', tag: '00080022', vr: 'DA', level: 'IMAGE' },
  { keyword: 'AcquisitionTime', tag: '00080032', vr: 'TM', level: 'IMAGE' },
  { keyword: 'ImageType', tag: '00080008', vr: 'CS', level: 'IMAGE', multiValued: true },
  { keyword: 'NumberOfFrames', tag: '00280008', vr: 'IS', level: 'IMAGE' },
  { keyword: 'Rows', tag: '00280010', vr: 'US', level: 'IMAGE' },
  { keyword: 'Columns', tag: '00280011', vr: 'US', level: 'IMAGE' },

  { keyword: 'SpecificCharacterSet', tag: '00080005', vr: 'CS', level: 'RESPONSE', multiValued: true },
  { keyword: 'QueryRetrieveLevel', tag: '00080052', vr: 'CS', level: 'RESPONSE' },
  { keyword: 'RetrieveAETitle', tag: '00080054', vr: 'AE', level: 'RESPONSE', multiValued: true },
  { keyword: 'InstanceAvailability', tag: '00080056', vr: 'CS', level: 'RESPONSE' },
];

/** A key that lives on one of the index's rows, as opposed to a response-only key. */
export type EntityKey = QueryKey & { readonly level: QueryLevel };

export function isEntityKey(key: QueryKey): key is EntityKey {
  return key.level !== 'RESPONSE';
}

const keysByKeyword: ReadonlyMap<string, QueryKey> = new Map(queryKeys.map((key) => [key.keyword, key]));

export function queryKey(keyword: string): QueryKey | undefined {
  return keysByKeyword.get(keyword);
}

/** The levels of a model, root first. Study Root has no PATIENT level (PS3.4 C.6.2). */
export function levelsOf(model: QueryModel): readonly QueryLevel[] {
  return model === 'PATIENT' ? queryLevels : queryLevels.slice(1);
}

/**
 * The level at which a key is matched in a model. PS3.4 C.6.2.1.2: in Study Root the patient's
 * attributes are attributes of the study.
 */
export function keyLevelIn(key: EntityKey, model: QueryModel): QueryLevel {
  return model === 'STUDY' && key.level === 'PATIENT' ? 'STUDY' : key.level;
}

/** The unique key of a level, or undefined when the model has no such level. */
export function uniqueKeyOf(level: QueryLevel, model: QueryModel): string | undefined {
  if (!levelsOf(model).includes(level)) return undefined;
  return queryKeys.find((key) => key.level === level && key.unique === true)?.keyword;
}

const rowNames: Readonly<Record<QueryLevel, RowName>> = {
  PATIENT: 'patient',
  STUDY: 'study',
  SERIES: 'series',
  IMAGE: 'instance',
};

export function rowOf(level: QueryLevel): RowName {
  return rowNames[level];
}

/**
 * Date and time attributes that PS3.4 C.2.2.2.5.1 lets an SCU match as one date-time when
 * "combined datetime matching" is in force. Both live on the same row.
 */
export const dateTimePairs: readonly { readonly date: string; readonly time: string }[] = [
  { date: 'PatientBirthDate', time: 'PatientBirthTime' },
  { date: 'StudyDate', time: 'StudyTime' },
  { date: 'SeriesDate', time: 'SeriesTime' },
  { date: 'ContentDate', time: 'ContentTime' },
  { date: 'AcquisitionDate', time: 'AcquisitionTime' },
];
