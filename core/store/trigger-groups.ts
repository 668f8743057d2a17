import type { NewJob } from './job-queue.ts';

/** An arrival joining the stable group of its series or study for one pipeline. */
export interface GroupJoin {
  pipeline: string;
  level: 'series' | 'study';
  uid: string;
  fireAt: string;
  lateArrivals: 'whole' | 'late-only' | 'ignore';
}

export interface DueGroup {
  id: string;
  pipeline: string;
  level: 'series' | 'study';
  uid: string;
}

/**
 * Stable-trigger groups: the arrivals of a series or study gathered for a pipeline until
 * nothing new arrived for its stableSeconds, then fired as one job (exactly once, whichever
 * node fires it).
 */
export interface TriggerGroups {
  dueGroups(now: string): Promise<DueGroup[]>;
  nextGroupFireAt(): Promise<string | undefined>;
  /** Fires an open group: a job over its members. Returns the job id, or undefined if already fired. */
  fireGroup(groupId: string, job: Omit<NewJob, 'inputs' | 'triggerOn' | 'triggerUid'>): Promise<string | undefined>;
  /** Makes open groups of this series/study due now; returns how many. */
  forceComplete(level: 'series' | 'study', uid: string): Promise<number>;
}
