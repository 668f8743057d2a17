import type { Arrival } from './api.ts';
import { personName, time } from './format.ts';

export function Arrivals({ arrivals }: { arrivals: Arrival[] }) {
  return (
    <section class="panel" data-testid="arrivals">
      <h2>Recent arrivals</h2>
      {arrivals.length === 0 ? (
        <p class="empty">Nothing received yet.</p>
      ) : (
        <table>
          <thead>
            <tr>
              <th>Time</th>
              <th>Patient</th>
              <th>Modality</th>
              <th>Series</th>
              <th>From</th>
              <th>Database</th>
            </tr>
          </thead>
          <tbody>
            {arrivals.map((a) => (
              <tr key={a.id} data-sop-instance-uid={a.sopInstanceUid}>
                <td>{time(a.receivedAt)}</td>
                <td>{personName(a.attributes.PatientName) || a.attributes.PatientID}</td>
                <td>{a.attributes.Modality}</td>
                <td>{a.attributes.SeriesDescription ?? a.attributes.SeriesNumber}</td>
                <td>{a.callingAeTitle ?? a.source}</td>
                <td>{a.database}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}
