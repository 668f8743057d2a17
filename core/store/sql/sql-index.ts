import { newId } from '../../ids.ts';
import { dfError } from '../../errors.ts';
import { attributesOfLevel } from '../../dicom/indexed-attributes.ts';
import type {
  ArrivalFiling,
  ArrivalFilingDecision,
  ArrivalOutcome,
  ArrivalRecord,
  ArrivalSource,
  Attributes,
  DuplicatePolicy,
  FileItem,
  FileResult,
  HierarchyFilter,
  IndexStore,
  IndexTotals,
  InstanceRow,
  PageRequest,
  PatientRow,
  ReceivedObject,
  RecordResult,
  SeriesArrivals,
  SeriesRow,
  StudyRow,
  RemovalRequest,
  RemovalResult,
  TransferRequest,
  TransferResult,
} from '../index-store.ts';
import { CommitNotDurableError, dialectOf, type Dialect, type Row, type SqlDb, type SqlRunner, type SqlTransaction } from './sql-db.ts';
import { storedMatchKey } from '../../query/match-keys.ts';
import {
  KEYED_TABLES,
  matchKeyClauses,
  matchKeysOf,
  PATIENT_KEY_COLUMNS,
  SERIES_KEY_COLUMNS,
  STUDY_KEY_COLUMNS,
  type KeyedLevel,
  type QueryLevel,
} from './match-keys.ts';

interface Pending {
  object: ReceivedObject;
  policy: DuplicatePolicy;
  filing?: ArrivalFiling;
  resolve: (r: RecordResult) => void;
  reject: (e: unknown) => void;
}

/** What one recorded arrival's filing did, reported once its transaction committed. */
interface Recorded {
  result: RecordResult;
  filed?: { settled: boolean; released: boolean };
}

/** A database's rows on the way to an instance, looked up in one statement (one round trip). */
interface LevelRows {
  patient_row_id: string | null;
  patient_attributes: string | null;
  study_row_id: string | null;
  study_attributes: string | null;
  series_row_id: string | null;
  series_attributes: string | null;
  instance_id: string | null;
  instance_object_id: string | null;
}

/** Patients are told apart by issuer and ID; without an ID, by name and birth date. */
export function patientKey(a: Attributes): string {
  const id = a.PatientID ?? '';
  if (id !== '') return `${a.IssuerOfPatientID ?? ''}|${id}`;
  return `~${a.PatientName ?? ''}|${a.PatientBirthDate ?? ''}`;
}

/** A database's rows on the way to an instance, in one statement: (database, patient key, study, series, instance UID) × database. */
const LEVEL_ROWS = `SELECT p.id AS patient_row_id, p.attributes AS patient_attributes, st.id AS study_row_id, st.attributes AS study_attributes,
           se.id AS series_row_id, se.attributes AS series_attributes, i.id AS instance_id, i.object_id AS instance_object_id
         FROM (SELECT 1 AS one) k
           LEFT JOIN patients p ON p.database_name = ? AND p.patient_key = ?
           LEFT JOIN studies st ON st.database_name = ? AND st.study_instance_uid = ?
           LEFT JOIN series se ON se.database_name = ? AND se.series_instance_uid = ?
           LEFT JOIN instances i ON i.database_name = ? AND i.sop_instance_uid = ?`;

/**
 * PostgreSQL: true when a level's stored attributes (JSON text) already hold every non-empty value
 * of the next parameter (JSON text), i.e. upsertLevel would not update the row. Conservative: a
 * stored JSON null counts as missing, so such a row takes the general path.
 */
const NOTHING_TO_ADD = (stored: string) =>
  // The stored text is parsed once (OFFSET 0 keeps the subquery from being inlined into the
  // condition, where it was parsed again for every key: 5× the time, measured).
  `NOT EXISTS (SELECT 1 FROM (SELECT CAST(${stored} AS jsonb) AS j OFFSET 0) s, jsonb_each_text(CAST(? AS jsonb)) n
    WHERE n.value <> '' AND coalesce(s.j ->> n.key, '') = '')`;

/**
 * The usual object, on LEVEL_ROWS' row `lr`: its patient, study and series there with nothing of
 * theirs to add (three parameters: their attributes as JSON text), the instance new.
 */
const USUAL_CASE = `WHERE lr.instance_id IS NULL AND lr.patient_row_id IS NOT NULL AND lr.study_row_id IS NOT NULL
  AND lr.series_row_id IS NOT NULL
  AND ${NOTHING_TO_ADD('lr.patient_attributes')} AND ${NOTHING_TO_ADD('lr.study_attributes')}
  AND ${NOTHING_TO_ADD('lr.series_attributes')}`;

const levelRowsParams = (database: string, sopInstanceUid: string, a: Attributes): unknown[] => [
  database,
  patientKey(a),
  database,
  a.StudyInstanceUID,
  database,
  a.SeriesInstanceUID,
  database,
  sopInstanceUid,
];

const parse = (json: string): Attributes => JSON.parse(json) as Attributes;

const seriesKey = (database: string, a: Attributes): string => `${database}|${a.SeriesInstanceUID ?? ''}`;
// Series received at once: more than a few associations each sending its own.
const RECENT_SERIES = 64;

// A received object's rows: the sender is told Success only once they are on disk.
const DURABLE = { durable: true } as const;

/** The index (objects, arrivals, the databases' four levels, audit log) on SQLite or PostgreSQL. */
export class SqlIndex implements IndexStore {
  private readonly db: SqlDb;
  private readonly dialect: Dialect;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private readonly sql;
  private readonly node: string | null;
  /** Series filed on arrival here lately, the newest last (recordUsual tries their next objects). */
  private readonly recentSeries = new Set<string>();

