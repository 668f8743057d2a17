import type { StepInput, StepOutput } from '../plugin.ts';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export type TriggerOn = 'instance' | 'series' | 'study' | 'manual' | 'rerun';

export interface Contributors {
  callingAeTitles: string[];
  peerAddresses: string[];
}

/** Which running jobs a requeue takes: one node's, those with expired leases, or (neither) all. */
export interface LeaseScope {
  owner?: string;
  expiredBefore?: string;
}

export interface NewJob {
  pipeline: string;
  /** The pipeline version the job runs: the content hash of its definition (pipeline_versions). */
  pipelineHash?: string;
  /**
   * The validated definition (JSON) behind pipelineHash, kept with the job unless this version
   * is kept already. Absent: the version is known to be kept (a rerun of the original).
   */
  pipelineDefinition?: string;
  triggerOn: TriggerOn;
  triggerUid?: string;
  inputs: string[];
  priority: number;
  maxAttempts: number;
  backoffSeconds: number;
  rerunOf?: string;
  createdBy?: string;
  /** Who sent the inputs, when the caller knows already (else read from the arrivals). */
  contributors?: Contributors;
}

export interface StepLogLine {
  at: string;
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  data?: Record<string, unknown>;
}

export interface StepRecord {
  attempt: number;
  index: number;
  id: string;
  plugin: string;
  status: 'running' | 'succeeded' | 'failed' | 'skipped';
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  log: StepLogLine[];
  outputs: StepOutput[];
  error?: string;
}

export type FinishedStep = Pick<StepRecord, 'id' | 'plugin' | 'status' | 'durationMs' | 'log' | 'outputs' | 'error'> & {
  startedAt: string;
};

/**
 * A job interrupted this many times while other jobs ran beside it is suspected of taking the
 * server down: it then runs alone, and an interruption while alone counts as one of its attempts.
 */
export const SUSPECT_AFTER_INTERRUPTIONS = 3;

export interface JobRecord {
  id: string;
  pipeline: string;
  pipelineHash?: string;
  status: JobStatus;
  triggerOn: TriggerOn;
  triggerUid?: string;
  contributors: Contributors;
  inputs: string[];
  priority: number;
  /** Attempts started, including those a stop or crash cut short. */
  attempts: number;
  /** The node that claimed the latest attempt. */
  node?: string;
  /** Attempts cut short by a stop or crash while other jobs ran too: they do not use up maxAttempts. */
  interruptions: number;
  /** The current attempt runs alone on its node (the job is suspect: see SUSPECT_AFTER_INTERRUPTIONS). */
  isolated: boolean;
  maxAttempts: number;
  backoffSeconds: number;
  notBefore?: string;
  rerunOf?: string;
  createdBy?: string;
  createdAt: string;
  startedAt?: string;
  finishedAt?: string;
  progress: number;
  progressMessage?: string;
  errorCode?: string;
  error?: string;
  stopReason?: string;
  steps?: StepRecord[];
}

/** A pipeline definition as a job was queued with it, kept once per content hash. */
export interface StoredPipelineVersion {
  hash: string;
  pipeline: string;
  /** The validated definition, as JSON. */
  definition: string;
  createdAt: string;
}

export interface JobFilter {
  status?: JobStatus;
  pipeline?: string;
  triggerOn?: TriggerOn;
  /** An input of this study / series. */
  study?: string;
  series?: string;
  /** An input whose Patient ID or Patient's Name contains this, ignoring case. */
  patient?: string;
  /** Created at or after / before these ISO times. */
  since?: string;
  until?: string;
  limit?: number;
  /** Jobs with ids below this (paging backwards in time). */
  before?: string;
  /** Only jobs this user made, or with an input addressed to one of these databases. */
  visibleTo?: { user: string; databases: string[] };
}

export interface JobSubject {
  patientId?: string;
  patientName?: string;
  studyInstanceUid?: string;
  seriesInstanceUid?: string;
  modality?: string;
  seriesDescription?: string;
  database?: string;
}

export interface InputSeries {
  seriesInstanceUid: string;
  studyInstanceUid?: string;
  database?: string;
  instances: number;
  firstReceivedAt: string;
  lastReceivedAt: string;
  attributes: Record<string, string>;
}

/**
 * The job queue: jobs created, claimed under a lease (several nodes share it on PostgreSQL),
 * their steps and progress, and their end (finished, retried later, cancelled); listings for
 * the API, CLI and web page; the pipeline versions jobs were queued with.
 */
export interface JobQueue {
  /** Another process queued, requeued or fired something (PostgreSQL nodes notify each other). */
  onChange(listener: () => void): () => void;
  createJob(job: NewJob): Promise<string>;
  /** The definition of a pipeline version jobs were queued with (undefined: not kept, e.g. a job from before versions were kept). */
  pipelineVersion(hash: string): Promise<StoredPipelineVersion | undefined>;
  /**
   * The next runnable job, skipping the pipelines named in `exceptPipelines`. A suspect job is
   * claimed only when `runningHere` is 0, and then runs isolated; until then nothing is claimed.
   */
  claimNextJob(
    owner: string,
    leaseMs: number,
    now: string,
    exceptPipelines?: string[],
    runningHere?: number,
  ): Promise<JobRecord | undefined>;
  /** When the earliest queued job may run (its retry time, or its creation), if any is queued. */
  nextQueuedAt(): Promise<string | undefined>;
  /**
   * Jobs a stop or crash left running are queued again: at start, this node's own (or, on one
   * SQLite file, all); on a cluster, any node's whose lease expired. Cut short beside other
   * jobs, the attempt is not counted (an interruption); cut short while running alone, it is,
   * and a job with no attempt left fails.
   */
  requeueInterrupted(scope?: LeaseScope): Promise<number>;
  /** Extends this node's leases; returns the jobs among them it no longer holds. */
  renewLeases(owner: string, jobIds: string[], until: string): Promise<string[]>;
  startStep(jobId: string, attempt: number, index: number, id: string, plugin: string): Promise<void>;
  finishStep(jobId: string, attempt: number, index: number, result: FinishedStep): Promise<void>;
  setProgress(jobId: string, progress: number, message?: string): Promise<void>;
  /**
   * Ends a job. With `owner`, only while that node holds its lease (false: another node took
   * it over after the lease expired, and its outcome is the one that counts).
   */
  finishJob(
    jobId: string,
    status: 'succeeded' | 'failed' | 'cancelled',
    outcome?: { errorCode?: string; error?: string; stopReason?: string },
    owner?: string,
  ): Promise<boolean>;
  retryLater(jobId: string, notBefore: string, errorCode: string, error: string, owner?: string): Promise<boolean>;
  cancelJob(jobId: string): Promise<boolean>;
  isCancelled(jobId: string): Promise<boolean>;
  getJob(jobId: string): Promise<JobRecord | undefined>;
  /** The objects behind a job's inputs, as its steps see them (paths relative to the object store). */
  stepInputs(arrivalIds: string[]): Promise<StepInput[]>;
  /** The databases the job's inputs were addressed to. */
  jobDatabases(jobId: string): Promise<string[]>;
  listJobs(filter: JobFilter): Promise<JobRecord[]>;
  /** What each job works on, read from its first input (a job's inputs share a study). */
  jobSubjects(jobIds: string[]): Promise<Map<string, JobSubject>>;
  /**
   * A job's inputs summed up per series: count, and the attributes of the series (from its
   * first input), in the order the series first appear.
   */
  inputSeries(jobId: string): Promise<InputSeries[]>;
  counts(): Promise<Record<JobStatus, number>>;
  queuedByPipeline(): Promise<Record<string, number>>;
}
