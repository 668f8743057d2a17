// Filing in the arrival's commit (the default pipeline's work without a job per instance): the
// arrival and its database rows commit together; a filing that fails there leaves the arrival
// unfiled and unprocessed, for its pipeline's job to file (retried, and visible if it fails).
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { testIndexConfig } from '../../../test/helpers/test-index.ts';
import type { ArrivalFiling, ArrivalFilingDecision, DuplicatePolicy, ReceivedObject } from '../index-store.ts';
import { openIndexDatabase } from './open.ts';
import { PostgresDb } from './pg-db.ts';
import type { SqlDb } from './sql-db.ts';
import { SqlIndex } from './sql-index.ts';
import { allJobStores, type AllJobStores } from '../../../test/helpers/job-stores.ts';

const open: SqlDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
});

async function stores(): Promise<{ index: SqlIndex; jobs: AllJobStores }> {
  const db = await openIndexDatabase({ dataDir: tempDir(), ...(await testIndexConfig()) });
  open.push(db);
  return { index: new SqlIndex(db), jobs: allJobStores(db) };
}

const object = (n: number, sopInstanceUid = `1.2.3.${n}`): ReceivedObject => ({
  objectId: `object-${n}`,
  path: `o/${n}.dcm`,
  size: 1,
  transferSyntaxUid: '1.2.840.10008.1.2.1',
  sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
  sopInstanceUid,
  receivedAt: new Date().toISOString(),
  source: 'network',
  database: 'Import',
  createdBy: 'MODALITY',
  attributes: {
    PatientID: 'P1',
    StudyInstanceUID: '1.2.9',
    SeriesInstanceUID: `1.2.9.${n % 2}`,
    SOPInstanceUID: sopInstanceUid,
    Modality: 'CT',
  },
});

function filing(policy: DuplicatePolicy, settled = true): ArrivalFiling & { commits: { settled: boolean; released: boolean }[] } {
  const commits: { settled: boolean; released: boolean }[] = [];
  return {
    commits,
    decide: (): ArrivalFilingDecision => ({ pipeline: 'store-received', database: 'Import', policy, settled }),
    committed: (outcome) => commits.push(outcome),
  };
}

