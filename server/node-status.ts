import type { ResolvedConfig } from '../core/config/load.ts';
import type { Engine } from '../core/engine.ts';
import type { FreeSpaceGuard } from '../core/lifecycle/free-space.ts';
import { formatProblem } from '../core/pipeline/load.ts';
import type { Receiver } from '../core/receive/receive.ts';
import type { JobQueue } from '../core/store/job-queue.ts';
import type { SqlIndex } from '../core/store/sql/sql-index.ts';
import type { PipelineSet } from '../core/trigger/pipeline-set.ts';
import type { ClusterNode } from './cluster-node.ts';
import { describeAccess, type accessPolicy } from './dimse/access.ts';
import type { DicomServer } from './dimse/dicom-server.ts';
import type { AssociationStats } from './dimse/scp.ts';
import type { MetricsSource, StatusSource } from './http/context.ts';
import type { WatchFolder } from './import/watch-folder.ts';
import type { OutboxSender } from './route/outbox-sender.ts';

/** The running parts of a node whose state the status page, the health probe and the metrics show. */
export interface NodeParts {
  config: ResolvedConfig;
  startedAt: number;
  dicom: DicomServer;
  associations: AssociationStats;
  access: ReturnType<typeof accessPolicy>;
  receiver: Receiver;
  freeSpace: FreeSpaceGuard;
  watchFolders: WatchFolder[];
  pipelines: PipelineSet;
  cluster: ClusterNode;
  engine: Engine;
  jobs: JobQueue;
  index: SqlIndex;
  outboxSender: OutboxSender;
  pool: { utilization(): { threads: number; running: number; queued: number; utilization: number } };
}

/** Status and health, read when asked; the index's figures together, off the event loop where they can take long. */
export function nodeStatus(p: NodeParts): StatusSource {
  const d = p.config.dimse;
  return {
    status: async () => {
      const [jobCounts, queuedByPipeline, totals, outbox, cluster] = await Promise.all([
        p.jobs.counts(),
        p.jobs.queuedByPipeline(),
        Promise.all(p.config.databases.map((db) => p.index.totals(db.name))),
        p.outboxSender.status(),
        p.cluster.view(),
      ]);
      const { stats } = p.receiver;
      return {
        dicom: {
          listening: p.dicom.listening(),
          aeTitle: d.aeTitle,
          host: d.host,
          port: p.dicom.port,
          tlsPort: p.dicom.tlsPort ?? null,
          maxPduLength: d.maxPduLength,
          associations: {
            open: p.associations.open,
            total: p.associations.total,
            rejected: p.associations.rejected,
            aborted: p.associations.aborted,
          },
          access: describeAccess(p.access),
        },
        uptimeSeconds: Math.round((Date.now() - p.startedAt) / 1000),
        startedAt: new Date(p.startedAt).toISOString(),
        received: {
          objects: stats.objectsReceived,
          bytes: stats.bytesReceived,
          failures: stats.failures,
          duplicates: stats.duplicates,
          lastArrivalAt: stats.lastArrivalAt ?? null,
        },
        produced: { objects: stats.objectsProduced, bytes: stats.bytesProduced },
        storage: {
          dataDir: p.config.dataDir,
          freeBytes: p.freeSpace.freeBytes,
          minFreeBytes: p.freeSpace.minFreeBytes,
          refusingNewObjects: p.freeSpace.isFull(),
        },
        watchFolders: p.watchFolders.map((w, i) => ({ path: p.config.watchFolders[i].path, ...w.stats })),
        pipelines: {
          dir: p.config.pipelinesDir,
          loaded: p.pipelines
            .all()
            .map((x) => ({ name: x.definition.name, enabled: x.definition.enabled, trigger: x.definition.trigger.on, file: x.file })),
          problems: p.pipelines.problems().map(formatProblem),
        },
        cluster,
        engine: {
          nodeId: p.engine.nodeId,
          jobs: jobCounts,
          queuedByPipeline,
          running: p.engine.runningJobs,
          arrivalsProcessed: p.engine.stats.arrivalsProcessed,
          arrivalsWithoutPipeline: p.engine.stats.arrivalsWithoutPipeline,
          lastUnmatched: p.engine.stats.lastUnmatched,
          pool: p.pool.utilization(),
        },
        databases: p.config.databases.map((db, i) => ({ name: db.name, aeTitle: db.aeTitle ?? null, ...totals[i] })),
        outbox,
      };
    },
    // The index check answers within its own timeout, whatever the database does.
    health: async () => {
      const checks = { dicom: p.dicom.listening(), index: await p.index.healthy(), storage: !p.freeSpace.isFull() };
      return { ok: checks.dicom && checks.index && checks.storage, ...checks };
    },
  };
}

/** The figures the metrics endpoint reads at each scrape. */
export function nodeMetrics(p: NodeParts): () => Promise<MetricsSource> {
  return async () => {
    const [jobs, cluster, queuedByPipeline] = await Promise.all([p.jobs.counts(), p.cluster.view(), p.jobs.queuedByPipeline()]);
    const { stats } = p.receiver;
    return {
      receivedObjects: stats.objectsReceived,
      receivedBytes: stats.bytesReceived,
      producedObjects: stats.objectsProduced,
      producedBytes: stats.bytesProduced,
      receiveFailures: stats.failures,
      associationsOpen: p.associations.open,
      associationsTotal: p.associations.total,
      jobs,
      pool: p.pool.utilization(),
      cluster,
      queuedByPipeline,
    };
  };
}
