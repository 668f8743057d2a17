import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { dfError, isDfError } from '../errors.ts';
import { newId } from '../ids.ts';
import type { LoadedPipeline } from '../pipeline/load.ts';
import type { PipelineSet } from '../trigger/pipeline-set.ts';
import type { ArrivalFiling, ArrivalRecord } from '../store/index-store.ts';
import { filingOnArrival, pipelineTakes } from '../arrivals/arrival-filing.ts';
import type { ArrivalScope, GroupJoin, JobRecord, JobStore, NewJob } from '../store/job-store.ts';
import { PipelineVersions, type RerunVersion } from './pipeline-versions.ts';
import type { EngineServices } from './services.ts';
import { runJob, type JobOutcome, type RunJobDeps, type StepPool } from './run-job.ts';

export interface EngineOptions {
  /** This node's name: it owns the leases of the jobs it runs. */
  nodeId?: string;
  /** A running job's lease, renewed every third of it. */
  leaseMs?: number;
  /**
   * Other nodes share the job store (PostgreSQL): at start only this node's own interrupted
   * jobs are requeued, and other nodes' jobs are taken over once their leases expire.
   */
  shared?: boolean;
  jobs: JobStore;
  pipelines: PipelineSet;
  pool: StepPool;
  jobsDir: string;
  log: Logger;
  /** Jobs run at once on this node. */
  concurrency: number;
  /** Threads of the step pool; jobs with worker steps get a lane of twice that. */
  workerThreads: number;
  services: EngineServices;
  storeEmittedInstance: RunJobDeps['storeEmittedInstance'];
  objectPath: RunJobDeps['objectPath'];
  /** Deletes the files of released objects nothing needs any more. */
  removeObject(path: string): Promise<void>;
}

interface EngineEvents {
  ArrivalProcessed: [{ arrivalId: string; pipelines: string[] }];
  JobQueued: [{ jobId: string; pipeline: string }];
  JobStarted: [{ jobId: string; pipeline: string; attempt: number }];
  JobProgressed: [{ jobId: string; progress: number; message?: string }];
  JobFinished: [{ jobId: string; pipeline: string; status: string; error?: string; durationSeconds?: number }];
}

const DEFAULT_LEASE_MS = 30_000;
const PROGRESS_WRITE_MS = 250;
const ARRIVAL_BATCH_MS = 5;
const ARRIVAL_BATCH = 500;
const COLLECTION_BEATS = 10;
// An arrival another node has not matched for this long: that node stopped; any node takes it.
const ORPHANED_ARRIVAL_MS = 10_000;

/** A job of this pipeline version, its definition kept with it, with the version's priority and retry policy. */
export function newJobOf(p: LoadedPipeline, extra: Pick<NewJob, 'triggerOn' | 'triggerUid' | 'inputs'> & Partial<NewJob>): NewJob {
  return {
    pipeline: p.definition.name,
    pipelineHash: p.hash,
    pipelineDefinition: p.definitionJson,
    priority: p.definition.priority,
    maxAttempts: p.definition.retry.maxAttempts,
    backoffSeconds: p.definition.retry.backoffSeconds,
    ...extra,
  };
}

/**
 * The engine: arrivals in, jobs out. Each arrival is matched against the enabled pipelines
 * once (durably: the decision and the arrival's "processed" mark commit together); instance
 * triggers queue a job at once, series/study triggers join a group that fires once nothing new
 * arrived for stableSeconds. Jobs run here, CPU-heavy steps in the worker pool.
 */
export class Engine extends EventEmitter<EngineEvents> {
  readonly nodeId: string;
  private readonly leaseMs: number;
  private lastLeaseRenewal = 0;
  private unsubscribe: (() => void) | undefined;
  /** The earliest retry time of a job this node put back in the queue. */
  private nextRetryAt: number | undefined;
  /** Notifications from other nodes come in bursts: one claiming pass answers a burst. */
  private changeScheduled = false;
  private readonly o: EngineOptions;
  private readonly running = new Map<string, AbortController>();
  private readonly runningPipelines = new Map<string, string>();
  /** A suspect job running alone: nothing else is claimed until it ends. */
  private isolatedJob: string | undefined;
  private arrivalsScheduled = false;
  private beats = 0;
  private processingArrivals = false;
  private groupTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private collectionTimer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  private readonly settled = new Set<Promise<unknown>>();
  private lastProgressWrite = new Map<string, number>();
  /** Jobs this node ran until another node took them over: their outcome here is not recorded. */
  private readonly lostLeases = new Set<string>();
  private readonly versions: PipelineVersions;
  /**
   * For the receiver: the filing of a filing-only pipeline commits with the arrival (and an
   * arrival no other pipeline takes is processed in that commit too): no job, no queue entry,
   * and the object is in its database, visible to C-FIND, before the sender is answered.
   */
  readonly arrivalFiling: ArrivalFiling = {
    decide: (arrival) => (this.closed ? undefined : filingOnArrival(this.o.pipelines.enabled(), arrival, this.o.services)),
    committed: ({ settled, released }) => {
      if (settled) this.stats.arrivalsProcessed++;
      if (released) this.scheduleCollection();
    },
  };
  readonly stats = { arrivalsProcessed: 0, arrivalsWithoutPipeline: 0, lastUnmatched: [] as { arrivalId: string; sopInstanceUid: string; at: string }[] };

