import path from 'node:path';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { JobRecord } from '../../core/jobs/job-store.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { SqlJobs } from '../../core/store/sql/sql-jobs.ts';
import { viaApiOr, type ApiClient, type ApiFlags } from './api-client.ts';

/**
 * Job commands: through the running server's HTTP API when one runs on the data directory
 * (the same rights and audit log as the web page), else on the data directory directly (SQLite
 * in WAL mode; a server started later picks the new jobs up).
 */
function openJobs(config: ResolvedConfig): { jobs: SqlJobs; close: () => void } {
  const index = new SqlIndex(openIndexDatabase(config, { existing: true }));
  return { jobs: new SqlJobs(index.connection), close: () => index.close() };
}

const seconds = (j: JobRecord) =>
  j.startedAt && j.finishedAt ? ((Date.parse(j.finishedAt) - Date.parse(j.startedAt)) / 1000).toFixed(2) : '';

/** Pages through /api/jobs (at most 500 a page) until `limit` jobs. */
async function listViaApi(api: ApiClient, options: { status?: string; pipeline?: string; limit: number }): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  let before: string | undefined;
  while (out.length < options.limit) {
    const query = new URLSearchParams({ limit: String(Math.min(500, options.limit - out.length)) });
    if (options.status) query.set('status', options.status);
    if (options.pipeline) query.set('pipeline', options.pipeline);
    if (before) query.set('before', before);
    const page = await api.get<{ jobs: JobRecord[]; next?: string }>(`/api/jobs?${query}`);
    out.push(...page.jobs);
    if (!page.next) break;
    before = page.next;
  }
  return out;
}

export async function listJobs(config: ResolvedConfig, options: ApiFlags & { json: boolean; status?: string; pipeline?: string; limit?: number }): Promise<void> {
  const limit = options.limit ?? 50;
  const list = await viaApiOr(config, options, (api) => listViaApi(api, { ...options, limit }), () => {
    const { jobs, close } = openJobs(config);
    try {
      return jobs.listJobs({ status: options.status as JobRecord['status'] | undefined, pipeline: options.pipeline, limit });
    } finally {
      close();
    }
  });
  if (options.json) {
    console.log(JSON.stringify(list.map((j) => ({ ...j, durationSeconds: seconds(j) === '' ? null : Number(seconds(j)) })), null, 2));
    return;
  }
  const rows = list.map((j) => [j.id, j.pipeline, j.status, `${Math.round(j.progress * 100)}%`, String(j.inputs.length), j.node ?? '', j.createdAt, seconds(j), j.error ?? j.stopReason ?? '']);
  printTable(['id', 'pipeline', 'status', 'progress', 'inputs', 'node', 'created', 'seconds', 'note'], rows);
}

export async function showJob(config: ResolvedConfig, id: string, json: boolean, flags: ApiFlags = {}): Promise<void> {
  const job = await viaApiOr(config, flags, (api) => api.get<JobRecord>(`/api/jobs/${encodeURIComponent(id)}`), () => {
    const { jobs, close } = openJobs(config);
    try {
      const found = jobs.getJob(id);
      if (!found) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
      return found;
    } finally {
      close();
    }
  });
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
}

/**
 * Through the API the job's creator is the token's user; --user (`onBehalfOf`) is for admins,
 * as the CLI with the data directory's admin token is. Directly, --user or the login name.
 */
export async function rerunJob(config: ResolvedConfig, id: string, user: string | undefined, flags: ApiFlags = {}, defaultUser?: string): Promise<string> {
  return viaApiOr(
    config,
    flags,
    async (api) => (await api.post<{ jobId: string }>(`/api/jobs/${encodeURIComponent(id)}/rerun`, user ? { onBehalfOf: user } : {})).jobId,
    () => rerunDirect(config, id, user ?? defaultUser),
  );
}

function rerunDirect(config: ResolvedConfig, id: string, user: string | undefined): string {
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
export async function cancelJob(config: ResolvedConfig, id: string, flags: ApiFlags = {}): Promise<boolean> {
  return viaApiOr(config, flags, async (api) => (await api.post<{ cancelled: boolean }>(`/api/jobs/${encodeURIComponent(id)}/cancel`)).cancelled, () => cancelDirect(config, id));
}

function cancelDirect(config: ResolvedConfig, id: string): boolean {
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

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd();
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
