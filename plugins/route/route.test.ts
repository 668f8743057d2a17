import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EngineServices } from '../../core/jobs/services.ts';
import { createStepContext, type StepContextSeed } from '../../core/jobs/step-context.ts';
import { loadPipeline } from '../../core/pipeline/load.ts';
import type { StepInput } from '../../core/plugin.ts';
import { PluginRegistry } from '../../core/plugin-registry.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openTestIndexDatabase } from '../../test/helpers/test-index.ts';
import { SqlOutbox } from '../../core/store/sql/sql-outbox.ts';
import { ctSeries, type BuiltSeries } from '../../test/fixtures/builder.ts';
import plugin from './index.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-route-'));
let index: SqlIndex;
let outbox: SqlOutbox;
let ct: BuiltSeries;
let inputs: StepInput[];
const registry = new PluginRegistry();

beforeAll(async () => {
  registry.register(plugin, new URL('./index.ts', import.meta.url).href);
  index = new SqlIndex(await openTestIndexDatabase(root));
  outbox = new SqlOutbox(index.connection, path.join(root, 'outbox'));
  ct = await ctSeries(path.join(root, 'ct'), { slices: 2, rows: 16, cols: 16 });
  inputs = ct.files.map((file, i) => ({
    arrivalId: `a${i}`,
    objectId: `o${i}`,
    path: file,
    sopClassUid: ct.sopClassUid,
    sopInstanceUid: ct.sopInstanceUids[i],
    attributes: {},
    source: 'network',
    receivedAt: new Date().toISOString(),
  }));
});

afterAll(async () => {
  await index.close();
  fs.rmSync(root, { recursive: true, force: true });
});

function services(): EngineServices {
  return { outbox, remoteNodes: ['PACS', 'ARCHIVE', 'LEASES'] } as unknown as EngineServices;
}

function seed(jobId: string): StepContextSeed {
  return {
    job: {
      id: jobId,
      pipeline: 'forward',
      pipelineVersion: '0123456789abcdef',
      database: 'default',
      attempt: 1,
      trigger: { on: 'instance', callingAeTitles: [], peerAddresses: [] },
    },
    node: { name: 'test-node' },
    step: { id: 'route', index: 0 },
    inputs,
    previousOutputs: [],
    scratchDir: path.join(root, 'jobs', jobId, 'scratch'),
    outputDir: path.join(root, 'jobs', jobId, 'outputs'),
  };
}

async function route(jobId: string, options: Record<string, unknown>) {
  const registered = registry.resolve('route')!;
  expect(registered.validateOptions(options)).toBe(true);
  const { ctx, effects } = createStepContext(seed(jobId), new AbortController().signal, () => {}, undefined, services());
  await plugin.run(ctx, options as never);
  return effects;
}