  constructor(options: EngineOptions) {
    super();
    this.o = options;
    this.nodeId = options.nodeId ?? newId();
    this.leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    this.versions = new PipelineVersions(options.pipelines, options.jobs);
  }

  start(): void {
    const requeued = this.o.jobs.requeueInterrupted(this.o.shared ? { owner: this.nodeId } : {});
    if (requeued > 0) this.o.log.warn({ requeued }, 'jobs interrupted by a stop or crash are queued again');
    // Another node queued, requeued or fired something: claim now rather than at the next beat.
    this.unsubscribe = this.o.jobs.onChange(() => {
      if (this.changeScheduled) return;
      this.changeScheduled = true;
      setImmediate(() => {
        this.changeScheduled = false;
        this.pump();
        this.scheduleGroups();
      });
    });
    this.notifyArrival();
    this.scheduleGroups();
    this.pump();
    // Other processes write here too (the CLI's rerun and force-complete, imports): look once a
    // second for what they queued.
    this.heartbeat = setInterval(() => this.beat(), 1000);
    this.heartbeat.unref();
  }

  private beat(): void {
    try {
      // Objects released by filings in other processes' commits (import, replication): no job
      // end here schedules their collection.
      if (++this.beats % COLLECTION_BEATS === 0) this.scheduleCollection();
      this.keepLeases();
      const next = this.o.jobs.nextGroupFireAt();
      if (next !== undefined && Date.parse(next) <= Date.now()) this.fireDueGroups();
      if (this.o.jobs.unprocessedArrivals(1, this.arrivalScope()).length > 0) this.notifyArrival();
      // A job cancelled by another process (the CLI) stops here too.
      for (const [jobId, controller] of this.running) if (this.o.jobs.isCancelled(jobId)) controller.abort();
      this.pump();
    } catch (err) {
      this.o.log.error({ err }, 'engine heartbeat failed');
    }
  }

  /**
   * Every third of a lease: renews this node's leases (a job whose lease another node took over
   * after it expired stops here), and, on a shared store, takes over other nodes' jobs whose
   * leases expired (their node died or lost the database).
   */
  private keepLeases(): void {
    const now = Date.now();
    if (now - this.lastLeaseRenewal < this.leaseMs / 3) return;
    this.lastLeaseRenewal = now;
    const lost = this.o.jobs.renewLeases(this.nodeId, [...this.running.keys()], new Date(now + this.leaseMs).toISOString());
    for (const jobId of lost) {
      this.o.log.warn({ jobId }, 'job lease lost (another node took the job over after it expired): stopping it here');
      this.lostLeases.add(jobId);
      this.running.get(jobId)?.abort();
    }
    if (!this.o.shared) return;
    const takenOver = this.o.jobs.requeueInterrupted({ expiredBefore: new Date(now).toISOString() });
    if (takenOver > 0) this.o.log.warn({ takenOver }, 'jobs whose node stopped renewing their leases are queued again');
  }

  /**
   * On a shared store each node matches the arrivals it received; another node's are left to it
   * (matching them too only made both wait on the same rows) unless they wait too long.
   */
  private arrivalScope(): ArrivalScope | undefined {
    return this.o.shared ? { node: this.nodeId, orphanedBefore: new Date(Date.now() - ORPHANED_ARRIVAL_MS).toISOString() } : undefined;
  }

  /**
   * Something arrived (the arrival row is committed): process the queue shortly. The short
   * delay batches arrivals that come in a stream, and lets the work fall into the moments the
   * receiving side waits on fsync instead of delaying the next object (measured with storescu:
   * 400 objects took 2.1 s with immediate processing).
   */
  notifyArrival(): void {
    if (this.arrivalsScheduled || this.closed) return;
    this.arrivalsScheduled = true;
    setTimeout(() => {
      this.arrivalsScheduled = false;
      this.processArrivals();
    }, ARRIVAL_BATCH_MS);
  }