describe('filing in the arrival commit', () => {
  it('an arrival committed but not made durable is rejected as committed, and not recorded twice', async () => {
    const { index } = await stores();
    const db = index.connection;
    db.syncDurable = () => Promise.reject(new Error('EIO'));
    // SQLite makes the commit durable with its WAL fsync (stubbed to fail); PostgreSQL commits synchronously.
    const results = await Promise.allSettled([1, 2].map((n) => index.recordReceived(object(n), 'keep-first', filing('keep-first'))));
    if (db.dialect === 'sqlite') {
      for (const r of results) expect(r).toMatchObject({ status: 'rejected', reason: { committed: true } });
    } else {
      for (const r of results) expect(r.status).toBe('fulfilled');
    }
    expect(await index.totals()).toMatchObject({ arrivals: 2, instances: 2 });
  });

  it('files the arrival into its database in the same commit, processed when no other pipeline takes it', async () => {
    const { index, jobs } = await stores();
    const f = filing('keep-first');
    const results = await Promise.all([1, 2, 3, 4].map((n) => index.recordReceived(object(n), 'keep-first', f)));
    expect(results.map((r) => [r.filedBy, r.settled])).toEqual(Array(4).fill(['store-received', true]));
    expect(await index.totals()).toMatchObject({ arrivals: 4, instances: 4, series: 2, studies: 1, patients: 1 });
    expect(await jobs.unprocessedArrivals(10)).toEqual([]);
    expect(f.commits).toEqual(Array(4).fill({ settled: true, released: false }));
    // Another pipeline takes it too: filed, left for the engine (which queues no filing job).
    await index.recordReceived(object(5), 'keep-first', filing('keep-first', false));
    expect((await jobs.unprocessedArrivals(10)).map((a) => [a.sopInstanceUid, a.filedBy])).toEqual([['1.2.3.5', 'store-received']]);
  });

  it('keeps the duplicate policies: keep-first releases the copy, replace the old object, reject answers the sender', async () => {
    const { index, jobs } = await stores();
    const keep = filing('keep-first');
    await index.recordReceived(object(1, '1.2.3.100'), 'keep-first', keep);
    await index.recordReceived(object(2, '1.2.3.100'), 'keep-first', keep);
    expect(keep.commits.map((c) => c.released)).toEqual([false, true]);
    expect((await index.instances('Import', {})).map((r) => r.objectPath)).toEqual(['o/1.dcm']);
    expect((await jobs.collectableObjects()).map((o) => o.id)).toEqual(['object-2']);

    const replace = filing('replace');
    await index.recordReceived(object(3, '1.2.3.300'), 'replace', replace);
    await index.recordReceived(object(4, '1.2.3.300'), 'replace', replace);
    expect((await index.instances('Import', { sopInstanceUids: ['1.2.3.300'] })).map((r) => r.objectPath)).toEqual(['o/4.dcm']);
    expect((await jobs.collectableObjects()).map((o) => o.id).sort()).toEqual(['object-2', 'object-3']);

    const reject = filing('reject');
    await index.recordReceived(object(5, '1.2.3.500'), 'reject', reject);
    const second = await index.recordReceived(object(6, '1.2.3.500'), 'reject', reject);
    expect(second.outcome).toBe('duplicate-rejected');
    expect((await index.instances('Import', { sopInstanceUids: ['1.2.3.500'] })).map((r) => r.objectPath)).toEqual(['o/5.dcm']);
    expect((await index.totals()).duplicates).toBe(3);
  });

  it('files the next objects of a series filed here in one round trip each, and sends the others the general way', async () => {
    const { index, jobs } = await stores();
    const pg = index.connection instanceof PostgresDb ? index.connection : undefined;
    const f = filing('keep-first');
    const one = (n: number, sop?: string, extra: Record<string, string> = {}) => {
      const o = object(n, sop);
      // All in one series (object() alternates two).
      Object.assign(o.attributes, { SeriesInstanceUID: '1.2.9.7', ...extra });
      return index.recordReceived(o, 'keep-first', f);
    };
    // The first object of the series creates its rows (the general path).
    await one(1);
    const before = pg?.roundTrips.waited ?? 0;
    const results = [];
    for (let n = 2; n <= 6; n++) results.push(await one(n));
    // BEGIN, the statement that records and files the object, and the synchronous COMMIT: one round trip.
    if (pg) expect(pg.roundTrips.waited - before).toBe(5);
    expect(results.map((r) => [r.outcome, r.filedBy, r.settled])).toEqual(Array(5).fill(['received', 'store-received', true]));
    expect(f.commits).toEqual(Array(6).fill({ settled: true, released: false }));
    expect(await jobs.unprocessedArrivals(10)).toEqual([]);
    const instances = await index.instances('Import', {});
    expect(instances.map((r) => r.objectPath).sort()).toEqual([1, 2, 3, 4, 5, 6].map((n) => `o/${n}.dcm`));
    expect(new Set(instances.map((r) => r.createdBy))).toEqual(new Set(['MODALITY']));
    // Not usual: a study attribute to add, and a copy of an instance the database has. Each is
    // recorded once, by the general path.
    const added = await one(7, undefined, { StudyDescription: 'added later' });
    const copy = await one(8, '1.2.3.2');
    expect([added.filedBy, copy.filedBy]).toEqual(['store-received', 'store-received']);
    expect(f.commits.slice(6)).toEqual([
      { settled: true, released: false },
      { settled: true, released: true },
    ]);
    expect((await index.studies('Import', {}))[0].study.StudyDescription).toBe('added later');
    expect(await index.totals()).toMatchObject({ arrivals: 8, instances: 7, series: 1, studies: 1, patients: 1, duplicates: 1 });
    expect((await jobs.collectableObjects()).map((o) => o.id)).toEqual(['object-8']);
  });

  it('records the arrival unfiled when its filing fails, for the pipeline job to file', async () => {
    const { index, jobs } = await stores();
    const failing: ArrivalFiling = {
      decide: (arrival) => {
        if (arrival.sopInstanceUid === '1.2.3.2') throw new Error('filing broke');
        return { pipeline: 'store-received', database: 'Import', policy: 'keep-first', settled: true };
      },
      committed: () => {},
    };
    // Together in one batch: the failure does not take its neighbours' filing with it.
    const results = await Promise.all([1, 2, 3].map((n) => index.recordReceived(object(n), 'keep-first', failing)));
    expect(results.map((r) => r.outcome)).toEqual(['received', 'received', 'received']);
    expect(results.map((r) => r.filedBy)).toEqual(['store-received', undefined, 'store-received']);
    expect((await jobs.unprocessedArrivals(10)).map((a) => [a.sopInstanceUid, a.filedBy])).toEqual([['1.2.3.2', undefined]]);
    expect(await index.totals()).toMatchObject({ arrivals: 3, instances: 2 });
  });
});
