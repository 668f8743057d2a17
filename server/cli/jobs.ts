import path from 'node:path';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { JobRecord } from '../../core/jobs/job-store.ts';
import { SqliteIndex } from '../../core/store/sqlite/sqlite-index.ts';
import { SqliteJobs } from '../../core/store/sqlite/sqlite-jobs.ts';

/**
 * Job commands that work on the data directory directly, whether or not the server runs (SQLite
 * in WAL mode lets both read and write; a running server picks up new jobs within a second).
 */
function openJobs(config: ResolvedConfig): { jobs: SqliteJobs; close: () => void } {
  const index = new SqliteIndex(path.join(config.dataDir, 'index.sqlite'));
  return { jobs: new SqliteJobs(index.connection), close: () => index.close() };
}

const seconds = (j: JobRecord) =>
  j.startedAt && j.finishedAt ? ((Date.parse(j.finishedAt) - Date.parse(j.startedAt)) / 1000).toFixed(2) : '';

export function listJobs(config: ResolvedConfig, options: { json: boolean; status?: string; pipeline?: string; limit?: number }): void {
  const { jobs, close } = openJobs(config);
  try {
    const list = jobs.listJobs({ status: options.status as JobRecord['status'] | undefined, pipeline: options.pipeline, limit: options.limit ?? 50 });
    if (options.json) {
      console.log(JSON.stringify(list.map((j) => ({ ...j, durationSeconds: seconds(j) === '' ? null : Number(seconds(j)) })), null, 2));
      return;
    }
    const rows = list.map((j) => [j.id, j.pipeline, j.status, `${Math.round(j.progress * 100)}%`, String(j.inputs.length), j.createdAt, seconds(j), j.error ?? j.stopReason ?? '']);
    printTable(['id', 'pipeline', 'status', 'progress', 'inputs', 'created', 'seconds', 'note'], rows);
  } finally {
    close();
  }
}

export function showJob(config: ResolvedConfig, id: string, json: boolean): void {
  const { jobs, close } = openJobs(config);
  try {
    const job = jobs.getJob(id);
    if (!job) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
    if (json) {
      console.log(JSON.stringify(job, null, 2));
      return;
    }
    console.log(`job ${job.id}  pipeline ${job.pipeline}  ${job.status}  ${Math.round(job.progress * 100)}%  attempt ${job.attempts}/${job.maxAttempts}`);
    console.log(`trigger ${job.triggerOn}${job.triggerUid ? ` ${job.triggerUid}` : ''}  from ${job.contributors.callingAeTitles.join(', ') || '-'} (${job.contributors.peerAddresses.join(', ') || '-'})`);
    if (job.rerunOf) console.log(`rerun of ${job.rerunOf}`);
    if (job.error) console.log(`error ${job.errorCode}: ${job.error}`);
    for (const s of job.steps ?? []) {
      console.log(`  [${s.attempt}] ${s.index + 1}. ${s.id} (${s.plugin}) ${s.status} ${s.durationMs !== undefined ? `${s.durationMs.toFixed(1)} ms` : ''}${s.error ? ` — ${s.error}` : ''}`);
      for (const line of s.log) console.log(`        ${line.at} ${line.level} ${line.message}${line.data ? ` ${JSON.stringify(line.data)}` : ''}`);
      for (const o of s.outputs) console.log(`        output ${o.kind} ${o.path ?? o.name ?? ''}`);
    }
  } finally {
    close();
  }
}

export function rerunJob(config: ResolvedConfig, id: string, user: string | undefined): string {
  const { jobs, close } = openJobs(config);
  try {
    const original = jobs.getJob(id);
    if (!original) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
    return jobs.createJob({
      pipeline: original.pipeline,
      pipelineHash: original.pipelineHash,
      triggerOn: 'rerun',
      triggerUid: original.triggerUid,
      inputs: original.inputs,
      priority: original.priority,
      maxAttempts: original.maxAttempts,
      backoffSeconds: original.backoffSeconds,
      rerunOf: original.id,
      createdBy: user,
    });
  } finally {
    close();
  }
}

/** Cancels a queued or running job; a running server stops it within a second. */
export function cancelJob(config: ResolvedConfig, id: string): boolean {
  const { jobs, close } = openJobs(config);
  try {
    if (!jobs.getJob(id)) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
    return jobs.cancelJob(id);
  } finally {
    close();
  }
}

export function forceComplete(config: ResolvedConfig, level: 'series' | 'study', uid: string): number {
  const { jobs, close } = openJobs(config);
  try {
    return jobs.forceComplete(level, uid);
  } finally {
    close();
  }
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