describe('route step', () => {
  it('queues every input for every destination, each entry with its own hard link', async () => {
    const effects = await route('job-1', { destination: ['PACS', 'ARCHIVE'] });
    const entries = await outbox.list({ jobId: 'job-1' });
    expect(entries).toHaveLength(4);
    expect(new Set(entries.map((e) => e.destination))).toEqual(new Set(['PACS', 'ARCHIVE']));
    for (const e of entries) {
      expect(e).toMatchObject({ state: 'queued', attempts: 0, transferSyntaxUid: '1.2.840.10008.1.2.1', stepId: 'route' });
      const source = inputs.find((i) => i.sopInstanceUid === e.sopInstanceUid)!.path;
      // Same inode: the bytes are shared, and outlive the received copy.
      expect(fs.statSync(e.path).ino).toBe(fs.statSync(source).ino);
    }
    expect(effects.outputs[0]).toMatchObject({ kind: 'table', name: 'routed' });
    expect(effects.outputs[0].rows).toHaveLength(4);
  });

  it('queues nothing twice when the same job step runs again (at least once)', async () => {
    await route('job-1', { destination: ['PACS', 'ARCHIVE'] });
    expect(await outbox.list({ jobId: 'job-1' })).toHaveLength(4);
    // A rerun is a new job: it sends again.
    await route('job-2', { destination: 'PACS' });
    expect(await outbox.list({ jobId: 'job-2' })).toHaveLength(2);
  });

  it('queues the DICOM objects earlier steps emitted with objects: "emitted"', async () => {
    const registered = registry.resolve('route')!;
    const options = { destination: 'PACS', objects: 'emitted' };
    expect(registered.validateOptions(options)).toBe(true);
    const emitted = path.join(root, 'emitted.dcm');
    fs.copyFileSync(ct.files[1], emitted);
    const s = { ...seed('job-4'), previousOutputs: [{ kind: 'instance' as const, path: emitted, sopInstanceUid: ct.sopInstanceUids[1] }] };
    const { ctx } = createStepContext(s, new AbortController().signal, () => {}, undefined, services());
    await plugin.run(ctx, options as never);
    const entries = await outbox.list({ jobId: 'job-4' });
    expect(entries.map((e) => e.sopInstanceUid)).toEqual([ct.sopInstanceUids[1]]);
    expect(fs.statSync(entries[0].path).ino).toBe(fs.statSync(emitted).ino);
  });

  it('queues an object listed twice once', async () => {
    const registered = registry.resolve('route')!;
    const options = { destination: 'PACS' };
    registered.validateOptions(options);
    const s = { ...seed('job-5'), inputs: [inputs[0], { ...inputs[0], arrivalId: 'again' }] };
    const { ctx, effects } = createStepContext(s, new AbortController().signal, () => {}, undefined, services());
    await plugin.run(ctx, options as never);
    expect(await outbox.list({ jobId: 'job-5' })).toHaveLength(1);
    expect(new Set(effects.outputs[0].rows!.map((r) => r.outboxId)).size).toBe(1);
  });

  it('refuses a destination the configuration no longer has', async () => {
    await expect(route('job-3', { destination: 'GONE' })).rejects.toThrow(/DF_ERR_DESTINATION_UNKNOWN: no remote node "GONE"/);
  });

  it('reports unknown destinations with their pointer when the pipeline loads', () => {
    const text = JSON.stringify(
      { name: 'p', trigger: { on: 'instance' }, steps: [{ plugin: 'route', options: { destination: 'NOWHERE' } }] },
      null,
      2,
    );
    const { problems } = loadPipeline(text, 'p.json', registry, { databases: ['Import'], remoteNodes: ['PACS'] });
    expect(problems.map((p) => [p.pointer, p.message])).toEqual([
      ['/steps/0/options/destination', 'unknown destination "NOWHERE" (remoteNodes: PACS)'],
    ]);
    expect(
      loadPipeline(text.replace('NOWHERE', 'PACS'), 'p.json', registry, { databases: ['Import'], remoteNodes: ['PACS'] }).problems,
    ).toEqual([]);
  });
});

