import { useState } from 'preact/hooks';
import type { Job, JobFilter } from './api.ts';
import { personName, seconds, time } from './format.ts';

export function ProgressBar({ job }: { job: Pick<Job, 'status' | 'progress' | 'progressMessage'> }) {
  const percent = Math.round((job.status === 'succeeded' ? 1 : job.progress) * 100);
  return (
    <div
      class={`progress ${job.status}`}
      role="progressbar"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={percent}
      title={job.progressMessage}
    >
      <div class="bar" style={{ width: `${percent}%` }} />
      <span>{percent} %</span>
    </div>
  );
}

/** A row of the list: one job, or consecutive instance jobs of one pipeline on one series. */
export type JobRow = { kind: 'job'; job: Job } | { kind: 'group'; pipeline: string; series: string; jobs: Job[] };

/**
 * Instance-level pipelines make a job per object: the instance jobs of one pipeline for one
 * series are one row (with counts by status) as long as no other kind of job comes between
 * them, so a series of 400 slices is one line per pipeline, not 400 (several instance
 * pipelines, store-received among them, interleave their jobs).
 */
export function groupJobs(jobs: Job[]): JobRow[] {
  const rows: JobRow[] = [];
  let open = new Map<string, number>();
  for (const job of jobs) {
    const series = job.triggerOn === 'instance' ? job.subject?.seriesInstanceUid : undefined;
    if (!series) {
      open = new Map();
      rows.push({ kind: 'job', job });
      continue;
    }
    const key = `${job.pipeline}\u0000${series}`;
    const at = open.get(key);
    const row = at === undefined ? undefined : rows[at];
    if (row?.kind === 'group') row.jobs.push(job);
    else if (row?.kind === 'job') rows[at!] = { kind: 'group', pipeline: job.pipeline, series, jobs: [row.job, job] };
    else {
      open.set(key, rows.length);
      rows.push({ kind: 'job', job });
    }
  }
  return rows;
}

const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
const TRIGGERS = ['instance', 'series', 'study', 'manual', 'rerun'] as const;

const subjectText = (j: Job) => {
  const s = j.subject;
  if (!s) return '';
  const who = personName(s.patientName) || s.patientId || '';
  const what = [s.modality, s.seriesDescription].filter(Boolean).join(' ');
  return [who, j.triggerOn === 'study' ? '' : what].filter(Boolean).join(' · ');
};

/** A `datetime-local` value (local time, no zone) as an ISO time, or undefined when empty. */
const isoOf = (local: string) => (local ? new Date(local).toISOString() : undefined);

function Filters({ filter, pipelines, onFilter }: { filter: JobFilter; pipelines: string[]; onFilter: (f: JobFilter) => void }) {
  const [patient, setPatient] = useState(filter.patient ?? '');
  const [study, setStudy] = useState(filter.study ?? '');
  const set = (patch: Partial<JobFilter>) => {
    const next: JobFilter = { ...filter, ...patch };
    for (const k of Object.keys(next) as (keyof JobFilter)[]) if (!next[k]) delete next[k];
    onFilter(next);
  };
  return (
    <form
      class="filters"
      data-testid="job-filters"
      onSubmit={(e) => {
        e.preventDefault();
        set({ patient: patient.trim() || undefined, study: study.trim() || undefined });
      }}
    >
      <select
        name="pipeline"
        aria-label="Pipeline"
        value={filter.pipeline ?? ''}
        onChange={(e) => set({ pipeline: e.currentTarget.value || undefined })}
      >
        <option value="">all pipelines</option>
        {pipelines.map((p) => (
          <option key={p} value={p}>
            {p}
          </option>
        ))}
      </select>
      <select
        name="status"
        aria-label="Status"
        value={filter.status ?? ''}
        onChange={(e) => set({ status: (e.currentTarget.value || undefined) as JobFilter['status'] })}
      >
        <option value="">any status</option>
        {STATUSES.map((s) => (
          <option key={s}>{s}</option>
        ))}
      </select>
      <select
        name="triggerOn"
        aria-label="Trigger level"
        value={filter.triggerOn ?? ''}
        onChange={(e) => set({ triggerOn: (e.currentTarget.value || undefined) as JobFilter['triggerOn'] })}
      >
        <option value="">any trigger</option>
        {TRIGGERS.map((t) => (
          <option key={t}>{t}</option>
        ))}
      </select>
      <input name="patient" placeholder="patient name or ID" value={patient} onInput={(e) => setPatient(e.currentTarget.value)} />
      <input name="study" placeholder="study UID" value={study} onInput={(e) => setStudy(e.currentTarget.value)} />
      <label>
        from <input type="datetime-local" name="since" onChange={(e) => set({ since: isoOf(e.currentTarget.value) })} />
      </label>
      <label>
        to <input type="datetime-local" name="until" onChange={(e) => set({ until: isoOf(e.currentTarget.value) })} />
      </label>
      <button type="submit">Filter</button>
      {filter.series && (
        <span class="chip" data-testid="series-filter">
          series …{filter.series.slice(-12)}{' '}
          <button type="button" class="link" aria-label="all series" onClick={() => set({ series: undefined })}>
            ×
          </button>
        </span>
      )}
    </form>
  );
}

