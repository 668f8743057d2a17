import { bytes } from './format.ts';

/** Status at a glance: the SCP, what came in, the job queue, the pool, the disk. */
export function StatusPanel({ status, connected }: { status?: Record<string, any>; connected: boolean }) {
  if (!status) return <section class="panel status">Loading status…</section>;
  const jobs = status.engine?.jobs ?? {};
  const pool = status.engine?.pool ?? {};
  const tiles: [string, string, string?][] = [
    ['DICOM', `${status.dicom.aeTitle} : ${status.dicom.port}`, status.dicom.listening === false ? 'not listening' : undefined],
    ['Associations', `${status.dicom.associations.open} open · ${status.dicom.associations.total} total`],
    [
      'Received',
      `${status.received.objects} objects · ${bytes(status.received.bytes)}`,
      status.received.failures > 0 ? `${status.received.failures} failed` : undefined,
    ],
    ['Produced', `${status.produced?.objects ?? 0} objects · ${bytes(status.produced?.bytes ?? 0)}`],
    ['Jobs', `${jobs.running ?? 0} running · ${jobs.queued ?? 0} queued`, jobs.failed > 0 ? `${jobs.failed} failed` : undefined],
    ['Worker pool', `${pool.running ?? 0}/${pool.threads ?? 0} busy · ${Math.round((pool.utilization ?? 0) * 100)} %`],
    ['Free space', bytes(status.storage.freeBytes), status.storage.refusingNewObjects ? 'refusing new objects' : undefined],
  ];
  return (
    <section class="panel status" data-testid="status">
      <h2>
        Status <span class={`live ${connected ? 'on' : 'off'}`}>{connected ? 'live' : 'reconnecting…'}</span>
      </h2>
      <div class="tiles">
        {tiles.map(([label, value, warning]) => (
          <div class="tile" key={label}>
            <div class="label">{label}</div>
            <div class="value">{value}</div>
            {warning && <div class="warning">{warning}</div>}
          </div>
        ))}
      </div>
      {status.pipelines?.problems?.length > 0 && (
        <ul class="problems">
          {status.pipelines.problems.map((p: string) => (
            <li key={p}>{p}</li>
          ))}
        </ul>
      )}
    </section>
  );
}
