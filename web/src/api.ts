/** The HTTP API as the page uses it: the token from the login form on every request. */

export interface Me {
  name: string;
  role: 'admin' | 'manager' | 'operator' | 'reader';
  databases: { name: string; right: 'read' | 'write' }[];
}

export interface Job {
  id: string;
  pipeline: string;
  status: 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  triggerOn: string;
  triggerUid?: string;
  inputs: string[];
  attempts: number;
  maxAttempts: number;
  rerunOf?: string;
  /** Job detail only: the pipeline version the job runs, and the one loaded now. */
  pipelineVersion?: string;
  currentPipelineVersion?: string;
  pipelineVersionIsCurrent?: boolean;
  createdBy?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  progress: number;
  progressMessage?: string;
  errorCode?: string;
  error?: string;
  steps?: Step[];
  /** Lists only: what the job works on, from its first input. */
  subject?: {
    patientId?: string;
    patientName?: string;
    studyInstanceUid?: string;
    seriesInstanceUid?: string;
    modality?: string;
    seriesDescription?: string;
    database?: string;
  };
}

/** The job list's filters (/api/jobs's query). */
export interface JobFilter {
  pipeline?: string;
  status?: Job['status'];
  triggerOn?: 'instance' | 'series' | 'study' | 'manual' | 'rerun';
  patient?: string;
  study?: string;
  series?: string;
  since?: string;
  until?: string;
}

/** GET /api/jobs/ID/summary: a job at any size. */
export interface JobSummary {
  inputs: {
    instances: number;
    series: {
      seriesInstanceUid: string;
      studyInstanceUid?: string;
      database?: string;
      instances: number;
      firstReceivedAt: string;
      lastReceivedAt: string;
      attributes: Record<string, string>;
    }[];
  };
  outputs: {
    files: { index: number; step: string; name: string; description?: string }[];
    instances: { count: number; groups: { step: string; description?: string; count: number; firstIndex: number }[] };
    tables: { index: number; step: string; name: string; rows: number }[];
  };
  log: { lines: number; levels: Record<string, number> };
}

export interface LogLine {
  attempt: number;
  step: string;
  at: string;
  level: string;
  message: string;
  data?: Record<string, unknown>;
}

/** GET /api/outbox: one remote node's outbox. */
export interface OutboxDestination {
  destination: string;
  host: string;
  port: number;
  queued: number;
  inFlight: number;
  retrying: number;
  dead: number;
  delivered: number;
  lastError?: string | null;
  lastErrorAt?: string | null;
}

export interface OutboxEntry {
  id: string;
  sopInstanceUid: string;
  state: string;
  attempts: number;
  jobId?: string;
  lastErrorCode?: string;
  lastError?: string;
}

/** GET /api/arrivals/series: arrivals of one series into one database. */
export interface SeriesArrivals {
  seriesInstanceUid: string;
  studyInstanceUid?: string;
  database?: string;
  count: number;
  firstReceivedAt: string;
  lastReceivedAt: string;
  senders: string[];
  sources: string[];
  attributes: Record<string, string>;
}

export interface Step {
  attempt: number;
  index: number;
  id: string;
  plugin: string;
  status: string;
  durationMs?: number;
  error?: string;
  log: { at: string; level: string; message: string; data?: Record<string, unknown> }[];
  outputs: { kind: string; path?: string; name?: string; description?: string }[];
}

export interface Output {
  index: number;
  step: string;
  kind: 'file' | 'instance' | 'table';
  name?: string;
  path?: string;
  description?: string;
  rows?: Record<string, unknown>[];
  downloadable: boolean;
  size?: number;
}

export interface Arrival {
  id: string;
  receivedAt: string;
  source: string;
  callingAeTitle?: string;
  database?: string;
  sopInstanceUid: string;
  attributes: Record<string, string>;
}

export interface StudyRow {
  patient: Record<string, string>;
  study: Record<string, string>;
  numberOfSeries: number;
  numberOfInstances: number;
  modalitiesInStudy: string[];
}

/** GET /api/pipelines: one loaded pipeline. */
export interface PipelineInfo {
  name: string;
  description?: string;
  enabled: boolean;
  trigger: { on: string; stableSeconds?: number; [k: string]: unknown };
  steps: { id: string; plugin: string; version?: string }[];
  file: string;
  hash: string;
}

/** A pipeline file that did not load: where (line, column, JSON pointer) and why. */
export interface PipelineProblem {
  file: string;
  pointer: string;
  line: number;
  column: number;
  message: string;
}

