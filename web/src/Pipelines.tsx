import { useEffect, useState } from 'preact/hooks';
import { api, type Job, type Me, type PipelineInfo, type PipelineProblem } from './api.ts';
import { time } from './format.ts';

const RUNS_JOBS = ['admin', 'manager', 'operator'];

/**
 * Every pipeline: enabled or not, its trigger and steps, its last runs; the files that did not
 * load with their line and JSON pointer; a manual run on a study or series of a database.
 */
export function Pipelines({ me, onError }: { me: Me; onError: (m: string) => void }) {
  const [pipelines, setPipelines] = useState<PipelineInfo[]>([]);
  const [problems, setProblems] = useState<PipelineProblem[]>([]);
  const [runs, setRuns] = useState<Record<string, Job[]>>({});
  useEffect(() => {
    api.pipelines().then(
      (r) => {
        setPipelines(r.pipelines);
        setProblems(r.problems ?? []);
        for (const p of r.pipelines)
          api.jobs({ pipeline: p.name }, 5).then(
            (j) => setRuns((all) => ({ ...all, [p.name]: j.jobs })),
            (err) => onError(err.message),
          );
      },
      (err) => onError(err.message),
    );
  }, []);
  return (
    <section class="panel" data-testid="pipelines">
      <h2>Pipelines</h2>
      {problems.length > 0 && (
        <div data-testid="pipeline-problems">
          <h3 class="error">Files that did not load</h3>
          <ul>
            {problems.map((p, k) => (
              <li key={k} class="error" data-file={p.file}>
                <code>
                  {p.file}:{p.line}:{p.column}
                </code>{' '}
                at <code>{p.pointer || '/'}</code>: {p.message}
              </li>
            ))}
          </ul>
        </div>
      )}
      <table>
        <thead>
          <tr>
            <th>Pipeline</th>
            <th>State</th>
            <th>Trigger</th>
            <th>Steps</th>
            <th>Last runs</th>
            {RUNS_JOBS.includes(me.role) && <th>Run now on</th>}
          </tr>
        </thead>
        <tbody>
          {pipelines.map((p) => (
            <tr key={p.name} data-pipeline={p.name} data-enabled={String(p.enabled)}>
              <td title={p.description}>
                <strong>{p.name}</strong>
                <div class="hint">{p.file}</div>
              </td>
              <td>
                <span class={`badge ${p.enabled ? 'succeeded' : ''}`}>{p.enabled ? 'enabled' : 'disabled'}</span>
              </td>
              <td>
                {String(p.trigger.on)}
                {p.trigger.stableSeconds !== undefined && p.trigger.on !== 'instance' ? `, ${p.trigger.stableSeconds} s quiet` : ''}
              </td>
              <td>{p.steps.map((s) => s.plugin).join(' → ')}</td>
              <td class="runs">
                {(runs[p.name] ?? []).length === 0 ? (
                  <span class="hint">none</span>
                ) : (
                  runs[p.name].map((j) => (
                    <a
                      key={j.id}
                      href={`#/jobs/${j.id}`}
                      class={`badge ${j.status}`}
                      title={`${j.status} · ${time(j.createdAt)}`}
                      data-job-id={j.id}
                    >
                      {time(j.createdAt)}
                    </a>
                  ))
                )}
              </td>
              {RUNS_JOBS.includes(me.role) && (
                <td>
                  <RunForm pipeline={p.name} me={me} onError={onError} />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

function RunForm({ pipeline, me, onError }: { pipeline: string; me: Me; onError: (m: string) => void }) {
  const [busy, setBusy] = useState(false);
  return (
    <form
      class="run-form"
      onSubmit={async (e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        const database = String(f.get('database'));
        const level = String(f.get('level')) as 'study' | 'series';
        const uid = String(f.get('uid') ?? '').trim();
        if (!uid) return onError(`give the ${level} instance UID to run ${pipeline} on`);
        setBusy(true);
        try {
          const { jobId } = await api.run(pipeline, { database, [level]: uid } as { database: string; study: string });
          location.hash = `#/jobs/${jobId}`;
        } catch (err) {
          onError((err as Error).message);
        } finally {
          setBusy(false);
        }
      }}
    >
      <select name="database" aria-label="Database">
        {me.databases.map((d) => (
          <option key={d.name}>{d.name}</option>
        ))}
      </select>
      <select name="level" aria-label="Level">
        <option value="study">study</option>
        <option value="series">series</option>
      </select>
      <input name="uid" placeholder="instance UID" size={24} />
      <button type="submit" disabled={busy}>
        Run
      </button>
    </form>
  );
}
