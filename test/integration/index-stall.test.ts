// The event loop never waits on the index (issue 15): while PostgreSQL is frozen (every process
// stopped, as a hung disk or a partition would leave it), C-ECHO and the health probe are still
// answered, the probe reporting the index down; receiving resumes once it thaws, and every
// object the sender was told is stored is there. Runs in the postgres test project only.
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { echoscu, hasTool, storescu } from '../helpers/dcmtk.ts';
import { startPostgres, type PostgresCluster } from '../helpers/postgres.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

let cluster: PostgresCluster | undefined;
afterAll(() => {
  cluster?.thaw();
  cluster?.stop();
});

describe.skipIf(!hasTool('storescu') || !hasTool('echoscu'))('a stalled PostgreSQL index', () => {
  it('leaves C-ECHO and the health probe answering, and loses nothing sent meanwhile', async () => {
    cluster = await startPostgres();
    const url = await cluster.createDatabase();
    const server = await startTestServer({ index: { backend: 'postgres', url } });
    const frozen = cluster;
    try {
      const dir = tempDir();
      const before = await ctSeries(path.join(dir, 'before'), { slices: 3, rows: 16, cols: 16 });
      const during = await ctSeries(path.join(dir, 'during'), { slices: 3, rows: 16, cols: 16 });
      const aet = ['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort)];
      expect((await storescu([...aet, ...before.files])).code).toBe(0);

      frozen.freeze();
      let sending: ReturnType<typeof storescu> | undefined;
      try {
        // Answered while every PostgreSQL process is stopped (DCMTK's own timeouts end a hang as a failure).
        const echo = await echoscu(['-to', '20', '-ta', '20', '-td', '20', ...aet]);
        expect(echo.code, echo.stderr).toBe(0);
        const health = await fetch(`http://127.0.0.1:${server.httpPort}/api/health`, { signal: AbortSignal.timeout(20_000) });
        expect(health.status).toBe(503);
        expect(await health.json()).toMatchObject({ ok: false, dicom: true, index: false });
        // A sender during the stall waits for its acknowledgement; it gets it once the index is back.
        sending = storescu(['-to', '120', '-ta', '120', '-td', '120', ...aet, ...during.files]);
        const echoAgain = await echoscu(['-to', '20', '-ta', '20', '-td', '20', ...aet]);
        expect(echoAgain.code, echoAgain.stderr).toBe(0);
      } finally {
        frozen.thaw();
      }
      const sent = await sending!;
      expect(sent.code, sent.stderr).toBe(0);
      await until('all six objects indexed', async () => (await server.index.totals()).arrivals === 6 || undefined);
      await until('the health probe says ok again', async () => {
        const r = await fetch(`http://127.0.0.1:${server.httpPort}/api/health`);
        return r.status === 200 || undefined;
      });
    } finally {
      await server.close();
    }
  });
});
