import type { ArrivalRecord } from './index-store.ts';
import type { NewJob } from './job-queue.ts';
import type { GroupJoin } from './trigger-groups.ts';

/** A node's share of the unmatched arrivals, on a store shared by several nodes (unprocessedArrivals). */
export interface ArrivalScope {
  node: string;
  orphanedBefore: string;
}

/**
 * The arrivals waiting to be matched against the pipelines, and the durable record of what
 * matching decided: the decisions and the arrival's "processed" mark commit together.
 */
export interface ArrivalQueue {
  /**
   * Arrivals not matched against the pipelines yet. With `scope` (nodes sharing the store): those
   * whose object this node received or no node did (the CLI's imports), and any node's left
   * unprocessed since `orphanedBefore` (its node stopped before processing them).
   */
  unprocessedArrivals(limit: number, scope?: ArrivalScope): Promise<ArrivalRecord[]>;
  /** In one transaction: the instance jobs, the group joins, and the arrival marked processed. Returns the jobs' ids. */
  recordTriggerDecisions(arrivalId: string, receivedAt: string, jobs: NewJob[], joins: GroupJoin[]): Promise<string[]>;
}
