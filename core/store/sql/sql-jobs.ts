import { newId } from '../../ids.ts';
import {
  SUSPECT_AFTER_INTERRUPTIONS,
  type Contributors,
  type DueGroup,
  type GroupJoin,
  type JobFilter,
  type JobRecord,
  type JobStatus,
  type JobStore,
  type ArrivalScope,
  type LeaseScope,
  type NewJob,
  type FinishedStep,
  type StoredPipelineVersion,
  type InputSeries,
  type JobSubject,
} from '../job-store.ts';
import type { StepInput } from '../../plugin.ts';
import type { ArrivalRecord } from '../index-store.ts';
import { toArrivalRecord } from './sql-index.ts';
import { dialectOf, type Dialect, type Row, type SqlDb, type SqlStatement } from './sql-db.ts';

function toJob(r: Row): JobRecord {
  return {
    id: r.id,
    pipeline: r.pipeline,
    pipelineHash: r.pipeline_hash ?? undefined,
    status: r.status,
    triggerOn: r.trigger_on,
    triggerUid: r.trigger_uid ?? undefined,
    contributors: JSON.parse(r.contributors),
    inputs: JSON.parse(r.inputs),
    priority: r.priority,
    attempts: r.attempts,
    node: r.node ?? undefined,
    interruptions: r.interruptions,
    isolated: r.isolated === 1,
    maxAttempts: r.max_attempts,
    backoffSeconds: r.backoff_seconds,
    notBefore: r.not_before ?? undefined,
    rerunOf: r.rerun_of ?? undefined,
    createdBy: r.created_by ?? undefined,
    createdAt: r.created_at,
    startedAt: r.started_at ?? undefined,
    finishedAt: r.finished_at ?? undefined,
    progress: r.progress,
    progressMessage: r.progress_message ?? undefined,
    errorCode: r.error_code ?? undefined,
    error: r.error ?? undefined,
    stopReason: r.stop_reason ?? undefined,
  };
}

/**
 * Jobs, stable-trigger groups and the arrival queue, in the index's database. On PostgreSQL
 * several nodes share them: claims skip rows another node holds (FOR UPDATE SKIP LOCKED), a
 * group is locked while it takes an arrival or fires, and changes are notified ('jobs').
 */
export class SqlJobs implements JobStore {
  private readonly db: SqlDb;
  private readonly d: Dialect;
  /**
   * Pipeline versions known to be kept: a job of a known version costs no write for it (thousands
   * of jobs share one row). Hashes written in a transaction count once it commits.
   */
  private readonly keptVersions = new Set<string>();
  private versionsInTransaction: string[] = [];

  constructor(db: SqlDb) {
    this.db = db;
    this.d = dialectOf(db.dialect);
  }

  private sql(text: string): SqlStatement {
    return this.db.prepare(text);
  }

  onChange(listener: () => void): () => void {
    return this.db.onNotify('jobs', listener);
  }


  unprocessedArrivals(limit: number, scope?: ArrivalScope): ArrivalRecord[] {
    const rows = scope
      ? this.sql(
          `SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id
           WHERE a.processed_at IS NULL AND (o.node = ? OR o.node IS NULL OR a.received_at < ?) ORDER BY a.id LIMIT ?`,
        ).all(scope.node, scope.orphanedBefore, limit)
      : this.sql('SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id WHERE a.processed_at IS NULL ORDER BY a.id LIMIT ?').all(limit);
    return (rows as Record<string, string>[]).map(toArrivalRecord);
  }

  recordTriggerDecisions(arrivalId: string, receivedAt: string, jobs: NewJob[], joins: GroupJoin[]): string[] {
    return this.queueing(() => {
      const processed = this.sql('UPDATE arrivals SET processed_at = ? WHERE id = ? AND processed_at IS NULL').run(new Date().toISOString(), arrivalId);
      // Processed already (by another node, or before a crash): the decisions were made then.
      if (processed.changes === 0) return [];
      const ids = jobs.map((j) => this.insertJob(j));
      for (const join of joins) this.joinGroup(arrivalId, receivedAt, join);
      if (ids.length > 0 || joins.length > 0) this.db.notify('jobs');
      return ids;
    });
  }

