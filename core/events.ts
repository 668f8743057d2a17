import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import type { ArrivalRecord } from './store/index-store.ts';

/** One received object, as the pipeline engine sees it. */
export interface InstanceReceived extends ArrivalRecord {
  /** Absolute path of the original bytes (Part 10 file). */
  absolutePath: string;
  associationId?: string;
  userName?: string;
  /** Filed in its arrival's commit and taken by no other pipeline: the engine has nothing to do. */
  settled?: boolean;
}

interface EventMap {
  InstanceReceived: [InstanceReceived];
}

type Announcement = { [K in keyof EventMap]: { name: K; args: EventMap[K] } }[keyof EventMap];

/**
 * News travels up the flow only as events named in the past tense.
 *
 * The receive path announces (`announce`), it never emits: announcements are queued and their
 * listeners run on a later tick, one by one, each guarded, so nothing a listener does (a throw,
 * a rejected promise, slowness) reaches the C-STORE whose object it is about. The object was
 * durable and acknowledged first; a listener's failure is logged and changes nothing else
 * (Orthanc runs its change callbacks the same way, on a thread of their own).
 */
export class DicomflowEvents extends EventEmitter<EventMap> {
  private readonly log: Logger;
  private readonly queue: Announcement[] = [];
  private draining = false;

  constructor(log: Logger) {
    super();
    this.log = log;
  }

  announce<K extends keyof EventMap>(name: K, ...args: EventMap[K]): void {
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
