import type { StepInput } from '../../plugin.ts';
import {
  SUSPECT_AFTER_INTERRUPTIONS,
  type FinishedStep,
  type InputSeries,
  type JobFilter,
  type JobQueue,
  type JobRecord,
  type JobStatus,
  type JobSubject,
  type LeaseScope,
  type NewJob,
  type StoredPipelineVersion,
} from '../job-queue.ts';
import { toArrivalRecord } from './sql-index.ts';
import { dialectOf, type Dialect, type SqlDb } from './sql-db.ts';
import { jsonList, toJob, type JobInserts } from './job-sql.ts';

const PIPELINE_VERSION = 'SELECT hash, pipeline, definition, created_at FROM pipeline_versions WHERE hash = ?';
const NEXT_QUEUED_AT = "SELECT min(coalesce(not_before, created_at)) AS t FROM jobs WHERE status = 'queued'";
const RENEW_LEASE = "UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status IN ('running', 'cancelled')";
const START_STEP = `INSERT INTO job_steps (job_id, attempt, step_index, step_id, plugin, status, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?)
  ON CONFLICT (job_id, attempt, step_index) DO UPDATE SET step_id = excluded.step_id, plugin = excluded.plugin, status = excluded.status,
    started_at = excluded.started_at, finished_at = NULL, duration_ms = NULL, log = '[]', outputs = '[]', error = NULL`;
// One statement whether or not the start was recorded: quick steps are written once.
const FINISH_STEP = `INSERT INTO job_steps (job_id, attempt, step_index, step_id, plugin, status, started_at, finished_at, duration_ms, log, outputs, error)
  VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (job_id, attempt, step_index) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
    duration_ms = excluded.duration_ms, log = excluded.log, outputs = excluded.outputs, error = excluded.error`;
const SET_PROGRESS = 'UPDATE jobs SET progress = ?, progress_message = ? WHERE id = ?';
const FINISH_JOB = `UPDATE jobs SET status = ?, finished_at = ?, error_code = ?, error = ?, stop_reason = ?, lease_owner = NULL, lease_expires_at = NULL,
    progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END WHERE id = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)`;
const RETRY_LATER = `UPDATE jobs SET status = 'queued', not_before = ?, error_code = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL
  WHERE id = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)`;
const CANCEL = "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status IN ('queued', 'running')";
const STATUS = 'SELECT status FROM jobs WHERE id = ?';
const JOB = 'SELECT * FROM jobs WHERE id = ?';
const STEPS = 'SELECT * FROM job_steps WHERE job_id = ? ORDER BY attempt, step_index';
const ARRIVAL_ATTRIBUTES = 'SELECT attributes FROM arrivals WHERE id = ?';
const COUNTS = 'SELECT status, COUNT(*) AS n FROM jobs GROUP BY status';
const QUEUED_BY_PIPELINE = "SELECT pipeline, COUNT(*) AS n FROM jobs WHERE status = 'queued' GROUP BY pipeline ORDER BY pipeline";

/** The statements whose text depends on the dialect, made once per store. */
function queueStatements(d: Dialect) {
  const running = (scope: string) => `status = 'running'${scope}`;
  const requeue = (scope: string) => ({
    // The rows are locked first, in one order: two nodes sweeping at once cannot deadlock.
    lock: `SELECT id FROM jobs WHERE ${running(scope)} ORDER BY id ${d.forUpdate}`,
  });
  const these = `id IN (${jsonList(d)})`;
  return {
    requeueAll: requeue(''),
    requeueOwner: requeue(' AND lease_owner = ?'),
    requeueExpired: requeue(' AND lease_expires_at < ?'),
    requeueOwnerExpired: requeue(' AND lease_owner = ? AND lease_expires_at < ?'),
    interrupted: `UPDATE jobs SET interruptions = interruptions + 1 WHERE ${these} AND isolated = 0`,
    failSuspects: `UPDATE jobs SET status = 'failed', finished_at = ?, error_code = 'DF_ERR_STEP_FAILED',
        error = 'the server stopped while this job ran alone, in its last allowed attempt (' || (attempts - interruptions) || ' of ' || max_attempts || '): it is taken to be what brings the server down',
        isolated = 0, lease_owner = NULL, lease_expires_at = NULL
      WHERE ${these} AND isolated = 1 AND attempts - interruptions >= max_attempts`,
    requeue: `UPDATE jobs SET status = 'queued', isolated = 0, lease_owner = NULL, lease_expires_at = NULL WHERE ${these} AND status = 'running'`,
    jobDatabases: `SELECT DISTINCT a.database_name AS db FROM jobs j CROSS JOIN ${d.jsonElements('j.inputs', 'je')} JOIN arrivals a ON a.id = je.value
      WHERE j.id = ? AND a.database_name IS NOT NULL`,
    stepInputs: `SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id WHERE a.id IN (${jsonList(d)})`,
    jobSubjects: `SELECT j.id AS job_id, a.patient_id, a.study_instance_uid, a.series_instance_uid, a.modality, a.database_name, a.attributes
      FROM jobs j JOIN arrivals a ON a.id = ${d.jsonText('j.inputs', 0)} WHERE j.id IN (${jsonList(d)})`,
    inputSeries: `SELECT a.series_instance_uid AS series, MAX(a.study_instance_uid) AS study, MAX(a.database_name) AS db, COUNT(*) AS n,
        MIN(a.received_at) AS first_at, MAX(a.received_at) AS last_at, MIN(a.id) AS first_id
      FROM jobs j CROSS JOIN ${d.jsonElements('j.inputs', 'ie')} JOIN arrivals a ON a.id = ie.value
      WHERE j.id = ? GROUP BY a.series_instance_uid ORDER BY MIN(a.id)`,
  };
}

