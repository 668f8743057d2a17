import type { Logger } from 'pino';
import { dfError, isDfError } from '../errors.ts';
import type { Announcer } from '../events.ts';
import type { LoadedPipeline } from '../pipeline/load.ts';
import type { JobQueue, JobRecord } from '../store/job-queue.ts';
import { newJobOf } from './new-job.ts';
import { PipelineVersions, type LoadedPipelines, type RerunVersion } from './pipeline-versions.ts';
import type { EngineServices } from './services.ts';
import { runJob, type JobOutcome, type RunJobDeps, type StepPool } from './run-job.ts';

export interface JobRunnerOptions {
  /** This node's name: it owns the leases of the jobs it runs. */
  nodeId: string;
  /** A running job's lease, renewed every third of it. */
  leaseMs: number;
  /** Other nodes share the queue: only this node's interrupted jobs are its own to requeue at start; others' are taken over once their leases expire. */
  shared: boolean;
  queue: JobQueue;
  pipelines: LoadedPipelines;
  pool: StepPool;
  jobsDir: string;
  log: Logger;
  events: Announcer;
  /** Jobs run at once on this node. */
  concurrency: number;
  /** Threads of the step pool; jobs with worker steps get a lane of twice that. */
  workerThreads: number;
  services: EngineServices;
  storeEmittedInstance: RunJobDeps['storeEmittedInstance'];
  objectPath: RunJobDeps['objectPath'];
  /** A job's outcome was recorded here (objects it released may be collectable now). */
  jobRecorded(): void;
  /** A job ended here, recorded or not. */
  jobSettled(): void;
}

const PROGRESS_WRITE_MS = 250;

/**
 * The queue runner: claims queued jobs while this node has room, under a lease it renews, runs
 * each attempt (run-job.ts) and records its end: succeeded, failed, retried later with backoff,
 * or cancelled. A job whose lease another node took over ends here without a say.
 */
export class JobRunner {
  private readonly o: JobRunnerOptions;
  private lastLeaseRenewal = 0;
  /** The earliest retry time of a job this node put back in the queue. */
  private nextRetryAt: number | undefined;
  private readonly running = new Map<string, AbortController>();
  private readonly runningPipelines = new Map<string, string>();
  /** A suspect job running alone: nothing else is claimed until it ends. */
  private isolatedJob: string | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** One claiming pass at a time (each claim awaits the store); a call meanwhile asks for another. */
  private claiming = false;
  private claimAgain = false;
  private closed = false;
  private readonly settled = new Set<Promise<unknown>>();
  private readonly lastProgressWrite = new Map<string, number>();
  /**
   * Attempts this node ran until another node took their job over: their outcome here is not
   * recorded. Kept per attempt (its controller), not per job: a later attempt of the same job,
   * claimed again here, is not lost.
   */
  private readonly lostAttempts = new Set<AbortController>();
  private readonly versions: PipelineVersions;

  constructor(options: JobRunnerOptions) {
    this.o = options;
    this.versions = new PipelineVersions(options.pipelines, options.queue);
  }

  /** Jobs a stop or crash left running are queued again, before this node claims anything. */
  async start(): Promise<void> {
    const requeued = await this.o.queue.requeueInterrupted(this.o.shared ? { owner: this.o.nodeId } : {});
    if (requeued > 0) this.o.log.warn({ requeued }, 'jobs interrupted by a stop or crash are queued again');
  }

  /** Once a second: leases kept, cancellations by other processes (the CLI) honoured, the queue looked at. */
  async beat(): Promise<void> {
    await this.keepLeases();
    for (const [jobId, controller] of this.running) if (await this.o.queue.isCancelled(jobId)) controller.abort();
    this.pump();
  }

