// The queries behind the job list's filters, the job summary and the arrivals per series, on
// SQLite and (project postgres) PostgreSQL: their JSON access differs per dialect.
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { openTestIndexDatabase } from '../../../test/helpers/test-index.ts';
import { newId } from '../../ids.ts';
import { SqlIndex } from './sql-index.ts';
import { allJobStores, type AllJobStores } from '../../../test/helpers/job-stores.ts';

const open: SqlIndex[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.close()));
});

async function stores(): Promise<{ index: SqlIndex; jobs: AllJobStores }> {
  const index = new SqlIndex(await openTestIndexDatabase(tempDir()));
  open.push(index);
  return { index, jobs: allJobStores(index.connection) };
}

let n = 0;
async function arrive(
  index: SqlIndex,
  o: { series: string; study: string; patientId: string; name: string; db: string; ae?: string; at: string; modality?: string },
): Promise<string> {
  n++;
  const r = await index.recordReceived(
    {
      objectId: newId(),
      path: `x/${n}.dcm`,
      size: 10,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: `1.2.3.${n}`,
      attributes: {
        PatientID: o.patientId,
        PatientName: o.name,
        StudyInstanceUID: o.study,
        SeriesInstanceUID: o.series,
        Modality: o.modality ?? 'CT',
        SeriesDescription: `series ${o.series}`,
      },
      source: 'network',
      callingAeTitle: o.ae ?? 'SCANNER',
      database: o.db,
      createdBy: o.ae ?? 'SCANNER',
      receivedAt: o.at,
    },
    'keep-first',
  );
  return r.arrivalId;
}

const job = (inputs: string[], triggerOn: 'instance' | 'study', pipeline = 'p') => ({
  pipeline,
  triggerOn,
  inputs,
  priority: 0,
  maxAttempts: 1,
  backoffSeconds: 0,
});

describe('job and arrival lists', () => {
  it('filters jobs by trigger level, patient (ID or name, case and wildcards ignored), study, series and time', async () => {
    const { index, jobs } = await stores();
    const a1 = await arrive(index, {
      series: 's1',
      study: 'st1',
      patientId: 'PX100',
      name: 'Doe^Jane',
      db: 'A',
      at: '2026-01-01T10:00:00.000Z',
    });
    const a2 = await arrive(index, {
      series: 's2',
      study: 'st1',
      patientId: 'PX100',
      name: 'Doe^Jane',
      db: 'A',
      at: '2026-01-01T10:00:01.000Z',
    });
    const b1 = await arrive(index, {
      series: 's3',
      study: 'st2',
      patientId: 'Q_1%',
      name: 'Roe^Rick',
      db: 'B',
      at: '2026-01-01T10:00:02.000Z',
    });
    const i1 = await jobs.createJob(job([a1], 'instance'));
    const i2 = await jobs.createJob(job([a2], 'instance'));
    const st = await jobs.createJob(job([a1, a2], 'study', 'q'));
    const other = await jobs.createJob(job([b1], 'instance'));
    const ids = async (f: Parameters<AllJobStores['listJobs']>[0]) => (await jobs.listJobs(f)).map((j) => j.id).sort();
    expect(await ids({ triggerOn: 'instance' })).toEqual([i1, i2, other].sort());
    expect(await ids({ patient: 'jane' })).toEqual([i1, i2, st].sort());
    expect(await ids({ patient: 'px1' })).toEqual([i1, i2, st].sort());
    // % and _ are text, not wildcards.
    expect(await ids({ patient: '_1%' })).toEqual([other]);
    expect(await ids({ patient: '%' })).toEqual([other]);
    expect(await ids({ study: 'st1', pipeline: 'q' })).toEqual([st]);
    expect(await ids({ series: 's2' })).toEqual([i2, st].sort());
    expect(await ids({ since: '2999-01-01T00:00:00.000Z' })).toEqual([]);
    expect(await ids({ until: '2000-01-01T00:00:00.000Z' })).toEqual([]);
    // Rights still apply beside the filters.
    expect(await ids({ patient: 'o', visibleTo: { user: 'u', databases: ['B'] } })).toEqual([other]);

    expect((await jobs.jobSubjects([i2, other])).get(i2)).toEqual({
      patientId: 'PX100',
      patientName: 'Doe^Jane',
      studyInstanceUid: 'st1',
      seriesInstanceUid: 's2',
      modality: 'CT',
      seriesDescription: 'series s2',
      database: 'A',
    });
    expect(await jobs.inputSeries(st)).toEqual([
      expect.objectContaining({
        seriesInstanceUid: 's1',
        studyInstanceUid: 'st1',
        database: 'A',
        instances: 1,
        attributes: expect.objectContaining({ Modality: 'CT' }),
      }),
      expect.objectContaining({ seriesInstanceUid: 's2', instances: 1 }),
    ]);
  });

  it('sums arrivals up per series and database, the latest first, within the readable databases', async () => {
    const { index } = await stores();
    for (let k = 0; k < 3; k++)
      await arrive(index, {
        series: 's1',
        study: 'st1',
        patientId: 'P',
        name: 'A^B',
        db: 'A',
        ae: k === 2 ? 'OTHER' : 'SCANNER',
        at: `2026-01-01T10:00:0${k}.000Z`,
      });
    await arrive(index, { series: 's2', study: 'st1', patientId: 'P', name: 'A^B', db: 'B', at: '2026-01-01T10:00:05.000Z' });
    expect(
      (await index.arrivalsBySeries({ limit: 10, window: 1000 })).map((r) => [
        r.seriesInstanceUid,
        r.database,
        r.count,
        r.firstReceivedAt.slice(17, 19),
        r.lastReceivedAt.slice(17, 19),
        r.senders,
      ]),
    ).toEqual([
      ['s2', 'B', 1, '05', '05', ['SCANNER']],
      ['s1', 'A', 3, '00', '02', ['OTHER', 'SCANNER']],
    ]);
    expect((await index.arrivalsBySeries({ limit: 10, window: 1000, databases: ['A'] })).map((r) => r.seriesInstanceUid)).toEqual(['s1']);
    expect(await index.arrivalsBySeries({ limit: 10, window: 1000, databases: [] })).toEqual([]);
  });
});