export function Jobs({
  jobs,
  filter,
  pipelines,
  onFilter,
  onMore,
}: {
  jobs: Job[];
  filter: JobFilter;
  pipelines: string[];
  onFilter: (f: JobFilter) => void;
  onMore?: () => void;
}) {
  const rows = groupJobs(jobs);
  const filtered = Object.keys(filter).length > 0;
  return (
    <section class="panel" data-testid="jobs">
      <h2>Jobs</h2>
      <Filters filter={filter} pipelines={pipelines} onFilter={onFilter} />
      {jobs.length === 0 ? (
        <p class="empty">{filtered ? 'No job matches.' : 'No jobs yet.'}</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Pipeline</th>
              <th>Status</th>
              <th>Progress</th>
              <th>Trigger</th>
              <th>Patient · series</th>
              <th>Created</th>
              <th>Took</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((r) =>
              r.kind === 'job' ? (
                <JobLine key={r.job.id} j={r.job} />
              ) : (
                <GroupLine key={r.jobs[0].id} row={r} onFilter={onFilter} filter={filter} />
              ),
            )}
          </tbody>
        </table>
      )}
      {onMore && (
        <button type="button" class="link" data-testid="more-jobs" onClick={onMore}>
          older jobs…
        </button>
      )}
    </section>
  );
}

function JobLine({ j }: { j: Job }) {
  return (
    <tr data-job-id={j.id} data-pipeline={j.pipeline} data-status={j.status}>
      <td>
        <a href={`#/jobs/${j.id}`}>{j.pipeline}</a>
      </td>
      <td>
        <span class={`badge ${j.status}`}>{j.status}</span>
      </td>
      <td>
        <ProgressBar job={j} />
      </td>
      <td>{j.triggerOn === 'rerun' ? 'rerun' : `${j.triggerOn}${j.createdBy ? ` by ${j.createdBy}` : ''}`}</td>
      <td class="subject">{subjectText(j)}</td>
      <td>{time(j.createdAt)}</td>
      <td>{seconds(j.startedAt, j.finishedAt)}</td>
    </tr>
  );
}

function GroupLine({
  row,
  filter,
  onFilter,
}: {
  row: Extract<JobRow, { kind: 'group' }>;
  filter: JobFilter;
  onFilter: (f: JobFilter) => void;
}) {
  const counts = STATUSES.map((s) => [s, row.jobs.filter((j) => j.status === s).length] as const).filter(([, n]) => n > 0);
  const first = row.jobs[row.jobs.length - 1];
  const last = row.jobs[0];
  const overall = counts.some(([s]) => s === 'running' || s === 'queued')
    ? 'running'
    : counts.some(([s]) => s === 'failed')
      ? 'failed'
      : 'succeeded';
  return (
    <tr class="group" data-group-pipeline={row.pipeline} data-series={row.series} data-count={row.jobs.length}>
      <td>
        <button
          type="button"
          class="link"
          title="Show these jobs one by one"
          onClick={() => onFilter({ ...filter, pipeline: row.pipeline, triggerOn: 'instance', series: row.series })}
        >
          {row.pipeline}
        </button>
      </td>
      <td>
        {counts.map(([s, n]) => (
          <span key={s} class={`badge ${s}`} data-status-count={s}>
            {n} {s}
          </span>
        ))}
      </td>
      <td>
        <ProgressBar job={{ status: overall, progress: row.jobs.filter((j) => j.status === 'succeeded').length / row.jobs.length }} />
      </td>
      <td>{row.jobs.length} instance jobs</td>
      <td class="subject">{subjectText(last)}</td>
      <td>
        {time(first.createdAt)}–{time(last.createdAt)}
      </td>
      <td />
    </tr>
  );
}
