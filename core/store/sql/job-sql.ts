import { newId } from '../../ids.ts';
import type { Contributors, JobRecord, NewJob } from '../job-queue.ts';
import type { Dialect, Row, SqlDb, SqlRunner, SqlTransaction } from './sql-db.ts';

/**
 * What the job stores (arrival queue, trigger groups, job queue, object lifecycle) share: the
 * job row's shape, the one way a job is inserted, and the SQL fragments they all use.
 */

/** A FROM-less list of the values of one JSON text array parameter: `x IN (${jsonList(d)})` keeps one statement text whatever the list's length. */
export function jsonList(d: Dialect): string {
  return `SELECT lv.value FROM ${d.jsonElements('?', 'lv')}`;
}

export function toJob(r: Row): JobRecord {
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

const INSERT_VERSION = 'INSERT INTO pipeline_versions (hash, pipeline, definition, created_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING';
const INSERT_JOB = `INSERT INTO jobs (id, pipeline, pipeline_hash, status, trigger_on, trigger_uid, contributors, inputs, priority, max_attempts,
  backoff_seconds, rerun_of, created_by, created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`;
const ARRIVAL_SENDER = 'SELECT calling_ae_title, peer_address FROM arrivals WHERE id = ?';

export type InsertJob = (job: NewJob) => Promise<string>;

/**
 * Queues jobs inside transactions, keeping each job's pipeline version once. Versions known to
 * be kept cost no write (thousands of jobs share one row); one written in a transaction counts
 * as kept once that transaction commits. Shared by the stores that queue jobs.
 */
export class JobInserts {
  private readonly kept = new Set<string>();

  /** Runs fn in a transaction of db; `insert` queues a job in it. */
  async transaction<T>(db: SqlDb, fn: (tx: SqlTransaction, insert: InsertJob) => Promise<T>): Promise<T> {
    let written: string[] = [];
    const result = await db.transaction((tx) => {
      // PostgreSQL runs a transaction that lost a race again: only the last run's writes count.
      written = [];
      return fn(tx, (job) => this.insert(tx, job, written));
    });
    for (const hash of written) this.kept.add(hash);
    return result;
  }

  private async insert(tx: SqlRunner, job: NewJob, written: string[]): Promise<string> {
    const id = newId();
    const now = new Date().toISOString();
    if (
      job.pipelineHash !== undefined &&
      job.pipelineDefinition !== undefined &&
      !this.kept.has(job.pipelineHash) &&
      !written.includes(job.pipelineHash)
    ) {
      await tx.run(INSERT_VERSION, job.pipelineHash, job.pipeline, job.pipelineDefinition, now);
      written.push(job.pipelineHash);
    }
    const contributors = job.contributors ?? (await contributorsOf(tx, job.inputs));
    await tx.run(
      INSERT_JOB,
      id,
      job.pipeline,
      job.pipelineHash ?? null,
      job.triggerOn,
      job.triggerUid ?? null,
      JSON.stringify(contributors),
      JSON.stringify(job.inputs),
      job.priority,
      job.maxAttempts,
      job.backoffSeconds,
      job.rerunOf ?? null,
      job.createdBy ?? null,
      now,
    );
    return id;
  }
}

/** Every calling AE title and peer that sent part of the job's inputs. */
async function contributorsOf(tx: SqlRunner, arrivalIds: string[]): Promise<Contributors> {
  const callingAeTitles = new Set<string>();
  const peerAddresses = new Set<string>();
  for (const id of arrivalIds) {
    const r = await tx.get<{ calling_ae_title: string | null; peer_address: string | null }>(ARRIVAL_SENDER, id);
    if (r?.calling_ae_title) callingAeTitles.add(r.calling_ae_title);
    if (r?.peer_address) peerAddresses.add(r.peer_address);
  }
  return { callingAeTitles: [...callingAeTitles].sort(), peerAddresses: [...peerAddresses].sort() };
}
