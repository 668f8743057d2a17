import { EventEmitter } from 'node:events';
import type { ArrivalRecord } from './store/index-store.ts';

/** One received object, as the pipeline engine sees it. */
export interface InstanceReceived extends ArrivalRecord {
  /** Absolute path of the original bytes (Part 10 file). */
  absolutePath: string;
  associationId?: string;
  userName?: string;
}

interface EventMap {
  InstanceReceived: [InstanceReceived];
}

/**
 * News travels up the flow only as events named in the past tense. Listeners must not throw or
 * block: receive has already acknowledged the object when InstanceReceived fires.
 */
export class DicomflowEvents extends EventEmitter<EventMap> {}
