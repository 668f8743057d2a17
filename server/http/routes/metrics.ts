import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { JobFinished } from '../../../core/events.ts';
import type { HttpDeps, MetricsSource } from '../context.ts';
import { authErrors } from '../schemas.ts';

/**
 * Prometheus metrics. Counters that the receiver already keeps are read at scrape time; the
 * rest count the events as they happen. One registry per server, so tests (several servers
 * in one process) do not share figures. The figures are read once per scrape (some are index
 * queries), not once per metric.
 */
export async function metricsRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Read before each scrape (the index's figures are asynchronous); the collectors read this copy.
  let scrape: MetricsSource | undefined;
  const figures = (): MetricsSource => scrape!;
  const fromSource = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  fromSource(
    'dicomflow_received_objects_total',
    'Objects received and acknowledged from outside (network, import, watch folders, replication, DICOMweb STOW); not those pipelines produced.',
    () => figures().receivedObjects,
  );
  fromSource('dicomflow_received_bytes_total', 'Dataset bytes of the objects received.', () => figures().receivedBytes);
  fromSource(
    'dicomflow_produced_objects_total',
    'Objects pipelines produced and filed into a database (derived instances).',
    () => figures().producedObjects,
  );
  fromSource('dicomflow_produced_bytes_total', 'Dataset bytes of the objects pipelines produced.', () => figures().producedBytes);
  fromSource('dicomflow_receive_failures_total', 'Objects refused or failed while receiving.', () => figures().receiveFailures);
  fromSource('dicomflow_associations_total', 'DICOM associations accepted since start.', () => figures().associationsTotal);
  new Gauge({
    name: 'dicomflow_associations_open',
    help: 'DICOM associations open now.',
    registers: [registry],
    collect() {
      this.set(figures().associationsOpen);
    },
  });
  new Gauge({
    name: 'dicomflow_jobs',
    help: 'Jobs by status (queued is the queue depth).',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      for (const [status, n] of Object.entries(figures().jobs)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'dicomflow_pool_tasks',
    help: 'Step tasks in the worker pool: running or waiting for a thread.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const p = figures().pool;
      this.set({ state: 'running' }, p.running);
      this.set({ state: 'queued' }, p.queued);
    },
  });
  new Gauge({
    name: 'dicomflow_pool_utilization_ratio',
    help: "The worker pool's utilisation (0-1).",
    registers: [registry],
    collect() {
      this.set(figures().pool.utilization);
    },
  });

  new Gauge({
    name: 'dicomflow_jobs_queued',
    help: 'Queued jobs by pipeline (all nodes sharing the index).',
    labelNames: ['pipeline'],
    registers: [registry],
    collect() {
      // Reset first: a pipeline whose queue emptied is no longer listed.
      this.reset();
      for (const [pipeline, n] of Object.entries(figures().queuedByPipeline)) this.set({ pipeline }, n);
    },
  });
  // Every node reports all nodes sharing the index (from their heartbeats), so one scrape shows
  // the cluster; load figures only for live nodes, since a dead node's last report is stale.
  new Gauge({
    name: 'dicomflow_node_alive',
    help: 'Whether the node is running: not stopped, heartbeat within three intervals (1) or not (0).',
    labelNames: ['node'],
    registers: [registry],
    collect() {
      this.reset();
      for (const n of figures().cluster.nodes) this.set({ node: n.name }, n.alive ? 1 : 0);
    },
  });
  const nodeFigure = (name: string, help: string, section: string, field: string) =>
    new Gauge({
      name,
      help,
      labelNames: ['node'],
      registers: [registry],
      collect() {
        this.reset();
        for (const n of figures().cluster.nodes) {
          const value = (n.status[section] as Record<string, unknown> | undefined)?.[field];
          if (n.alive && typeof value === 'number') this.set({ node: n.name }, value);
        }
      },
    });
  nodeFigure('dicomflow_node_running_jobs', 'Jobs running on the node, as of its last heartbeat.', 'jobs', 'running');
  nodeFigure(
    'dicomflow_node_pool_utilization_ratio',
    "The node's worker pool utilisation (0-1), as of its last heartbeat.",
    'pool',
    'utilization',
  );

  const arrivals = new Counter({
    name: 'dicomflow_arrivals_total',
    help: 'Arrivals by source and addressed database.',
    labelNames: ['source', 'database'],
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'dicomflow_job_duration_seconds',
    help: 'Job run time (last attempt), by pipeline and final status.',
    labelNames: ['pipeline', 'status'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const failures = new Counter({
    name: 'dicomflow_job_failures_total',
    help: 'Jobs that failed for good (after their retries), by pipeline.',
    labelNames: ['pipeline'],
    registers: [registry],
  });

  const onArrival = (a: { source: string; database?: string }) => arrivals.inc({ source: a.source, database: a.database ?? '' });
  const onFinished = (e: JobFinished) => {
    // A failed attempt that will be retried ends as 'queued': not a result yet.
    if (e.status !== 'succeeded' && e.status !== 'failed' && e.status !== 'cancelled') return;
    if (e.durationSeconds !== undefined) durations.observe({ pipeline: e.pipeline, status: e.status }, e.durationSeconds);
    if (e.status === 'failed') failures.inc({ pipeline: e.pipeline });
  };
  deps.events.on('InstanceReceived', onArrival);
  deps.events.on('JobFinished', onFinished);
  app.addHook('onClose', async () => {
    deps.events.off('InstanceReceived', onArrival);
    deps.events.off('JobFinished', onFinished);
  });

  app.get('/api/metrics', {
    schema: {
      summary: 'Prometheus metrics (text exposition format)',
      tags: ['status'],
      produces: ['text/plain'],
      response: { 200: { description: 'Prometheus text format 0.0.4.', type: 'string' }, ...authErrors },
    },
    handler: async (_request, reply) => {
      try {
        scrape = await deps.metrics();
        return reply.type(registry.contentType).send(await registry.metrics());
      } finally {
        scrape = undefined;
      }
    },
  });
}
