import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import {
  api,
  ApiError,
  followEvents,
  session,
  type Cluster,
  type Job,
  type JobFilter,
  type LiveEvent,
  type Me,
  type SeriesArrivals,
} from './api.ts';
import { Arrivals } from './Arrivals.tsx';
import { JobDetail } from './JobDetail.tsx';
import { Jobs } from './Jobs.tsx';
import { Login } from './Login.tsx';
import { Nodes } from './Nodes.tsx';
import { Outbox } from './Outbox.tsx';
import { Pipelines } from './Pipelines.tsx';
import { ApiReference } from './ApiReference.tsx';
import { StatusPanel } from './StatusPanel.tsx';
import { Studies } from './Studies.tsx';
import './style.css';

type Live = Record<string, Partial<Job>>;

function useHash(): string {
  const [hash, setHash] = useState(location.hash);
  useEffect(() => {
    const on = () => setHash(location.hash);
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function Dashboard({ me, onLogout }: { me: Me; onLogout: () => void }) {
  const hash = useHash();
  const [status, setStatus] = useState<Record<string, any>>();
  const [arrivals, setArrivals] = useState<SeriesArrivals[]>([]);
  const [jobs, setJobs] = useState<Job[]>([]);
  const [nextJobs, setNextJobs] = useState<string>();
  const [filter, setFilter] = useState<JobFilter>({});
  const filterRef = useRef<JobFilter>({});
  const [pipelineNames, setPipelineNames] = useState<string[]>([]);
  const [live, setLive] = useState<Live>({});
  const [connected, setConnected] = useState(false);
  const [message, setMessage] = useState<{ kind: 'error' | 'notice'; text: string }>();
  const refresh = useRef<number | undefined>(undefined);

  const onError = (text: string) => setMessage({ kind: 'error', text });
  // The filter is read through a ref: the event handlers below were made with the first render's.
  const loadJobs = () =>
    api.jobs(filterRef.current).then(
      (r) => {
        setJobs(r.jobs);
        setNextJobs(r.next);
      },
      (err) => onError(err.message),
    );
  const loadArrivals = () => api.arrivalSeries().then(setArrivals, (err) => onError(err.message));
  const applyFilter = (f: JobFilter) => {
    filterRef.current = f;
    setFilter(f);
    void loadJobs();
  };
  const moreJobs = () =>
    nextJobs &&
    api.jobs(filterRef.current, 100, nextJobs).then(
      (r) => {
        setJobs((list) => [...list, ...r.jobs]);
        setNextJobs(r.next);
      },
      (err) => onError(err.message),
    );
  const loadStatus = () =>
    api.status().then(setStatus, (err) => (err instanceof ApiError && err.status === 401 ? onLogout() : onError(err.message)));
  // Many events in a burst (a series arriving) make one reload, not one each.
  const reloadSoon = () => {
    clearTimeout(refresh.current);
    refresh.current = window.setTimeout(() => void Promise.all([loadJobs(), loadStatus(), loadArrivals()]), 250);
  };

  useEffect(() => {
    void loadStatus();
    void loadJobs();
    void loadArrivals();
    api.pipelines().then(
      (r) => setPipelineNames(r.pipelines.map((p) => p.name)),
      (err) => onError(err.message),
    );
    // Jobs that other nodes run send no events to this one: on a cluster the list is reloaded too.
    const timer = setInterval(() => {
      void api.status().then(
        (s) => {
          setStatus(s);
          const alive = ((s.cluster as Cluster | undefined)?.nodes ?? []).filter((n) => n.alive).length;
          if (alive > 1) void loadJobs();
        },
        (err) => (err instanceof ApiError && err.status === 401 ? onLogout() : onError(err.message)),
      );
    }, 5000);
    const stop = followEvents(
      (e: LiveEvent) => {
        if (e.event === 'arrival') {
          reloadSoon();
          return;
        }
        const d = e.data;
        const patch: Partial<Job> =
          d.type === 'progress'
            ? { status: 'running', progress: d.progress ?? 0, progressMessage: d.message }
            : d.type === 'started'
              ? { status: 'running' }
              : d.type === 'finished'
                ? { status: d.status as Job['status'], ...(d.status === 'succeeded' ? { progress: 1 } : {}) }
                : { status: 'queued', progress: 0 };
        setLive((l) => ({ ...l, [d.jobId]: { ...l[d.jobId], ...patch } }));
        setJobs((list) => list.map((j) => (j.id === d.jobId ? { ...j, ...patch } : j)));
        if (d.type !== 'progress') reloadSoon();
      },
      (on) => {
        setConnected(on);
        if (on) reloadSoon();
      },
    );
    return () => {
      stop();
      clearInterval(timer);
    };
  }, []);

  const jobId = /^#\/jobs\/(.+)$/.exec(hash)?.[1];
  const view = jobId ? 'job' : hash === '#/studies' ? 'studies' : hash === '#/pipelines' ? 'pipelines' : hash === '#/api' ? 'api' : 'home';
  return (
    <>
      <header>
        <strong>dicomflow</strong>
        <nav>
          <a href="#/" class={view === 'home' ? 'active' : ''}>
            Overview
          </a>
          <a href="#/studies" class={view === 'studies' ? 'active' : ''}>
            Studies
          </a>
          <a href="#/pipelines" class={view === 'pipelines' ? 'active' : ''}>
            Pipelines
          </a>
          <a href="#/api" class={view === 'api' ? 'active' : ''}>
            API
          </a>
        </nav>
        <span class="user" data-testid="user">
          {me.name} ({me.role})
        </span>
        <button type="button" class="link" onClick={onLogout}>
          Log out
        </button>
      </header>
      {message && (
        <p class={message.kind} role={message.kind === 'error' ? 'alert' : 'status'}>
          {message.text}{' '}
          <button type="button" class="dismiss" aria-label="Dismiss" onClick={() => setMessage(undefined)}>
            ×
          </button>
        </p>
      )}
      <main>
        {view === 'home' && (
          <>
            <StatusPanel status={status} connected={connected} />
            <Nodes status={status} />
            <Outbox me={me} refreshKey={status} onError={onError} onNotice={(text) => setMessage({ kind: 'notice', text })} />
            <Jobs
              jobs={jobs}
              filter={filter}
              pipelines={pipelineNames}
              onFilter={applyFilter}
              onMore={nextJobs ? () => void moreJobs() : undefined}
            />
            <Arrivals series={arrivals} onJobsOf={(series) => applyFilter({ series })} />
          </>
        )}
        {view === 'job' && <JobDetail id={decodeURIComponent(jobId!)} me={me} live={live[decodeURIComponent(jobId!)]} onError={onError} />}
        {view === 'pipelines' && <Pipelines me={me} onError={onError} />}
        {view === 'api' && <ApiReference onError={onError} />}
        {view === 'studies' && <Studies me={me} onError={onError} onNotice={(text) => setMessage({ kind: 'notice', text })} />}
      </main>
    </>
  );
}

function App() {
  const [me, setMe] = useState<Me | null>();
  useEffect(() => {
    if (!session.token) return setMe(null);
    api.me().then(setMe, () => {
      session.token = null;
      setMe(null);
    });
  }, []);
  if (me === undefined) return null;
  if (me === null) return <Login onLogin={setMe} />;
  return (
    <Dashboard
      me={me}
      onLogout={() => {
        session.token = null;
        setMe(null);
      }}
    />
  );
}

render(<App />, document.getElementById('app')!);
