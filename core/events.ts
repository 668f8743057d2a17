import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { PipelineProblem } from './pipeline/load.ts';
import type { ArrivalRecord } from './store/index-store.ts';

/** One received object, as the pipeline engine sees it (its arrival row is committed). */
export interface InstanceReceived extends ArrivalRecord {
  /** Absolute path of the original bytes (Part 10 file). */
  absolutePath: string;
  associationId?: string;
  userName?: string;
  /** Filed in its arrival's commit and taken by no other pipeline: the engine has nothing to do. */
  settled?: boolean;
}

export interface ArrivalProcessed {
  arrivalId: string;
  /** The pipelines that took the arrival (none: kept in storage, filed nowhere). */
  pipelines: string[];
}

export interface JobQueued {
  jobId: string;
  pipeline: string;
}

export interface JobStarted {
  jobId: string;
  pipeline: string;
  attempt: number;
}

export interface JobProgressed {
  jobId: string;
  progress: number;
  message?: string;
}

export interface JobFinished {
  jobId: string;
  pipeline: string;
  /** What was recorded: 'queued' is a failed attempt that will be retried. */
  status: 'succeeded' | 'failed' | 'cancelled' | 'queued';
  error?: string;
  durationSeconds?: number;
}

export interface PipelinesReloaded {
  loaded: string[];
  problems: PipelineProblem[];
}

/** Every event of the flow, by name: each names something that has happened. */
export interface EventMap {
  InstanceReceived: [InstanceReceived];
  ArrivalProcessed: [ArrivalProcessed];
  JobQueued: [JobQueued];
  JobStarted: [JobStarted];
  JobProgressed: [JobProgressed];
  JobFinished: [JobFinished];
  PipelinesReloaded: [PipelinesReloaded];
}

export type EventName = keyof EventMap;

/** What announces: the rooms of the flow get this much of the bus, never its listeners. */
export interface Announcer {
  announce<K extends EventName>(name: K, ...args: EventMap[K]): void;
}

type Announcement = { [K in EventName]: { name: K; args: EventMap[K] } }[EventName];

/**
 * The one bus: news travels up the flow only as events named in the past tense.
 *
 * Nothing emits: everything announces (`announce`). Announcements are queued and their
 * listeners run on a later tick, one by one, each guarded, so nothing a listener does (a throw,
 * a rejected promise, slowness) reaches the C-STORE or the job whose news it is. The object was
 * durable and acknowledged first; a listener's failure is logged and changes nothing else
 * (Orthanc runs its change callbacks the same way, on a thread of their own). Listeners see the
 * events in the order they were announced.
 */
export class DicomflowEvents extends EventEmitter<EventMap> implements Announcer {
  private readonly log: Logger;
  private readonly queue: Announcement[] = [];
  private draining = false;

  constructor(log: Logger) {
    super();
    this.log = log;
  }

  announce<K extends EventName>(name: K, ...args: EventMap[K]): void {
    this.queue.push({ name, args } as Announcement);
    if (this.draining) return;
    this.draining = true;
    // setImmediate, not a microtask: the C-STORE response (written in a promise continuation
    // of the same tick) leaves before any listener runs.
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.draining = false;
    for (const { name, args } of this.queue.splice(0)) {
      for (const listener of this.listeners(name)) {
        try {
          const result = (listener as (...a: unknown[]) => unknown)(...args);
          if (result instanceof Promise) result.catch((err: unknown) => this.listenerFailed(name, err));
        } catch (err) {
          this.listenerFailed(name, err);
        }
      }
    }
  }

  private listenerFailed(name: string, err: unknown): void {
    this.log.error({ err, event: name }, 'an event listener failed; the event stays delivered to the others');
  }
}
