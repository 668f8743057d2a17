// Filing on arrival: the default pipeline (store-received) files each object in its arrival's
// own commit, so a sender that was told "stored" can find it at once, and the job list holds
// the processing, not one filing job per instance.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { findscu, hasTool, parseFindscuResponses, storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';
import { PostgresDb } from '../../core/store/sql/pg-db.ts';

type Server = Awaited<ReturnType<typeof startTestServer>>;

/** Series of the study as C-FIND answers them, with their instance counts. */
async function seriesFound(server: Server, studyUid: string): Promise<Map<string, number>> {
  const result = await findscu([
    '-S',
    '-v',
    '-aec',
    'DICOMFLOW',
    '-k',
    'QueryRetrieveLevel=SERIES',
    '-k',
    `StudyInstanceUID=${studyUid}`,
    '-k',
    'SeriesInstanceUID',
    '-k',
    'NumberOfSeriesRelatedInstances',
    '127.0.0.1',
    String(server.dicomPort),
  ]);
  expect(result.code, result.stderr).toBe(0);
  const responses = parseFindscuResponses(`${result.stdout}${result.stderr}`);
  return new Map(responses.map((r) => [r.SeriesInstanceUID as string, Number(r.NumberOfSeriesRelatedInstances)]));
}

describe.skipIf(!hasTool('storescu') || !hasTool('findscu'))('filing on arrival', () => {
  it('files 40 objects over 2 series with no job per instance, all found by C-FIND as soon as storescu exits', async () => {
    const server = await startTestServer();
    try {
      const dir = tempDir();
      const a = await ctSeries(path.join(dir, 'a'), { slices: 20, rows: 16, cols: 16 });
      const b = await ctSeries(path.join(dir, 'b'), {
        slices: 20,
        rows: 16,
        cols: 16,
        studyUid: a.studyInstanceUid,
        patientId: a.patientId,
      });
      const pg = server.index.connection instanceof PostgresDb ? server.index.connection : undefined;
      const before = pg && { ...pg.roundTrips };
      const sent = await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...a.files, ...b.files]);
      expect(sent.code, sent.stderr).toBe(0);
      // No waiting: what the sender was told is stored is in its database now.
      expect(await seriesFound(server, a.studyInstanceUid)).toEqual(
        new Map([
          [a.seriesInstanceUid, 20],
          [b.seriesInstanceUid, 20],
        ]),
      );
      if (pg && before) {
        // Received objects on the default pipeline: 1 round trip each (BEGIN, the statement and
        // the synchronous COMMIT sent together) once the series is there; its first object files
        // its rows in a few more, and the engine's heartbeat and the C-FIND above add a few of
        // their own to the total (measured: 1.43 per object).
        const waited = pg.roundTrips.waited - before.waited;
        expect(waited / 40).toBeLessThanOrEqual(1.75);
      }
      await server.engine.idle();
      expect(await server.jobs.listJobs({})).toEqual([]);
      expect(server.engine.stats.arrivalsProcessed).toBe(40);
      const arrivals = await server.index.recentArrivals(100);
      expect(arrivals).toHaveLength(40);
      expect(new Set(arrivals.map((r) => r.filedBy))).toEqual(new Set(['store-received']));
      expect(await server.index.totals()).toMatchObject({ instances: 40, series: 2, studies: 1, arrivals: 40 });
    } finally {
      await server.close();
    }
  });

  it('still queues jobs for pipelines that process, and files the instances once', async () => {
    const pipelinesDir = tempDir();
    const fs = await import('node:fs');
    // A store step among other steps: a job per series, the arrival filed on arrival by the default.
    fs.writeFileSync(
      path.join(pipelinesDir, 'series-copy.json'),
      JSON.stringify({
        name: 'series-copy',
        trigger: { on: 'series', stableSeconds: 0.2 },
        steps: [
          { id: 'archive', plugin: 'store', options: { database: 'Archive' } },
          { id: 'file', plugin: 'store' },
        ],
      }),
    );
    const server = await startTestServer({ pipelinesDir, databases: [{ name: 'Import' }, { name: 'Archive' }] });
    try {
      const a = await ctSeries(tempDir(), { slices: 5, rows: 16, cols: 16 });
      const sent = await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...a.files]);
      expect(sent.code, sent.stderr).toBe(0);
      expect(await server.index.instances('Import', {})).toHaveLength(5);
      expect(server.pipelines.problems()).toEqual([]);
      expect(
        server.pipelines
          .all()
          .map((p) => p.definition.name)
          .sort(),
      ).toEqual(['series-copy', 'store-received']);
      // The series job fires once the series is stable (a slow sender may split it in generations;
      // the whole series is in the last one).
      await until('the series job over all 5', async () =>
        (await server.jobs.listJobs({ status: 'succeeded' })).some((j) => j.inputs.length === 5),
      );
      await server.engine.idle();
      expect(new Set((await server.jobs.listJobs({})).map((j) => `${j.pipeline} ${j.status}`))).toEqual(new Set(['series-copy succeeded']));
      expect(await server.index.instances('Archive', {})).toHaveLength(5);
      expect(await server.index.instances('Import', {})).toHaveLength(5);
      expect(await server.index.totals()).toMatchObject({ duplicates: 0 });
    } finally {
      await server.close();
    }
  });
});
