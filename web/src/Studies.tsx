import { useEffect, useState } from 'preact/hooks';
import { api, session, type Database, type Job, type Me, type SeriesRow, type StudyRow, type StudySearch } from './api.ts';
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
  const [search, setSearch] = useState<StudySearch>({});
  const [confirm, setConfirm] = useState<{ uid: string; mode: 'move' | 'copy'; to: string; what: string }>();
  const [nodes, setNodes] = useState<string[]>([]);
  const [sendTo, setSendTo] = useState<{ uid: string; destination: string; what: string }>();
  const [deleting, setDeleting] = useState<{ uid: string; what: string }>();

  const loadDatabases = () =>
    api.databases().then(
      (list) => {
        setDatabases(list);
        setDb((current) => current ?? list[0]?.name);
      },
      (err) => onError(err.message),
    );
  const loadStudies = (name: string, q: StudySearch = search) => api.studies(name, q).then(setStudies, (err) => onError(err.message));
  useEffect(() => {
    void loadDatabases();
    if (RUNS.includes(me.role)) {
      api.outbox().then(
        (list) => setNodes(list.map((d) => d.destination)),
        (err) => onError(err.message),
      );
      api.pipelines().then(
        (r) => {
          const names = r.pipelines.map((p) => p.name);
          setPipelines(names);
          setPipeline(names[0]);
        },
        (err) => onError(err.message),
      );
    }
  }, []);
  useEffect(() => {
    setOpen(undefined);
    if (db) void loadStudies(db);
  }, [db]);

  const targets = me.databases.filter((d) => d.right === 'write' && d.name !== db).map((d) => d.name);
  const canWrite = me.databases.some((d) => d.name === db && d.right === 'write');
  const transfer = async (uid: string, mode: 'move' | 'copy', to: string) => {
    setConfirm(undefined);
    try {
      const r = await api.transfer(db!, { to, mode, level: 'study', uid });
      onNotice(
        `${mode === 'move' ? 'Moved' : 'Copied'} ${r.instances} instance(s) to ${to}${r.duplicates ? ` (${r.duplicates} already there)` : ''}.`,
      );
      await Promise.all([loadStudies(db!), loadDatabases()]);
    } catch (err) {
      onError((err as Error).message);
    }
  };
  const send = async (uid: string, destination: string) => {
    setSendTo(undefined);
    try {
      const { queued } = await api.send(db!, { destination, level: 'study', uid });
      onNotice(`Queued ${queued} instance(s) for ${destination}: the outbox panel follows their delivery.`);
    } catch (err) {
      onError((err as Error).message);
    }
  };
  const remove = async (uid: string) => {
    setDeleting(undefined);
    try {
      const r = await api.deleteStudy(db!, uid);
      onNotice(`Deleted ${r.instances} instance(s) from ${db}; the files of ${r.released} object(s) go once no other database holds them.`);
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

  const describe = (mode: 'move' | 'copy', s: StudyRow, to: string) =>
    `${mode === 'move' ? 'Move' : 'Copy'} the study ${s.study.StudyDescription ? `"${s.study.StudyDescription}" ` : ''}of ${personName(s.patient.PatientName) || s.patient.PatientID || '(no name)'}` +
    ` (${dicomDate(s.study.StudyDate) || 'no date'}; ${s.numberOfSeries} series, ${s.numberOfInstances} instance(s)) from ${db} to ${to}?` +
    (mode === 'move' ? ` It leaves ${db}.` : '');
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
      <form
        class="filters"
        data-testid="study-search"
        onSubmit={(e) => {
          e.preventDefault();
          const f = new FormData(e.currentTarget);
          const text = (k: string) => String(f.get(k) ?? '').trim();
          const date = (k: string) => text(k).replaceAll('-', '');
          const q: StudySearch = {};
          if (text('patient')) q.patient = text('patient');
          if (date('dateFrom')) q.dateFrom = date('dateFrom');
          if (date('dateTo')) q.dateTo = date('dateTo');
          if (text('modality')) q.modality = text('modality');
          if (text('accession')) q.accession = text('accession');
          setSearch(q);
          if (db) void loadStudies(db, q);
        }}
      >
        <input name="patient" placeholder="patient name or ID" />
        <label>
          from <input type="date" name="dateFrom" />
        </label>
        <label>
          to <input type="date" name="dateTo" />
        </label>
        <input name="modality" placeholder="modality" size={6} />
        <input name="accession" placeholder="accession" size={12} />
        <button type="submit">Search</button>
      </form>
      {confirm && (
        <div class="confirm" role="dialog" data-testid="confirm">
          <p>{confirm.what}</p>
          <button type="button" onClick={() => transfer(confirm.uid, confirm.mode, confirm.to)}>
            {confirm.mode === 'move' ? 'Move' : 'Copy'}
          </button>{' '}
          <button type="button" onClick={() => setConfirm(undefined)}>
            Cancel
          </button>
        </div>
      )}
      {deleting && (
        <div class="confirm" role="dialog" data-testid="confirm-delete">
          <p>{deleting.what}</p>
          <button type="button" class="danger" onClick={() => remove(deleting.uid)}>
            Delete
          </button>{' '}
          <button type="button" onClick={() => setDeleting(undefined)}>
            Cancel
          </button>
        </div>
      )}
      {sendTo && (
        <div class="confirm" role="dialog" data-testid="confirm-send">
          <p>{sendTo.what}</p>
          <button type="button" onClick={() => send(sendTo.uid, sendTo.destination)}>
            Send
          </button>{' '}
          <button type="button" onClick={() => setSendTo(undefined)}>
            Cancel
          </button>
        </div>
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
              {RUNS.includes(me.role) && nodes.length > 0 && <th>Send to</th>}
              {MOVES.includes(me.role) && <th>Move or copy to</th>}
              {MOVES.includes(me.role) && canWrite && <th />}
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
                  {RUNS.includes(me.role) && nodes.length > 0 && (
                    <td class="transfer">
                      {nodes.map((n) => (
                        <button
                          type="button"
                          key={n}
                          onClick={() =>
                            setSendTo({
                              uid,
                              destination: n,
                              what: `Send the study of ${personName(s.patient.PatientName) || s.patient.PatientID || '(no name)'} (${dicomDate(s.study.StudyDate) || 'no date'}; ${s.numberOfSeries} series, ${s.numberOfInstances} instance(s)) from ${db} to ${n}?`,
                            })
                          }
                        >
                          Send to {n}
                        </button>
                      ))}
                    </td>
                  )}
                  {MOVES.includes(me.role) && (
                    <td class="transfer">
                      {targets.map((to) => (
                        <span key={to}>
                          {canWrite && (
                            <button type="button" onClick={() => setConfirm({ uid, mode: 'move', to, what: describe('move', s, to) })}>
                              Move to {to}
                            </button>
                          )}
                          <button type="button" onClick={() => setConfirm({ uid, mode: 'copy', to, what: describe('copy', s, to) })}>
                            Copy to {to}
                          </button>
                        </span>
                      ))}
                    </td>
                  )}
                  {MOVES.includes(me.role) && canWrite && (
                    <td>
                      <button
                        type="button"
                        class="danger"
                        onClick={() =>
                          setDeleting({
                            uid,
                            what:
                              `Delete the study ${s.study.StudyDescription ? `"${s.study.StudyDescription}" ` : ''}of ${personName(s.patient.PatientName) || s.patient.PatientID || '(no name)'}` +
                              ` (${dicomDate(s.study.StudyDate) || 'no date'}; ${s.numberOfSeries} series, ${s.numberOfInstances} instance(s)) from ${db}? Its files are deleted unless another database holds them.`,
                          })
                        }
                      >
                        Delete
                      </button>
                    </td>
                  )}
                </tr>,
                open?.uid === uid && (
                  <tr key={`${uid}-series`} class="series">
                    <td colSpan={9}>
                      <ul class="series-list">
                        {open.series.map((se) => (
                          <SeriesItem key={se.series.SeriesInstanceUID} db={db!} study={uid} row={se} onError={onError} />
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

/** A series of the open study: the first, middle and last image as the display pipeline renders them, and its jobs. */
function SeriesItem({ db, study, row, onError }: { db: string; study: string; row: SeriesRow; onError: (m: string) => void }) {
  const series = row.series.SeriesInstanceUID;
  const [images, setImages] = useState<{ n: string; url?: string }[]>([]);
  const [jobs, setJobs] = useState<Job[]>();
  useEffect(() => {
    let stop = false;
    const made: string[] = [];
    void (async () => {
      try {
        const instances = await api.instances(db, study, series);
        const byNumber = [...instances].sort((a, b) => Number(a.instance.InstanceNumber ?? 0) - Number(b.instance.InstanceNumber ?? 0));
        const picks = [...new Set([0, Math.floor((byNumber.length - 1) / 2), byNumber.length - 1])].map((i) => byNumber[i]);
        setImages(picks.map((p) => ({ n: p.instance.InstanceNumber ?? '?' })));
        for (const [k, p] of picks.entries()) {
          const route = `/dicomweb/${encodeURIComponent(db)}/studies/${study}/series/${series}/instances/${p.instance.SOPInstanceUID}/thumbnail`;
          const res = await fetch(route, { headers: { authorization: `Bearer ${session.token}`, accept: 'image/png' } });
          if (stop) return;
          if (!res.ok) continue;
          const url = URL.createObjectURL(await res.blob());
          made.push(url);
          setImages((list) => list.map((x, j) => (j === k ? { ...x, url } : x)));
        }
      } catch (err) {
        if (!stop) onError((err as Error).message);
      }
    })();
    api.jobs({ series }, 200).then(
      (r) => !stop && setJobs(r.jobs),
      (err) => !stop && onError(err.message),
    );
    return () => {
      stop = true;
      made.forEach((u) => URL.revokeObjectURL(u));
    };
  }, [db, study, series]);
  return (
    <li data-series={series}>
      <div>
        {row.series.Modality} #{row.series.SeriesNumber} {row.series.SeriesDescription} — {row.numberOfInstances} image(s)
      </div>
      <div class="previews" data-testid="previews">
        {images.map((im, k) => (
          <figure key={k}>
            {im.url ? <img src={im.url} alt={`instance ${im.n}`} width={96} height={96} /> : <span class="placeholder" />}
            <figcaption>#{im.n}</figcaption>
          </figure>
        ))}
      </div>
      <div class="series-jobs" data-testid="series-jobs">
        {jobs === undefined ? null : jobs.length === 0 ? (
          <span class="hint">no jobs</span>
        ) : (
          // Instance pipelines make a job per image: one badge per pipeline and status, with the count.
          [
            ...jobs
              .reduce(
                (m, j) => m.set(`${j.pipeline} ${j.status}`, [...(m.get(`${j.pipeline} ${j.status}`) ?? []), j]),
                new Map<string, Job[]>(),
              )
              .values(),
          ].map((group) => (
            <a
              key={group[0].id}
              href={`#/jobs/${group[0].id}`}
              class={`badge ${group[0].status}`}
              data-job-id={group[0].id}
              title="the latest of these jobs"
            >
              {group[0].pipeline} {group[0].status}
              {group.length > 1 ? ` ×${group.length}${jobs.length === 200 ? '+' : ''}` : ''}
            </a>
          ))
        )}
      </div>
    </li>
  );
}
