// Several nodes on one job store at once (issue 9): a job is claimed by one node only, and a
// stable group fires once for all of them. Each node is a worker thread with its own connection
// (its own SQLite connection, or its own PostgreSQL session), racing the others for real.
import { Worker } from 'node:worker_threads';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { testIndexConfig } from '../../../test/helpers/test-index.ts';
import { openIndexDatabase, type IndexLocation } from './open.ts';
import type { SqlDb } from './sql-db.ts';
import { SqlIndex } from './sql-index.ts';
import { allJobStores, type AllJobStores } from '../../../test/helpers/job-stores.ts';

const worker = path.resolve(import.meta.dirname, '../../../test/fixtures/store-race-worker.ts');
const NODES = 4;
const open: SqlDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
});

async function store(): Promise<{ where: IndexLocation; db: SqlDb; jobs: AllJobStores }> {
  const where = { dataDir: tempDir(), ...(await testIndexConfig()) };
  const db = await openIndexDatabase(where);
  open.push(db);
  return { where, db, jobs: allJobStores(db) };
}

function race(where: IndexLocation, task: 'claim' | 'fire'): Promise<string[][]> {
  return Promise.all(
    Array.from(
      { length: NODES },
      (_, i) =>
        new Promise<string[]>((resolve, reject) => {
          const w = new Worker(worker, { workerData: { where, name: `node-${i}`, task } });
          w.once('message', (m: { got?: string[]; error?: string }) => (m.error ? reject(new Error(m.error)) : resolve(m.got!)));
          w.once('error', reject);
        }),
    ),
  );
}

describe('nodes racing on one job store', () => {
  it('hands every queued job to exactly one node', async () => {
    const { where, jobs } = await store();
    const ids: string[] = [];
    for (let i = 0; i < 200; i++)
      ids.push(await jobs.createJob({ pipeline: 'p', triggerOn: 'manual', inputs: [], priority: 0, maxAttempts: 1, backoffSeconds: 0 }));
    const got = await race(where, 'claim');
    const all = got.flat();
    expect(all).toHaveLength(ids.length);
    expect(new Set(all).size).toBe(ids.length);
    expect(await jobs.counts()).toMatchObject({ queued: 0, running: ids.length });
  });

  it('fires each due stable group once, whichever node gets there first', async () => {
    const { where, db, jobs } = await store();
    const index = new SqlIndex(db);
    const past = new Date(Date.now() - 1000).toISOString();
    for (let i = 0; i < 40; i++) {
      const received = await index.recordReceived(
        {
          objectId: `object-${i}`,
          path: `o/${i}.dcm`,
          size: 1,
          transferSyntaxUid: '1.2.840.10008.1.2.1',
          sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
          sopInstanceUid: `1.2.3.${i}`,
          receivedAt: past,
          source: 'network',
          database: 'Import',
          createdBy: 'test',
          attributes: { SeriesInstanceUID: `1.2.${i % 20}` },
        },
        'keep-first',
      );
      await jobs.recordTriggerDecisions(
        received.arrivalId,
        past,
        [],
        [{ pipeline: 'p', level: 'series', uid: `1.2.${i % 20}`, fireAt: past, lateArrivals: 'whole' }],
      );
    }
    const fired = (await race(where, 'fire')).flat();
    expect(fired).toHaveLength(20);
    expect(new Set(fired).size).toBe(20);
    const made = await jobs.listJobs({ limit: 100 });
    expect(made).toHaveLength(20);
    expect(made.every((j) => j.inputs.length === 2)).toBe(true);
  });

  it("leaves another node's fresh arrivals to it, and takes them once they are orphaned", async () => {
    const { db, jobs } = await store();
    const receivedAt = new Date(Date.now() - 5000).toISOString();
    const object = (i: number) => ({
      objectId: `object-${i}`,
      path: `o/${i}.dcm`,
      size: 1,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid: `1.2.3.${i}`,
      receivedAt,
      source: 'network' as const,
      database: 'Import',
      createdBy: 'test',
      attributes: {},
    });
    await new SqlIndex(db, { node: 'node-a' }).recordReceived(object(1), 'keep-first');
    await new SqlIndex(db, { node: 'node-b' }).recordReceived(object(2), 'keep-first');
    await new SqlIndex(db).recordReceived(object(3), 'keep-first'); // the CLI's import: no node
    const seen = async (node: string, orphanedBefore: string) =>
      (await jobs.unprocessedArrivals(10, { node, orphanedBefore })).map((a) => a.sopInstanceUid);
    const longAgo = new Date(Date.now() - 60_000).toISOString();
    expect(await seen('node-a', longAgo)).toEqual(['1.2.3.1', '1.2.3.3']);
    expect(await seen('node-b', longAgo)).toEqual(['1.2.3.2', '1.2.3.3']);
    expect(await seen('node-c', new Date().toISOString())).toEqual(['1.2.3.1', '1.2.3.2', '1.2.3.3']);
  });
});