  private processArrivals(): void {
    if (this.processingArrivals || this.closed) return;
    this.processingArrivals = true;
    let queued = false;
    let joined = false;
    try {
      for (;;) {
        const batch = this.o.jobs.unprocessedArrivals(ARRIVAL_BATCH, this.arrivalScope());
        if (batch.length === 0) break;
        for (const arrival of batch) {
          const { jobs, joins, names } = this.decide(arrival);
          const ids = this.o.jobs.recordTriggerDecisions(arrival.id, new Date().toISOString(), jobs, joins);
          ids.forEach((jobId, i) => this.emit('JobQueued', { jobId, pipeline: jobs[i].pipeline }));
          queued ||= ids.length > 0;
          joined ||= joins.length > 0;
          this.stats.arrivalsProcessed++;
          if (names.length === 0) {
            this.stats.arrivalsWithoutPipeline++;
            this.stats.lastUnmatched.unshift({ arrivalId: arrival.id, sopInstanceUid: arrival.sopInstanceUid, at: arrival.receivedAt });
            this.stats.lastUnmatched.length = Math.min(this.stats.lastUnmatched.length, 20);
          }
          this.emit('ArrivalProcessed', { arrivalId: arrival.id, pipelines: names });
        }
        // A short batch was all there was (this loop is synchronous: nothing arrived meanwhile;
        // what arrives next schedules its own pass).
        if (batch.length < ARRIVAL_BATCH) break;
      }
    } catch (err) {
      this.o.log.error({ err }, 'arrival processing failed; retrying in 1 s');
      setTimeout(() => this.notifyArrival(), 1000).unref();
    } finally {
      this.processingArrivals = false;
    }
    if (joined) this.scheduleGroups();
    if (queued) this.pump();
    this.checkIdle();
  }

  private decide(arrival: ArrivalRecord): { jobs: NewJob[]; joins: GroupJoin[]; names: string[] } {
    const jobs: NewJob[] = [];
    const joins: GroupJoin[] = [];
    const names: string[] = [];
    for (const p of this.o.pipelines.enabled()) {
      const t = p.definition.trigger;
      if (!pipelineTakes(p, arrival)) continue;
      names.push(p.definition.name);
      // Filed in the arrival's own commit already.
      if (arrival.filedBy === p.definition.name) continue;
      if (t.on === 'instance') {
        const contributors = { callingAeTitles: arrival.callingAeTitle ? [arrival.callingAeTitle] : [], peerAddresses: arrival.peerAddress ? [arrival.peerAddress] : [] };
        jobs.push(newJobOf(p, { triggerOn: 'instance', triggerUid: arrival.sopInstanceUid, inputs: [arrival.id], contributors }));
        continue;
      }
      const uid = t.on === 'series' ? arrival.seriesInstanceUid : arrival.studyInstanceUid;
      if (!uid) continue;
      // Stability counts from the last arrival, by the clock of the node that processes it.
      const fireAt = new Date(Date.now() + t.stableSeconds * 1000).toISOString();
      joins.push({ pipeline: p.definition.name, level: t.on, uid, fireAt, lateArrivals: t.lateArrivals });
    }
    return { jobs, joins, names };
  }

  private scheduleGroups(): void {
    if (this.closed) return;
    clearTimeout(this.groupTimer);
    let next: string | undefined;
    try {
      next = this.o.jobs.nextGroupFireAt();
    } catch (err) {
      // The heartbeat looks again within a second.
      this.o.log.error({ err }, 'reading stable-trigger timers failed');
      return;
    }
    if (next === undefined) return;
    const delay = Math.min(Math.max(0, Date.parse(next) - Date.now()), 2 ** 31 - 1);
    this.groupTimer = setTimeout(() => this.fireDueGroups(), delay);
  }