/** The study browser's search (GET /api/databases/DB/studies). */
export interface StudySearch {
  patient?: string;
  dateFrom?: string;
  dateTo?: string;
  modality?: string;
  accession?: string;
}

export interface SeriesRow {
  series: Record<string, string>;
  numberOfInstances: number;
}

export interface Database {
  name: string;
  aeTitle?: string;
  right: 'read' | 'write';
  totals: { patients: number; studies: number; series: number; instances: number; bytes: number };
}

/** What a node last wrote with its heartbeat (a node of another version may leave fields out). */
export interface NodeReport {
  hostname?: string;
  pid?: number;
  cpus?: number;
  /** 1, 5 and 15 minutes. */
  loadAverage?: number[];
  /** Since the previous heartbeat; 100 = one core. */
  processCpuPercent?: number;
  rssBytes?: number;
  dicom?: { aeTitle?: string; host?: string; port?: number };
  http?: { host?: string; port?: number };
  jobs?: { running: number; concurrency: number };
  pool?: { threads: number; running: number; queued: number; utilization: number };
  received?: { objects: number; bytes: number };
  /** Objects pipelines produced and filed (not counted as received). */
  produced?: { objects: number; bytes: number };
  associationsOpen?: number;
}

export interface ClusterNode {
  name: string;
  startedAt: string;
  heartbeatAt: string;
  stoppedAt?: string;
  status: NodeReport;
  /** Not stopped, and a heartbeat within three intervals (judged by the server's clock). */
  alive: boolean;
  self: boolean;
}

/** `cluster` in /api/status: the nodes sharing the index. */
export interface Cluster {
  backend: 'sqlite' | 'postgres';
  location: string;
  node: string;
  heartbeatSeconds: number;
  nodes: ClusterNode[];
}

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const TOKEN_KEY = 'dicomflow.token';

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value: string | null) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  },
};

async function request<T>(method: string, route: string, body?: unknown, token = session.token): Promise<T> {
  const headers: Record<string, string> = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (!res.ok) {
    const err = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    throw new ApiError(res.status, err.code ?? 'DF_ERR_INTERNAL', err.message ?? res.statusText);
  }
  if (res.status === 204) return undefined as T;
  return (await res.json()) as T;
}

export const api = {
  me: (token?: string) => request<Me>('GET', '/api/me', undefined, token),
  status: () => request<Record<string, any>>('GET', '/api/status'),
  arrivals: (limit = 20) => request<Arrival[]>('GET', `/api/arrivals?limit=${limit}`),
  arrivalSeries: (limit = 30) => request<SeriesArrivals[]>('GET', `/api/arrivals/series?limit=${limit}`),
  jobs: (filter: JobFilter = {}, limit = 100, before?: string) => {
    const q = new URLSearchParams({ limit: String(limit), ...(filter as Record<string, string>), ...(before ? { before } : {}) });
    return request<{ jobs: Job[]; next?: string }>('GET', `/api/jobs?${q}`);
  },
  job: (id: string) => request<Job>('GET', `/api/jobs/${encodeURIComponent(id)}`),
  openapi: () => request<Record<string, unknown>>('GET', '/api/openapi.json'),
  outbox: () => request<OutboxDestination[]>('GET', '/api/outbox'),
  outboxEntries: (destination: string, state: string) =>
    request<OutboxEntry[]>('GET', `/api/outbox/${encodeURIComponent(destination)}/entries?state=${state}`),
  retryOutbox: (destination: string) =>
    request<{ rescheduled: number }>('POST', `/api/outbox/${encodeURIComponent(destination)}/retry`, {}),
  jobSummary: (id: string) => request<JobSummary>('GET', `/api/jobs/${encodeURIComponent(id)}/summary`),
  /** One page of a job's log, and how many lines there are in all. */
  jobLog: async (id: string, offset: number, limit: number, level?: string) => {
    const q = new URLSearchParams({ offset: String(offset), limit: String(limit), ...(level ? { level } : {}) });
    const res = await fetch(`/api/jobs/${encodeURIComponent(id)}/logs?${q}`, { headers: { authorization: `Bearer ${session.token}` } });
    if (!res.ok) throw new ApiError(res.status, 'DF_ERR_JOB_UNKNOWN', res.statusText);
    return { lines: (await res.json()) as LogLine[], total: Number(res.headers.get('x-total-count') ?? 0) };
  },
  outputs: (id: string) => request<Output[]>('GET', `/api/jobs/${encodeURIComponent(id)}/outputs`),
  rerun: (id: string) => request<{ jobId: string }>('POST', `/api/jobs/${encodeURIComponent(id)}/rerun`, {}),
  cancel: (id: string) => request<{ cancelled: boolean }>('POST', `/api/jobs/${encodeURIComponent(id)}/cancel`),
  pipelines: () => request<{ pipelines: PipelineInfo[]; problems: PipelineProblem[] }>('GET', '/api/pipelines'),
  run: (pipeline: string, body: { database: string; study: string }) =>
    request<{ jobId: string }>('POST', `/api/pipelines/${encodeURIComponent(pipeline)}/run`, body),
  databases: () => request<Database[]>('GET', '/api/databases'),
  studies: (db: string, search: StudySearch = {}) =>
    request<StudyRow[]>('GET', `/api/databases/${encodeURIComponent(db)}/studies?${new URLSearchParams(search as Record<string, string>)}`),
  instances: (db: string, study: string, series: string) =>
    request<{ instance: Record<string, string> }[]>(
      'GET',
      `/api/databases/${encodeURIComponent(db)}/studies/${encodeURIComponent(study)}/series/${encodeURIComponent(series)}/instances?limit=5000`,
    ),
  series: (db: string, study: string) =>
    request<SeriesRow[]>('GET', `/api/databases/${encodeURIComponent(db)}/studies/${encodeURIComponent(study)}/series`),
  send: (db: string, body: { destination: string; level: 'study' | 'series'; uid: string }) =>
    request<{ queued: number }>('POST', `/api/databases/${encodeURIComponent(db)}/send`, body),
  deleteStudy: (db: string, uid: string) =>
    request<{ instances: number; released: number }>(
      'DELETE',
      `/api/databases/${encodeURIComponent(db)}/studies/${encodeURIComponent(uid)}`,
    ),
  transfer: (from: string, body: { to: string; mode: 'move' | 'copy'; level: 'study'; uid: string }) =>
    request<{ instances: number; filed: number; duplicates: number }>('POST', `/api/databases/${encodeURIComponent(from)}/transfer`, body),
};