/**
 * The job queue in the index's database. On PostgreSQL several nodes share it: claims skip rows
 * another node holds (FOR UPDATE SKIP LOCKED), leases tell whose a running job is, and changes
 * are notified ('jobs').
 */
export class SqlJobQueue implements JobQueue {
  private readonly db: SqlDb;
  private readonly d: Dialect;
  private readonly inserts: JobInserts;
  private readonly s: ReturnType<typeof queueStatements>;

  constructor(db: SqlDb, inserts: JobInserts) {
    this.db = db;
    this.d = dialectOf(db.dialect);
    this.inserts = inserts;
    this.s = queueStatements(this.d);
  }

  onChange(listener: () => void): () => void {
    return this.db.onNotify('jobs', listener);
  }

  createJob(job: NewJob): Promise<string> {
    return this.inserts.transaction(this.db, async (tx, insert) => {
      const id = await insert(job);
      tx.notify('jobs');
      return id;
    });
  }

  async pipelineVersion(hash: string): Promise<StoredPipelineVersion | undefined> {
    const r = await this.db.get(PIPELINE_VERSION, hash);
    return r ? { hash: r.hash, pipeline: r.pipeline, definition: r.definition, createdAt: r.created_at } : undefined;
  }

  /**
   * One statement (one round trip to PostgreSQL): the first runnable job, locked and skipped by
   * other nodes' claims until this one commits, is marked running. A suspect at the head of the
   * queue waits there, claiming nothing, until this node runs no other job. The text varies only
   * with the number of pipelines left out (a handful of texts).
   */
  async claimNextJob(
    owner: string,
    leaseMs: number,
    now: string,
    exceptPipelines: string[] = [],
    runningHere = 0,
  ): Promise<JobRecord | undefined> {
    const except = exceptPipelines.length > 0 ? `AND pipeline NOT IN (${exceptPipelines.map(() => '?').join(', ')})` : '';
    const leaseUntil = new Date(Date.parse(now) + leaseMs).toISOString();
    const r = await this.db.get(
      `WITH next AS (
         SELECT id, interruptions FROM jobs WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?) ${except}
         ORDER BY priority DESC, id LIMIT 1 ${this.d.skipLocked}
       )
       UPDATE jobs SET status = 'running', attempts = attempts + 1, isolated = CASE WHEN next.interruptions >= ? THEN 1 ELSE 0 END,
         started_at = ?, lease_owner = ?, lease_expires_at = ?, node = ?, progress = 0, progress_message = NULL
       FROM next WHERE jobs.id = next.id AND (next.interruptions < ? OR ? = 0)
       ${this.d.returningRow('jobs')}`,
      now,
      ...exceptPipelines,
      SUSPECT_AFTER_INTERRUPTIONS,
      now,
      owner,
      leaseUntil,
      owner,
      SUSPECT_AFTER_INTERRUPTIONS,
      runningHere,
    );
    return r ? toJob(r) : undefined;
  }

  async nextQueuedAt(): Promise<string | undefined> {
    const r = await this.db.get<{ t: string | null }>(NEXT_QUEUED_AT);
    return r?.t ?? undefined;
  }

