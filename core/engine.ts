import type { Logger } from 'pino';
import { filingOnArrival } from './arrivals/arrival-filing.ts';
import type { Announcer } from './events.ts';
import { newId } from './ids.ts';
import { JobRunner } from './jobs/job-runner.ts';
import type { RerunVersion } from './jobs/pipeline-versions.ts';
import type { RunJobDeps, StepPool } from './jobs/run-job.ts';
import type { EngineServices } from './jobs/services.ts';
import { ObjectCollector } from './lifecycle/object-collector.ts';
import type { ArrivalFiling } from './store/index-store.ts';
import type { JobStores } from './store/job-store.ts';
import { ArrivalMatcher, type MatchingStats } from './trigger/arrival-matcher.ts';
import type { PipelineSet } from './trigger/pipeline-set.ts';
import { StableGroups } from './trigger/stable-groups.ts';

export interface EngineOptions {
  /** This node's name: it owns the leases of the jobs it runs. */
  nodeId?: string;
  /** A running job's lease, renewed every third of it. */
  leaseMs?: number;
  /**
   * Other nodes share the stores (PostgreSQL): at start only this node's own interrupted
   * jobs are requeued, and other nodes' jobs are taken over once their leases expire.
   */
  shared?: boolean;
  stores: JobStores;
  pipelines: PipelineSet;
  /** The bus the flow's news is announced on. */
  events: Announcer;
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

const DEFAULT_LEASE_MS = 30_000;
const COLLECTION_BEATS = 10;

/**
 * The flow after receive, assembled: arrivals are matched (trigger/arrival-matcher), stable
 * groups fire (trigger/stable-groups), jobs run (jobs/job-runner), released objects are
 * collected (lifecycle/object-collector). Each room calls only the next one down; this wires
 * their callbacks and keeps one heartbeat for what other processes write.
 */
export class Engine {
  readonly nodeId: string;
  private readonly o: EngineOptions;
  private readonly matcher: ArrivalMatcher;
  private readonly groups: StableGroups;
  private readonly runner: JobRunner;
  private readonly collector: ObjectCollector;
  private unsubscribe: (() => void) | undefined;
  /** Notifications from other nodes come in bursts: one claiming pass answers a burst. */
  private changeScheduled = false;
  private heartbeat: NodeJS.Timeout | undefined;
  private beating = false;
  private beats = 0;
  private closed = false;
  private idleWaiters: (() => void)[] = [];
  /**
   * For the receiver: the filing of a filing-only pipeline commits with the arrival (and an
   * arrival no other pipeline takes is processed in that commit too): no job, no queue entry,
   * and the object is in its database, visible to C-FIND, before the sender is answered.
   */
  readonly arrivalFiling: ArrivalFiling;

  constructor(options: EngineOptions) {
    this.o = options;
    this.nodeId = options.nodeId ?? newId();
    const { stores, pipelines, events, log } = options;
    const shared = options.shared ?? false;
    this.collector = new ObjectCollector({ lifecycle: stores.lifecycle, removeObject: options.removeObject, log });
    this.runner = new JobRunner({
      nodeId: this.nodeId,
      leaseMs: options.leaseMs ?? DEFAULT_LEASE_MS,
      shared,
      queue: stores.queue,
      pipelines,
      pool: options.pool,
      jobsDir: options.jobsDir,
      log,
      events,
      concurrency: options.concurrency,
      workerThreads: options.workerThreads,
      services: options.services,
      storeEmittedInstance: options.storeEmittedInstance,
      objectPath: options.objectPath,
      jobRecorded: () => this.collector.schedule(),
      jobSettled: () => this.checkIdle(),
    });
    this.groups = new StableGroups({ groups: stores.groups, pipelines, log, events, queued: () => this.runner.pump() });
    this.matcher = new ArrivalMatcher({
      arrivals: stores.arrivals,
      pipelines,
      nodeId: this.nodeId,
      shared,
      log,
      events,
      queued: () => this.runner.pump(),
      joined: () => this.groups.schedule(),
      passed: () => this.checkIdle(),
    });
    this.arrivalFiling = {
      decide: (arrival) => (this.closed ? undefined : filingOnArrival(pipelines.enabled(), arrival, options.services)),
      committed: ({ settled, released }) => {
        if (settled) this.matcher.stats.arrivalsProcessed++;
        if (released) this.collector.schedule();
      },
    };
  }

  get stats(): MatchingStats {
    return this.matcher.stats;
  }

  async start(): Promise<void> {
    await this.runner.start();
    // Another node queued, requeued or fired something: claim now rather than at the next beat.
    this.unsubscribe = this.o.stores.queue.onChange(() => {
      if (this.changeScheduled) return;
      this.changeScheduled = true;
      setImmediate(() => {
        this.changeScheduled = false;
        this.runner.pump();
        this.groups.schedule();
      });
    });
    this.matcher.notifyArrival();
    this.groups.schedule();
    this.runner.pump();
    // Other processes write here too (the CLI's rerun and force-complete, imports): look once a
    // second for what they queued.
    this.heartbeat = setInterval(() => void this.beat(), 1000);
    this.heartbeat.unref();
  }

  private async beat(): Promise<void> {
    // A stalled database holds a beat: the next ones wait for it rather than pile up.
    if (this.beating || this.closed) return;
    this.beating = true;
    try {
      // Objects released by filings in other processes' commits (import, replication): no job
      // end here schedules their collection.
      if (++this.beats % COLLECTION_BEATS === 0) this.collector.schedule();
      await this.groups.beat();
      await this.matcher.beat();
      await this.runner.beat();
    } catch (err) {
      this.o.log.error({ err }, 'engine heartbeat failed');
    } finally {
      this.beating = false;
    }
  }

  /** Something arrived (its arrival row is committed): match it shortly. */
  notifyArrival(): void {
    this.matcher.notifyArrival();
  }

  /** Operator's "this series/study is complete": fire its pending group now. */
  forceComplete(level: 'series' | 'study', uid: string): Promise<number> {
    return this.groups.forceComplete(level, uid);
  }

  rerun(jobId: string, user?: string, version: RerunVersion = 'original'): Promise<{ jobId: string; pipelineVersion: string }> {
    return this.runner.rerun(jobId, user, version);
  }

  runManual(pipelineName: string, inputs: string[], options: { user: string; triggerUid?: string }): Promise<string> {
    return this.runner.runManual(pipelineName, inputs, options);
  }

  cancel(jobId: string): Promise<boolean> {
    return this.runner.cancel(jobId);
  }

  pump(): void {
    this.runner.pump();
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
    void this.isIdle().then((idle) => {
      if (!idle || this.closed) return;
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      waiters.forEach((w) => w());
    });
  }

  private async isIdle(): Promise<boolean> {
    const busyHere = () => this.runner.runningJobs > 0 || this.matcher.busy;
    if (busyHere()) return false;
    try {
      if ((await this.o.stores.queue.nextQueuedAt()) !== undefined) return false;
      if (await this.matcher.hasWaiting()) return false;
    } catch {
      return false;
    }
    // Looked again: a job may have been claimed, or a pass begun, while the store answered.
    return !busyHere();
  }

  get runningJobs(): number {
    return this.runner.runningJobs;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    clearInterval(this.heartbeat);
    this.matcher.close();
    this.groups.close();
    this.collector.close();
    await this.runner.close();
  }
}
