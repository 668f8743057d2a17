import type { Job } from './api.ts';
import { seconds, time } from './format.ts';

export function ProgressBar({ job }: { job: Pick<Job, 'status' | 'progress' | 'progressMessage'> }) {
  const percent = Math.round((job.status === 'succeeded' ? 1 : job.progress) * 100);
  return (
    <div class={`progress ${job.status}`} role="progressbar" aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent} title={job.progressMessage}>
      <div class="bar" style={{ width: `${percent}%` }} />
      <span>{percent} %</span>
    </div>
  );
}

export function Jobs({ jobs }: { jobs: Job[] }) {
  return (
    <section class="panel" data-testid="jobs">
      <h2>Jobs</h2>
      {jobs.length === 0 ? (
        <p class="empty">No jobs yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Pipeline</th>
              <th>Status</th>
              <th>Progress</th>
              <th>Trigger</th>
              <th>Created</th>
              <th>Took</th>
            </tr>
          </thead>
          <tbody>
            {jobs.map((j) => (
              <tr key={j.id} data-job-id={j.id} data-pipeline={j.pipeline} data-status={j.status}>
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
                <td>{time(j.createdAt)}</td>
                <td>{seconds(j.startedAt, j.finishedAt)}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
