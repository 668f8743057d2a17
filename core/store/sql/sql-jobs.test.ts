// Jobs a stop or crash cuts short (issue 8's kill -9 fault injection found jobs failed for it):
// an interruption beside other jobs does not use up an attempt; a job interrupted again and
// again runs alone, and only an interruption while alone counts against it.
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { SUSPECT_AFTER_INTERRUPTIONS } from '../job-queue.ts';
import { SqlIndex } from './sql-index.ts';
import { openTestIndexDatabase } from '../../../test/helpers/test-index.ts';
import { allJobStores, type AllJobStores } from '../../../test/helpers/job-stores.ts';

const open: SqlIndex[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.close()));
});

async function store(): Promise<AllJobStores> {
  const index = new SqlIndex(await openTestIndexDatabase(tempDir()));
  open.push(index);
  return allJobStores(index.connection);
}

const now = () => new Date().toISOString();
const newJob = (maxAttempts: number) => ({
  pipeline: 'p',
  triggerOn: 'manual' as const,
  inputs: [],
  priority: 0,
  maxAttempts,
  backoffSeconds: 0,
});

describe('jobs interrupted by a stop or crash', () => {
  it('runs a job cut short beside others again however often that happens, without using up its attempts', async () => {
    const jobs = await store();
    const id = await jobs.createJob(newJob(2));
    await jobs.createJob(newJob(2));
    for (let kill = 1; kill <= SUSPECT_AFTER_INTERRUPTIONS; kill++) {
      expect((await jobs.claimNextJob('node', 60_000, now(), [], 0))?.id).toBe(id);
      expect(await jobs.claimNextJob('node', 60_000, now(), [], 1)).toBeDefined();
      expect(await jobs.requeueInterrupted()).toBe(2);
      expect(await jobs.getJob(id)).toMatchObject({ status: 'queued', attempts: kill, interruptions: kill });
    }
  });

  it('claims a suspect job only when nothing else runs on the node, and then alone', async () => {
    const jobs = await store();
    const id = await jobs.createJob(newJob(3));
    for (let kill = 0; kill < SUSPECT_AFTER_INTERRUPTIONS; kill++) {
      await jobs.claimNextJob('node', 60_000, now(), [], 1);
      await jobs.requeueInterrupted();
    }
    // Its place in the queue is kept: nothing behind it is claimed meanwhile.
    await jobs.createJob(newJob(3));
    expect(await jobs.claimNextJob('node', 60_000, now(), [], 1)).toBeUndefined();
    expect(await jobs.claimNextJob('node', 60_000, now(), [], 0)).toMatchObject({ id, isolated: true });
  });

  it('counts an interruption while running alone, and fails a job that keeps taking the server down', async () => {
    const jobs = await store();
    const id = await jobs.createJob(newJob(2));
    for (let kill = 0; kill < SUSPECT_AFTER_INTERRUPTIONS; kill++) {
      await jobs.claimNextJob('node', 60_000, now(), [], 1);
      await jobs.requeueInterrupted();
    }
    await jobs.claimNextJob('node', 60_000, now(), [], 0);
    await jobs.requeueInterrupted();
    expect(await jobs.getJob(id)).toMatchObject({
      status: 'queued',
      attempts: SUSPECT_AFTER_INTERRUPTIONS + 1,
      interruptions: SUSPECT_AFTER_INTERRUPTIONS,
    });
    await jobs.claimNextJob('node', 60_000, now(), [], 0);
    expect(await jobs.requeueInterrupted()).toBe(0);
    const job = (await jobs.getJob(id))!;
    expect(job).toMatchObject({ status: 'failed', errorCode: 'DF_ERR_STEP_FAILED' });
    expect(job.error).toBe(
      'the server stopped while this job ran alone, in its last allowed attempt (2 of 2): it is taken to be what brings the server down',
    );
  });
});

describe('leases, as nodes sharing the store use them', () => {
  it('renews the holder, hands an expired lease to another node, and ignores the late outcome of the old holder', async () => {
    const jobs = await store();
    const id = await jobs.createJob(newJob(2));
    const t0 = Date.now();
    const at = (ms: number) => new Date(t0 + ms).toISOString();
    expect((await jobs.claimNextJob('node-a', 1000, at(0)))?.id).toBe(id);
    expect(await jobs.renewLeases('node-a', [id], at(2000))).toEqual([]);
    // Not expired yet at 1.5 s (renewed to 2 s): nothing to take over.
    expect(await jobs.requeueInterrupted({ expiredBefore: at(1500) })).toBe(0);
    // node-a stops renewing; at 2.5 s another node takes the job over.
    expect(await jobs.requeueInterrupted({ expiredBefore: at(2500) })).toBe(1);
    expect(await jobs.claimNextJob('node-b', 1000, at(2500))).toMatchObject({ id, node: 'node-b', attempts: 2, interruptions: 1 });
    // node-a comes back: its lease is gone, and what it finishes is not recorded.
    expect(await jobs.renewLeases('node-a', [id], at(5000))).toEqual([id]);
    expect(await jobs.finishJob(id, 'failed', { error: 'late' }, 'node-a')).toBe(false);
    expect(await jobs.finishJob(id, 'succeeded', {}, 'node-b')).toBe(true);
    expect(await jobs.getJob(id)).toMatchObject({ status: 'succeeded', node: 'node-b' });
  });

  it('keeps the lease of a job cancelled while it runs, for its node to wind it down', async () => {
    const jobs = await store();
    const id = await jobs.createJob(newJob(1));
    expect((await jobs.claimNextJob('node-a', 60_000, now()))?.id).toBe(id);
    expect(await jobs.cancelJob(id)).toBe(true);
    expect(await jobs.renewLeases('node-a', [id], new Date(Date.now() + 60_000).toISOString())).toEqual([]);
    expect(await jobs.finishJob(id, 'cancelled', {}, 'node-a')).toBe(true);
  });

  it("requeues at start only this node's running jobs when others share the store", async () => {
    const jobs = await store();
    const mine = await jobs.createJob(newJob(2));
    const theirs = await jobs.createJob(newJob(2));
    await jobs.claimNextJob('node-a', 60_000, now());
    await jobs.claimNextJob('node-b', 60_000, now());
    expect(await jobs.requeueInterrupted({ owner: 'node-a' })).toBe(1);
    expect((await jobs.getJob(mine))?.status).toBe('queued');
    expect((await jobs.getJob(theirs))?.status).toBe('running');
  });
});

