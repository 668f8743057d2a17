import type { SeriesArrivals } from './api.ts';
import { personName } from './format.ts';

/** "2026-03-01 14:02:11": the date with the time, since a series may have come in days ago. */
export const dateTime = (iso: string): string => {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
};

/** Recent arrivals, one row per series and database: how many, when first and last, from whom. */
export function Arrivals({ series, onJobsOf }: { series: SeriesArrivals[]; onJobsOf?: (seriesUid: string) => void }) {
  return (
    <section class="panel" data-testid="arrivals">
      <h2>Recent arrivals</h2>
      {series.length === 0 ? (
        <p class="empty">Nothing received yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Last arrival</th>
              <th>Patient</th>
              <th>Modality</th>
              <th>Series</th>
              <th class="number">Objects</th>
              <th>First arrival</th>
              <th>From</th>
              <th>Database</th>
            </tr>
          </thead>
          <tbody>
            {series.map((s) => (
              <tr key={`${s.seriesInstanceUid}|${s.database ?? ''}`} data-series={s.seriesInstanceUid} data-count={s.count}>
                <td>{dateTime(s.lastReceivedAt)}</td>
                <td>{personName(s.attributes.PatientName) || s.attributes.PatientID}</td>
                <td>{s.attributes.Modality}</td>
                <td>
                  {onJobsOf ? (
                    <button type="button" class="link" title="This series' jobs" onClick={() => onJobsOf(s.seriesInstanceUid)}>
                      {s.attributes.SeriesDescription || `#${s.attributes.SeriesNumber ?? '?'}`}
                    </button>
                  ) : (
                    s.attributes.SeriesDescription || `#${s.attributes.SeriesNumber ?? '?'}`
                  )}
                </td>
                <td class="number">{s.count}</td>
                <td>{dateTime(s.firstReceivedAt)}</td>
                <td>{[...s.senders, ...s.sources.filter((x) => x !== 'network')].join(', ')}</td>
                <td>{s.database ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
