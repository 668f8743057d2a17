import { useEffect, useState } from 'preact/hooks';
import { api, download, type Job, type Me, type Output } from './api.ts';
import { bytes, seconds, time } from './format.ts';
import { ProgressBar } from './Jobs.tsx';
import { TablePlots } from './LinePlot.tsx';

const RUNS_JOBS = ['admin', 'manager', 'operator'];

/** One job: steps with timings and logs, outputs to download, plots of its tables, rerun and cancel. */
export function JobDetail({ id, me, live, onError }: { id: string; me: Me; live?: Partial<Job>; onError: (message: string) => void }) {
  const [job, setJob] = useState<Job>();
  const [outputs, setOutputs] = useState<Output[]>([]);
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const [j, o] = await Promise.all([api.job(id), api.outputs(id)]);
      setJob(j);
      setOutputs(o);
    } catch (err) {
      onError((err as Error).message);
    }
  };
  useEffect(() => {
    setJob(undefined);
    setOutputs([]);
    void load();
  }, [id]);
  // A live status change (started, finished) brings the steps, logs and outputs with it.
  useEffect(() => {
    if (job && live?.status && live.status !== job.status) void load();
  }, [live?.status]);

  if (!job) return <section class="panel">Loading job {id}…</section>;
  const shown = { ...job, ...(live ?? {}) };
  const act = async (what: 'rerun' | 'cancel') => {
    setBusy(true);
    try {
      if (what === 'rerun') {
        const { jobId } = await api.rerun(job.id);
        location.hash = `#/jobs/${jobId}`;
      } else {
        await api.cancel(job.id);
        await load();
      }
    } catch (err) {
      onError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const mayAct = RUNS_JOBS.includes(me.role);
  const ended = ['succeeded', 'failed', 'cancelled'].includes(shown.status);
  return (
    <section class="panel job" data-testid="job-detail" data-job-id={job.id} data-status={shown.status}>
      <h2>
        Job <code>{job.id}</code> · {job.pipeline} <span class={`badge ${shown.status}`}>{shown.status}</span>
      </h2>
      <ProgressBar job={shown} />
      {shown.progressMessage && !ended && <p class="hint">{shown.progressMessage}</p>}
      <dl class="facts">
        <dt>Trigger</dt>
        <dd>
          {job.triggerOn}
          {job.triggerUid ? ` ${job.triggerUid}` : ''}
        </dd>
        <dt>Inputs</dt>
        <dd>{job.inputs.length} instance(s)</dd>
        <dt>Created</dt>
        <dd>
          {time(job.createdAt)}
          {job.createdBy ? ` by ${job.createdBy}` : ''}
        </dd>
        {job.pipelineVersion && (
          <>
            <dt>Pipeline version</dt>
            <dd>
              {job.pipelineVersion}
              {job.pipelineVersionIsCurrent ? ' (the one loaded now)' : job.currentPipelineVersion ? ` (edited since: loaded now is ${job.currentPipelineVersion})` : ' (the pipeline is not loaded now)'}
            </dd>
          </>
        )}
        <dt>Attempt</dt>
        <dd>
          {job.attempts} of {job.maxAttempts}
        </dd>
        {job.rerunOf && (
          <>
            <dt>Rerun of</dt>
            <dd>
              <a href={`#/jobs/${job.rerunOf}`}>{job.rerunOf}</a>
            </dd>
          </>
        )}
        {job.finishedAt && (
          <>
            <dt>Took</dt>
            <dd>{seconds(job.startedAt, job.finishedAt)}</dd>
          </>
        )}
      </dl>
      {job.error && (
        <p class="error">
          {job.errorCode}: {job.error}
        </p>
      )}
      {mayAct && (
        <div class="actions">
          <button type="button" onClick={() => act('rerun')} disabled={busy}>
            Rerun
          </button>
          <button type="button" onClick={() => act('cancel')} disabled={busy || ended}>
            Cancel
          </button>
        </div>
      )}
      <h3>Steps</h3>
      <ol class="steps">
        {(job.steps ?? []).map((s) => (
          <li key={`${s.attempt}-${s.index}`}>
            <strong>{s.id}</strong> ({s.plugin}) <span class={`badge ${s.status}`}>{s.status}</span> {s.durationMs !== undefined && `${s.durationMs.toFixed(0)} ms`}
            {s.attempt > 1 && ` · attempt ${s.attempt}`}
            {s.error && <div class="error">{s.error}</div>}
            {s.log.length > 0 && (
              <pre class="log" data-testid="log">
                {s.log.map((l) => `${time(l.at)} ${l.level.padEnd(5)} ${l.message}${l.data ? ` ${JSON.stringify(l.data)}` : ''}`).join('\n')}
              </pre>
            )}
          </li>
        ))}
      </ol>
      {outputs.length > 0 && (
        <>
          <h3>Results</h3>
          {outputs
            .filter((o) => o.kind === 'table' && o.rows)
            .map((o) => (
              <TablePlots key={o.index} name={o.name ?? `table ${o.index}`} rows={o.rows!} />
            ))}
          <ul class="outputs">
            {outputs.map((o) => (
              <li key={o.index}>
                {o.kind} <strong>{o.name ?? (o.path ?? '').split('/').pop()}</strong> {o.description && `— ${o.description}`} {o.size !== undefined && `(${bytes(o.size)})`}{' '}
                {o.downloadable && (
                  <button type="button" class="link" onClick={() => download(job.id, o).catch((err) => onError(err.message))}>
                    download
                  </button>
                )}
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}