  /**
   * Every third of a lease: renews this node's leases (a job whose lease another node took over
   * after it expired stops here), and, on a shared store, takes over other nodes' jobs whose
   * leases expired (their node died or lost the database).
   */
  private async keepLeases(): Promise<void> {
    const now = Date.now();
    if (now - this.lastLeaseRenewal < this.o.leaseMs / 3) return;
    this.lastLeaseRenewal = now;
    const renewing = new Map(this.running);
    const lost = await this.o.queue.renewLeases(this.o.nodeId, [...renewing.keys()], new Date(now + this.o.leaseMs).toISOString());
    for (const jobId of lost) {
      // An attempt that ended while the store answered is not lost: its job is queued again
      // (a retry) or finished, and the attempt running now, if any, is a new claim.
      const attempt = renewing.get(jobId);
      if (attempt === undefined || this.running.get(jobId) !== attempt) continue;
      this.o.log.warn({ jobId }, 'job lease lost (another node took the job over after it expired): stopping it here');
      this.lostAttempts.add(attempt);
      attempt.abort();
    }
    if (!this.o.shared) return;
    const takenOver = await this.o.queue.requeueInterrupted({ expiredBefore: new Date(now).toISOString() });
    if (takenOver > 0) this.o.log.warn({ takenOver }, 'jobs whose node stopped renewing their leases are queued again');
  }

  /**
   * A new job over the same inputs, linked to the one it repeats. It runs the pipeline version
   * the original ran ('original', the default) or the pipeline as loaded now ('current').
   */
  async rerun(jobId: string, user?: string, version: RerunVersion = 'original'): Promise<{ jobId: string; pipelineVersion: string }> {
    const original = await this.o.queue.getJob(jobId);
    if (!original) throw dfError('DF_ERR_JOB_UNKNOWN', `no job ${jobId}`);
    const p = await this.versions.forRerun(original, version);
    const id = await this.o.queue.createJob(
      newJobOf(p, { triggerOn: 'rerun', triggerUid: original.triggerUid, inputs: original.inputs, rerunOf: original.id, createdBy: user }),
    );
    this.o.events.announce('JobQueued', { jobId: id, pipeline: original.pipeline });
    this.pump();
    return { jobId: id, pipelineVersion: p.hash };
  }

  /** An operator's run of a pipeline over objects they chose (a study or series of a database). */
  async runManual(pipelineName: string, inputs: string[], options: { user: string; triggerUid?: string }): Promise<string> {
    const p = this.o.pipelines.get(pipelineName);
    if (!p) throw dfError('DF_ERR_PIPELINE_UNKNOWN', `no loaded pipeline "${pipelineName}"`);
    const id = await this.o.queue.createJob(
      newJobOf(p, { triggerOn: 'manual', triggerUid: options.triggerUid, inputs, createdBy: options.user }),
    );
    this.o.events.announce('JobQueued', { jobId: id, pipeline: pipelineName });
    this.pump();
    return id;
  }

  async cancel(jobId: string): Promise<boolean> {
    const cancelled = await this.o.queue.cancelJob(jobId);
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
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    clearTimeout(this.retryTimer);
    this.claiming = true;
    this.claimJobs()
      .catch((err: unknown) => {
        // A busy or failing store must not take the server down: try again shortly.
        this.o.log.error({ err }, 'claiming jobs failed; retrying in 1 s');
        clearTimeout(this.retryTimer);
        this.retryTimer = setTimeout(() => this.pump(), 1000);
        this.retryTimer.unref();
      })
      .finally(() => {
        this.claiming = false;
        if (!this.claimAgain) return;
        this.claimAgain = false;
        this.pump();
      });
  }

