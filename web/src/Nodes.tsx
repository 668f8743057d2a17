import type { Cluster, ClusterNode } from './api.ts';
import { age, bytes } from './format.ts';

const BACKENDS: Record<Cluster['backend'], string> = { sqlite: 'SQLite', postgres: 'PostgreSQL' };

type NodeState = 'alive' | 'stopped' | 'not responding';

// The server judges liveness with its own clock (the browser's may be off).
const stateOf = (n: ClusterNode): NodeState => (n.stoppedAt ? 'stopped' : n.alive ? 'alive' : 'not responding');

function PoolMeter({ utilization }: { utilization?: number }) {
  if (utilization === undefined) return <>—</>;
  const percent = Math.round(utilization * 100);
  return (
    // biome-ignore lint/a11y/useSemanticElements: a styled bar that carries its figure as text; <meter> cannot hold the label
    <div class="progress meter" role="meter" aria-valuemin={0} aria-valuemax={100} aria-valuenow={percent}>
      <div class="bar" style={{ width: `${percent}%` }} />
      <span>{percent} %</span>
    </div>
  );
}

/**
 * The nodes sharing the index, one row each with what it wrote at its last heartbeat, and the
 * queue they share. On SQLite there is one node: this one.
 */
export function Nodes({ status }: { status?: Record<string, any> }) {
  const cluster = status?.cluster as Cluster | undefined;
  if (!cluster) return null;
  const queued = Object.entries((status?.engine?.queuedByPipeline ?? {}) as Record<string, number>);
  // Heartbeat ages on the server's clock: its time when it answered.
  const serverNow = Date.parse(status!.startedAt) + status!.uptimeSeconds * 1000;
  return (
    <section class="panel nodes" data-testid="nodes">
      <h2>
        Nodes
        <span class="hint" data-testid="index-location">
          {BACKENDS[cluster.backend] ?? cluster.backend} {cluster.location}
        </span>
      </h2>
      <table>
        <thead>
          <tr>
            <th>Node</th>
            <th>State</th>
            <th>Host</th>
            <th>DICOM port</th>
            <th>Jobs</th>
            <th>Worker pool</th>
            <th>CPU</th>
            <th>Load average</th>
            <th>Memory</th>
            <th>Received</th>
            <th title="Objects pipelines produced and filed">Produced</th>
            <th>Heartbeat</th>
          </tr>
        </thead>
        <tbody>
          {cluster.nodes.map((n) => {
            const state = stateOf(n);
            const r = n.status;
            return (
              <tr key={n.name} class={state === 'alive' ? '' : 'stale'} data-node={n.name} data-state={state}>
                <td>
                  {n.name} {n.self && <span class="badge self">this node</span>}
                </td>
                <td>
                  <span class={`badge ${state.replace(' ', '-')}`}>{state}</span>
                </td>
                <td>{r.hostname ?? '—'}</td>
                <td title={r.dicom?.aeTitle}>{r.dicom?.port ?? '—'}</td>
                <td>{r.jobs ? `${r.jobs.running} / ${r.jobs.concurrency}` : '—'}</td>
                <td>
                  <PoolMeter utilization={r.pool?.utilization} />
                </td>
                <td>{r.processCpuPercent === undefined ? '—' : `${r.processCpuPercent} %`}</td>
                <td title="1, 5 and 15 minutes">
                  {r.loadAverage ? r.loadAverage.map((l) => l.toFixed(2)).join(' ') : '—'}
                  {r.cpus ? ` / ${r.cpus} CPUs` : ''}
                </td>
                <td>{r.rssBytes === undefined ? '—' : bytes(r.rssBytes)}</td>
                <td>{r.received ? `${r.received.objects} objects` : '—'}</td>
                <td>{r.produced ? `${r.produced.objects} objects` : '—'}</td>
                <td title={n.heartbeatAt}>{age((serverNow - Date.parse(n.heartbeatAt)) / 1000)} ago</td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <p class="queue" data-testid="cluster-queue">
        {queued.length === 0 ? (
          <span class="empty">No jobs queued.</span>
        ) : (
          <>
            Queued jobs:{' '}
            {queued.map(([pipeline, n]) => (
              <span class="badge" key={pipeline} data-pipeline={pipeline}>
                {pipeline} {n}
              </span>
            ))}
          </>
        )}
      </p>
    </section>
  );
}
