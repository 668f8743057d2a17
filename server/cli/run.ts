import cliProgress from 'cli-progress';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import type { JobRecord } from '../../core/store/job-queue.ts';
import { findApi, type ApiClient, type ApiEvent, type ApiFlags } from './api-client.ts';

const ENDED = new Set(['succeeded', 'failed', 'cancelled']);
// Events carry progress; the job's own record is read now and then as well, in case the stream drops.
const POLL_MS = 2000;

/**
 * Starts a job through `start` and follows it to its end with a progress bar on stderr, from
 * the server's live events. The events are opened first, so a quick job's end is not missed.
 */
export async function startAndFollow(api: ApiClient, start: () => Promise<string>, onStarted: (jobId: string) => void): Promise<JobRecord> {
  const controller = new AbortController();
  const buffered: ApiEvent[] = [];
  let handle: ((e: ApiEvent) => void) | undefined;
  await api.events((e) => (handle ? handle(e) : buffered.push(e)), controller.signal);
  const jobId = await start();
  onStarted(jobId);
  const bar = new cliProgress.SingleBar(
    { format: `job ${jobId.slice(0, 13)}… [{bar}] {percentage}% {message}`, stream: process.stderr, hideCursor: true },
    cliProgress.Presets.shades_classic,
  );
  bar.start(100, 0, { message: 'queued' });
  try {
    const job = await new Promise<JobRecord>((resolve, reject) => {
      const finish = () =>
        api.get<JobRecord>(`/api/jobs/${encodeURIComponent(jobId)}`).then((j) => {
          if (!ENDED.has(j.status)) return;
          clearInterval(poll);
          resolve(j);
        }, reject);
      handle = (e) => {
        if (e.event !== 'job' || e.data.jobId !== jobId) return;
        if (e.data.type === 'progress') bar.update(Math.round(e.data.progress * 100), { message: e.data.message ?? '' });
        else if (e.data.type === 'started') bar.update({ message: 'running' });
        else if (e.data.type === 'finished') void finish();
      };
      buffered.splice(0).forEach(handle);
      const poll = setInterval(() => void finish(), POLL_MS);
      void finish();
    });
    bar.update(job.status === 'succeeded' ? 100 : Math.round(job.progress * 100), { message: job.status });
    return job;
  } finally {
    bar.stop();
    controller.abort();
  }
}

export function reportEnd(job: JobRecord): void {
  const took =
    job.startedAt && job.finishedAt ? ` in ${((Date.parse(job.finishedAt) - Date.parse(job.startedAt)) / 1000).toFixed(2)} s` : '';
  console.error(`job ${job.id} ${job.status}${took}${job.error ? `: ${job.errorCode}: ${job.error}` : ''}`);
  if (job.status !== 'succeeded') process.exitCode = 1;
}

/** `dicomflow run PIPELINE --study UID | --series UID [--db DB] [--wait]`: a manual run, through the API. */
export async function runCommand(
  config: ResolvedConfig,
  c: ApiFlags & { pipeline: string; database?: string; study?: string; series?: string; wait: boolean },
): Promise<void> {
  const api = findApi(config, c);
  if (!api)
    throw dfError(
      'DF_ERR_SERVER_UNREACHABLE',
      `no server runs on ${config.dataDir}: start it with \`dicomflow serve\`, or pass --server URL`,
    );
  const body = { database: c.database ?? config.defaultDatabase, ...(c.study ? { study: c.study } : { series: c.series }) };
  const start = async () => (await api.post<{ jobId: string }>(`/api/pipelines/${encodeURIComponent(c.pipeline)}/run`, body)).jobId;
  if (!c.wait) {
    console.log(await start());
    return;
  }
  reportEnd(await startAndFollow(api, start, (id) => console.log(id)));
}
