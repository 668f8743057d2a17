import type { DestinationCounts, OutboxStore } from '../../core/store/outbox-store.ts';
import type { Logger } from 'pino';
import type { DicomflowEvents } from '../../core/events.ts';
import type { Engine } from '../../core/engine.ts';
import type { Receiver } from '../../core/receive/receive.ts';
import type { JobQueue } from '../../core/store/job-queue.ts';
import type { PipelineProblem } from '../../core/pipeline/load.ts';
import type { PipelineSet } from '../../core/trigger/pipeline-set.ts';
import type { ArrivalRecord, IndexStore } from '../../core/store/index-store.ts';
import type { ApiTokenStore, Users } from '../../core/users.ts';
import type { ClusterView } from '../cluster-node.ts';

export interface StatusSource {
  status(): Promise<Record<string, unknown>>;
  /** Answers within about a second whatever the index does (a stalled index reads as down). */
  health(): Promise<{ ok: boolean; dicom: boolean; index: boolean; storage: boolean }>;
}

/** Figures the metrics endpoint reads at each scrape. */
export interface MetricsSource {
  receivedObjects: number;
  receivedBytes: number;
  /** Objects pipelines produced and filed (not counted as received). */
  producedObjects: number;
  producedBytes: number;
  receiveFailures: number;
  associationsOpen: number;
  associationsTotal: number;
  jobs: Record<string, number>;
  pool: { threads: number; running: number; queued: number; utilization: number };
  /** The nodes sharing the index, with what each last reported. */
  cluster: ClusterView;
  /** Queued jobs by pipeline, all nodes. */
  queuedByPipeline: Record<string, number>;
}

/** The index as the API uses it: the store plus its audit log and the arrivals behind a study. */
export type ApiIndex = IndexStore & {
  recordAudit(user: string, action: string, details: Record<string, unknown>): Promise<void>;
  auditLog(limit: number): Promise<{ at: string; user: string; action: string; details: Record<string, unknown> }[]>;
  arrivalIdsIn(database: string, level: 'study' | 'series', uid: string): Promise<string[]>;
  recentArrivals(limit: number): Promise<ArrivalRecord[]>;
};

/** Everything the routes need, handed in by server/app.ts. */
export interface HttpDeps {
  status: StatusSource;
  metrics(): Promise<MetricsSource>;
  users: Users;
  tokens: ApiTokenStore;
  adminToken: string;
  engine: Engine;
  jobs: JobQueue;
  pipelines: PipelineSet;
  /** Checks a pipeline definition (JSON text) as the loader would, without loading it. */
  validatePipeline(text: string): PipelineProblem[];
  index: ApiIndex;
  databases: { name: string; aeTitle?: string }[];
  events: DicomflowEvents;
  /** The one way into storage: STOW-RS stores through it like a C-STORE. */
  receiver: Receiver;
  /** A stored object's absolute path from its path relative to the object store. */
  objectPath(relativePath: string): string;
  /** Live event streams allowed open at once (http.eventStreams). */
  eventStreams: { perUser: number; total: number };
  /** The routing outbox: per-destination figures, entries, and rescheduling dead letters. */
  outbox?: {
    status(): Promise<(DestinationCounts & { associations: number; host: string; port: number })[]>;
    /** Whether a remote node of this AE title is configured (no index read). */
    isDestination(aeTitle: string): boolean;
    store: Pick<OutboxStore, 'list' | 'retryDead' | 'retryingCounts' | 'enqueue'>;
    wake(): void;
  };
  /** The built web page (index.html and assets); none: the API only. */
  webRoot?: string;
  log: Logger;
}