  /**
   * Jobs left running by a stop or crash run again (at-least-once). A kill takes down every job
   * running at the time, so an attempt cut short beside other jobs is not held against the job
   * (counted as an interruption; a job interrupted at each of several kills in a row used to fail
   * for it). A job interrupted often runs alone (claimNextJob); cut short then, it is the likely
   * cause, the attempt counts, and a job that keeps taking the server down fails.
   */
  requeueInterrupted(scope: LeaseScope = {}): Promise<number> {
    const { owner, expiredBefore } = scope;
    const [lock, args] =
      owner !== undefined && expiredBefore !== undefined
        ? [this.s.requeueOwnerExpired.lock, [owner, expiredBefore]]
        : owner !== undefined
          ? [this.s.requeueOwner.lock, [owner]]
          : expiredBefore !== undefined
            ? [this.s.requeueExpired.lock, [expiredBefore]]
            : [this.s.requeueAll.lock, []];
    return this.db.transaction(async (tx) => {
      const ids = (await tx.all<{ id: string }>(lock, ...args)).map((r) => r.id);
      if (ids.length === 0) return 0;
      const these = JSON.stringify(ids);
      await tx.run(this.s.interrupted, these);
      await tx.run(this.s.failSuspects, new Date().toISOString(), these);
      const requeued = (await tx.run(this.s.requeue, these)).changes;
      if (requeued > 0) tx.notify('jobs');
      return requeued;
    });
  }

  /**
   * Extends the leases of the jobs this node runs. Returns the jobs whose lease it no longer
   * holds (it expired and another node took the job over): those must stop here. A job
   * cancelled meanwhile is still this node's to wind down.
   */
  async renewLeases(owner: string, jobIds: string[], until: string): Promise<string[]> {
    if (jobIds.length === 0) return [];
    return this.db.transaction(async (tx) => {
      const lost: string[] = [];
      for (const id of jobIds) if ((await tx.run(RENEW_LEASE, until, id, owner)).changes === 0) lost.push(id);
      return lost;
    });
  }

  async startStep(jobId: string, attempt: number, index: number, id: string, plugin: string): Promise<void> {
    await this.db.run(START_STEP, jobId, attempt, index, id, plugin, new Date().toISOString());
  }

  async finishStep(jobId: string, attempt: number, index: number, result: FinishedStep): Promise<void> {
    await this.db.run(
      FINISH_STEP,
      jobId,
      attempt,
      index,
      result.id,
      result.plugin,
      result.status,
      result.startedAt,
      new Date().toISOString(),
      result.durationMs ?? null,
      JSON.stringify(result.log),
      JSON.stringify(result.outputs),
      result.error ?? null,
    );
  }

  async setProgress(jobId: string, progress: number, message?: string): Promise<void> {
    await this.db.run(SET_PROGRESS, progress, message ?? null, jobId);
  }

  async finishJob(
    jobId: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    outcome: { errorCode?: string; error?: string; stopReason?: string } = {},
    owner?: string,
  ): Promise<boolean> {
    const r = await this.db.run(
      FINISH_JOB,
      status,
      new Date().toISOString(),
      outcome.errorCode ?? null,
      outcome.error ?? null,
      outcome.stopReason ?? null,
      status,
      jobId,
      owner ?? null,
      owner ?? null,
    );
    return r.changes > 0;
  }

  retryLater(jobId: string, notBefore: string, errorCode: string, error: string, owner?: string): Promise<boolean> {
    return this.db.transaction(async (tx) => {
      const n = (await tx.run(RETRY_LATER, notBefore, errorCode, error, jobId, owner ?? null, owner ?? null)).changes;
      if (n > 0) tx.notify('jobs');
      return n > 0;
    });
  }

  async cancelJob(jobId: string): Promise<boolean> {
    return (await this.db.run(CANCEL, new Date().toISOString(), jobId)).changes > 0;
  }

  async isCancelled(jobId: string): Promise<boolean> {
    return (await this.db.get<{ status: string }>(STATUS, jobId))?.status === 'cancelled';
  }

  async getJob(jobId: string): Promise<JobRecord | undefined> {
    const r = await this.db.get(JOB, jobId);
    if (!r) return undefined;
    const job = toJob(r);
    job.steps = (await this.db.all(STEPS, jobId)).map((s) => ({
      attempt: s.attempt,
      index: s.step_index,
      id: s.step_id,
      plugin: s.plugin,
      status: s.status,
      startedAt: s.started_at ?? undefined,
      finishedAt: s.finished_at ?? undefined,
      durationMs: s.duration_ms ?? undefined,
      log: JSON.parse(s.log),
      outputs: JSON.parse(s.outputs),
      error: s.error ?? undefined,
    }));
    return job;
  }

  /** One statement for all of a job's inputs (a study's thousands), in the job's order; inputs gone are left out. */
  async stepInputs(arrivalIds: string[]): Promise<StepInput[]> {
    if (arrivalIds.length === 0) return [];
    const byId = new Map((await this.db.all(this.s.stepInputs, JSON.stringify(arrivalIds))).map((r) => [r.id as string, r]));
    return arrivalIds.flatMap((id) => {
      const r = byId.get(id);
      if (!r) return [];
      const a = toArrivalRecord(r);
      return [
        {
          arrivalId: a.id,
          objectId: a.objectId,
          path: a.path,
          sopClassUid: a.sopClassUid,
          sopInstanceUid: a.sopInstanceUid,
          seriesInstanceUid: a.seriesInstanceUid,
          studyInstanceUid: a.studyInstanceUid,
          attributes: a.attributes,
          source: a.source,
          callingAeTitle: a.callingAeTitle,
          calledAeTitle: a.calledAeTitle,
          peerAddress: a.peerAddress,
          userName: a.userName,
          createdBy: a.createdBy,
          database: a.database,
          receivedAt: a.receivedAt,
        },
      ];
    });
  }

