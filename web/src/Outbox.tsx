import { useEffect, useState } from 'preact/hooks';
import { api, type Me, type OutboxDestination, type OutboxEntry } from './api.ts';
import { dateTime } from './Arrivals.tsx';

const RUNS_JOBS = ['admin', 'manager', 'operator'];

/** The routing outbox per destination: queued, in flight, retrying, dead letters, with retry. */
export function Outbox({
  me,
  refreshKey,
  onError,
  onNotice,
}: {
  me: Me;
  refreshKey: unknown;
  onError: (m: string) => void;
  onNotice: (m: string) => void;
}) {
  const [destinations, setDestinations] = useState<OutboxDestination[]>([]);
  const [dead, setDead] = useState<{ destination: string; entries: OutboxEntry[] }>();
  const mayRetry = RUNS_JOBS.includes(me.role);
  const load = () => api.outbox().then(setDestinations, (err) => onError(err.message));
  useEffect(() => void load(), [refreshKey]);
  if (destinations.length === 0) return null;
  const retry = async (destination: string) => {
    try {
      const { rescheduled } = await api.retryOutbox(destination);
      onNotice(`${rescheduled} dead letter(s) for ${destination} queued again.`);
      setDead(undefined);
      await load();
    } catch (err) {
      onError((err as Error).message);
    }
  };
  const show = async (destination: string) => {
    if (dead?.destination === destination) return setDead(undefined);
    try {
      setDead({ destination, entries: await api.outboxEntries(destination, 'dead') });
    } catch (err) {
      onError((err as Error).message);
    }
  };
  return (
    <section class="panel" data-testid="outbox">
      <h2>Outbox</h2>
      <table>
        <thead>
          <tr>
            <th>Destination</th>
            <th class="number">Queued</th>
            <th class="number">In flight</th>
            <th class="number">Retrying</th>
            <th class="number">Dead letters</th>
            <th class="number">Delivered</th>
            <th>Last error</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {destinations.map((d) => [
            <tr key={d.destination} data-destination={d.destination} data-dead={d.dead} data-queued={d.queued} data-delivered={d.delivered}>
              <td title={`${d.host}:${d.port}`}>
                {d.destination} <span class="hint">{`${d.host}:${d.port}`}</span>
              </td>
              <td class="number">{d.queued}</td>
              <td class="number">{d.inFlight}</td>
              <td class="number">{d.retrying}</td>
              <td class="number">
                {d.dead > 0 && mayRetry ? (
                  <button type="button" class="link" onClick={() => show(d.destination)}>
                    {d.dead}
                  </button>
                ) : (
                  d.dead
                )}
              </td>
              <td class="number">{d.delivered}</td>
              <td class="error clipped" title={d.lastError ?? ''}>
                {d.lastError ? `${d.lastErrorAt ? `${dateTime(d.lastErrorAt)}: ` : ''}${d.lastError}` : ''}
              </td>
              <td>
                {mayRetry && d.dead > 0 && (
                  <button type="button" onClick={() => retry(d.destination)}>
                    Retry {d.dead} dead
                  </button>
                )}
              </td>
            </tr>,
            dead?.destination === d.destination && (
              <tr key={`${d.destination}-dead`} class="series">
                <td colSpan={8}>
                  <ul data-testid="dead-letters">
                    {dead.entries.map((e) => (
                      <li key={e.id}>
                        <code>{e.sopInstanceUid}</code> · {e.attempts} attempt(s) ·{' '}
                        {e.lastError?.startsWith(`${e.lastErrorCode}:`) ? e.lastError : `${e.lastErrorCode}: ${e.lastError}`}
                        {e.jobId && (
                          <>
                            {' '}
                            · <a href={`#/jobs/${e.jobId}`}>job</a>
                          </>
                        )}
                      </li>
                    ))}
                  </ul>
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
    </section>
  );
}
