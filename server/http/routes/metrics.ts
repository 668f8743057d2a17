import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { HttpDeps } from '../context.ts';
import { authErrors } from '../schemas.ts';

/**
 * Prometheus metrics. Counters that the receiver already keeps are read at scrape time; the
 * rest count the events as they happen. One registry per server, so tests (several servers
 * in one process) do not share figures.
 */
export async function metricsRoutes(app: FastifyInstance, deps: HttpDeps): Promise<void> {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
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
  fromSource('dicomflow_received_objects_total', 'Objects received and acknowledged (all sources of this process).', () => deps.metrics().receivedObjects);
  fromSource('dicomflow_received_bytes_total', 'Dataset bytes of the objects received.', () => deps.metrics().receivedBytes);
  fromSource('dicomflow_receive_failures_total', 'Objects refused or failed while receiving.', () => deps.metrics().receiveFailures);
  fromSource('dicomflow_associations_total', 'DICOM associations accepted since start.', () => deps.metrics().associationsTotal);
  new Gauge({
    name: 'dicomflow_associations_open',
    help: 'DICOM associations open now.',
    registers: [registry],
    collect() {
      this.set(deps.metrics().associationsOpen);
    },
  });
  new Gauge({
    name: 'dicomflow_jobs',
    help: 'Jobs by status (queued is the queue depth).',
    labelNames: ['status'],
    registers: [registry],
    collect() {
      for (const [status, n] of Object.entries(deps.metrics().jobs)) this.set({ status }, n);
    },
  });
  new Gauge({
    name: 'dicomflow_pool_tasks',
    help: 'Step tasks in the worker pool: running or waiting for a thread.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const p = deps.metrics().pool;
      this.set({ state: 'running' }, p.running);
      this.set({ state: 'queued' }, p.queued);
    },
  });
  new Gauge({
    name: 'dicomflow_pool_utilization_ratio',
    help: "The worker pool's utilisation (0-1).",
    registers: [registry],
    collect() {
      this.set(deps.metrics().pool.utilization);
    },
  });

  const arrivals = new Counter({ name: 'dicomflow_arrivals_total', help: 'Arrivals by source and addressed database.', labelNames: ['source', 'database'], registers: [registry] });
  const durations = new Histogram({
    name: 'dicomflow_job_duration_seconds',
    help: 'Job run time (last attempt), by pipeline and final status.',
    labelNames: ['pipeline', 'status'],
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800],
    registers: [registry],
  });
  const failures = new Counter({ name: 'dicomflow_job_failures_total', help: 'Jobs that failed for good (after their retries), by pipeline.', labelNames: ['pipeline'], registers: [registry] });

  const onArrival = (a: { source: string; database?: string }) => arrivals.inc({ source: a.source, database: a.database ?? '' });
  const onFinished = (e: { jobId: string; pipeline: string; status: string }) => {
    // A failed attempt that will be retried ends as 'queued': not a result yet.
    if (e.status !== 'succeeded' && e.status !== 'failed' && e.status !== 'cancelled') return;
    const j = deps.jobs.getJob(e.jobId);
    if (j?.startedAt && j.finishedAt) durations.observe({ pipeline: e.pipeline, status: e.status }, (Date.parse(j.finishedAt) - Date.parse(j.startedAt)) / 1000);
    if (e.status === 'failed') failures.inc({ pipeline: e.pipeline });
  };
  deps.events.on('InstanceReceived', onArrival);
  deps.engine.on('JobFinished', onFinished);
  app.addHook('onClose', async () => {
    deps.events.off('InstanceReceived', onArrival);
    deps.engine.off('JobFinished', onFinished);
  });

  app.get('/api/metrics', {
    schema: {
      summary: 'Prometheus metrics (text exposition format)',
      tags: ['status'],
      produces: ['text/plain'],
      response: { 200: { description: 'Prometheus text format 0.0.4.', type: 'string' }, ...authErrors },
    },
    handler: async (_request, reply) => reply.type(registry.contentType).send(await registry.metrics()),
  });
}
