/**
 * The index behind every database: what the rest of dicomflow may ask of it, implemented on
 * SQLite or PostgreSQL (sql/sql-index.ts); nothing outside the adapter sees SQL.
 */

/** Arrivals of one series into one database. */
export interface SeriesArrivals {
  seriesInstanceUid: string;
  studyInstanceUid?: string;
  database?: string;
  count: number;
  firstReceivedAt: string;
  lastReceivedAt: string;
  /** Calling AE titles of the senders, and the sources (network, import, …), distinct. */
  senders: string[];
  sources: string[];
  /** Patient, study and series attributes of the latest arrival. */
  attributes: Record<string, string>;
}

export type ArrivalSource = 'network' | 'folder' | 'import' | 'move' | 'replication' | 'pipeline' | 'dicomweb';
export type DuplicatePolicy = 'keep-first' | 'replace' | 'reject';
export type ArrivalOutcome = 'received' | 'duplicate-rejected';

export interface ReceivedObject {
  objectId: string;
  /** Relative to the object store root. */
  path: string;
  size: number;
  transferSyntaxUid: string;
  sopClassUid: string;
  sopInstanceUid: string;
  /** Indexed attributes decoded from the dataset (keyword → DICOM string). */
  attributes: Record<string, string>;
  source: ArrivalSource;
  callingAeTitle?: string;
  calledAeTitle?: string;
  peerAddress?: string;
  userName?: string;
  associationId?: string;
  /** The database the object is addressed to (by called AE title); the store step files it there. */
  database: string;
  /** Who is recorded as creator: the calling AE title for the network, the user for imports. */
  createdBy: string;
  receivedAt: string;
}

export interface RecordResult {
  arrivalId: string;
  outcome: ArrivalOutcome;
  /** The object the arrival refers to: the new one, or for a rejected duplicate the one kept. */
  objectId: string;
  path: string;
  /** The filing-only pipeline that filed it in this commit. */
  filedBy?: string;
  /** Filed, and no other pipeline takes it: processed in this commit (nothing for the engine). */
  settled?: boolean;
}

export type Attributes = Record<string, string>;

/** An object to file into a database. */
export interface FileItem {
  objectId: string;
  sopClassUid: string;
  sopInstanceUid: string;
  attributes: Attributes;
  /** Provenance: the calling AE title for network arrivals, the user for imports and moves. */
  createdBy: string;
  createdAt: string;
  source: ArrivalSource;
  arrivalId?: string;
}

export interface FileResult {
  outcome: 'filed' | 'already-filed' | 'duplicate-kept-first' | 'duplicate-replaced' | 'duplicate-rejected';
  instanceId: string;
  /** For a replacement: the object the database no longer refers to. */
  replacedObjectId?: string;
}

/**
 * One page of a level's rows, in the index's stable order: `limit` rows after the row whose
 * `key` was `after`. An answer that streams (C-FIND) reads page by page instead of all at once.
 */
export interface PageRequest {
  after?: string;
  limit: number;
}

/** `key`: where the next page starts (rows of a paged source carry it; a DICOMDIR's do not). */
interface Keyed {
  key?: string;
}

export interface PatientRow extends Keyed {
  attributes: Attributes;
  numberOfStudies: number;
  numberOfSeries: number;
  numberOfInstances: number;
}

export interface StudyRow extends Keyed {
  patient: Attributes;
  study: Attributes;
  numberOfSeries: number;
  numberOfInstances: number;
  modalitiesInStudy: string[];
  sopClassesInStudy: string[];
}

export interface SeriesRow extends Keyed {
  patient: Attributes;
  study: Attributes;
  series: Attributes;
  numberOfInstances: number;
}

export interface InstanceRow extends Keyed {
  patient: Attributes;
  study: Attributes;
  series: Attributes;
  instance: Attributes;
  objectPath: string;
  /** Absolute path, for sources whose files are not in the object store (a DICOMDIR file-set). */
  filePath?: string;
  transferSyntaxUid: string;
  createdBy: string;
  createdAt: string;
  source: ArrivalSource;
}

/**
 * A test of a match key (core/query/match-keys.ts) that keeps every row the C-FIND matcher may
 * accept: one of the values, a prefix, or inclusive bounds (an absent bound is open).
 */
export type KeyTest = { kind: 'in'; values: string[] } | { kind: 'prefix'; prefix: string } | { kind: 'range'; from?: string; to?: string };

export interface MatchKey {
  keyword: string;
  test: KeyTest;
}

/**
 * Prefilters by unique keys and match keys: a source may read fewer rows with them, never rows
 * the C-FIND matcher then refuses to see. The matcher decides each row it is given.
 */
export interface HierarchyFilter {
  patientId?: string;
  studyInstanceUids?: string[];
  seriesInstanceUids?: string[];
  sopInstanceUids?: string[];
  keys?: MatchKey[];
}

