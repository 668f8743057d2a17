import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import { newJobOf } from '../../core/jobs/new-job.ts';
import type { JobRecord } from '../../core/store/job-queue.ts';
import { summariseJob, type JobSummary } from '../../core/jobs/job-summary.ts';
import { PipelineVersions, type RerunVersion } from '../../core/jobs/pipeline-versions.ts';
import { PipelineSet } from '../../core/trigger/pipeline-set.ts';
import { configuredPlugins } from '../../core/plugin-registry.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import type { JobStores } from '../../core/store/job-store.ts';
import { sqlJobStores } from '../../core/store/sql/sql-job-stores.ts';
import { viaApiOr, type ApiClient, type ApiFlags } from './api-client.ts';

/**
 * Job commands: through the running server's HTTP API when one runs on the data directory
 * (the same rights and audit log as the web page), else on the data directory directly (SQLite
 * in WAL mode; a server started later picks the new jobs up).
 */
async function openJobs(config: ResolvedConfig): Promise<JobStores & { close: () => Promise<void> }> {
  const db = await openIndexDatabase(config, { existing: true });
  return { ...sqlJobStores(db), close: () => db.close() };
}

const seconds = (j: JobRecord) =>
  j.startedAt && j.finishedAt ? ((Date.parse(j.finishedAt) - Date.parse(j.startedAt)) / 1000).toFixed(2) : '';

/** Pages through /api/jobs (at most 500 a page) until `limit` jobs. */
/** The list's filters, as the CLI's options and /api/jobs's query name them. */
export interface JobListFilter {
  status?: string;
  pipeline?: string;
  trigger?: string;
  patient?: string;
  study?: string;
  since?: string;
  until?: string;
}

async function listViaApi(api: ApiClient, options: JobListFilter & { limit: number }): Promise<JobRecord[]> {
  const out: JobRecord[] = [];
  let before: string | undefined;
  while (out.length < options.limit) {
    const query = new URLSearchParams({ limit: String(Math.min(500, options.limit - out.length)) });
    if (options.status) query.set('status', options.status);
    if (options.pipeline) query.set('pipeline', options.pipeline);
    if (options.trigger) query.set('triggerOn', options.trigger);
    for (const key of ['patient', 'study', 'since', 'until'] as const) if (options[key]) query.set(key, options[key]!);
    if (before) query.set('before', before);
    const page = await api.get<{ jobs: JobRecord[]; next?: string }>(`/api/jobs?${query}`);
    out.push(...page.jobs);
    if (!page.next) break;
    before = page.next;
  }
  return out;
}

export async function listJobs(
  config: ResolvedConfig,
  options: ApiFlags & JobListFilter & { json: boolean; limit?: number },
): Promise<void> {
  const limit = options.limit ?? 50;
  const list = await viaApiOr(
    config,
    options,
    (api) => listViaApi(api, { ...options, limit }),
    async () => {
      const { queue: jobs, close } = await openJobs(config);
      try {
        const iso = (t: string | undefined) => {
          if (t === undefined) return undefined;
          const at = new Date(t);
          if (Number.isNaN(at.getTime()))
            throw dfError('DF_ERR_USAGE', `not a time: "${t}" (an ISO 8601 date or date-time, e.g. 2026-03-01T08:00:00Z)`);
          return at.toISOString();
        };
        if (options.trigger && !['instance', 'series', 'study', 'manual', 'rerun'].includes(options.trigger)) {
          throw dfError('DF_ERR_USAGE', `--trigger is one of instance, series, study, manual, rerun (not "${options.trigger}")`);
        }
        return await jobs.listJobs({
          status: options.status as JobRecord['status'] | undefined,
          pipeline: options.pipeline,
          triggerOn: options.trigger as JobRecord['triggerOn'] | undefined,
          patient: options.patient,
          study: options.study,
          since: iso(options.since),
          until: iso(options.until),
          limit,
        });
      } finally {
        await close();
      }
    },
  );
  if (options.json) {
    console.log(
      JSON.stringify(
        list.map((j) => ({ ...j, durationSeconds: seconds(j) === '' ? null : Number(seconds(j)) })),
        null,
        2,
      ),
    );
    return;
  }
  const rows = list.map((j) => [
    j.id,
    j.pipeline,
    j.status,
    `${Math.round(j.progress * 100)}%`,
    String(j.inputs.length),
    j.node ?? '',
    j.createdAt,
    seconds(j),
    j.error ?? j.stopReason ?? '',
  ]);
  printTable(['id', 'pipeline', 'status', 'progress', 'inputs', 'node', 'created', 'seconds', 'note'], rows);
}

