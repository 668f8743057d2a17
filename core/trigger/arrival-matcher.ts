import type { Logger } from 'pino';
import type { Announcer } from '../events.ts';
import { newJobOf } from '../jobs/new-job.ts';
import type { ArrivalQueue, ArrivalScope } from '../store/arrival-queue.ts';
import type { ArrivalRecord } from '../store/index-store.ts';
import type { NewJob } from '../store/job-queue.ts';
import type { GroupJoin } from '../store/trigger-groups.ts';
import type { PipelineSet } from './pipeline-set.ts';
import { pipelineTakes } from './pipeline-takes.ts';

export interface ArrivalMatcherOptions {
  arrivals: ArrivalQueue;
  pipelines: PipelineSet;
  nodeId: string;
  /** Other nodes share the arrival queue: each matches the arrivals it received. */
  shared: boolean;
  log: Logger;
  events: Announcer;
  /** A pass queued jobs. */
  queued(): void;
  /** A pass made arrivals join stable groups. */
  joined(): void;
  /** A pass ended. */
  passed(): void;
}

export interface MatchingStats {
  arrivalsProcessed: number;
  arrivalsWithoutPipeline: number;
  lastUnmatched: { arrivalId: string; sopInstanceUid: string; at: string }[];
}

const ARRIVAL_BATCH_MS = 5;
const ARRIVAL_BATCH = 500;
// An arrival another node has not matched for this long: that node stopped; any node takes it.
const ORPHANED_ARRIVAL_MS = 10_000;

/**
 * Matches each arrival against the enabled pipelines once, durably: the decisions (instance
 * jobs queued, stable groups joined) and the arrival's "processed" mark commit together.
 */
export class ArrivalMatcher {
  private readonly o: ArrivalMatcherOptions;
  private scheduled = false;
  private processing = false;
  /** Asked for while a pass ran: its arrivals may have been committed after the pass looked. */
  private again = false;
  private closed = false;
  readonly stats: MatchingStats = { arrivalsProcessed: 0, arrivalsWithoutPipeline: 0, lastUnmatched: [] };

  constructor(options: ArrivalMatcherOptions) {
    this.o = options;
  }

  /** Whether a pass is due or running. */
  get busy(): boolean {
    return this.scheduled || this.processing;
  }

  /** Whether an arrival of this node's share waits to be matched. */
  async hasWaiting(): Promise<boolean> {
    return (await this.o.arrivals.unprocessedArrivals(1, this.scope())).length > 0;
  }

  /** Once a second: arrivals another process committed (imports, the CLI) are matched too. */
  async beat(): Promise<void> {
    if (await this.hasWaiting()) this.notifyArrival();
  }

  /**
   * On a shared store each node matches the arrivals it received; another node's are left to it
   * (matching them too only made both wait on the same rows) unless they wait too long.
   */
  private scope(): ArrivalScope | undefined {
    return this.o.shared ? { node: this.o.nodeId, orphanedBefore: new Date(Date.now() - ORPHANED_ARRIVAL_MS).toISOString() } : undefined;
  }

  /**
   * Something arrived (the arrival row is committed): process the queue shortly. The short
   * delay batches arrivals that come in a stream, and lets the work fall into the moments the
   * receiving side waits on fsync instead of delaying the next object (measured with storescu:
   * 400 objects took 2.1 s with immediate processing).
   */
  notifyArrival(): void {
    if (this.scheduled || this.closed) return;
    this.scheduled = true;
    setTimeout(() => {
      this.scheduled = false;
      void this.process();
    }, ARRIVAL_BATCH_MS);
  }

  /** A series/study arrival joins its groups for the pipelines that take it; an instance trigger queues a job. */
  decide(arrival: ArrivalRecord): { jobs: NewJob[]; joins: GroupJoin[]; names: string[] } {
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
        const contributors = {
          callingAeTitles: arrival.callingAeTitle ? [arrival.callingAeTitle] : [],
          peerAddresses: arrival.peerAddress ? [arrival.peerAddress] : [],
        };
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

  private async process(): Promise<void> {
    if (this.closed) return;
    if (this.processing) {
      this.again = true;
      return;
    }
    this.processing = true;
    let queued = false;
    let joined = false;
    try {
      do {
        this.again = false;
        for (;;) {
          const batch = await this.o.arrivals.unprocessedArrivals(ARRIVAL_BATCH, this.scope());
          if (batch.length === 0 || this.closed) break;
          for (const arrival of batch) {
            const { jobs, joins, names } = this.decide(arrival);
            const ids = await this.o.arrivals.recordTriggerDecisions(arrival.id, new Date().toISOString(), jobs, joins);
            ids.forEach((jobId, i) => this.o.events.announce('JobQueued', { jobId, pipeline: jobs[i].pipeline }));
            queued ||= ids.length > 0;
            joined ||= joins.length > 0;
            this.count(arrival, names);
            this.o.events.announce('ArrivalProcessed', { arrivalId: arrival.id, pipelines: names });
          }
          // A short batch was all there was when it was read; what was committed since asked
          // for another pass (again).
          if (batch.length < ARRIVAL_BATCH) break;
        }
      } while (this.again && !this.closed);
    } catch (err) {
      this.o.log.error({ err }, 'arrival processing failed; retrying in 1 s');
      setTimeout(() => this.notifyArrival(), 1000).unref();
    } finally {
      this.processing = false;
    }
    if (joined) this.o.joined();
    if (queued) this.o.queued();
    this.o.passed();
  }

  private count(arrival: ArrivalRecord, names: string[]): void {
    this.stats.arrivalsProcessed++;
    if (names.length > 0) return;
    this.stats.arrivalsWithoutPipeline++;
    this.stats.lastUnmatched.unshift({ arrivalId: arrival.id, sopInstanceUid: arrival.sopInstanceUid, at: arrival.receivedAt });
    this.stats.lastUnmatched.length = Math.min(this.stats.lastUnmatched.length, 20);
  }

  close(): void {
    this.closed = true;
  }
}
