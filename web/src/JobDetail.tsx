import { useEffect, useState } from 'preact/hooks';
import { api, download, downloadArchive, session, type Job, type JobSummary, type LogLine, type Me, type Output } from './api.ts';
import { dateTime } from './Arrivals.tsx';
import { bytes, personName, seconds, time } from './format.ts';
import { ProgressBar } from './Jobs.tsx';
import { TablePlots } from './LinePlot.tsx';

const RUNS_JOBS = ['admin', 'manager', 'operator'];

/** One job: steps with timings and logs, outputs to download, plots of its tables, rerun and cancel. */
export function JobDetail({ id, me, live, onError }: { id: string; me: Me; live?: Partial<Job>; onError: (message: string) => void }) {
  const [job, setJob] = useState<Job>();
  const [outputs, setOutputs] = useState<Output[]>([]);
  const [summary, setSummary] = useState<JobSummary>();
  const [busy, setBusy] = useState(false);

  const load = async () => {
    try {
      const [j, o, sum] = await Promise.all([api.job(id), api.outputs(id), api.jobSummary(id)]);
      setJob(j);
      setOutputs(o);
      setSummary(sum);
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
        <dd>
          {job.inputs.length} instance(s){summary ? ` in ${summary.inputs.series.length} series` : ''}
        </dd>
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
              {job.pipelineVersionIsCurrent
                ? ' (the one loaded now)'
                : job.currentPipelineVersion
                  ? ` (edited since: loaded now is ${job.currentPipelineVersion})`
                  : ' (the pipeline is not loaded now)'}
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
      <h3>Inputs</h3>
      {summary && (
        <div data-testid="inputs">
          <p>
            {summary.inputs.instances} instance(s) in {summary.inputs.series.length} series
          </p>
          {summary.inputs.series.length > 0 && (
            <table>
              <thead>
                <tr>
                  <th>Patient</th>
                  <th>Modality</th>
                  <th>Series</th>
                  <th class="number">Instances</th>
                  <th>Received</th>
                  <th>Database</th>
                </tr>
              </thead>
              <tbody>
                {summary.inputs.series.map((s) => (
                  <tr key={s.seriesInstanceUid} data-series={s.seriesInstanceUid}>
                    <td>{personName(s.attributes.PatientName) || s.attributes.PatientID}</td>
                    <td>{s.attributes.Modality}</td>
                    <td title={s.seriesInstanceUid}>
                      {s.attributes.SeriesNumber ? `#${s.attributes.SeriesNumber} ` : ''}
                      {s.attributes.SeriesDescription ?? ''}
                    </td>
                    <td class="number">{s.instances}</td>
                    <td>
                      {dateTime(s.firstReceivedAt)}
                      {s.lastReceivedAt !== s.firstReceivedAt ? ` – ${dateTime(s.lastReceivedAt).slice(11)}` : ''}
                    </td>
                    <td>{s.database ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
        </div>
      )}
      <h3>Steps</h3>
      <ol class="steps">
        {(job.steps ?? []).map((s) => {
          const warnings = s.log.filter((l) => l.level === 'warn' || l.level === 'error').length;
          return (
            <li key={`${s.attempt}-${s.index}`}>
              <strong>{s.id}</strong> ({s.plugin}) <span class={`badge ${s.status}`}>{s.status}</span>{' '}
              {s.durationMs !== undefined && `${s.durationMs.toFixed(0)} ms`}
              {s.attempt > 1 && ` · attempt ${s.attempt}`} · {s.log.length} log line(s)
              {warnings > 0 && <span class="warning"> · {warnings} warning(s)</span>} · {s.outputs.length} output(s)
              {s.error && <div class="error">{s.error}</div>}
            </li>
          );
        })}
      </ol>
      {outputs.length > 0 && summary && (
        <>
          <h3>Results</h3>
          <div class="actions">
            {(summary.outputs.files.length > 0 || summary.outputs.instances.count > 0) && (
              <button type="button" data-testid="archive" onClick={() => downloadArchive(job.id).catch((err) => onError(err.message))}>
                Download all ({summary.outputs.files.length} file(s), {summary.outputs.instances.count} instance(s)) as .tar
              </button>
            )}
          </div>
          {outputs
            .filter((o) => o.kind === 'table' && o.rows)
            .map((o) => (
              <TablePlots key={o.index} name={o.name ?? `table ${o.index}`} rows={o.rows!} />
            ))}
          <PngOutputs jobId={job.id} outputs={outputs.filter((o) => o.kind === 'file' && o.downloadable && /\.png$/i.test(o.path ?? ''))} />
          <ul class="outputs" data-testid="outputs">
            {summary.outputs.files.map((f) => {
              const o = outputs[f.index];
              return (
                <li key={f.index} data-kind="file">
                  file <strong>{f.name}</strong> <span class="hint">({f.step})</span> {f.description && `— ${f.description}`}{' '}
                  {o?.size !== undefined && `(${bytes(o.size)})`}{' '}
                  {o?.downloadable && (
                    <button type="button" class="link" onClick={() => download(job.id, o).catch((err) => onError(err.message))}>
                      download
                    </button>
                  )}
                </li>
              );
            })}
            {summary.outputs.instances.groups.map((g) => (
              <li key={`${g.step}-${g.firstIndex}`} data-kind="instances" data-count={g.count}>
                <strong>{g.count}</strong> derived instance(s) from {g.step}
                {g.description ? ` — ${g.description}` : ''}
              </li>
            ))}
            {summary.outputs.tables.map((t) => (
              <li key={t.index} data-kind="table">
                table <strong>{t.name}</strong> <span class="hint">({t.step})</span> · {t.rows} row(s)
              </li>
            ))}
          </ul>
        </>
      )}
      <JobLog jobId={job.id} total={summary?.log.lines ?? 0} version={shown.status} onError={onError} />
    </section>
  );
}

const LOG_PAGE = 200;

/** The job's log, a page at a time (a job over a thousand instances may log a line for each). */
function JobLog({ jobId, total, version, onError }: { jobId: string; total: number; version: string; onError: (m: string) => void }) {
  const [offset, setOffset] = useState(0);
  const [level, setLevel] = useState('');
  const [page, setPage] = useState<{ lines: LogLine[]; total: number }>({ lines: [], total: 0 });
  useEffect(() => {
    api.jobLog(jobId, offset, LOG_PAGE, level || undefined).then(setPage, (err) => onError(err.message));
  }, [jobId, offset, level, version, total]);
  if (total === 0) return null;
  const last = Math.min(offset + LOG_PAGE, page.total);
  return (
    <div data-testid="job-log">
      <h3>Log</h3>
      <div class="pager">
        <select
          aria-label="Level"
          value={level}
          onChange={(e) => {
            setLevel(e.currentTarget.value);
            setOffset(0);
          }}
        >
          <option value="">all levels</option>
          <option value="info">info and above</option>
          <option value="warn">warnings and errors</option>
          <option value="error">errors</option>
        </select>
        <button type="button" disabled={offset === 0} onClick={() => setOffset(Math.max(0, offset - LOG_PAGE))}>
          ‹ newer
        </button>
        <span data-testid="log-range">
          lines {page.total === 0 ? 0 : offset + 1}–{last} of {page.total}
        </span>
        <button type="button" disabled={last >= page.total} onClick={() => setOffset(offset + LOG_PAGE)}>
          older ›
        </button>
      </div>
      <pre class="log" data-testid="log">
        {page.lines
          .map(
            (l) =>
              `${time(l.at)} ${l.level.padEnd(5)} [${l.step}${l.attempt > 1 ? ` #${l.attempt}` : ''}] ${l.message}${l.data ? ` ${JSON.stringify(l.data)}` : ''}`,
          )
          .join('\n')}
      </pre>
    </div>
  );
}

/** The PNG files a step wrote (motion plots, TAC plots), shown as the server drew them. */
function PngOutputs({ jobId, outputs }: { jobId: string; outputs: Output[] }) {
  const [urls, setUrls] = useState<Record<number, string>>({});
  useEffect(() => {
    let made: string[] = [];
    let stop = false;
    void (async () => {
      for (const o of outputs.slice(0, 12)) {
        const res = await fetch(`/api/jobs/${encodeURIComponent(jobId)}/outputs/${o.index}`, {
          headers: { authorization: `Bearer ${session.token}` },
        });
        if (!res.ok || stop) continue;
        const url = URL.createObjectURL(await res.blob());
        made.push(url);
        setUrls((u) => ({ ...u, [o.index]: url }));
      }
    })();
    return () => {
      stop = true;
      made.forEach((u) => URL.revokeObjectURL(u));
      made = [];
    };
  }, [jobId, outputs.map((o) => o.index).join(',')]);
  if (outputs.length === 0) return null;
  return (
    <div class="png-plots" data-testid="png-plots">
      {outputs.slice(0, 12).map((o) => (
        <figure key={o.index}>
          {urls[o.index] ? (
            <img src={urls[o.index]} alt={o.description ?? o.name ?? 'plot'} data-index={o.index} />
          ) : (
            <span class="hint">loading…</span>
          )}
          <figcaption>{o.description ?? (o.path ?? '').split('/').pop()}</figcaption>
        </figure>
      ))}
    </div>
  );
}