/** Removes a study or series from one database; objects no other database holds are released. */
export interface RemovalRequest {
  database: string;
  level: 'study' | 'series';
  uid: string;
  user: string;
}

export interface RemovalResult {
  /** Instances removed from the database. */
  instances: number;
  /** Of their objects, those released: deleted once no database, job or open group needs them. */
  released: number;
}

export interface TransferRequest {
  from: string;
  to: string;
  level: 'patient' | 'study' | 'series' | 'database';
  /** PatientID, Study or Series Instance UID; unused for a whole database. */
  uid?: string;
  mode: 'move' | 'copy';
  user: string;
  source: 'move' | 'replication';
  /** Provenance of the target's rows. */
  createdBy: string;
}

export interface TransferResult {
  instances: number;
  filed: number;
  /** Already in the target (kept as they were). */
  duplicates: number;
}

/**
 * What Query/Retrieve reads: one database of the index, or a DICOMDIR file-set. With `page`, a
 * source that pages returns that page; one that does not (a DICOMDIR) returns every row.
 */
export interface QuerySource {
  patients(filter: HierarchyFilter, page?: PageRequest): Promise<PatientRow[]>;
  studies(filter: HierarchyFilter, page?: PageRequest): Promise<StudyRow[]>;
  series(filter: HierarchyFilter, page?: PageRequest): Promise<SeriesRow[]>;
  instances(filter: HierarchyFilter, page?: PageRequest): Promise<InstanceRow[]>;
}

/** One database of the index as a Query/Retrieve source. */
export function databaseSource(index: IndexStore, database: string): QuerySource {
  return {
    patients: (f, p) => index.patients(database, f, p),
    studies: (f, p) => index.studies(database, f, p),
    series: (f, p) => index.series(database, f, p),
    instances: (f, p) => index.instances(database, f, p),
  };
}

export interface IndexTotals {
  patients: number;
  studies: number;
  series: number;
  instances: number;
  arrivals: number;
  duplicates: number;
  bytes: number;
}

export interface ArrivalRecord {
  id: string;
  objectId: string;
  path: string;
  receivedAt: string;
  source: ArrivalSource;
  callingAeTitle?: string;
  calledAeTitle?: string;
  peerAddress?: string;
  userName?: string;
  /** Provenance: the calling AE title, the importing user, the watch folder… */
  createdBy?: string;
  database?: string;
  outcome: ArrivalOutcome;
  sopClassUid: string;
  sopInstanceUid: string;
  seriesInstanceUid?: string;
  studyInstanceUid?: string;
  attributes: Attributes;
  /** The filing-only pipeline whose filing committed with the arrival: no job files it again. */
  filedBy?: string;
}

/** A filing decided when the arrival is recorded, committed in the same transaction. */
export interface ArrivalFilingDecision {
  /** The filing-only pipeline this filing stands for (recorded on the arrival). */
  pipeline: string;
  database: string;
  policy: DuplicatePolicy;
  /** No other pipeline takes the arrival: it is marked processed in the same commit. */
  settled: boolean;
}

/**
 * Filing on arrival (the engine answers): which filing, if any, commits with an arrival, and
 * what to do once it committed. A filing that fails there is left to a job of its pipeline.
 */
export interface ArrivalFiling {
  decide(arrival: ArrivalRecord): ArrivalFilingDecision | undefined;
  committed(outcome: { settled: boolean; released: boolean }): void;
}

export interface IndexStore {
  /**
   * Commits the arrival and resolves once the commit is durable (it survives a power loss). With
   * `filing`, the arrival is filed into its database in the same commit where it decides so.
   * Rejects with an error whose `committed` is true when the rows were committed but could not be
   * made durable: they point at the object, which must then be kept.
   */
  recordReceived(object: ReceivedObject, policy: DuplicatePolicy, filing?: ArrivalFiling): Promise<RecordResult>;
  syncDurable(): Promise<void>;
  fileInstance(database: string, item: FileItem, policy: DuplicatePolicy): Promise<FileResult>;
  instanceExists(database: string, sopInstanceUid: string): Promise<boolean>;
  transfer(request: TransferRequest): Promise<TransferResult>;
  remove(request: RemovalRequest): Promise<RemovalResult>;
  patients(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<PatientRow[]>;
  studies(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<StudyRow[]>;
  series(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<SeriesRow[]>;
  instances(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<InstanceRow[]>;
  totals(database?: string): Promise<IndexTotals>;
  recentArrivals(limit: number): Promise<ArrivalRecord[]>;
  /**
   * Recent arrivals summed up per series and database, the latest first: among the newest
   * `window` arrivals, those addressed to `databases` (undefined: all, with none recorded too).
   */
  arrivalsBySeries(options: { limit: number; window: number; databases?: string[] }): Promise<SeriesArrivals[]>;
  close(): Promise<void>;
}