  /**
   * The newest generation of a group takes the arrival while open (its timer restarts from this
   * arrival). Once fired, a late arrival opens the next generation, per the pipeline's policy:
   * 'whole' carries the earlier members over, 'late-only' starts empty, 'ignore' records the
   * arrival in a group that never fires.
   */
  private joinGroup(arrivalId: string, receivedAt: string, join: GroupJoin): void {
    // Locked: a node firing this group meanwhile waits, or has fired it and we open the next.
    const latest = this.sql(`SELECT * FROM trigger_groups WHERE pipeline = ? AND level = ? AND uid = ? ORDER BY generation DESC LIMIT 1 ${this.d.forUpdate}`)
      .get(join.pipeline, join.level, join.uid) as Row | undefined;
    let groupId: string;
    if (latest && latest.state === 'open') {
      groupId = latest.id;
      this.sql(`UPDATE trigger_groups SET last_arrival_at = ?, fire_at = ${this.d.greatest('fire_at', '?')} WHERE id = ?`).run(receivedAt, join.fireAt, groupId);
    } else {
      groupId = newId();
      const state = latest && join.lateArrivals === 'ignore' ? 'ignored' : 'open';
      this.sql(
          `INSERT INTO trigger_groups (id, pipeline, level, uid, generation, state, late_arrivals, first_arrival_at, last_arrival_at, fire_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(groupId, join.pipeline, join.level, join.uid, (latest?.generation ?? 0) + 1, state, join.lateArrivals, receivedAt, receivedAt, join.fireAt);
      if (latest && join.lateArrivals === 'whole') {
        // Not the members whose bytes were released and are filed in no database (a duplicate
        // kept out by keep-first, a replaced or delete-source copy): they are deleted once the
        // fired generation's job ends, and a job over them would fail on the missing file.
        this.sql(
          `INSERT INTO trigger_group_members (group_id, arrival_id)
           SELECT ?, m.arrival_id FROM trigger_group_members m JOIN arrivals a ON a.id = m.arrival_id
           WHERE m.group_id = ?
             AND NOT (EXISTS (SELECT 1 FROM object_releases r WHERE r.object_id = a.object_id)
                      AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.object_id = a.object_id))
           ON CONFLICT DO NOTHING`,
        ).run(groupId, latest.id);
      }
    }
    this.sql('INSERT INTO trigger_group_members (group_id, arrival_id) VALUES (?, ?) ON CONFLICT DO NOTHING').run(groupId, arrivalId);
  }

  dueGroups(now: string): DueGroup[] {
    return this.sql("SELECT id, pipeline, level, uid FROM trigger_groups WHERE state = 'open' AND fire_at <= ? ORDER BY fire_at")
      .all(now) as DueGroup[];
  }

  nextGroupFireAt(): string | undefined {
    const r = this.sql("SELECT min(fire_at) AS t FROM trigger_groups WHERE state = 'open'").get() as { t: string | null };
    return r.t ?? undefined;
  }

  fireGroup(groupId: string, job: Omit<NewJob, 'inputs' | 'triggerOn' | 'triggerUid'>): string | undefined {
    return this.queueing(() => {
      // Exactly once for the cluster: the group is locked, and a node that waited finds it fired.
      const group = this.sql(`SELECT * FROM trigger_groups WHERE id = ? AND state = 'open' ${this.d.forUpdate}`).get(groupId) as Row | undefined;
      if (!group) return undefined;
      const inputs = (
        this.sql('SELECT arrival_id FROM trigger_group_members WHERE group_id = ? ORDER BY arrival_id').all(groupId) as { arrival_id: string }[]
      ).map((r) => r.arrival_id);
      const jobId = this.insertJob({ ...job, inputs, triggerOn: group.level, triggerUid: group.uid });
      this.sql("UPDATE trigger_groups SET state = 'fired', job_id = ? WHERE id = ?").run(jobId, groupId);
      this.db.notify('jobs');
      return jobId;
    });
  }

  forceComplete(level: 'series' | 'study', uid: string): number {
    return this.db.transaction(() => {
      const n = this.sql("UPDATE trigger_groups SET fire_at = ? WHERE state = 'open' AND level = ? AND uid = ?").run(new Date(0).toISOString(), level, uid).changes;
      if (n > 0) this.db.notify('jobs');
      return n;
    })();
  }

  createJob(job: NewJob): string {
    return this.queueing(() => {
      const id = this.insertJob(job);
      this.db.notify('jobs');
      return id;
    });
  }

  /** A transaction that may queue jobs: the versions it keeps count as kept once it commits. */
  private queueing<T>(fn: () => T): T {
    this.versionsInTransaction = [];
    try {
      const result = this.db.transaction(fn)();
      for (const hash of this.versionsInTransaction) this.keptVersions.add(hash);
      return result;
    } finally {
      this.versionsInTransaction = [];
    }
  }

  pipelineVersion(hash: string): StoredPipelineVersion | undefined {
    const r = this.sql('SELECT hash, pipeline, definition, created_at FROM pipeline_versions WHERE hash = ?').get(hash) as Row | undefined;
    return r ? { hash: r.hash, pipeline: r.pipeline, definition: r.definition, createdAt: r.created_at } : undefined;
  }

  private insertJob(job: NewJob): string {
    const id = newId();
    if (job.pipelineHash !== undefined && job.pipelineDefinition !== undefined && !this.keptVersions.has(job.pipelineHash)) {
      this.sql('INSERT INTO pipeline_versions (hash, pipeline, definition, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING')
        .run(job.pipelineHash, job.pipeline, job.pipelineDefinition, new Date().toISOString());
      this.versionsInTransaction.push(job.pipelineHash);
    }
    this.sql(
        `INSERT INTO jobs (id, pipeline, pipeline_hash, status, trigger_on, trigger_uid, contributors, inputs, priority, max_attempts,
           backoff_seconds, rerun_of, created_by, created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        id, job.pipeline, job.pipelineHash ?? null, job.triggerOn, job.triggerUid ?? null, JSON.stringify(job.contributors ?? this.contributorsOf(job.inputs)),
        JSON.stringify(job.inputs), job.priority, job.maxAttempts, job.backoffSeconds, job.rerunOf ?? null, job.createdBy ?? null,
        new Date().toISOString(),
      );
    return id;
  }

  /** Every calling AE title and peer that sent part of the job's inputs. */
  private contributorsOf(arrivalIds: string[]): Contributors {
    const callingAeTitles = new Set<string>();
    const peerAddresses = new Set<string>();
    const get = this.sql('SELECT calling_ae_title, peer_address FROM arrivals WHERE id = ?');
    for (const id of arrivalIds) {
      const r = get.get(id) as Row | undefined;
      if (r?.calling_ae_title) callingAeTitles.add(r.calling_ae_title);
      if (r?.peer_address) peerAddresses.add(r.peer_address);
    }
    return { callingAeTitles: [...callingAeTitles].sort(), peerAddresses: [...peerAddresses].sort() };
  }

  /**
   * One statement (one round trip to PostgreSQL): the first runnable job, locked and skipped by
   * other nodes' claims until this one commits, is marked running. A suspect at the head of the
   * queue waits there, claiming nothing, until this node runs no other job.
   */
  claimNextJob(owner: string, leaseMs: number, now: string, exceptPipelines: string[] = [], runningHere = 0): JobRecord | undefined {
    const except = exceptPipelines.length > 0 ? `AND pipeline NOT IN (${exceptPipelines.map(() => '?').join(', ')})` : '';
    const leaseUntil = new Date(Date.parse(now) + leaseMs).toISOString();
    const r = this.sql(
      `WITH next AS (
         SELECT id, interruptions FROM jobs WHERE status = 'queued' AND (not_before IS NULL OR not_before <= ?) ${except}
         ORDER BY priority DESC, id LIMIT 1 ${this.d.skipLocked}
       )
       UPDATE jobs SET status = 'running', attempts = attempts + 1, isolated = CASE WHEN next.interruptions >= ? THEN 1 ELSE 0 END,
         started_at = ?, lease_owner = ?, lease_expires_at = ?, node = ?, progress = 0, progress_message = NULL
       FROM next WHERE jobs.id = next.id AND (next.interruptions < ? OR ? = 0)
       ${this.d.returningRow('jobs')}`,
    ).get(now, ...exceptPipelines, SUSPECT_AFTER_INTERRUPTIONS, now, owner, leaseUntil, owner, SUSPECT_AFTER_INTERRUPTIONS, runningHere) as Row | undefined;
    return r ? toJob(r) : undefined;
  }

  nextQueuedAt(): string | undefined {
    const r = this.sql("SELECT min(coalesce(not_before, created_at)) AS t FROM jobs WHERE status = 'queued'").get() as { t: string | null };
    return r.t ?? undefined;
  }

  /**
   * Jobs left running by a stop or crash run again (at-least-once). A kill takes down every job
   * running at the time, so an attempt cut short beside other jobs is not held against the job
   * (counted as an interruption; a job interrupted at each of several kills in a row used to fail
   * for it). A job interrupted often runs alone (claimNextJob); cut short then, it is the likely
   * cause, the attempt counts, and a job that keeps taking the server down fails.
   */
  requeueInterrupted(scope: LeaseScope = {}): number {
    const where: string[] = ["status = 'running'"];
    const args: unknown[] = [];
    if (scope.owner !== undefined) {
      where.push('lease_owner = ?');
      args.push(scope.owner);
    }
    if (scope.expiredBefore !== undefined) {
      where.push('lease_expires_at < ?');
      args.push(scope.expiredBefore);
    }
    const running = where.join(' AND ');
    return this.db.transaction(() => {
      // The rows are locked first, in one order: two nodes sweeping at once cannot deadlock.
      const ids = this.sql(`SELECT id FROM jobs WHERE ${running} ORDER BY id ${this.d.forUpdate}`).all(...args).map((r) => r.id as string);
      if (ids.length === 0) return 0;
      const these = `id IN (${ids.map(() => '?').join(', ')})`;
      this.sql(`UPDATE jobs SET interruptions = interruptions + 1 WHERE ${these} AND isolated = 0`).run(...ids);
      this.sql(
        `UPDATE jobs SET status = 'failed', finished_at = ?, error_code = 'DF_ERR_STEP_FAILED',
           error = 'the server stopped while this job ran alone, in its last allowed attempt (' || (attempts - interruptions) || ' of ' || max_attempts || '): it is taken to be what brings the server down',
           isolated = 0, lease_owner = NULL, lease_expires_at = NULL
         WHERE ${these} AND isolated = 1 AND attempts - interruptions >= max_attempts`,
      ).run(new Date().toISOString(), ...ids);
      const requeued = this.sql(`UPDATE jobs SET status = 'queued', isolated = 0, lease_owner = NULL, lease_expires_at = NULL WHERE ${these} AND status = 'running'`).run(...ids).changes;
      if (requeued > 0) this.db.notify('jobs');
      return requeued;
    })();
  }

  /**
   * Extends the leases of the jobs this node runs. Returns the jobs whose lease it no longer
   * holds (it expired and another node took the job over): those must stop here. A job
   * cancelled meanwhile is still this node's to wind down.
   */
  renewLeases(owner: string, jobIds: string[], until: string): string[] {
    if (jobIds.length === 0) return [];
    const renew = this.sql("UPDATE jobs SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND status IN ('running', 'cancelled')");
    return this.db.transaction(() => jobIds.filter((id) => renew.run(until, id, owner).changes === 0))();
  }

  startStep(jobId: string, attempt: number, index: number, id: string, plugin: string): void {
    this.sql(
        `INSERT INTO job_steps (job_id, attempt, step_index, step_id, plugin, status, started_at) VALUES (?, ?, ?, ?, ?, 'running', ?)
         ON CONFLICT (job_id, attempt, step_index) DO UPDATE SET step_id = excluded.step_id, plugin = excluded.plugin, status = excluded.status,
           started_at = excluded.started_at, finished_at = NULL, duration_ms = NULL, log = '[]', outputs = '[]', error = NULL`,
      )
      .run(jobId, attempt, index, id, plugin, new Date().toISOString());
  }

  finishStep(jobId: string, attempt: number, index: number, result: FinishedStep): void {
    // One statement whether or not the start was recorded: quick steps are written once.
    this.sql(
      `INSERT INTO job_steps (job_id, attempt, step_index, step_id, plugin, status, started_at, finished_at, duration_ms, log, outputs, error)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (job_id, attempt, step_index) DO UPDATE SET status = excluded.status, finished_at = excluded.finished_at,
         duration_ms = excluded.duration_ms, log = excluded.log, outputs = excluded.outputs, error = excluded.error`,
    ).run(
      jobId, attempt, index, result.id, result.plugin, result.status, result.startedAt, new Date().toISOString(), result.durationMs ?? null,
      JSON.stringify(result.log), JSON.stringify(result.outputs), result.error ?? null,
    );
  }

  setProgress(jobId: string, progress: number, message?: string): void {
    this.sql('UPDATE jobs SET progress = ?, progress_message = ? WHERE id = ?').run(progress, message ?? null, jobId);
  }

  finishJob(
    jobId: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    outcome: { errorCode?: string; error?: string; stopReason?: string } = {},
    owner?: string,
  ): boolean {
    return (
      this.sql(
        `UPDATE jobs SET status = ?, finished_at = ?, error_code = ?, error = ?, stop_reason = ?, lease_owner = NULL, lease_expires_at = NULL,
           progress = CASE WHEN ? = 'succeeded' THEN 1 ELSE progress END WHERE id = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)`,
      ).run(status, new Date().toISOString(), outcome.errorCode ?? null, outcome.error ?? null, outcome.stopReason ?? null, status, jobId, owner ?? null, owner ?? null)
        .changes > 0
    );
  }

  retryLater(jobId: string, notBefore: string, errorCode: string, error: string, owner?: string): boolean {
    return this.db.transaction(() => {
      const n = this.sql(
        `UPDATE jobs SET status = 'queued', not_before = ?, error_code = ?, error = ?, lease_owner = NULL, lease_expires_at = NULL
         WHERE id = ? AND (CAST(? AS TEXT) IS NULL OR lease_owner = ?)`,
      ).run(notBefore, errorCode, error, jobId, owner ?? null, owner ?? null).changes;
      if (n > 0) this.db.notify('jobs');
      return n > 0;
    })();
  }

  cancelJob(jobId: string): boolean {
    return (
      this.sql("UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ? AND status IN ('queued', 'running')")
        .run(new Date().toISOString(), jobId).changes > 0
    );
  }

  isCancelled(jobId: string): boolean {
    const r = this.sql('SELECT status FROM jobs WHERE id = ?').get(jobId) as { status: string } | undefined;
    return r?.status === 'cancelled';
  }

  getJob(jobId: string): JobRecord | undefined {
    const r = this.sql('SELECT * FROM jobs WHERE id = ?').get(jobId) as Row | undefined;
    if (!r) return undefined;
    const job = toJob(r);
    job.steps = (
      this.sql('SELECT * FROM job_steps WHERE job_id = ? ORDER BY attempt, step_index').all(jobId) as Row[]
    ).map((s) => ({
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

  jobDatabases(jobId: string): string[] {
    const rows = this.sql(
      `SELECT DISTINCT a.database_name AS db FROM jobs j CROSS JOIN ${this.d.jsonElements('j.inputs', 'je')} JOIN arrivals a ON a.id = je.value
       WHERE j.id = ? AND a.database_name IS NOT NULL`,
    ).all(jobId) as { db: string }[];
    return rows.map((r) => r.db);
  }

  listJobs(filter: JobFilter): JobRecord[] {
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
      inputTests.push(`(LOWER(a.patient_id) LIKE ? ESCAPE '\\' OR LOWER(${this.d.jsonText('a.attributes', 'PatientName')}) LIKE ? ESCAPE '\\')`);
      args.push(like, like);
    }
    if (inputTests.length > 0) {
      where.push(`EXISTS (SELECT 1 FROM ${this.d.jsonElements('jobs.inputs', 'ie')} JOIN arrivals a ON a.id = ie.value WHERE ${inputTests.join(' AND ')})`);
    }
    if (filter.visibleTo) {
      const dbs = filter.visibleTo.databases;
      where.push(`(created_by = ? OR ${this.d.jsonArrayLength('inputs')} = 0${
        dbs.length ? ` OR EXISTS (SELECT 1 FROM ${this.d.jsonElements('jobs.inputs', 'je')} JOIN arrivals a ON a.id = je.value WHERE a.database_name IN (${dbs.map(() => '?').join(', ')}))` : ''
      })`);
      args.push(filter.visibleTo.user, ...dbs);
    }
    const sql = `SELECT * FROM jobs ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id DESC LIMIT ?`;
    return (this.sql(sql).all(...args, filter.limit ?? 100) as Row[]).map(toJob);
  }

  jobSubjects(jobIds: string[]): Map<string, JobSubject> {
    const out = new Map<string, JobSubject>();
    if (jobIds.length === 0) return out;
    const rows = this.sql(
      `SELECT j.id AS job_id, a.patient_id, a.study_instance_uid, a.series_instance_uid, a.modality, a.database_name, a.attributes
       FROM jobs j JOIN arrivals a ON a.id = ${this.d.jsonText('j.inputs', 0)} WHERE j.id IN (${jobIds.map(() => '?').join(', ')})`,
    ).all(...jobIds) as Row[];
    for (const r of rows) {
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

  inputSeries(jobId: string): InputSeries[] {
    const rows = this.sql(
      `SELECT a.series_instance_uid AS series, MAX(a.study_instance_uid) AS study, MAX(a.database_name) AS db, COUNT(*) AS n,
              MIN(a.received_at) AS first_at, MAX(a.received_at) AS last_at, MIN(a.id) AS first_id
       FROM jobs j CROSS JOIN ${this.d.jsonElements('j.inputs', 'ie')} JOIN arrivals a ON a.id = ie.value
       WHERE j.id = ? GROUP BY a.series_instance_uid ORDER BY MIN(a.id)`,
    ).all(jobId) as Row[];
    const attributesOf = this.sql('SELECT attributes FROM arrivals WHERE id = ?');
    return rows.map((r) => ({
      seriesInstanceUid: r.series ?? '',
      ...(r.study ? { studyInstanceUid: r.study } : {}),
      ...(r.db ? { database: r.db } : {}),
      instances: Number(r.n),
      firstReceivedAt: r.first_at,
      lastReceivedAt: r.last_at,
      attributes: JSON.parse((attributesOf.get(r.first_id) as { attributes: string }).attributes),
    }));
  }

  counts(): Record<JobStatus, number> {
    const out: Record<JobStatus, number> = { queued: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
    for (const r of this.sql('SELECT status, COUNT(*) AS n FROM jobs GROUP BY status').all() as { status: JobStatus; n: number }[]) {
      out[r.status] = r.n;
    }
    return out;
  }

  queuedByPipeline(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.sql("SELECT pipeline, COUNT(*) AS n FROM jobs WHERE status = 'queued' GROUP BY pipeline ORDER BY pipeline").all()) out[r.pipeline] = r.n;
    return out;
  }

  stepInputs(arrivalIds: string[]): StepInput[] {
    const get = this.sql('SELECT a.*, o.path FROM arrivals a JOIN objects o ON a.object_id = o.id WHERE a.id = ?');
    return arrivalIds.flatMap((id) => {
      const r = get.get(id) as Record<string, string> | undefined;
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

  releaseObjects(objectIds: string[], jobId: string): void {
    const insert = this.sql('INSERT INTO object_releases (object_id, released_at, released_by_job) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
    const now = new Date().toISOString();
    this.db.transaction(() => objectIds.forEach((id) => insert.run(id, now, jobId)))();
  }

  hasReleasedObjects(): boolean {
    return this.sql('SELECT 1 FROM object_releases r CROSS JOIN objects o WHERE o.id = r.object_id AND o.deleted_at IS NULL LIMIT 1').get() !== undefined;
  }

  collectableObjects(): { id: string; path: string }[] {
    // CROSS JOIN keeps the (few) releases as the outer loop: left to choose, SQLite scanned every
    // object and ran the subqueries for each, after every job (measured: a fifth of the main thread).
    return this.sql(
        `SELECT o.id, o.path FROM object_releases r CROSS JOIN objects o
         WHERE o.id = r.object_id AND o.deleted_at IS NULL
           AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.object_id = o.id)
           AND NOT EXISTS (SELECT 1 FROM arrivals a WHERE a.object_id = o.id AND a.processed_at IS NULL)
           AND NOT EXISTS (
             SELECT 1 FROM arrivals a JOIN jobs j ON j.status IN ('queued', 'running')
               AND EXISTS (SELECT 1 FROM ${this.d.jsonElements('j.inputs', 'e')} WHERE e.value = a.id)
             WHERE a.object_id = o.id)
           AND NOT EXISTS (
             SELECT 1 FROM arrivals a JOIN trigger_group_members m ON m.arrival_id = a.id
               JOIN trigger_groups g ON g.id = m.group_id AND g.state = 'open'
             WHERE a.object_id = o.id)`,
      )
      .all() as { id: string; path: string }[];
  }

  markObjectDeleted(objectId: string): void {
    this.sql('UPDATE objects SET deleted_at = ? WHERE id = ?').run(new Date().toISOString(), objectId);
  }
}