// The store behind the step (core/store/sql/sql-outbox.ts), on the entries queued above; on
// SQLite and on PostgreSQL (the postgres project runs this file too).
describe('outbox store', () => {
  it('claims due entries under a lease, retries with backoff, then dead-letters; retryDead reschedules', async () => {
    const now = new Date().toISOString();
    const claimed = await outbox.claim('ARCHIVE', 'node-a', 60_000, now, 10);
    expect(claimed).toHaveLength(2);
    expect(claimed.every((e) => e.state === 'sending' && e.attempts === 1)).toBe(true);
    // Leased: nobody else takes them.
    expect(await outbox.claim('ARCHIVE', 'node-b', 60_000, now, 10)).toEqual([]);
    const later = new Date(Date.now() + 60_000).toISOString();
    await outbox.markFailed(claimed[0].id, { errorCode: 'DF_ERR_PEER_UNREACHABLE', error: 'connection refused', retryAt: later });
    await outbox.markFailed(claimed[1].id, { errorCode: 'DF_ERR_PEER_UNREACHABLE', error: 'connection refused' });
    expect((await outbox.get([claimed[0].id]))[0]).toMatchObject({
      state: 'queued',
      nextAttemptAt: later,
      lastError: 'connection refused',
    });
    expect((await outbox.get([claimed[1].id]))[0].state).toBe('dead');
    // Not due yet.
    expect(await outbox.claim('ARCHIVE', 'node-a', 60_000, now, 10)).toEqual([]);
    expect((await outbox.claim('ARCHIVE', 'node-a', 60_000, later, 10)).map((e) => e.id)).toEqual([claimed[0].id]);
    // An expired lease is taken over (a node that died mid-send).
    const afterLease = new Date(Date.parse(later) + 61_000).toISOString();
    expect((await outbox.claim('ARCHIVE', 'node-b', 60_000, afterLease, 10)).map((e) => e.attempts)).toEqual([3]);
    expect((await outbox.counts()).find((c) => c.destination === 'ARCHIVE')).toMatchObject({
      queued: 0,
      sending: 1,
      dead: 1,
      delivered: 0,
    });
    expect(await outbox.retryDead('ARCHIVE')).toBe(1);
    expect((await outbox.get([claimed[1].id]))[0]).toMatchObject({ state: 'queued', attempts: 0 });
    expect(await outbox.requeueInterrupted()).toBe(1);
  });

  it('renews, releases and reschedules the entries named, each set in one statement', async () => {
    await route('job-6', { destination: 'LEASES' });
    const now = new Date().toISOString();
    const claimed = await outbox.claim('LEASES', 'node-a', 1_000, now, 10);
    expect(claimed.map((e) => e.sopInstanceUid).sort()).toEqual([...ct.sopInstanceUids].sort());
    const ids = claimed.map((e) => e.id);
    // Renewed by its owner only: another node's renewal changes nothing.
    await outbox.renewLeases('node-b', ids, new Date(Date.parse(now) + 3_000).toISOString());
    const expired = new Date(Date.parse(now) + 2_000).toISOString();
    await outbox.renewLeases('node-a', [ids[0]], new Date(Date.parse(now) + 60_000).toISOString());
    // The lease not renewed has expired two seconds on: only that entry is taken over.
    const takenOver = await outbox.claim('LEASES', 'node-b', 60_000, expired, 10);
    expect(takenOver.map((e) => e.id)).toEqual([ids[1]]);
    // get keeps the order asked for and leaves unknown ids out.
    expect((await outbox.get([ids[1], 'no-such-entry', ids[0]])).map((e) => e.id)).toEqual([ids[1], ids[0]]);
    // Released (a shutdown before trying): queued again, the attempt not counted.
    await outbox.release(ids);
    expect((await outbox.get(ids)).map((e) => [e.state, e.attempts])).toEqual([
      ['queued', 0],
      ['queued', 1],
    ]);
    const again = await outbox.claim('LEASES', 'node-a', 60_000, new Date().toISOString(), 10);
    for (const e of again) await outbox.markFailed(e.id, { errorCode: 'DF_ERR_STORE_REFUSED', error: 'refused' });
    // Rescheduled by id: only those named, and only of that destination.
    expect(await outbox.retryDead('PACS', [ids[0]])).toBe(0);
    expect(await outbox.retryDead('LEASES', [ids[0], 'no-such-entry'])).toBe(1);
    expect((await outbox.get(ids)).map((e) => e.state)).toEqual(['queued', 'dead']);
    expect(await outbox.retryDead('LEASES', [])).toBe(0);
  });

  it('queues a send without a job once per source key (a request sent again is queued again)', async () => {
    const send = (request: string) =>
      inputs.map((input) => ({
        destination: 'SENDS',
        file: input.path,
        sopClassUid: input.sopClassUid,
        sopInstanceUid: input.sopInstanceUid,
        transferSyntaxUid: '1.2.840.10008.1.2.1',
        sourceKey: `send:${request}:${input.objectId}`,
      }));
    const first = await outbox.enqueue(send('r1'));
    expect(first.map((e) => e.jobId)).toEqual([undefined, undefined]);
    expect((await outbox.enqueue(send('r1'))).map((e) => e.id)).toEqual(first.map((e) => e.id));
    const again = await outbox.enqueue(send('r2'));
    expect(again.map((e) => e.id).filter((id) => first.some((f) => f.id === id))).toEqual([]);
    expect(await outbox.list({ destination: 'SENDS' })).toHaveLength(4);
  });

  it('drops the bytes once delivered; removes files no entry refers to', async () => {
    const [entry] = await outbox.claim('PACS', 'node-a', 60_000, new Date().toISOString(), 1);
    await outbox.markDelivered(entry.id, { status: 0, sentTransferSyntaxUid: entry.transferSyntaxUid });
    expect(fs.existsSync(entry.path)).toBe(false);
    expect((await outbox.get([entry.id]))[0]).toMatchObject({ state: 'delivered', status: 0 });
    const orphan = path.join(root, 'outbox', 'zz', 'left-by-a-crash.dcm');
    fs.mkdirSync(path.dirname(orphan), { recursive: true });
    fs.writeFileSync(orphan, 'x');
    expect(await outbox.removeOrphans()).toBe(1);
    expect(fs.existsSync(orphan)).toBe(false);
    expect((await outbox.list({ state: 'queued' })).every((e) => fs.existsSync(e.path))).toBe(true);
  });
});