/** A job as GET /api/jobs/ID shows it: with its pipeline version beside the one loaded now. */
type JobDetail = JobRecord & { pipelineVersion?: string; currentPipelineVersion?: string; pipelineVersionIsCurrent?: boolean };

export async function showJob(
  config: ResolvedConfig,
  id: string,
  options: { json: boolean; all: boolean },
  flags: ApiFlags = {},
): Promise<void> {
  const { job, summary } = await viaApiOr(
    config,
    flags,
    async (api) => {
      const path = `/api/jobs/${encodeURIComponent(id)}`;
      const [detail, sum] = await Promise.all([api.get<JobDetail>(path), api.get<JobSummary>(`${path}/summary`)]);
      return { job: detail, summary: sum };
    },
    async () => {
      const { queue: jobs, close } = await openJobs(config);
      try {
        const found = await jobs.getJob(id);
        if (!found) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
        const detail: JobDetail = { ...found, ...(found.pipelineHash !== undefined && { pipelineVersion: found.pipelineHash }) };
        return { job: detail, summary: summariseJob(found, await jobs.inputSeries(id)) };
      } finally {
        await close();
      }
    },
  );
  if (options.json) {
    console.log(JSON.stringify({ ...job, summary }, null, 2));
    return;
  }
  console.log(
    `job ${job.id}  pipeline ${job.pipeline}  ${job.status}  ${Math.round(job.progress * 100)}%  attempt ${job.attempts}/${job.maxAttempts}`,
  );
  console.log(
    `trigger ${job.triggerOn}${job.triggerUid ? ` ${job.triggerUid}` : ''}  from ${job.contributors.callingAeTitles.join(', ') || '-'} (${job.contributors.peerAddresses.join(', ') || '-'})`,
  );
  if (job.pipelineVersion) console.log(`pipeline version ${job.pipelineVersion}${versionNote(job)}`);
  if (job.rerunOf) console.log(`rerun of ${job.rerunOf}`);
  if (job.error) console.log(`error ${job.errorCode}: ${job.error}`);
  printSummary(job, summary, options.all);
}

const SHORT_LOG_LINES = 30;

/**
 * The same summary as the job page: inputs per series, steps with their log counts, files
 * listed, derived instances counted. `all` adds every log line and every output.
 */
function printSummary(job: JobDetail, summary: JobSummary, all: boolean): void {
  const series = summary.inputs.series;
  console.log(`inputs ${summary.inputs.instances} instance(s) in ${series.length} series`);
  for (const s of series) {
    const a = s.attributes;
    const who = [a.PatientName, a.PatientID && `(${a.PatientID})`].filter(Boolean).join(' ');
    console.log(
      `  ${String(s.instances).padStart(6)}  ${a.Modality ?? '--'}  #${a.SeriesNumber ?? '-'} ${a.SeriesDescription ?? ''}  ${who}  ${s.database ?? ''}  ${s.seriesInstanceUid}`.replace(
        / {3,}/g,
        '  ',
      ),
    );
  }
  console.log('steps');
  for (const s of job.steps ?? []) {
    const warnings = s.log.filter((l) => l.level === 'warn' || l.level === 'error').length;
    const timing = s.durationMs !== undefined ? ` ${s.durationMs.toFixed(1)} ms` : '';
    console.log(
      `  [${s.attempt}] ${s.index + 1}. ${s.id} (${s.plugin}) ${s.status}${timing}  ${s.log.length} log line(s)${warnings ? `, ${warnings} warning(s)/error(s)` : ''}${s.error ? ` — ${s.error}` : ''}`,
    );
    // A short log is shown whole; a long one by its warnings and errors (the first five).
    const shown =
      all || summary.log.lines <= SHORT_LOG_LINES ? s.log : s.log.filter((l) => l.level === 'warn' || l.level === 'error').slice(0, 5);
    for (const line of shown)
      console.log(`        ${line.at} ${line.level} ${line.message}${line.data ? ` ${JSON.stringify(line.data)}` : ''}`);
    if (all) for (const o of s.outputs) console.log(`        output ${o.kind} ${o.path ?? o.name ?? ''}`);
  }
  const { files, instances, tables } = summary.outputs;
  console.log(`outputs ${files.length} file(s), ${instances.count} derived instance(s), ${tables.length} table(s)`);
  for (const f of files) console.log(`  file  ${f.step}/${f.name}${f.description ? ` — ${f.description}` : ''}`);
  for (const g of instances.groups)
    console.log(`  ${String(g.count).padStart(4)} instance(s) from ${g.step}${g.description ? ` — ${g.description}` : ''}`);
  for (const t of tables) console.log(`  table ${t.step}/${t.name} (${t.rows} rows)`);
  if (!all && summary.log.lines > SHORT_LOG_LINES)
    console.log(`(${summary.log.lines} log lines: --all shows them and every output, --json everything as JSON)`);
}