  private async claimJobs(): Promise<void> {
    const all = this.o.pipelines.all();
    const heavy = all
      .filter((p) => p.steps.some((s) => s.registered.plugin.runsIn === 'worker' || s.registered.plugin.usesPool))
      .map((p) => p.definition.name);
    const heavyLimit = Math.max(1, this.o.workerThreads * 2);
    const limited = all.flatMap((p) =>
      p.definition.maxConcurrentJobs === undefined ? [] : [[p.definition.name, p.definition.maxConcurrentJobs] as const],
    );
    while (!this.closed && this.running.size < this.o.concurrency && this.isolatedJob === undefined) {
      const runningOf = new Map<string, number>();
      for (const name of this.runningPipelines.values()) runningOf.set(name, (runningOf.get(name) ?? 0) + 1);
      const heavyRunning = heavy.reduce((n, name) => n + (runningOf.get(name) ?? 0), 0);
      const atTheirLimit = limited.filter(([name, max]) => (runningOf.get(name) ?? 0) >= max).map(([name]) => name);
      const except = [...new Set([...(heavyRunning >= heavyLimit ? heavy : []), ...atTheirLimit])];
      const job = await this.o.queue.claimNextJob(this.o.nodeId, this.o.leaseMs, new Date().toISOString(), except, this.running.size);
      if (!job) break;
      // Claimed as the server stopped: left running, it is queued again at the next start.
      if (this.closed) break;
      this.run(job);
    }
    // Look again at this node's next retry time, and at least every second (jobs queued by the
    // CLI on a SQLite file; anything a lost notification hid). Jobs held back by a lane or a
    // pipeline's cap are claimed when a job ends here, not by polling.
    if (!this.closed && this.running.size < this.o.concurrency) {
      const now = Date.now();
      if (this.nextRetryAt !== undefined && this.nextRetryAt <= now) this.nextRetryAt = undefined;
      const delay = this.nextRetryAt === undefined ? 1000 : Math.min(1000, Math.max(10, this.nextRetryAt - now));
      clearTimeout(this.retryTimer);
      this.retryTimer = setTimeout(() => this.pump(), delay);
      this.retryTimer.unref();
    }
  }

  private run(job: JobRecord): void {
    if (job.isolated) {
      this.isolatedJob = job.id;
      this.o.log.warn(
        { jobId: job.id, pipeline: job.pipeline, interruptions: job.interruptions },
        'job interrupted by several stops or crashes runs alone',
      );
    }
    const controller = new AbortController();
    this.running.set(job.id, controller);
    this.runningPipelines.set(job.id, job.pipeline);
    const done = this.execute(job, controller)
      .catch((err: unknown) => this.o.log.error({ err, jobId: job.id }, 'job bookkeeping failed'))
      .finally(() => {
        if (this.isolatedJob === job.id) this.isolatedJob = undefined;
        this.lostAttempts.delete(controller);
        this.running.delete(job.id);
        this.runningPipelines.delete(job.id);
        this.settled.delete(done);
        this.pump();
        this.o.jobSettled();
      });
    this.settled.add(done);
  }