/** Downloads an output through fetch (the token is a header, so a plain link cannot). */
export async function download(jobId: string, output: Pick<Output, 'index' | 'path'>): Promise<void> {
  await save(`/api/jobs/${encodeURIComponent(jobId)}/outputs/${output.index}`, (output.path ?? `output-${output.index}`).split('/').pop()!);
}

/** All of a job's file and instance outputs as one tar archive. */
export async function downloadArchive(jobId: string): Promise<void> {
  await save(`/api/jobs/${encodeURIComponent(jobId)}/archive`, `job-${jobId}.tar`);
}

async function save(route: string, name: string): Promise<void> {
  const res = await fetch(route, { headers: { authorization: `Bearer ${session.token}` } });
  if (!res.ok) {
    const err = (await res.json().catch(() => ({}))) as { code?: string; message?: string };
    throw new ApiError(res.status, err.code ?? 'DF_ERR_OUTPUT_UNKNOWN', err.message ?? res.statusText);
  }
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export type LiveEvent =
  | { event: 'arrival'; data: Arrival }
  | {
      event: 'job';
      data: {
        type: 'queued' | 'started' | 'progress' | 'finished';
        jobId: string;
        pipeline?: string;
        progress?: number;
        message?: string;
        status?: string;
      };
    };

/**
 * Follows /api/events. EventSource cannot send the Authorization header, so this reads the
 * stream with fetch and parses the text/event-stream blocks itself; it reconnects after a drop.
 */
export function followEvents(onEvent: (e: LiveEvent) => void, onState: (connected: boolean) => void): () => void {
  let stopped = false;
  let controller: AbortController | undefined;
  const connect = async (delayMs: number) => {
    while (!stopped) {
      controller = new AbortController();
      try {
        const res = await fetch('/api/events', { headers: { authorization: `Bearer ${session.token}` }, signal: controller.signal });
        if (!res.ok || !res.body) throw new Error(`events: HTTP ${res.status}`);
        onState(true);
        delayMs = 500;
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += value;
          let end: number;
          while ((end = buffer.indexOf('\n\n')) >= 0) {
            const block = buffer.slice(0, end);
            buffer = buffer.slice(end + 2);
            const event = /^event: (.*)$/m.exec(block)?.[1];
            const data = /^data: (.*)$/m.exec(block)?.[1];
            if (event && data) onEvent({ event, data: JSON.parse(data) } as LiveEvent);
          }
        }
      } catch {
        // dropped or refused: try again below
      }
      onState(false);
      if (stopped) return;
      await new Promise((r) => setTimeout(r, delayMs));
      delayMs = Math.min(delayMs * 2, 10_000);
    }
  };
  void connect(500);
  return () => {
    stopped = true;
    controller?.abort();
  };
}