function versionNote(job: JobDetail): string {
  if (job.pipelineVersionIsCurrent === true) return ' (the one loaded now)';
  if (job.pipelineVersionIsCurrent === false)
    return job.currentPipelineVersion
      ? ` (edited since: loaded now is ${job.currentPipelineVersion})`
      : ' (the pipeline is not loaded now)';
  return '';
}

/**
 * Through the API the job's creator is the token's user; --user (`onBehalfOf`) is for admins,
 * as the CLI with the data directory's admin token is. Directly, --user or the login name.
 * The rerun runs the original's pipeline version, or with `current` the pipeline as loaded now.
 */
export async function rerunJob(
  config: ResolvedConfig,
  id: string,
  options: { user?: string; defaultUser?: string; pipelineVersion?: RerunVersion },
  flags: ApiFlags = {},
): Promise<{ jobId: string; pipelineVersion: string }> {
  return viaApiOr(
    config,
    flags,
    (api) =>
      api.post<{ jobId: string; pipelineVersion: string }>(
        `/api/jobs/${encodeURIComponent(id)}/rerun`,
        rerunBody(options.user, options.pipelineVersion),
      ),
    () => rerunDirect(config, id, options.user ?? options.defaultUser, options.pipelineVersion ?? 'original'),
  );
}

export const rerunBody = (user: string | undefined, pipelineVersion: RerunVersion | undefined) => ({
  ...(user ? { onBehalfOf: user } : {}),
  ...(pipelineVersion ? { pipelineVersion } : {}),
});

/** Without a server: the pipelines are loaded here to find the version (the server loads the same files). */
async function rerunDirect(
  config: ResolvedConfig,
  id: string,
  user: string | undefined,
  version: RerunVersion,
): Promise<{ jobId: string; pipelineVersion: string }> {
  const env = {
    databases: config.databases.map((d) => d.name),
    remoteNodes: config.remoteNodes.map((n) => n.aeTitle),
    printers: config.printers.map((p) => p.name),
  };
  const pipelines = new PipelineSet(config.pipelinesDir, await configuredPlugins(config), env, { defaultPipeline: config.defaultPipeline });
  pipelines.reload();
  const { queue: jobs, close } = await openJobs(config);
  try {
    const original = await jobs.getJob(id);
    if (!original) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
    const p = await new PipelineVersions(pipelines, jobs).forRerun(original, version);
    const jobId = await jobs.createJob(
      newJobOf(p, { triggerOn: 'rerun', triggerUid: original.triggerUid, inputs: original.inputs, rerunOf: original.id, createdBy: user }),
    );
    return { jobId, pipelineVersion: p.hash };
  } finally {
    await close();
  }
}

/** Cancels a queued or running job; a running server stops it within a second. */
export async function cancelJob(config: ResolvedConfig, id: string, flags: ApiFlags = {}): Promise<boolean> {
  return viaApiOr(
    config,
    flags,
    async (api) => (await api.post<{ cancelled: boolean }>(`/api/jobs/${encodeURIComponent(id)}/cancel`)).cancelled,
    () => cancelDirect(config, id),
  );
}

async function cancelDirect(config: ResolvedConfig, id: string): Promise<boolean> {
  const { queue: jobs, close } = await openJobs(config);
  try {
    if (!(await jobs.getJob(id))) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${id} in ${config.dataDir}`);
    return await jobs.cancelJob(id);
  } finally {
    await close();
  }
}

export async function forceComplete(config: ResolvedConfig, level: 'series' | 'study', uid: string): Promise<number> {
  const { groups, close } = await openJobs(config);
  try {
    return await groups.forceComplete(level, uid);
  } finally {
    await close();
  }
}

export function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}
