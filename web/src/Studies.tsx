import { useEffect, useState } from 'preact/hooks';
import { api, type Database, type Me, type SeriesRow, type StudyRow } from './api.ts';
import { dicomDate, personName } from './format.ts';

const MOVES = ['admin', 'manager'];
const RUNS = ['admin', 'manager', 'operator'];

/** The studies of one database at a time; managers move or copy a study to a database they may write. */
export function Studies({ me, onError, onNotice }: { me: Me; onError: (m: string) => void; onNotice: (m: string) => void }) {
  const [databases, setDatabases] = useState<Database[]>([]);
  const [db, setDb] = useState<string>();
  const [studies, setStudies] = useState<StudyRow[]>([]);
  const [open, setOpen] = useState<{ uid: string; series: SeriesRow[] }>();
  const [pipelines, setPipelines] = useState<string[]>([]);
  const [pipeline, setPipeline] = useState<string>();

  const loadDatabases = () =>
    api.databases().then((list) => {
      setDatabases(list);
      setDb((current) => current ?? list[0]?.name);
    }, (err) => onError(err.message));
  const loadStudies = (name: string) => api.studies(name).then(setStudies, (err) => onError(err.message));
  useEffect(() => {
    void loadDatabases();
    if (RUNS.includes(me.role)) {
      api.pipelines().then((r) => {
        const names = r.pipelines.map((p) => p.name);
        setPipelines(names);
        setPipeline(names[0]);
      }, (err) => onError(err.message));
    }
  }, []);
  useEffect(() => {
    setOpen(undefined);
    if (db) void loadStudies(db);
  }, [db]);

  const targets = me.databases.filter((d) => d.right === 'write' && d.name !== db).map((d) => d.name);
  const canWrite = me.databases.some((d) => d.name === db && d.right === 'write');
  const transfer = async (uid: string, mode: 'move' | 'copy', to: string) => {
    try {
      const r = await api.transfer(db!, { to, mode, level: 'study', uid });
      onNotice(`${mode === 'move' ? 'Moved' : 'Copied'} ${r.instances} instance(s) to ${to}${r.duplicates ? ` (${r.duplicates} already there)` : ''}.`);
      await Promise.all([loadStudies(db!), loadDatabases()]);
    } catch (err) {
      onError((err as Error).message);
    }
  };
  const run = async (uid: string) => {
    try {
      const { jobId } = await api.run(pipeline!, { database: db!, study: uid });
      location.hash = `#/jobs/${jobId}`;
    } catch (err) {
      onError((err as Error).message);
    }
  };
  const toggle = async (uid: string) => {
    if (open?.uid === uid) return setOpen(undefined);
    try {
      setOpen({ uid, series: await api.series(db!, uid) });
    } catch (err) {
      onError((err as Error).message);
    }
  };

  return (
    <section class="panel" data-testid="studies">
      <h2>Studies</h2>
      {RUNS.includes(me.role) && pipelines.length > 0 && (
        <label class="run-with">
          Run on a study:{' '}
          <select value={pipeline} onChange={(e) => setPipeline((e.target as HTMLSelectElement).value)}>
            {pipelines.map((p) => (
              <option key={p}>{p}</option>
            ))}
          </select>
        </label>
      )}
      <nav class="tabs">
        {databases.map((d) => (
          <button type="button" key={d.name} class={d.name === db ? 'active' : ''} onClick={() => setDb(d.name)}>
            {d.name} <small>{d.totals.studies}</small>
          </button>
        ))}
      </nav>
      {studies.length === 0 ? (
        <p class="empty">No studies in {db}.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Patient</th>
              <th>ID</th>
              <th>Date</th>
              <th>Description</th>
              <th>Modalities</th>
              <th>Series / images</th>
              {RUNS.includes(me.role) && <th />}
              {MOVES.includes(me.role) && <th>Move or copy to</th>}
            </tr>
          </thead>
          <tbody>
            {studies.map((s) => {
              const uid = s.study.StudyInstanceUID;
              return [
                <tr key={uid} data-study-uid={uid}>
                  <td>
                    <button type="button" class="link" onClick={() => toggle(uid)}>
                      {personName(s.patient.PatientName) || '(no name)'}
                    </button>
                  </td>
                  <td>{s.patient.PatientID}</td>
                  <td>{dicomDate(s.study.StudyDate)}</td>
                  <td>{s.study.StudyDescription}</td>
                  <td>{s.modalitiesInStudy.join(', ')}</td>
                  <td>
                    {s.numberOfSeries} / {s.numberOfInstances}
                  </td>
                  {RUNS.includes(me.role) && (
                    <td>
                      <button type="button" disabled={!pipeline} onClick={() => run(uid)}>
                        Run {pipeline}
                      </button>
                    </td>
                  )}
                  {MOVES.includes(me.role) && (
                    <td class="transfer">
                      {targets.map((to) => (
                        <span key={to}>
                          {canWrite && (
                            <button type="button" onClick={() => transfer(uid, 'move', to)}>
                              Move to {to}
                            </button>
                          )}
                          <button type="button" onClick={() => transfer(uid, 'copy', to)}>
                            Copy to {to}
                          </button>
                        </span>
                      ))}
                    </td>
                  )}
                </tr>,
                open?.uid === uid && (
                  <tr key={`${uid}-series`} class="series">
                    <td colSpan={8}>
                      <ul>
                        {open.series.map((se) => (
                          <li key={se.series.SeriesInstanceUID}>
                            {se.series.Modality} #{se.series.SeriesNumber} {se.series.SeriesDescription} — {se.numberOfInstances} image(s)
                          </li>
                        ))}
                      </ul>
                    </td>
                  </tr>
                ),
              ];
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