// The cluster kill -9 harness found series jobs failing on a missing file: a sender's second copy
// of an object (its first Success was cut off) joined the series group, the store step released
// its bytes, they were collected once the group's job ended, and the next generation of the
// group (lateArrivals: whole) carried the copy over into a job that could not read it.
describe('a stable group firing again for late arrivals (lateArrivals: whole)', () => {
  it('carries the earlier members over, except copies whose bytes were released and are filed nowhere', async () => {
    const index = new SqlIndex(await openTestIndexDatabase(tempDir()));
    open.push(index);
    const jobs = allJobStores(index.connection);
    const past = new Date(Date.now() - 1000).toISOString();
    const attributes = { SeriesInstanceUID: '1.2.9', StudyInstanceUID: '1.2.8', PatientID: 'P' };
    const object = (objectId: string, sopInstanceUid: string) => ({
      objectId,
      path: `o/${objectId}.dcm`,
      size: 1,
      transferSyntaxUid: '1.2.840.10008.1.2.1',
      sopClassUid: '1.2.840.10008.5.1.4.1.1.2',
      sopInstanceUid,
      receivedAt: past,
      source: 'network' as const,
      database: 'Import',
      createdBy: 'test',
      attributes,
    });
    const arrive = async (objectId: string, sopInstanceUid: string) => {
      const { arrivalId } = await index.recordReceived(object(objectId, sopInstanceUid), 'keep-first');
      await jobs.recordTriggerDecisions(
        arrivalId,
        past,
        [],
        [{ pipeline: 'p', level: 'series', uid: '1.2.9', fireAt: past, lateArrivals: 'whole' }],
      );
      return arrivalId;
    };
    const fire = async () => {
      const due = await jobs.dueGroups(now());
      expect(due).toHaveLength(1);
      return (await jobs.getJob(
        (await jobs.fireGroup(due[0].id, { pipeline: 'p', priority: 0, maxAttempts: 1, backoffSeconds: 0 }))!,
      ))!.inputs.sort();
    };
    const first = await arrive('object-1', '1.2.3.1');
    const again = await arrive('object-1b', '1.2.3.1');
    // What the store step does: files the first copy, releases the second (keep-first); a
    // delete-source step released the filed copy too, which its database keeps.
    await index.fileInstance('Import', { ...object('object-1', '1.2.3.1'), createdAt: past, arrivalId: first }, 'keep-first');
    await jobs.releaseObjects(['object-1b', 'object-1'], 'store-job');
    expect(await fire()).toEqual([first, again].sort());
    const late = await arrive('object-2', '1.2.3.2');
    expect(await fire()).toEqual([first, late].sort());
  });
});

describe('pipeline versions', () => {
  it('keeps the definition a job was queued with once per hash, however many jobs share it', async () => {
    const jobs = await store();
    const v1 = { ...newJob(1), pipelineHash: 'aaaa', pipelineDefinition: '{"name":"p","steps":[{"plugin":"a"}]}' };
    const ids = [
      await jobs.createJob(v1),
      await jobs.createJob(v1),
      await jobs.createJob({ ...v1, pipelineHash: 'bbbb', pipelineDefinition: '{"name":"p","steps":[]}' }),
    ];
    expect(await Promise.all(ids.map(async (id) => (await jobs.getJob(id))?.pipelineHash))).toEqual(['aaaa', 'aaaa', 'bbbb']);
    expect(await jobs.pipelineVersion('aaaa')).toMatchObject({ hash: 'aaaa', pipeline: 'p', definition: v1.pipelineDefinition });
    expect((await jobs.pipelineVersion('bbbb'))?.definition).toBe('{"name":"p","steps":[]}');
    // A second store on the same index (another node) finds the row there and adds none.
    const other = allJobStores(open.at(-1)!.connection);
    await other.createJob(v1);
    expect((await other.pipelineVersion('aaaa'))?.definition).toBe(v1.pipelineDefinition);
    expect(await jobs.pipelineVersion('cccc')).toBeUndefined();
  });
});