  private fireDueGroups(): void {
    try {
      for (const g of this.o.jobs.dueGroups(new Date().toISOString())) {
        const p = this.o.pipelines.get(g.pipeline);
        const jobId = this.o.jobs.fireGroup(g.id, {
          pipeline: g.pipeline,
          pipelineHash: p?.hash,
          pipelineDefinition: p?.definitionJson,
          priority: p?.definition.priority ?? 0,
          maxAttempts: p?.definition.retry.maxAttempts ?? 1,
          backoffSeconds: p?.definition.retry.backoffSeconds ?? 10,
        });
        if (jobId) {
          this.o.log.info({ jobId, pipeline: g.pipeline, triggerLevel: g.level, uid: g.uid }, `${g.level} stable: job queued`);
          this.emit('JobQueued', { jobId, pipeline: g.pipeline });
        }
      }
    } catch (err) {
      this.o.log.error({ err }, 'firing stable groups failed');
    }
    this.scheduleGroups();
    this.pump();
  }

  /** Operator's "this series/study is complete": fire its pending group now. */
  forceComplete(level: 'series' | 'study', uid: string): number {
    const n = this.o.jobs.forceComplete(level, uid);
    if (n > 0) this.fireDueGroups();
    return n;
  }

  /**
   * A new job over the same inputs, linked to the one it repeats. It runs the pipeline version
   * the original ran ('original', the default) or the pipeline as loaded now ('current').
   */
  rerun(jobId: string, user?: string, version: RerunVersion = 'original'): { jobId: string; pipelineVersion: string } {
    const original = this.o.jobs.getJob(jobId);
    if (!original) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${jobId}`);
    const p = this.versions.forRerun(original, version);
    const id = this.o.jobs.createJob(
      newJobOf(p, { triggerOn: 'rerun', triggerUid: original.triggerUid, inputs: original.inputs, rerunOf: original.id, createdBy: user }),
    );
    this.emit('JobQueued', { jobId: id, pipeline: original.pipeline });
    this.pump();
    return { jobId: id, pipelineVersion: p.hash };
  }

  /** An operator's run of a pipeline over objects they chose (a study or series of a database). */
  runManual(pipelineName: string, inputs: string[], options: { user: string; triggerUid?: string }): string {
    const p = this.o.pipelines.get(pipelineName);
    if (!p) throw dfError('DF_ERR_PIPELINE_UNKNOWN', `no loaded pipeline "${pipelineName}"`);
    const id = this.o.jobs.createJob(newJobOf(p, { triggerOn: 'manual', triggerUid: options.triggerUid, inputs, createdBy: options.user }));
    this.emit('JobQueued', { jobId: id, pipeline: pipelineName });
    this.pump();
    return id;
  }

  cancel(jobId: string): boolean {
    const cancelled = this.o.jobs.cancelJob(jobId);
    this.running.get(jobId)?.abort();
    return cancelled;
  }

  /**
   * Claims queued jobs while there is room. Jobs of pipelines with a worker step have their own,
   * smaller lane (twice the pool's threads: enough to keep the pool busy), so a backlog of
   * CPU-heavy jobs waiting for threads never holds every slot while quick jobs wait behind them.
   */
  pump(): void {
    if (this.closed) return;
    clearTimeout(this.retryTimer);
    try {
      this.claimJobs();
    } catch (err) {
      // A busy or failing store must not take the server down: try again shortly.
      this.o.log.error({ err }, 'claiming jobs failed; retrying in 1 s');
      this.retryTimer = setTimeout(() => this.pump(), 1000);
      this.retryTimer.unref();
    }
  }

  private claimJobs(): void {
    const heavy = this.o.pipelines.all().filter((p) => p.steps.some((s) => s.registered.plugin.runsIn === 'worker' || s.registered.plugin.usesPool)).map((p) => p.definition.name);
    const heavyLimit = Math.max(1, this.o.workerThreads * 2);
    const limited = this.o.pipelines.all().flatMap((p) => (p.definition.maxConcurrentJobs === undefined ? [] : [[p.definition.name, p.definition.maxConcurrentJobs] as const]));
    while (this.running.size < this.o.concurrency && this.isolatedJob === undefined) {
      const runningOf = new Map<string, number>();
      for (const name of this.runningPipelines.values()) runningOf.set(name, (runningOf.get(name) ?? 0) + 1);
      const heavyRunning = heavy.reduce((n, name) => n + (runningOf.get(name) ?? 0), 0);
      const atTheirLimit = limited.filter(([name, max]) => (runningOf.get(name) ?? 0) >= max).map(([name]) => name);
      const except = [...new Set([...(heavyRunning >= heavyLimit ? heavy : []), ...atTheirLimit])];
      const job = this.o.jobs.claimNextJob(this.nodeId, this.leaseMs, new Date().toISOString(), except, this.running.size);
      if (!job) break;
      if (job.isolated) {
        this.isolatedJob = job.id;
        this.o.log.warn({ jobId: job.id, pipeline: job.pipeline, interruptions: job.interruptions }, 'job interrupted by several stops or crashes runs alone');
      }
      const controller = new AbortController();
      this.running.set(job.id, controller);
      this.runningPipelines.set(job.id, job.pipeline);
      const done = this.execute(job, controller)
        .catch((err) => this.o.log.error({ err, jobId: job.id }, 'job bookkeeping failed'))
        .finally(() => {
          if (this.isolatedJob === job.id) this.isolatedJob = undefined;
          this.running.delete(job.id);
          this.runningPipelines.delete(job.id);
          this.settled.delete(done);
          this.pump();
          this.checkIdle();
        });
      this.settled.add(done);
    }
    // Look again at this node's next retry time, and at least every second (jobs queued by the
    // CLI on a SQLite file; anything a lost notification hid). Jobs held back by a lane or a
    // pipeline's cap are claimed when a job ends here, not by polling.
    if (this.running.size < this.o.concurrency) {
      const now = Date.now();
      if (this.nextRetryAt !== undefined && this.nextRetryAt <= now) this.nextRetryAt = undefined;
      const delay = this.nextRetryAt === undefined ? 1000 : Math.min(1000, Math.max(10, this.nextRetryAt - now));
      this.retryTimer = setTimeout(() => this.pump(), delay);
      this.retryTimer.unref();
    }
  }

  private async execute(job: JobRecord, controller: AbortController): Promise<void> {
    const log = this.o.log.child({ jobId: job.id, pipeline: job.pipeline, attempt: job.attempts });
    this.emit('JobStarted', { jobId: job.id, pipeline: job.pipeline, attempt: job.attempts });
    let outcome: JobOutcome;
    try {
      const pipeline = this.pipelineToRun(job, log);
      if (!pipeline) {
        this.o.jobs.finishJob(job.id, 'failed', { errorCode: 'DF_ERR_PIPELINE_UNKNOWN', error: `pipeline "${job.pipeline}" is not loaded` });
        this.emit('JobFinished', { jobId: job.id, pipeline: job.pipeline, status: 'failed', error: 'pipeline not loaded' });
        return;
      }
      outcome = await runJob(job, pipeline, controller.signal, {
        jobs: this.o.jobs,
        pool: this.o.pool,
        jobsDir: this.o.jobsDir,
        log,
        services: this.o.services,
        node: this.nodeId,
        storeEmittedInstance: this.o.storeEmittedInstance,
        objectPath: this.o.objectPath,
        onProgress: (j, progress, message) => this.progress(j.id, progress, message),
      });
    } catch (err) {
      // A version that no longer loads fails the attempt like a step would (and is retried).
      const error = isDfError(err, 'DF_ERR_PIPELINE_INVALID') ? err : dfError('DF_ERR_STEP_FAILED', `job ${job.id} failed outside its steps: ${(err as Error).message}`, { cause: err });
      outcome = { status: 'failed', error };
    }
    this.lastProgressWrite.delete(job.id);
    // Stopping the server is not the job's fault: left 'running', it is queued again at start.
    if (this.closed) return;
    const owner = this.nodeId;
    let recorded: boolean;
    // What was recorded, announced without reading it back (a round trip per job on PostgreSQL).
    let status: 'succeeded' | 'cancelled' | 'queued' | 'failed' = 'failed';
    let error: string | undefined;
    if (this.lostLeases.delete(job.id)) {
      recorded = false;
    } else if (outcome.status === 'succeeded') {
      status = 'succeeded';
      recorded = this.o.jobs.finishJob(job.id, 'succeeded', { stopReason: outcome.stopReason }, owner);
      if (recorded) log.debug({ stopReason: outcome.stopReason }, 'job succeeded');
    } else if (outcome.status === 'cancelled' || this.o.jobs.isCancelled(job.id)) {
      status = 'cancelled';
      recorded = this.o.jobs.finishJob(job.id, 'cancelled', {}, owner);
      if (recorded) log.info('job cancelled');
    } else if (job.attempts - job.interruptions < job.maxAttempts) {
      const delayMs = job.backoffSeconds * 1000 * 2 ** (job.attempts - job.interruptions - 1);
      [status, error] = ['queued', outcome.error.message];
      const retryAt = Date.now() + delayMs;
      recorded = this.o.jobs.retryLater(job.id, new Date(retryAt).toISOString(), outcome.error.code, outcome.error.message, owner);
      if (recorded) this.nextRetryAt = Math.min(this.nextRetryAt ?? Infinity, retryAt);
      if (recorded) log.warn({ code: outcome.error.code, err: outcome.error.message, retryInMs: delayMs }, 'job attempt failed; will retry');
    } else {
      [status, error] = ['failed', outcome.error.message];
      recorded = this.o.jobs.finishJob(job.id, 'failed', { errorCode: outcome.error.code, error: outcome.error.message }, owner);
      if (recorded) log.warn({ code: outcome.error.code, err: outcome.error.message }, 'job failed');
    }
    if (!recorded) {
      log.warn({ status: outcome.status }, 'job attempt ended after another node took the job over: its outcome here is dropped');
      return;
    }
    const durationSeconds = job.startedAt ? (Date.now() - Date.parse(job.startedAt)) / 1000 : undefined;
    this.emit('JobFinished', { jobId: job.id, pipeline: job.pipeline, status, error, durationSeconds });
    this.scheduleCollection();
  }

  /**
   * Every attempt, retry and takeover runs the version the job was queued with. A job queued
   * before versions were kept (an upgrade) runs the pipeline as loaded now, as it always did.
   */
  private pipelineToRun(job: JobRecord, log: Logger): LoadedPipeline | undefined {
    try {
      return this.versions.of(job);
    } catch (err) {
      if (!isDfError(err, 'DF_ERR_PIPELINE_VERSION_UNKNOWN')) throw err;
      const current = this.o.pipelines.get(job.pipeline);
      log.warn({ pipelineVersion: job.pipelineHash, runs: current?.hash }, 'the pipeline version this job was queued with was not kept: it runs the pipeline as loaded now');
      return current;
    }
  }

  private progress(jobId: string, progress: number, message?: string): void {
    this.emit('JobProgressed', { jobId, progress, message });
    const now = Date.now();
    // Progress is written at most every PROGRESS_WRITE_MS, the first time only once a job has
    // run that long: finishing writes 1 anyway, so quick jobs never write progress at all.
    if (!this.lastProgressWrite.has(jobId)) this.lastProgressWrite.set(jobId, now);
    if (progress >= 1 || now - this.lastProgressWrite.get(jobId)! < PROGRESS_WRITE_MS) return;
    this.lastProgressWrite.set(jobId, now);
    this.o.jobs.setProgress(jobId, progress, message);
  }

  /**
   * Released objects are collected a little after jobs end, in one pass: the query looks at
   * every unfinished job, which is too much to run after each of hundreds of small jobs.
   */
  private scheduleCollection(): void {
    if (this.collectionTimer || this.closed) return;
    this.collectionTimer = setTimeout(() => {
      this.collectionTimer = undefined;
      void this.collectObjects();
    }, 200);
  }

  /** Deletes the bytes of released objects that no database, job or open group needs. */
  private async collectObjects(): Promise<void> {
    let collectable: { id: string; path: string }[];
    try {
      if (!this.o.jobs.hasReleasedObjects()) return;
      collectable = this.o.jobs.collectableObjects();
    } catch (err) {
      this.o.log.error({ err }, 'finding released objects failed; next job end tries again');
      return;
    }
    for (const o of collectable) {
      try {
        await this.o.removeObject(o.path);
        this.o.jobs.markObjectDeleted(o.id);
      } catch (err) {
        this.o.log.warn({ err, objectId: o.id }, 'cannot delete a released object');
      }
    }
  }

  /** Resolves once no arrival waits to be matched and no job is queued or running here. */
  idle(): Promise<void> {
    return new Promise((resolve) => {
      this.idleWaiters.push(resolve);
      this.checkIdle();
    });
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || this.closed) return;
    let busy: boolean;
    try {
      busy = this.running.size > 0 || this.o.jobs.nextQueuedAt() !== undefined || this.arrivalsScheduled || this.processingArrivals || this.o.jobs.unprocessedArrivals(1, this.arrivalScope()).length > 0;
    } catch {
      busy = true;
    }
    if (busy) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    waiters.forEach((w) => w());
  }

  get runningJobs(): number {
    return this.running.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    clearTimeout(this.groupTimer);
    clearTimeout(this.retryTimer);
    clearTimeout(this.collectionTimer);
    clearInterval(this.heartbeat);
    for (const c of this.running.values()) c.abort();
    // Let running jobs notice and stop touching the stores before these close (bounded: a
    // main-thread step that ignores its signal cannot hold the shutdown).
    await Promise.race([Promise.allSettled([...this.settled]), new Promise((r) => setTimeout(r, 2000))]);
  }
}
