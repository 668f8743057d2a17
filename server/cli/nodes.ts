import type { ResolvedConfig } from '../../core/config/load.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { sqlJobStores } from '../../core/store/sql/sql-job-stores.ts';
import { SqlNodes } from '../../core/store/sql/sql-nodes.ts';
import { nodeAlive } from '../cluster-node.ts';
import { printTable } from './jobs.ts';

/**
 * `dicomflow nodes`: the nodes on this index with their last heartbeat and load, and the
 * cluster's queue, read from the index itself (no server needed: it works with nodes down).
 */
export async function printNodes(config: ResolvedConfig, json: boolean): Promise<void> {
  const db = await openIndexDatabase(config, { existing: true });
  try {
    const nodes = (await new SqlNodes(db).list()).map((n) => ({ ...n, alive: nodeAlive(n) }));
    const jobs = sqlJobStores(db).queue;
    const queue = { counts: await jobs.counts(), queuedByPipeline: await jobs.queuedByPipeline() };
    if (json) {
      console.log(JSON.stringify({ backend: db.dialect, location: db.location, nodes, queue }, null, 2));
      return;
    }
    console.log(`index: ${db.dialect} ${db.location}`);
    const now = Date.now();
    const rows = nodes.map((n) => {
      const s = n.status as {
        hostname?: string;
        dicom?: { port?: number };
        jobs?: { running?: number; concurrency?: number };
        pool?: { utilization?: number };
        processCpuPercent?: number;
        loadAverage?: number[];
        received?: { objects?: number };
        produced?: { objects?: number };
      };
      return [
        n.name,
        n.alive ? 'alive' : n.stoppedAt ? 'stopped' : 'not responding',
        s.hostname ?? '',
        String(s.dicom?.port ?? ''),
        `${s.jobs?.running ?? 0}/${s.jobs?.concurrency ?? ''}`,
        `${Math.round((s.pool?.utilization ?? 0) * 100)}%`,
        `${s.processCpuPercent ?? ''}%`,
        (s.loadAverage ?? []).join(' '),
        String(s.received?.objects ?? ''),
        String(s.produced?.objects ?? ''),
        `${Math.round((now - Date.parse(n.heartbeatAt)) / 1000)} s`,
      ];
    });
    printTable(['node', 'state', 'host', 'dicom', 'jobs', 'pool', 'cpu', 'load', 'received', 'produced', 'heartbeat'], rows);
    const queued = Object.entries(queue.queuedByPipeline)
      .map(([p, n]) => `${p} ${n}`)
      .join(', ');
    console.log(
      `jobs: ${queue.counts.queued} queued${queued ? ` (${queued})` : ''}, ${queue.counts.running} running, ${queue.counts.failed} failed`,
    );
  } finally {
    await db.close();
  }
}