  /** `db` is migrated already (openIndexDatabase); `node` is stamped on the objects received here. */
  constructor(db: SqlDb, options: { node?: string } = {}) {
    this.db = db;
    this.node = options.node ?? null;
    this.dialect = dialectOf(db.dialect);
    const d = this.dialect;
    // Statement texts are built once here (the database prepares and caches each text).
    this.sql = {
      insertObject: `INSERT INTO objects (${OBJECT_COLUMNS}) VALUES (${OBJECT_VALUES})`,
      insertArrival: `INSERT INTO arrivals (${ARRIVAL_COLUMNS}) VALUES (${ARRIVAL_VALUES})`,
      // PostgreSQL: the object's row and its arrival's in one statement (one round trip, not two).
      insertObjectAndArrival:
        db.dialect === 'postgres'
          ? `WITH o AS (INSERT INTO objects (${OBJECT_COLUMNS}) VALUES (${OBJECT_VALUES}))
              INSERT INTO arrivals (${ARRIVAL_COLUMNS}) VALUES (${ARRIVAL_VALUES})`
          : undefined,
      levelRows: LEVEL_ROWS,
      // PostgreSQL, filing on arrival: the object's and arrival's rows, and the database's rows on
      // the way to the instance read back, in one round trip (the SELECT does not see the CTEs'
      // rows, and needs none of them).
      // …and, in the usual case (patient, study and series there, nothing of theirs to add, the
      // instance new), the instance's row too: the filing is then done in that one statement.
      // Otherwise nothing is inserted there and fileOne files it from the rows read.
      insertObjectAndArrivalFilingInstance:
        db.dialect === 'postgres'
          ? `WITH o AS (INSERT INTO objects (${OBJECT_COLUMNS}) VALUES (${OBJECT_VALUES})),
              a AS (INSERT INTO arrivals (${ARRIVAL_COLUMNS}) VALUES (${ARRIVAL_VALUES})),
              lr AS (${LEVEL_ROWS}),
              ins AS (
                INSERT INTO instances (id, database_name, series_row_id, sop_instance_uid, sop_class_uid, object_id,
                  attributes, created_by, created_at, source, arrival_id)
                SELECT ?, ?, lr.series_row_id, ?, ?, ?, ?, ?, ?, ?, ? FROM lr ${USUAL_CASE}
                RETURNING id)
              SELECT lr.*, (SELECT count(*) FROM ins) AS instance_filed FROM lr`
          : undefined,
      // PostgreSQL, filing on arrival, the usual object only: the object's, arrival's and instance's
      // rows where the usual case holds, and none otherwise (then the general path records it).
      // Nothing depends on what it finds, so it is sent with its BEGIN and COMMIT in one round trip.
      recordUsual:
        db.dialect === 'postgres'
          ? `WITH lr AS (${LEVEL_ROWS}),
              usual AS (SELECT lr.series_row_id FROM lr ${USUAL_CASE}),
              o AS (INSERT INTO objects (${OBJECT_COLUMNS}) SELECT ${OBJECT_VALUES_TYPED} FROM usual),
              a AS (INSERT INTO arrivals (${ARRIVAL_COLUMNS}) SELECT ${ARRIVAL_VALUES} FROM usual),
              ins AS (
                INSERT INTO instances (id, database_name, series_row_id, sop_instance_uid, sop_class_uid, object_id,
                  attributes, created_by, created_at, source, arrival_id)
                SELECT ?, ?, usual.series_row_id, ?, ?, ?, ?, ?, ?, ?, ? FROM usual
                RETURNING id)
              SELECT count(*) AS filed FROM ins`
          : undefined,
      insertRelease: 'INSERT INTO object_releases (object_id, released_at, released_by_job) VALUES (?, ?, NULL) ON CONFLICT DO NOTHING',
      insertPatient: `INSERT INTO patients (id, database_name, patient_key, patient_id, ${PATIENT_KEY_COLUMNS}, attributes, created_at)
        VALUES (?, ?, ?, ?, ${placeholders(PATIENT_KEY_COLUMNS)}, ?, ?)`,
      updatePatient: `UPDATE patients SET ${assignments(PATIENT_KEY_COLUMNS)}, keys_pending = NULL, attributes = ? WHERE id = ?`,
      insertStudy: `INSERT INTO studies (id, database_name, patient_row_id, study_instance_uid, study_date, ${STUDY_KEY_COLUMNS}, attributes, created_at)
        VALUES (?, ?, ?, ?, ?, ${placeholders(STUDY_KEY_COLUMNS)}, ?, ?)`,
      updateStudy: `UPDATE studies SET ${assignments(STUDY_KEY_COLUMNS)}, keys_pending = NULL, attributes = ? WHERE id = ?`,
      insertSeries: `INSERT INTO series (id, database_name, study_row_id, series_instance_uid, modality, ${SERIES_KEY_COLUMNS}, attributes, created_at)
        VALUES (?, ?, ?, ?, ?, ${placeholders(SERIES_KEY_COLUMNS)}, ?, ?)`,
      updateSeries: `UPDATE series SET ${assignments(SERIES_KEY_COLUMNS)}, keys_pending = NULL, attributes = ? WHERE id = ?`,
      instanceByUid:
        'SELECT i.id, i.object_id, o.path FROM instances i JOIN objects o ON i.object_id = o.id WHERE i.database_name = ? AND i.sop_instance_uid = ?',
      insertInstance: `INSERT INTO instances (id, database_name, series_row_id, sop_instance_uid, sop_class_uid, object_id,
        attributes, created_by, created_at, source, arrival_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      replaceInstance: `UPDATE instances SET series_row_id = ?, sop_class_uid = ?, object_id = ?, attributes = ?,
        created_by = ?, created_at = ?, source = ?, arrival_id = ? WHERE id = ?`,
      receivedArrivalByUid: `SELECT a.id, a.object_id, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id
         WHERE a.database_name = ? AND a.sop_instance_uid = ? AND a.outcome = 'received' AND o.deleted_at IS NULL LIMIT 1`,
      insertDuplicate:
        'INSERT INTO duplicates (id, database_name, sop_instance_uid, arrival_id, kept_instance_id, action, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
      newestObject: `SELECT max(created_at) AS t FROM objects WHERE ${MINE}`,
      recentObjects: `SELECT id, path, size FROM objects WHERE ${MINE} AND created_at >= ?`,
      markObjectLost: 'UPDATE objects SET deleted_at = ? WHERE id = ?',
      settleLostArrivals: 'UPDATE arrivals SET processed_at = coalesce(processed_at, ?) WHERE object_id = ?',
      deleteInstancesOfObject: 'DELETE FROM instances WHERE object_id = ?',
      deleteInstance: 'DELETE FROM instances WHERE id = ?',
      insertAudit: 'INSERT INTO audit_log (id, at, user_name, action, details) VALUES (?, ?, ?, ?, ?)',
      auditLog: 'SELECT * FROM audit_log ORDER BY id DESC LIMIT ?',
      pruneSeries:
        'DELETE FROM series WHERE database_name = ? AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.series_row_id = series.id)',
      pruneStudies:
        'DELETE FROM studies WHERE database_name = ? AND NOT EXISTS (SELECT 1 FROM series se WHERE se.study_row_id = studies.id)',
      prunePatients:
        'DELETE FROM patients WHERE database_name = ? AND NOT EXISTS (SELECT 1 FROM studies st WHERE st.patient_row_id = patients.id)',
      transferRows: (
        column: string | undefined,
      ) => `SELECT i.id, i.object_id, i.sop_instance_uid, i.sop_class_uid, i.attributes AS instance, se.attributes AS series,
             st.attributes AS study, p.attributes AS patient
           FROM instances i JOIN series se ON i.series_row_id = se.id JOIN studies st ON se.study_row_id = st.id
             JOIN patients p ON st.patient_row_id = p.id
           WHERE i.database_name = ? ${column ? `AND ${column} = ?` : ''} ORDER BY i.id`,
      removalRows: (
        column: string,
      ) => `SELECT i.id, i.object_id FROM instances i JOIN series se ON i.series_row_id = se.id JOIN studies st ON se.study_row_id = st.id
           WHERE i.database_name = ? AND ${column} = ? ORDER BY i.id`,
      arrivalIdsIn: (
        column: string,
      ) => `SELECT (SELECT a.id FROM arrivals a WHERE a.object_id = i.object_id AND a.outcome = 'received' ORDER BY a.id LIMIT 1) AS arrival_id
         FROM instances i JOIN series se ON i.series_row_id = se.id JOIN studies st ON se.study_row_id = st.id
         WHERE i.database_name = ? AND ${column} = ? ORDER BY i.id`,
      patientsSelect: `SELECT p.id AS key, p.attributes,
           (SELECT COUNT(*) FROM studies st WHERE st.patient_row_id = p.id) AS studies,
           (SELECT COUNT(*) FROM series se JOIN studies st ON se.study_row_id = st.id WHERE st.patient_row_id = p.id) AS series,
           (SELECT COUNT(*) FROM instances i JOIN series se ON i.series_row_id = se.id JOIN studies st ON se.study_row_id = st.id
              WHERE st.patient_row_id = p.id) AS instances
         FROM patients p`,
      studiesSelect: `SELECT st.id AS key, p.attributes AS patient, st.attributes AS study,
           (SELECT COUNT(*) FROM series se WHERE se.study_row_id = st.id) AS series,
           (SELECT COUNT(*) FROM instances i JOIN series se ON i.series_row_id = se.id WHERE se.study_row_id = st.id) AS instances,
           (SELECT ${d.groupConcatDistinct('se.modality')} FROM series se WHERE se.study_row_id = st.id) AS modalities,
           (SELECT ${d.groupConcatDistinct('i.sop_class_uid')} FROM instances i JOIN series se ON i.series_row_id = se.id
              WHERE se.study_row_id = st.id) AS sop_classes
         FROM studies st JOIN patients p ON st.patient_row_id = p.id`,
      seriesSelect: `SELECT se.id AS key, p.attributes AS patient, st.attributes AS study, se.attributes AS series,
           (SELECT COUNT(*) FROM instances i WHERE i.series_row_id = se.id) AS instances
         FROM series se JOIN studies st ON se.study_row_id = st.id JOIN patients p ON st.patient_row_id = p.id`,
      instancesSelect: `SELECT i.id AS key, p.attributes AS patient, st.attributes AS study, se.attributes AS series, i.attributes AS instance,
           o.path, o.transfer_syntax_uid, i.created_by, i.created_at, i.source
         FROM instances i JOIN series se ON i.series_row_id = se.id JOIN studies st ON se.study_row_id = st.id
           JOIN patients p ON st.patient_row_id = p.id JOIN objects o ON i.object_id = o.id`,
      arrivalsBySeries: (
        databases: number,
      ) => `SELECT a.series_instance_uid AS series, a.database_name AS db, MAX(a.study_instance_uid) AS study, COUNT(*) AS n,
                MIN(a.received_at) AS first_at, MAX(a.received_at) AS last_at, MAX(a.id) AS last_id,
                ${d.groupConcatDistinct('a.calling_ae_title')} AS senders, ${d.groupConcatDistinct('a.source')} AS sources
         FROM (SELECT * FROM arrivals ORDER BY id DESC LIMIT ?) a
         ${databases > 0 ? `WHERE a.database_name IN (${new Array(databases).fill('?').join(', ')})` : ''}
         GROUP BY a.series_instance_uid, a.database_name ORDER BY MAX(a.id) DESC LIMIT ?`,
      arrivalAttributes: 'SELECT attributes FROM arrivals WHERE id = ?',
      pendingKeys: Object.fromEntries(
        KEYED_TABLES.map(({ table }) => [table, `SELECT id, attributes FROM ${table} WHERE keys_pending = 1 LIMIT ?`]),
      ) as Record<string, string>,
      // Only a row still pending: one a filing updated meanwhile got its keys from its newer attributes.
      setKeys: {
        patients: `UPDATE patients SET ${assignments(PATIENT_KEY_COLUMNS)}, keys_pending = NULL WHERE id = ? AND keys_pending = 1`,
        studies: `UPDATE studies SET ${assignments(STUDY_KEY_COLUMNS)}, keys_pending = NULL WHERE id = ? AND keys_pending = 1`,
        series: `UPDATE series SET ${assignments(SERIES_KEY_COLUMNS)}, keys_pending = NULL WHERE id = ? AND keys_pending = 1`,
      } as Record<string, string>,
      recentArrivals: 'SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id ORDER BY a.id DESC LIMIT ?',
    };
  }

  /**
   * Objects this node wrote in the last `windowMs` before its newest one: what a power loss could
   * have cut short. Other nodes' objects are theirs to check (one may be writing one now).
   */
  async recentObjects(windowMs: number): Promise<{ id: string; path: string; size: number }[]> {
    // A scan of the objects: on a reader thread, not the loop.
    const newest = (await this.db.read<{ t: string | null }>(this.sql.newestObject, this.node, this.node))[0]?.t;
    if (!newest) return [];
    const since = new Date(Date.parse(newest) - windowMs).toISOString();
    return this.db.read<{ id: string; path: string; size: number }>(this.sql.recentObjects, this.node, this.node, since);
  }

  /** An object whose file was lost: no job may start on its arrivals, no database may serve it. */
  async markObjectLost(objectId: string): Promise<void> {
    const now = new Date().toISOString();
    await this.db.transaction(async (tx) => {
      await tx.run(this.sql.markObjectLost, now, objectId);
      await tx.run(this.sql.settleLostArrivals, now, objectId);
      await tx.run(this.sql.deleteInstancesOfObject, objectId);
    });
  }

  /**
   * Whether the index answers a trivial query within `timeoutMs`: a stalled database makes the
   * health probe say so, never hang it.
   */
  async healthy(timeoutMs = HEALTH_TIMEOUT_MS): Promise<boolean> {
    try {
      return await this.db.ping(timeoutMs);
    } catch {
      return false;
    }
  }

  /**
   * Computes the match keys of the rows filed before their columns existed (the migration left
   * them OPAQUE, so queries stay right meanwhile, only slower), a batch per transaction.
   * Returns how many rows it keyed; ends early once `stopped()` says so (the server stops).
   */
  async keyPendingRows(options: { batchRows?: number; stopped?: () => boolean } = {}): Promise<number> {
    const batchRows = options.batchRows ?? 500;
    let keyed = 0;
    for (const { level, table } of KEYED_TABLES) {
      while (!options.stopped?.()) {
        const rows = await this.db.read<{ id: string; attributes: string }>(this.sql.pendingKeys[table], batchRows);
        if (rows.length === 0) break;
        await this.db.transaction(async (tx) => {
          for (const r of rows) await tx.run(this.sql.setKeys[table], ...matchKeysOf(level, parse(r.attributes)), r.id);
        });
        keyed += rows.length;
      }
    }
    return keyed;
  }

  /** The open database, for the other stores that share it (jobs, outbox, tokens). */
  get connection(): SqlDb {
    return this.db;
  }

  /** Makes every commit so far durable. */
  syncDurable(): Promise<void> {
    return this.db.syncDurable();
  }

  /**
   * Objects that arrive together (several associations) are committed in one transaction: one
   * WAL sync for the group instead of one each. Every caller is answered once that commit is
   * durable (a durable transaction: no flush of its own afterwards).
   */
  recordReceived(object: ReceivedObject, policy: DuplicatePolicy, filing?: ArrivalFiling): Promise<RecordResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ object, policy, filing, resolve, reject });
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => void this.flush());
      }
    });
  }

  private async flush(): Promise<void> {
    this.flushScheduled = false;
    const queued = this.queue;
    this.queue = [];
    const batch = await this.recordUsual(queued);
    if (batch.length === 0) return;
    let recorded: Recorded[];
    try {
      recorded = await this.db.transaction(async (tx) => {
        const out: Recorded[] = [];
        for (const p of batch) out.push(await this.recordOne(tx, p.object, p.policy, p.filing));
        return out;
      }, DURABLE);
    } catch (err) {
      // Committed but not durable: the rows exist, so nothing is recorded again.
      if (err instanceof CommitNotDurableError) {
        for (const p of batch) p.reject(err);
        return;
      }
      // A batch fails as a whole; retry each alone so one bad row cannot fail its neighbours.
      for (const p of batch) await this.recordAlone(p, batch.length > 1 ? undefined : err);
      return;
    }
    batch.forEach((p, i) => this.answer(p, recorded[i]));
  }

  /**
   * PostgreSQL, filing on arrival: the usual objects of the batch (see `recordUsual`) recorded and
   * filed in one round trip, with the arrival's BEGIN and synchronous COMMIT. Only objects of a
   * series filed here lately are tried, so that the first object of each series (and each
   * one-instance study) does not pay for a try that finds nothing. Returns the objects left
   * for the general path: those not tried, those the statement found unusual (it then inserted
   * nothing), and all of them when the batch failed (nothing was committed).
   */
  private async recordUsual(batch: Pending[]): Promise<Pending[]> {
    const text = this.sql.recordUsual;
    if (!text || !this.db.atomic) return batch;
    const tried: { p: Pending; arrivalId: string; decision: ArrivalFilingDecision; params: unknown[] }[] = [];
    const rest: Pending[] = [];
    for (const p of batch) {
      const o = p.object;
      const arrivalId = newId();
      // "reject" looks for an earlier copy among arrivals too, and a filing that cannot decide
      // records the arrival unfiled: the general path does both.
      let decision: ArrivalFilingDecision | undefined;
      try {
        if (p.policy !== 'reject') decision = p.filing?.decide(this.arrivalRecord(arrivalId, o, 'received', o.objectId, o.path));
      } catch {
        decision = undefined;
      }
      if (!decision || !this.recentSeries.has(seriesKey(decision.database, o.attributes))) {
        rest.push(p);
        continue;
      }
      const a = o.attributes;
      const params = [
        ...levelRowsParams(decision.database, o.sopInstanceUid, a),
        JSON.stringify(attributesOfLevel(a, 'PATIENT')),
        JSON.stringify(attributesOfLevel(a, 'STUDY')),
        JSON.stringify(attributesOfLevel(a, 'SERIES')),
        ...this.objectValues(o),
        ...this.arrivalValues(arrivalId, o, 'received', o.objectId, decision),
        newId(),
        decision.database,
        o.sopInstanceUid,
        o.sopClassUid,
        o.objectId,
        JSON.stringify(attributesOfLevel(a, 'IMAGE')),
        o.createdBy,
        o.receivedAt,
        o.source,
        arrivalId,
      ];
      tried.push({ p, arrivalId, decision, params });
    }
    if (tried.length === 0) return batch;
    let rows: Row[][];
    try {
      rows = await this.db.atomic(
        tried.map((t) => ({ text, params: t.params })),
        DURABLE,
      );
    } catch {
      // Nothing was committed: the general path records them, and reports what fails there.
      return batch;
    }
    tried.forEach((t, i) => {
      if (Number(rows[i][0]?.filed) !== 1) {
        rest.push(t.p);
        return;
      }
      const o = t.p.object;
      this.noteSeries(t.decision.database, o.attributes);
      const { settled, pipeline } = t.decision;
      this.answer(t.p, {
        result: { arrivalId: t.arrivalId, outcome: 'received', objectId: o.objectId, path: o.path, filedBy: pipeline, settled },
        filed: { settled, released: false },
      });
    });
    return rest;
  }

  /** A series filed into `database` here lately (the newest RECENT_SERIES): its next objects are likely usual. */
  private noteSeries(database: string, a: Attributes): void {
    const key = seriesKey(database, a);
    this.recentSeries.delete(key);
    this.recentSeries.add(key);
    if (this.recentSeries.size > RECENT_SERIES) this.recentSeries.delete(this.recentSeries.values().next().value!);
  }

  /**
   * One arrival in its own transaction. A filing that fails here must not refuse an object
   * that is safely on disk: the arrival commits unfiled, and its pipeline's job files it (with
   * that job's retries, and a failed job the operator sees if it keeps failing).
   */
  private async recordAlone(p: Pending, failedAlready: unknown): Promise<void> {
    if (failedAlready === undefined || !p.filing) {
      try {
        this.answer(p, await this.db.transaction((tx) => this.recordOne(tx, p.object, p.policy, p.filing), DURABLE));
        return;
      } catch (err) {
        if (!p.filing || err instanceof CommitNotDurableError) {
          p.reject(err);
          return;
        }
      }
    }
    try {
      this.answer(p, await this.db.transaction((tx) => this.recordOne(tx, p.object, p.policy, undefined), DURABLE));
    } catch (err) {
      p.reject(err);
    }
  }

  private answer(p: Pending, recorded: Recorded): void {
    if (recorded.filed) p.filing?.committed(recorded.filed);
    p.resolve(recorded.result);
  }

  /**
   * The arrival: the object's row and the arrival's. Filing into a database is the job of the
   * `store` step, or done here in the same commit where `filing` decides so (a filing-only
   * pipeline: no job per instance). The "reject" duplicate policy is decided here either way,
   * since it must answer the sender. `filing.decide` is synchronous: nothing but the
   * transaction's statements is awaited while it holds the writer.
   */
  private async recordOne(
    tx: SqlTransaction,
    o: ReceivedObject,
    policy: DuplicatePolicy,
    filing: ArrivalFiling | undefined,
  ): Promise<Recorded> {
    const s = this.sql;
    const a = o.attributes;
    const arrivalId = newId();
    // Under "reject", an earlier copy counts whether the store step has filed it yet or not:
    // otherwise a duplicate sent right after the original would slip through.
    type Kept = { id: string; object_id: string; path: string };
    const existing =
      policy === 'reject'
        ? ((await tx.get<Kept>(s.instanceByUid, o.database, o.sopInstanceUid)) ??
          (await tx.get<Kept>(s.receivedArrivalByUid, o.database, o.sopInstanceUid)))
        : undefined;
    const outcome: ArrivalOutcome = existing ? 'duplicate-rejected' : 'received';
    // A rejected duplicate's arrival points at the object the database keeps.
    const objectId = existing ? existing.object_id : o.objectId;
    const path = existing ? existing.path : o.path;
    const decision = filing?.decide(this.arrivalRecord(arrivalId, o, outcome, objectId, path));
    const arrivalValues = this.arrivalValues(arrivalId, o, outcome, objectId, decision);
    const objectValues = this.objectValues(o);
    let levelRows: LevelRows | undefined;
    /** Filed already by the statement that recorded the arrival. */
    let instanceId: string | undefined;
    if (existing) {
      await tx.run(s.insertArrival, ...arrivalValues);
      await tx.run(s.insertDuplicate, newId(), o.database, o.sopInstanceUid, arrivalId, existing.id, outcome, o.receivedAt);
    } else if (decision && s.insertObjectAndArrivalFilingInstance) {
      instanceId = newId();
      const row = (await tx.get<LevelRows & { instance_filed: number }>(
        s.insertObjectAndArrivalFilingInstance,
        ...objectValues,
        ...arrivalValues,
        ...levelRowsParams(decision.database, o.sopInstanceUid, a),
        instanceId,
        decision.database,
        o.sopInstanceUid,
        o.sopClassUid,
        objectId,
        JSON.stringify(attributesOfLevel(a, 'IMAGE')),
        o.createdBy,
        o.receivedAt,
        o.source,
        arrivalId,
        JSON.stringify(attributesOfLevel(a, 'PATIENT')),
        JSON.stringify(attributesOfLevel(a, 'STUDY')),
        JSON.stringify(attributesOfLevel(a, 'SERIES')),
      ))!;
      levelRows = row;
      if (Number(row.instance_filed) !== 1) instanceId = undefined;
    } else if (s.insertObjectAndArrival) {
      await tx.run(s.insertObjectAndArrival, ...objectValues, ...arrivalValues);
    } else {
      await tx.run(s.insertObject, ...objectValues);
      await tx.run(s.insertArrival, ...arrivalValues);
    }
    if (!decision) return { result: { arrivalId, outcome, objectId, path } };
    this.noteSeries(decision.database, a);
    const released = instanceId !== undefined ? false : await this.fileArrival(tx, decision, o, objectId, arrivalId, levelRows);
    return {
      result: { arrivalId, outcome, objectId, path, filedBy: decision.pipeline, settled: decision.settled },
      filed: { settled: decision.settled, released },
    };
  }

  /** The arrival as the filing decides on it. */
  private arrivalRecord(arrivalId: string, o: ReceivedObject, outcome: ArrivalOutcome, objectId: string, path: string): ArrivalRecord {
    const a = o.attributes;
    return {
      id: arrivalId,
      objectId,
      path,
      receivedAt: o.receivedAt,
      source: o.source,
      callingAeTitle: o.callingAeTitle,
      calledAeTitle: o.calledAeTitle,
      peerAddress: o.peerAddress,
      userName: o.userName,
      createdBy: o.createdBy,
      database: o.database,
      outcome,
      sopClassUid: o.sopClassUid,
      sopInstanceUid: o.sopInstanceUid,
      seriesInstanceUid: a.SeriesInstanceUID,
      studyInstanceUid: a.StudyInstanceUID,
      attributes: a,
    };
  }

  /** ARRIVAL_COLUMNS' values. */
  private arrivalValues(
    arrivalId: string,
    o: ReceivedObject,
    outcome: ArrivalOutcome,
    objectId: string,
    decision: ArrivalFilingDecision | undefined,
  ): unknown[] {
    const a = o.attributes;
    return [
      arrivalId,
      objectId,
      o.receivedAt,
      o.source,
      o.callingAeTitle ?? null,
      o.calledAeTitle ?? null,
      o.peerAddress ?? null,
      o.userName ?? null,
      o.associationId ?? null,
      o.database,
      outcome,
      o.sopClassUid,
      o.sopInstanceUid,
      a.SeriesInstanceUID ?? null,
      a.StudyInstanceUID ?? null,
      a.PatientID ?? null,
      a.Modality ?? null,
      JSON.stringify(a),
      o.createdBy,
      decision?.settled ? new Date().toISOString() : null,
      decision?.pipeline ?? null,
    ];
  }

  /** OBJECT_COLUMNS' values. */
  private objectValues(o: ReceivedObject): unknown[] {
    return [o.objectId, o.path, o.size, o.transferSyntaxUid, o.sopClassUid, o.sopInstanceUid, o.receivedAt, this.node];
  }

  /** The store step's work on one input, in the arrival's commit; true if it released objects. */
  private async fileArrival(
    tx: SqlTransaction,
    decision: ArrivalFilingDecision,
    o: ReceivedObject,
    objectId: string,
    arrivalId: string,
    levelRows: LevelRows | undefined,
  ): Promise<boolean> {
    const filed = await this.fileOne(
      tx,
      decision.database,
      {
        objectId,
        sopClassUid: o.sopClassUid,
        sopInstanceUid: o.sopInstanceUid,
        attributes: o.attributes,
        // PMOD's rule (as the store step): the network's creator is the calling AE title, an import's the user.
        createdBy: o.createdBy,
        createdAt: o.receivedAt,
        source: o.source,
        arrivalId,
      },
      decision.policy,
      levelRows,
    );
    // Bytes the database did not take are released (deleted once nothing else needs them).
    const released = filed.outcome === 'duplicate-kept-first' || filed.outcome === 'duplicate-rejected' ? [objectId] : [];
    if (filed.replacedObjectId) released.push(filed.replacedObjectId);
    const now = new Date().toISOString();
    for (const id of released) await tx.run(this.sql.insertRelease, id, now);
    return released.length > 0;
  }

  /**
   * Files an object into a database (the `store` step): patient, study, series and instance
   * rows, provenance, and the duplicate policy for a SOP Instance UID the database already has.
   */
  fileInstance(database: string, item: FileItem, policy: DuplicatePolicy): Promise<FileResult> {
    return this.db.transaction((tx) => this.fileOne(tx, database, item, policy));
  }

  /**
   * Moves or copies a patient, study or series (or a whole database) between databases. The
   * original objects are shared, never copied or changed; the target's rows record who did it.
   * One transaction: either everything moves, or nothing does.
   */
  transfer(t: TransferRequest): Promise<TransferResult> {
    const column = { patient: 'p.patient_id', study: 'st.study_instance_uid', series: 'se.series_instance_uid', database: undefined }[
      t.level
    ];
    const select = this.sql.transferRows(column);
    return this.db.transaction(async (tx) => {
      const rows = await tx.all<Record<string, string>>(select, ...(column ? [t.from, t.uid] : [t.from]));
      if (rows.length === 0) {
        throw dfError('DF_ERR_NOT_FOUND', `no ${t.level}${t.uid ? ` ${t.uid}` : ''} in database "${t.from}"`);
      }
      const now = new Date().toISOString();
      const result: TransferResult = { instances: rows.length, filed: 0, duplicates: 0 };
      for (const r of rows) {
        const attributes = { ...parse(r.patient), ...parse(r.study), ...parse(r.series), ...parse(r.instance) };
        const filed = await this.fileOne(
          tx,
          t.to,
          {
            objectId: r.object_id,
            sopClassUid: r.sop_class_uid,
            sopInstanceUid: r.sop_instance_uid,
            attributes,
            createdBy: t.createdBy,
            createdAt: now,
            source: t.source,
          },
          'keep-first',
        );
        if (filed.outcome === 'filed' || filed.outcome === 'already-filed') result.filed++;
        else result.duplicates++;
        if (t.mode === 'move') await tx.run(this.sql.deleteInstance, r.id);
      }
      if (t.mode === 'move') await this.pruneEmpty(tx, t.from);
      await tx.run(
        this.sql.insertAudit,
        newId(),
        now,
        t.user,
        t.mode,
        JSON.stringify({ from: t.from, to: t.to, level: t.level, uid: t.uid, ...result, source: t.source }),
      );
      return result;
    });
  }

  /**
   * Removes a study or series from a database (an operator's delete), audited in the same
   * transaction. The original objects are released, not deleted here: the engine's collection
   * deletes each one's bytes once no database, job, open trigger group or arrival needs it, so an
   * object another database still holds, or a job still reads, keeps its file.
   */
  remove(r: RemovalRequest): Promise<RemovalResult> {
    const select = this.sql.removalRows(r.level === 'study' ? 'st.study_instance_uid' : 'se.series_instance_uid');
    return this.db.transaction(async (tx) => {
      const rows = await tx.all<{ id: string; object_id: string }>(select, r.database, r.uid);
      if (rows.length === 0) throw dfError('DF_ERR_NOT_FOUND', `no ${r.level} ${r.uid} in database "${r.database}"`);
      const now = new Date().toISOString();
      for (const row of rows) await tx.run(this.sql.deleteInstance, row.id);
      await this.pruneEmpty(tx, r.database);
      const objects = [...new Set(rows.map((row) => row.object_id))];
      for (const id of objects) await tx.run(this.sql.insertRelease, id, now);
      const result: RemovalResult = { instances: rows.length, released: objects.length };
      await tx.run(
        this.sql.insertAudit,
        newId(),
        now,
        r.user,
        'delete',
        JSON.stringify({ database: r.database, level: r.level, uid: r.uid, ...result }),
      );
      return result;
    });
  }

  /** Series, studies and patients left without instances go with them. */
  private async pruneEmpty(tx: SqlRunner, database: string): Promise<void> {
    await tx.run(this.sql.pruneSeries, database);
    await tx.run(this.sql.pruneStudies, database);
    await tx.run(this.sql.prunePatients, database);
  }

  async auditLog(limit: number): Promise<{ at: string; user: string; action: string; details: Record<string, unknown> }[]> {
    return (await this.db.read<Record<string, string>>(this.sql.auditLog, limit)).map((r) => ({
      at: r.at,
      user: r.user_name,
      action: r.action,
      details: JSON.parse(r.details),
    }));
  }

  /** What a person did through the API or the CLI (reruns, cancels, manual runs). */
  async recordAudit(user: string, action: string, details: Record<string, unknown>): Promise<void> {
    await this.db.run(this.sql.insertAudit, newId(), new Date().toISOString(), user, action, JSON.stringify(details));
  }

  /**
   * The arrivals that brought the objects of a study or series of a database: what a manual run
   * works on. Objects moved or copied in have no arrival of that database, so the object's own
   * first received arrival is used.
   */
  async arrivalIdsIn(database: string, level: 'study' | 'series', uid: string): Promise<string[]> {
    const select = this.sql.arrivalIdsIn(level === 'study' ? 'st.study_instance_uid' : 'se.series_instance_uid');
    const rows = await this.db.read<{ arrival_id: string | null }>(select, database, uid);
    return rows.flatMap((r) => (r.arrival_id ? [r.arrival_id] : []));
  }

  async instanceExists(database: string, sopInstanceUid: string): Promise<boolean> {
    return (await this.db.get(this.sql.instanceByUid, database, sopInstanceUid)) !== undefined;
  }

  /** `levelRows`: read already, in the statement that recorded the arrival. */
  private async fileOne(tx: SqlRunner, database: string, o: FileItem, policy: DuplicatePolicy, levelRows?: LevelRows): Promise<FileResult> {
    const s = this.sql;
    const a = o.attributes;
    const rows = levelRows ?? (await tx.get<LevelRows>(s.levelRows, ...levelRowsParams(database, o.sopInstanceUid, a)))!;
    const existing = rows.instance_id === null ? undefined : { id: rows.instance_id, object_id: rows.instance_object_id! };
    if (existing?.object_id === o.objectId) return { outcome: 'already-filed', instanceId: existing.id };
    if (existing && policy !== 'replace') {
      const outcome = policy === 'keep-first' ? 'duplicate-kept-first' : 'duplicate-rejected';
      await tx.run(s.insertDuplicate, newId(), database, o.sopInstanceUid, o.arrivalId ?? '', existing.id, outcome, o.createdAt);
      return { outcome, instanceId: existing.id };
    }
    const patientRowId = await this.upsertLevel(
      tx,
      'PATIENT',
      rows.patient_row_id,
      rows.patient_attributes,
      s.insertPatient,
      s.updatePatient,
      attributesOfLevel(a, 'PATIENT'),
      (id, keys, json) => [id, database, patientKey(a), a.PatientID ?? null, ...keys, json, o.createdAt],
    );
    const studyRowId = await this.upsertLevel(
      tx,
      'STUDY',
      rows.study_row_id,
      rows.study_attributes,
      s.insertStudy,
      s.updateStudy,
      attributesOfLevel(a, 'STUDY'),
      (id, keys, json) => [id, database, patientRowId, a.StudyInstanceUID, a.StudyDate ?? null, ...keys, json, o.createdAt],
    );
    const seriesRowId = await this.upsertLevel(
      tx,
      'SERIES',
      rows.series_row_id,
      rows.series_attributes,
      s.insertSeries,
      s.updateSeries,
      attributesOfLevel(a, 'SERIES'),
      (id, keys, json) => [id, database, studyRowId, a.SeriesInstanceUID, a.Modality ?? null, ...keys, json, o.createdAt],
    );
    const instanceAttributes = JSON.stringify(attributesOfLevel(a, 'IMAGE'));
    if (existing) {
      await tx.run(
        s.replaceInstance,
        seriesRowId,
        o.sopClassUid,
        o.objectId,
        instanceAttributes,
        o.createdBy,
        o.createdAt,
        o.source,
        o.arrivalId ?? null,
        existing.id,
      );
      await tx.run(
        s.insertDuplicate,
        newId(),
        database,
        o.sopInstanceUid,
        o.arrivalId ?? '',
        existing.id,
        'duplicate-replaced',
        o.createdAt,
      );
      return { outcome: 'duplicate-replaced', instanceId: existing.id, replacedObjectId: existing.object_id };
    }
    const instanceId = newId();
    await tx.run(
      s.insertInstance,
      instanceId,
      database,
      seriesRowId,
      o.sopInstanceUid,
      o.sopClassUid,
      o.objectId,
      instanceAttributes,
      o.createdBy,
      o.createdAt,
      o.source,
      o.arrivalId ?? null,
    );
    return { outcome: 'filed', instanceId };
  }

  /**
   * First object wins for level attributes; later ones only fill what was missing. The level's
   * match keys (matchKeysOf) are written from the same attributes, so they never drift apart.
   */
  private async upsertLevel(
    tx: SqlRunner,
    level: KeyedLevel,
    rowId: string | null,
    rowAttributes: string | null,
    insert: string,
    update: string,
    attributes: Attributes,
    insertArgs: (id: string, keys: (string | null)[], json: string) => unknown[],
  ): Promise<string> {
    if (rowId === null) {
      const id = newId();
      await tx.run(insert, ...insertArgs(id, matchKeysOf(level, attributes), JSON.stringify(attributes)));
      return id;
    }
    const current = parse(rowAttributes ?? '{}');
    let changed = false;
    for (const [k, v] of Object.entries(attributes)) {
      if ((current[k] === undefined || current[k] === '') && v !== '') {
        current[k] = v;
        changed = true;
      }
    }
    if (changed) await tx.run(update, ...matchKeysOf(level, current), JSON.stringify(current), rowId);
    return rowId;
  }

  async patients(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<PatientRow[]> {
    const { where, args, after, limit } = this.hierarchyWhere(database, filter, 'PATIENT', page);
    const rows = await this.db.read<{ key: string; attributes: string; studies: number; series: number; instances: number }>(
      `${this.sql.patientsSelect} WHERE ${where}${after} ORDER BY p.id${limit}`,
      ...args,
    );
    return rows.map((r) => ({
      key: r.key,
      attributes: parse(r.attributes),
      numberOfStudies: Number(r.studies),
      numberOfSeries: Number(r.series),
      numberOfInstances: Number(r.instances),
    }));
  }

  async studies(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<StudyRow[]> {
    const { where, args, after, limit } = this.hierarchyWhere(database, filter, 'STUDY', page);
    const rows = await this.db.read<{
      key: string;
      patient: string;
      study: string;
      series: number;
      instances: number;
      modalities: string | null;
      sop_classes: string | null;
    }>(`${this.sql.studiesSelect} WHERE ${where}${after} ORDER BY st.id${limit}`, ...args);
    return rows.map((r) => ({
      key: r.key,
      patient: parse(r.patient),
      study: parse(r.study),
      numberOfSeries: Number(r.series),
      numberOfInstances: Number(r.instances),
      modalitiesInStudy: (r.modalities ?? '').split(',').filter((m) => m !== ''),
      sopClassesInStudy: (r.sop_classes ?? '').split(',').filter((m) => m !== ''),
    }));
  }

  async series(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<SeriesRow[]> {
    const { where, args, after, limit } = this.hierarchyWhere(database, filter, 'SERIES', page);
    const rows = await this.db.read<{ key: string; patient: string; study: string; series: string; instances: number }>(
      `${this.sql.seriesSelect} WHERE ${where}${after} ORDER BY se.id${limit}`,
      ...args,
    );
    return rows.map((r) => ({
      key: r.key,
      patient: parse(r.patient),
      study: parse(r.study),
      series: parse(r.series),
      numberOfInstances: Number(r.instances),
    }));
  }

  async instances(database: string, filter: HierarchyFilter, page?: PageRequest): Promise<InstanceRow[]> {
    const { where, args, after, limit } = this.hierarchyWhere(database, filter, 'IMAGE', page);
    const rows = await this.db.read<{
      key: string;
      patient: string;
      study: string;
      series: string;
      instance: string;
      path: string;
      transfer_syntax_uid: string;
      created_by: string;
      created_at: string;
      source: ArrivalSource;
    }>(`${this.sql.instancesSelect} WHERE ${where}${after} ORDER BY i.id${limit}`, ...args);
    return rows.map((r) => ({
      key: r.key,
      patient: parse(r.patient),
      study: parse(r.study),
      series: parse(r.series),
      instance: parse(r.instance),
      objectPath: r.path,
      transferSyntaxUid: r.transfer_syntax_uid,
      createdBy: r.created_by,
      createdAt: r.created_at,
      source: r.source,
    }));
  }

  /**
   * The WHERE of a level's listing: the database, the unique keys, and the match keys' tests
   * (matchKeyClauses): each selects a superset of what the C-FIND matcher accepts, so the
   * matcher's answer is unchanged and the index reads only the rows that may match.
   */
  private hierarchyWhere(database: string, filter: HierarchyFilter, level: QueryLevel, page?: PageRequest) {
    const byUid = !!filter.studyInstanceUids?.length || !!filter.seriesInstanceUids?.length || !!filter.sopInstanceUids?.length;
    // SQLite keeps no statistics here, so it would read a whole database through the index on
    // its name (and sort it for every page). Without UIDs to look up, `+` keeps it off that
    // index: it reads a match key's index, or walks the level in id order a page at a time.
    const databaseColumn = `${level === 'PATIENT' ? 'p' : 'st'}.database_name`;
    const where = [`${this.db.dialect === 'sqlite' && !byUid ? '+' : ''}${databaseColumn} = ?`];
    const args: unknown[] = [database];
    const inList = (column: string, values: string[]) => {
      where.push(`${column} IN (${values.map(() => '?').join(', ')})`);
      args.push(...values);
    };
    if (filter.patientId !== undefined) {
      where.push('p.patient_id = ?');
      args.push(filter.patientId);
      // The same ID as a match key, for its index: a value that is its own key (no padding, one value).
      if (storedMatchKey('PatientID', filter.patientId) === filter.patientId)
        matchKeyClauses(level, [{ keyword: 'PatientID', test: { kind: 'in', values: [filter.patientId] } }], where, args);
    }
    if (level !== 'PATIENT' && filter.studyInstanceUids?.length) inList('st.study_instance_uid', filter.studyInstanceUids);
    if ((level === 'SERIES' || level === 'IMAGE') && filter.seriesInstanceUids?.length)
      inList('se.series_instance_uid', filter.seriesInstanceUids);
    if (level === 'IMAGE' && filter.sopInstanceUids?.length) inList('i.sop_instance_uid', filter.sopInstanceUids);
    matchKeyClauses(level, filter.keys ?? [], where, args);
    const { after, limit } = pageClauses({ PATIENT: 'p.id', STUDY: 'st.id', SERIES: 'se.id', IMAGE: 'i.id' }[level], page, args);
    return { where: where.join(' AND '), args, after, limit };
  }

  async totals(database?: string): Promise<IndexTotals> {
    const where = database === undefined ? '' : 'WHERE database_name = ?';
    const args = database === undefined ? [] : [database];
    const count = async (table: string) =>
      Number((await this.db.read<{ n: number }>(`SELECT COUNT(*) AS n FROM ${table} ${where}`, ...args))[0].n);
    const [bytes] = await this.db.read<{ n: number }>(
      `SELECT COALESCE(SUM(o.size), 0) AS n FROM instances i JOIN objects o ON i.object_id = o.id ${database === undefined ? '' : 'WHERE i.database_name = ?'}`,
      ...args,
    );
    const [patients, studies, series, instances, arrivals, duplicates] = await Promise.all(
      ['patients', 'studies', 'series', 'instances', 'arrivals', 'duplicates'].map(count),
    );
    return { patients, studies, series, instances, arrivals, duplicates, bytes: Number(bytes.n) };
  }

  async arrivalsBySeries(options: { limit: number; window: number; databases?: string[] }): Promise<SeriesArrivals[]> {
    const dbs = options.databases;
    if (dbs && dbs.length === 0) return [];
    const rows = await this.db.read<Record<string, string | number | null>>(
      this.sql.arrivalsBySeries(dbs?.length ?? 0),
      options.window,
      ...(dbs ?? []),
      options.limit,
    );
    const list = (v: string | number | null) => (v ? String(v).split(',').sort() : []);
    const attributes = await Promise.all(rows.map((r) => this.db.get<{ attributes: string }>(this.sql.arrivalAttributes, r.last_id)));
    return rows.map((r, i) => ({
      seriesInstanceUid: String(r.series ?? ''),
      ...(r.study ? { studyInstanceUid: String(r.study) } : {}),
      ...(r.db ? { database: String(r.db) } : {}),
      count: Number(r.n),
      firstReceivedAt: String(r.first_at),
      lastReceivedAt: String(r.last_at),
      senders: list(r.senders),
      sources: list(r.sources),
      attributes: JSON.parse(attributes[i]!.attributes),
    }));
  }

  async recentArrivals(limit: number): Promise<ArrivalRecord[]> {
    const rows = await this.db.read<Record<string, string>>(this.sql.recentArrivals, limit);
    return rows.map(toArrivalRecord);
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

/**
 * Keyset paging: rows after the last one seen, in id order (an OFFSET would rescan every page
 * before it). `after` goes after the WHERE, `limit` after the ORDER BY; their arguments last.
 */
function pageClauses(idColumn: string, page: PageRequest | undefined, args: unknown[]): { after: string; limit: string } {
  if (!page) return { after: '', limit: '' };
  let after = '';
  if (page.after !== undefined) {
    after = ` AND ${idColumn} > ?`;
    args.push(page.after);
  }
  args.push(page.limit);
  return { after, limit: ' LIMIT ?' };
}

export function toArrivalRecord(r: Record<string, string>): ArrivalRecord {
  return {
    id: r.id,
    objectId: r.object_id,
    path: r.path,
    receivedAt: r.received_at,
    source: r.source as ArrivalSource,
    callingAeTitle: r.calling_ae_title ?? undefined,
    calledAeTitle: r.called_ae_title ?? undefined,
    peerAddress: r.peer_address ?? undefined,
    userName: r.user_name ?? undefined,
    createdBy: r.created_by ?? undefined,
    database: r.database_name ?? undefined,
    outcome: r.outcome as ArrivalOutcome,
    sopClassUid: r.sop_class_uid,
    sopInstanceUid: r.sop_instance_uid,
    seriesInstanceUid: r.series_instance_uid ?? undefined,
    studyInstanceUid: r.study_instance_uid ?? undefined,
    attributes: parse(r.attributes),
    filedBy: r.filed_by ?? undefined,
  };
}

/** How long the health probe waits for the index before it reports it down. */
const HEALTH_TIMEOUT_MS = 800;
/** This node's objects (or every object, without a node name). */
const MINE = 'deleted_at IS NULL AND (CAST(? AS TEXT) IS NULL OR node = ?)';
const placeholders = (columns: string): string =>
  columns
    .split(',')
    .map(() => '?')
    .join(', ');
const assignments = (columns: string): string =>
  columns
    .split(',')
    .map((c) => `${c.trim()} = ?`)
    .join(', ');

const OBJECT_COLUMNS = 'id, path, size, transfer_syntax_uid, sop_class_uid, sop_instance_uid, created_at, node';
const OBJECT_VALUES = OBJECT_COLUMNS.split(',')
  .map(() => '?')
  .join(', ');
/** OBJECT_VALUES in a SELECT list, where PostgreSQL takes an untyped parameter for text. */
const OBJECT_VALUES_TYPED = OBJECT_COLUMNS.split(',')
  .map((c) => (c.trim() === 'size' ? 'CAST(? AS bigint)' : '?'))
  .join(', ');
const ARRIVAL_COLUMNS = `id, object_id, received_at, source, calling_ae_title, called_ae_title, peer_address, user_name,
  association_id, database_name, outcome, sop_class_uid, sop_instance_uid, series_instance_uid, study_instance_uid, patient_id,
  modality, attributes, created_by, processed_at, filed_by`;
const ARRIVAL_VALUES = ARRIVAL_COLUMNS.split(',')
  .map(() => '?')
  .join(', ');