  async jobDatabases(jobId: string): Promise<string[]> {
    return (await this.db.all<{ db: string }>(this.s.jobDatabases, jobId)).map((r) => r.db);
  }

  async listJobs(filter: JobFilter): Promise<JobRecord[]> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.status) {
      where.push('status = ?');
      args.push(filter.status);
    }
    if (filter.pipeline) {
      where.push('pipeline = ?');
      args.push(filter.pipeline);
    }
    if (filter.before) {
      where.push('id < ?');
      args.push(filter.before);
    }
    if (filter.triggerOn) {
      where.push('trigger_on = ?');
      args.push(filter.triggerOn);
    }
    if (filter.since) {
      where.push('created_at >= ?');
      args.push(filter.since);
    }
    if (filter.until) {
      where.push('created_at < ?');
      args.push(filter.until);
    }
    // What the inputs are: one EXISTS over them (the arrivals carry study, series and patient).
    const inputTests: string[] = [];
    if (filter.study) {
      inputTests.push('a.study_instance_uid = ?');
      args.push(filter.study);
    }
    if (filter.series) {
      inputTests.push('a.series_instance_uid = ?');
      args.push(filter.series);
    }
    if (filter.patient) {
      const like = `%${filter.patient.toLowerCase().replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      inputTests.push(
        `(LOWER(a.patient_id) LIKE ? ESCAPE '\\' OR LOWER(${this.d.jsonText('a.attributes', 'PatientName')}) LIKE ? ESCAPE '\\')`,
      );
      args.push(like, like);
    }
    if (inputTests.length > 0) {
      where.push(
        `EXISTS (SELECT 1 FROM ${this.d.jsonElements('jobs.inputs', 'ie')} JOIN arrivals a ON a.id = ie.value WHERE ${inputTests.join(' AND ')})`,
      );
    }
    if (filter.visibleTo) {
      // The databases as one JSON parameter: the text does not grow with their number.
      where.push(
        `(created_by = ? OR ${this.d.jsonArrayLength('inputs')} = 0 OR EXISTS (SELECT 1 FROM ${this.d.jsonElements('jobs.inputs', 'je')} JOIN arrivals a ON a.id = je.value WHERE a.database_name IN (${jsonList(this.d)})))`,
      );
      args.push(filter.visibleTo.user, JSON.stringify(filter.visibleTo.databases));
    }
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (await this.db.read(sql, ...args, filter.limit ?? 100)).map(toJob);
  }

  async jobSubjects(jobIds: string[]): Promise<Map<string, JobSubject>> {
    const out = new Map<string, JobSubject>();
    if (jobIds.length === 0) return out;
    for (const r of await this.db.read(this.s.jobSubjects, JSON.stringify(jobIds))) {
      const attributes = JSON.parse(r.attributes) as Record<string, string>;
      out.set(r.job_id, {
        patientId: r.patient_id ?? undefined,
        patientName: attributes.PatientName,
        studyInstanceUid: r.study_instance_uid ?? undefined,
        seriesInstanceUid: r.series_instance_uid ?? undefined,
        modality: r.modality ?? undefined,
        seriesDescription: attributes.SeriesDescription,
        database: r.database_name ?? undefined,
      });
    }
    return out;
  }

  async inputSeries(jobId: string): Promise<InputSeries[]> {
    const rows = await this.db.read(this.s.inputSeries, jobId);
    const out: InputSeries[] = [];
    for (const r of rows) {
      const first = await this.db.get<{ attributes: string }>(ARRIVAL_ATTRIBUTES, r.first_id);
      out.push({
        seriesInstanceUid: r.series ?? '',
        ...(r.study ? { studyInstanceUid: r.study } : {}),
        ...(r.db ? { database: r.db } : {}),
        instances: Number(r.n),
        firstReceivedAt: r.first_at,
        lastReceivedAt: r.last_at,
        attributes: JSON.parse(first!.attributes),
      });
    }
    return out;
  }

  async counts(): Promise<Record<JobStatus, number>> {
    const out: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of await this.db.read<{ status: JobStatus; n: number }>(COUNTS)) out[r.status] = Number(r.n);
    return out;
  }

  async queuedByPipeline(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.db.read(QUEUED_BY_PIPELINE)) out[r.pipeline] = Number(r.n);
    return out;
  }
}
