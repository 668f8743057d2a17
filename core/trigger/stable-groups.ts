import type { Logger } from 'pino';
import type { Announcer } from '../events.ts';
import type { TriggerGroups } from '../store/trigger-groups.ts';
import type { PipelineSet } from './pipeline-set.ts';

export interface StableGroupsOptions {
  groups: TriggerGroups;
  pipelines: PipelineSet;
  log: Logger;
  events: Announcer;
  /** Groups fired: jobs were queued. */
  queued(): void;
}

/**
 * Fires stable groups: a timer set to the earliest group's fire time (restarted as arrivals
 * join), a job queued over each due group's members. Exactly once for the cluster: the store
 * locks a group while it fires.
 */
export class StableGroups {
  private readonly o: StableGroupsOptions;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: StableGroupsOptions) {
    this.o = options;
  }

  /** Sets the timer to the earliest open group's fire time. */
  schedule(): void {
    if (this.closed) return;
    void this.scheduleNext();
  }

  private async scheduleNext(): Promise<void> {
    let next: string | undefined;
    try {
      next = await this.o.groups.nextGroupFireAt();
    } catch (err) {
      // The heartbeat looks again within a second.
      this.o.log.error({ err }, 'reading stable-trigger timers failed');
      return;
    }
    if (this.closed) return;
    clearTimeout(this.timer);
    if (next === undefined) return;
    const delay = Math.min(Math.max(0, Date.parse(next) - Date.now()), 2 ** 31 - 1);
    this.timer = setTimeout(() => void this.fireDue(), delay);
  }

  /** Once a second: groups another process made due (the CLI's force-complete) fire here too. */
  async beat(): Promise<void> {
    const next = await this.o.groups.nextGroupFireAt();
    if (next !== undefined && Date.parse(next) <= Date.now()) await this.fireDue();
  }

  /** Fires every due group. Two passes at once are harmless: a group fires once, the other finds it fired. */
  async fireDue(): Promise<void> {
    if (this.closed) return;
    let fired = false;
    try {
      for (const g of await this.o.groups.dueGroups(new Date().toISOString())) {
        const p = this.o.pipelines.get(g.pipeline);
        const jobId = await this.o.groups.fireGroup(g.id, {
          pipeline: g.pipeline,
          pipelineHash: p?.hash,
          pipelineDefinition: p?.definitionJson,
          priority: p?.definition.priority ?? 0,
          maxAttempts: p?.definition.retry.maxAttempts ?? 1,
          backoffSeconds: p?.definition.retry.backoffSeconds ?? 10,
        });
        if (!jobId) continue;
        fired = true;
        this.o.log.info({ jobId, pipeline: g.pipeline, triggerLevel: g.level, uid: g.uid }, `${g.level} stable: job queued`);
        this.o.events.announce('JobQueued', { jobId, pipeline: g.pipeline });
      }
    } catch (err) {
      this.o.log.error({ err }, 'firing stable groups failed');
    }
    this.schedule();
    if (fired) this.o.queued();
  }

  /** Operator's "this series/study is complete": fire its pending group now. */
  async forceComplete(level: 'series' | 'study', uid: string): Promise<number> {
    const n = await this.o.groups.forceComplete(level, uid);
    if (n > 0) await this.fireDue();
    return n;
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