  private async execute(job: JobRecord, controller: AbortController): Promise<void> {
    const log = this.o.log.child({ jobId: job.id, pipeline: job.pipeline, attempt: job.attempts });
    this.o.events.announce('JobStarted', { jobId: job.id, pipeline: job.pipeline, attempt: job.attempts });
    let outcome: JobOutcome;
    try {
      const pipeline = await this.pipelineToRun(job, log);
      if (!pipeline) {
        await this.o.queue.finishJob(job.id, 'failed', {
          errorCode: 'DF_ERR_PIPELINE_UNKNOWN',
          error: `pipeline "${job.pipeline}" is not loaded`,
        });
        this.o.events.announce('JobFinished', { jobId: job.id, pipeline: job.pipeline, status: 'failed', error: 'pipeline not loaded' });
        return;
      }
      outcome = await runJob(job, pipeline, controller.signal, {
        queue: this.o.queue,
        pool: this.o.pool,
        jobsDir: this.o.jobsDir,
        log,
        services: this.o.services,
        node: this.o.nodeId,
        storeEmittedInstance: this.o.storeEmittedInstance,
        objectPath: this.o.objectPath,
        onProgress: (j, progress, message) => this.progress(j.id, progress, message),
      });
    } catch (err) {
      // A version that no longer loads fails the attempt like a step would (and is retried).
      const error = isDfError(err, 'DF_ERR_PIPELINE_INVALID')
        ? err
        : dfError('DF_ERR_STEP_FAILED', `job ${job.id} failed outside its steps: ${(err as Error).message}`, { cause: err });
      outcome = { status: 'failed', error };
    }
    this.lastProgressWrite.delete(job.id);
    // Stopping the server is not the job's fault: left 'running', it is queued again at start.
    if (this.closed) return;
    const owner = this.o.nodeId;
    const queue = this.o.queue;
    let recorded: boolean;
    // What was recorded, announced without reading it back (a round trip per job on PostgreSQL).
    let status: 'succeeded' | 'cancelled' | 'queued' | 'failed' = 'failed';
    let error: string | undefined;
    if (this.lostAttempts.has(controller)) {
      recorded = false;
    } else if (outcome.status === 'succeeded') {
      status = 'succeeded';
      recorded = await queue.finishJob(job.id, 'succeeded', { stopReason: outcome.stopReason }, owner);
      if (recorded) log.debug({ stopReason: outcome.stopReason }, 'job succeeded');
    } else if (outcome.status === 'cancelled' || (await queue.isCancelled(job.id))) {
      status = 'cancelled';
      recorded = await queue.finishJob(job.id, 'cancelled', {}, owner);
      if (recorded) log.info('job cancelled');
    } else if (job.attempts - job.interruptions < job.maxAttempts) {
      const delayMs = job.backoffSeconds * 1000 * 2 ** (job.attempts - job.interruptions - 1);
      [status, error] = ['queued', outcome.error.message];
      const retryAt = Date.now() + delayMs;
      recorded = await queue.retryLater(job.id, new Date(retryAt).toISOString(), outcome.error.code, outcome.error.message, owner);
      if (recorded) this.nextRetryAt = Math.min(this.nextRetryAt ?? Infinity, retryAt);
      if (recorded)
        log.warn({ code: outcome.error.code, err: outcome.error.message, retryInMs: delayMs }, 'job attempt failed; will retry');
    } else {
      [status, error] = ['failed', outcome.error.message];
      recorded = await queue.finishJob(job.id, 'failed', { errorCode: outcome.error.code, error: outcome.error.message }, owner);
      if (recorded) log.warn({ code: outcome.error.code, err: outcome.error.message }, 'job failed');
    }
    if (!recorded) {
      log.warn({ status: outcome.status }, 'job attempt ended after another node took the job over: its outcome here is dropped');
      return;
    }
    const durationSeconds = job.startedAt ? (Date.now() - Date.parse(job.startedAt)) / 1000 : undefined;
    this.o.events.announce('JobFinished', { jobId: job.id, pipeline: job.pipeline, status, error, durationSeconds });
    this.o.jobRecorded();
  }

  /**
   * Every attempt, retry and takeover runs the version the job was queued with. A job queued
   * before versions were kept (an upgrade) runs the pipeline as loaded now, as it always did.
   */
  private async pipelineToRun(job: JobRecord, log: Logger): Promise<LoadedPipeline | undefined> {
    try {
      return await this.versions.of(job);
    } catch (err) {
      if (!isDfError(err, 'DF_ERR_PIPELINE_VERSION_UNKNOWN')) throw err;
      const current = this.o.pipelines.get(job.pipeline);
      log.warn(
        { pipelineVersion: job.pipelineHash, runs: current?.hash },
        'the pipeline version this job was queued with was not kept: it runs the pipeline as loaded now',
      );
      return current;
    }
  }

  private progress(jobId: string, progress: number, message?: string): void {
    this.o.events.announce('JobProgressed', { jobId, progress, message });
    const now = Date.now();
    // Progress is written at most every PROGRESS_WRITE_MS, the first time only once a job has
    // run that long: finishing writes 1 anyway, so quick jobs never write progress at all.
    if (!this.lastProgressWrite.has(jobId)) this.lastProgressWrite.set(jobId, now);
    if (progress >= 1 || now - this.lastProgressWrite.get(jobId)! < PROGRESS_WRITE_MS) return;
    this.lastProgressWrite.set(jobId, now);
    this.o.queue
      .setProgress(jobId, progress, message)
      .catch((err: unknown) => this.o.log.warn({ err, jobId }, 'recording job progress failed'));
  }

  get runningJobs(): number {
    return this.running.size;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retryTimer);
    for (const c of this.running.values()) c.abort();
    // Let running jobs notice and stop touching the stores before these close (bounded: a
    // main-thread step that ignores its signal cannot hold the shutdown).
    await Promise.race([Promise.allSettled([...this.settled]), new Promise((r) => setTimeout(r, 2000))]);
  }
}
