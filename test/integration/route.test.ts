// Issue 5, routing: the route step queues objects in the durable outbox and the outbox sender
// delivers them to real DCMTK storescp destinations — byte for byte, later when a destination
// was down, never held up by a dead neighbour, through the dead letters and `outbox retry`,
// across a kill -9, after delete-source removed the received copy, and transcoded for a peer
// that takes only uncompressed (or only Implicit VR) objects.
import { execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/app.ts';
import { sendFiles } from '../../server/dimse/store-scu.ts';
import { retryDelaySeconds } from '../../server/route/outbox-sender.ts';
import { compress, ctSeries, ctSliceWithPrivateTags, type BuiltSeries } from '../fixtures/builder.ts';
import { startStorescp, type DcmtkPeer } from '../helpers/dcmtk-peers.ts';
import { dcmdump, hasTool, storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { readPart10 } from '../helpers/part10.ts';
import { spawnServer, startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');

const servers: RunningServer[] = [];
const peers: DcmtkPeer[] = [];
const children: ChildProcess[] = [];
const blackholes: net.Server[] = [];
let fixtures: string;
let ct: BuiltSeries;

beforeAll(async () => {
  fixtures = tempDir('df-route-fixtures-');
  ct = await ctSeries(path.join(fixtures, 'ct'), { slices: 3, rows: 32, cols: 32 });
});

afterAll(async () => {
  for (const s of servers) await s.close();
  for (const p of peers) await p.stop();
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const b of blackholes) b.close();
});

/** Retries in fractions of a second, so a test sees backoff and dead letters quickly. */
const fast = { concurrency: 2, maxAttempts: 3, initialRetrySeconds: 0.2, maxRetrySeconds: 0.5 };

function node_(aeTitle: string, port: number, outbox: Record<string, unknown> = fast) {
  return { aeTitle, host: '127.0.0.1', port, outbox };
}

function pipelines(steps: Record<string, unknown>[], extra: Record<string, unknown> = {}): string {
  const dir = tempDir('df-route-pipelines-');
  fs.writeFileSync(
    path.join(dir, 'forward.json'),
    JSON.stringify({ name: 'forward', trigger: { on: 'instance' }, steps, ...extra }, null, 2),
  );
  return dir;
}

async function server(
  steps: Record<string, unknown>[],
  remoteNodes: unknown[],
  extra: Record<string, unknown> = {},
): Promise<RunningServer & { dataDir: string }> {
  const s = await startTestServer({ pipelinesDir: pipelines(steps, extra), defaultPipeline: false, remoteNodes });
  servers.push(s);
  return s;
}

async function storescp(options: Parameters<typeof startStorescp>[0] = {}): Promise<DcmtkPeer> {
  const p = await startStorescp(options);
  peers.push(p);
  return p;
}

async function send(port: number, files: string[], proposal: string[] = []): Promise<void> {
  const r = await storescu([...proposal, '-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(port), ...files]);
  expect(r.code, r.stderr).toBe(0);
}

const figures = async (s: RunningServer, destination: string) => (await s.outbox.status()).find((d) => d.destination === destination)!;

function receivedFiles(dir: string): string[] {
  return fs
    .readdirSync(dir)
    .filter((n) => !n.startsWith('.'))
    .map((n) => path.join(dir, n));
}

async function expectSameDatasets(sources: string[], dir: string): Promise<void> {
  const arrived = new Map<string, Buffer>();
  for (const f of receivedFiles(dir)) {
    const parts = await readPart10(f);
    arrived.set(parts.sopInstanceUid, parts.dataset);
  }
  for (const source of sources) {
    const sent = await readPart10(source);
    expect(arrived.get(sent.sopInstanceUid), `${path.basename(source)} arrived`).toBeDefined();
    expect(Buffer.compare(arrived.get(sent.sopInstanceUid)!, sent.dataset), `${path.basename(source)}: dataset bytes identical`).toBe(0);
  }
}

async function untilAsync<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A peer that accepts TCP connections and never answers: a hung PACS. */
async function blackhole(): Promise<number> {
  const sockets: net.Socket[] = [];
  const b = net.createServer((socket) => sockets.push(socket.on('error', () => {})));
  b.on('close', () => sockets.forEach((s) => s.destroy()));
  blackholes.push(b);
  await new Promise<void>((resolve) => b.listen(0, '127.0.0.1', resolve));
  return (b.address() as net.AddressInfo).port;
}

/**
 * A destination whose connection drops mid-association: a TCP proxy in front of `targetPort`
 * that forwards the n-th connection until the sender has sent `cutAfterBytes[n]` bytes, then
 * passes those on, closes the way to the peer and drops the sender. Connections past the list
 * are forwarded whole.
 */
async function droppingProxy(targetPort: number, cutAfterBytes: number[]): Promise<{ port: number; cuts: () => number }> {
  let connections = 0;
  let cuts = 0;
  const sockets: net.Socket[] = [];
  const proxy = net.createServer((sender) => {
    const limit = cutAfterBytes[connections++];
    const peer = net.connect(targetPort, '127.0.0.1');
    sockets.push(sender, peer);
    let forwarded = 0;
    sender.on('data', (chunk: Buffer) => {
      if (limit !== undefined && forwarded + chunk.length >= limit) {
        cuts++;
        peer.end(chunk.subarray(0, limit - forwarded));
        sender.destroy();
        return;
      }
      forwarded += chunk.length;
      peer.write(chunk);
    });
    peer.on('data', (chunk: Buffer) => sender.write(chunk));
    for (const [a, b] of [
      [sender, peer],
      [peer, sender],
    ]) {
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
    }
  });
  proxy.on('close', () => sockets.forEach((s) => s.destroy()));
  blackholes.push(proxy);
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  return { port: (proxy.address() as net.AddressInfo).port, cuts: () => cuts };
}

describe('outbox backoff', () => {
  it('doubles the wait after each failed attempt, up to the cap', () => {
    const o = { concurrency: 1, maxAttempts: 10, initialRetrySeconds: 10, maxRetrySeconds: 300, batchSize: 10 };
    expect([1, 2, 3, 4, 5, 6, 7].map((a) => retryDelaySeconds(a, o))).toEqual([10, 20, 40, 80, 160, 300, 300]);
  });
});

describe.skipIf(!hasTool('storescp') || !hasTool('storescu'))('route (issue 5)', () => {
  it('delivers to a real storescp byte for byte and drops its outbox copy', async () => {
    const peer = await storescp({ aeTitle: 'PACS' });
    const s = await server([{ plugin: 'route', options: { destination: 'PACS' } }], [node_('PACS', peer.port)]);
    await send(s.dicomPort, ct.files);
    await until('3 objects delivered', async () => (await figures(s, 'PACS')).delivered === 3 || undefined);
    await expectSameDatasets(ct.files, peer.dir);
    expect(await figures(s, 'PACS')).toMatchObject({ queued: 0, sending: 0, dead: 0 });
    // The job recorded what it queued.
    await s.engine.idle();
    const job = (await s.jobs.getJob((await s.jobs.listJobs({ pipeline: 'forward' }))[0].id))!;
    expect(job.steps![0].outputs[0]).toMatchObject({ kind: 'table', name: 'routed' });
    expect(job.steps![0].outputs[0].rows![0]).toMatchObject({ destination: 'PACS' });
    // Delivered entries keep no bytes.
    const outboxFiles = fs.readdirSync(path.join(s.dataDir, 'outbox'), { recursive: true }).filter((n) => String(n).endsWith('.dcm'));
    expect(outboxFiles).toEqual([]);
    // GET /api/status carries the same figures.
    const status = (await (
      await fetch(`http://127.0.0.1:${s.httpPort}/api/status`, { headers: { authorization: `Bearer ${s.adminToken}` } })
    ).json()) as {
      outbox: { destination: string; delivered: number }[];
    };
    expect(status.outbox.find((d) => d.destination === 'PACS')?.delivered).toBe(3);
  });

  it('keeps objects queued while the destination is down and delivers once it is up', async () => {
    const port = await freePort();
    const s = await server([{ plugin: 'route', options: { destination: 'LATER' } }], [node_('LATER', port, { ...fast, maxAttempts: 50 })]);
    await send(s.dicomPort, ct.files);
    await until('a failed attempt', async () => ((await figures(s, 'LATER')).lastError ?? '').includes('connection refused') || undefined);
    expect((await figures(s, 'LATER')).delivered).toBe(0);
    const jobs = await s.jobs.listJobs({ pipeline: 'forward' });
    await s.engine.idle();
    // The route step succeeded: queuing is its work, delivery the sender's.
    expect((await s.jobs.listJobs({ pipeline: 'forward' })).every((j) => j.status === 'succeeded')).toBe(true);
    expect(jobs.length).toBe(3);
    const peer = await storescp({ aeTitle: 'LATER', port });
    await until('delivered after the destination came up', async () => (await figures(s, 'LATER')).delivered === 3 || undefined);
    await expectSameDatasets(ct.files, peer.dir);
  });

  it('a hung destination does not hold up a live one', async () => {
    const hung = await blackhole();
    const live = await storescp({ aeTitle: 'LIVE' });
    const s = await server(
      [{ plugin: 'route', options: { destination: ['HUNG', 'LIVE'] } }],
      [node_('HUNG', hung, { ...fast, concurrency: 1 }), node_('LIVE', live.port)],
    );
    await send(s.dicomPort, ct.files);
    await until('delivered to LIVE', async () => (await figures(s, 'LIVE')).delivered === 3 || undefined);
    // The hung peer holds its association until the response timeout (30 s): LIVE did not wait
    // for it, since HUNG's first attempt has not ended yet (no error recorded).
    expect((await figures(s, 'HUNG')).lastError).toBeNull();
    expect((await figures(s, 'HUNG')).delivered).toBe(0);
    expect((await figures(s, 'HUNG')).queued + (await figures(s, 'HUNG')).sending).toBe(3);
    await expectSameDatasets(ct.files, live.dir);
  });

  it('a destination that drops the connection mid-association still gets every object, none left sending (issue 8)', async () => {
    const series = await ctSeries(path.join(fixtures, 'dropped'), { slices: 12, rows: 64, cols: 64 });
    const peer = await storescp({ aeTitle: 'DROPPY' });
    // Cut in the association request, in the first object, a few objects in, and late in the batch.
    const proxy = await droppingProxy(peer.port, [200, 3_000, 30_000, 80_000]);
    const s = await server(
      [{ plugin: 'route', options: { destination: 'DROPPY' } }],
      [node_('DROPPY', proxy.port, { ...fast, maxAttempts: 20 })],
    );
    await send(s.dicomPort, series.files);
    await until('12 objects delivered', async () => (await figures(s, 'DROPPY')).delivered === 12 || undefined, 30_000);
    // The first two cuts always happen (one in the association request, one in the first
    // object); the later ones only if a connection carries that many bytes, which depends on
    // how the arrivals were batched into sends: the behaviour under test is the delivery.
    expect(proxy.cuts()).toBeGreaterThanOrEqual(2);
    expect(await figures(s, 'DROPPY')).toMatchObject({ queued: 0, sending: 0, dead: 0, delivered: 12 });
    await expectSameDatasets(series.files, peer.dir);
    // Each object is stored once at the destination (storescp names files by SOP Instance UID).
    expect(receivedFiles(peer.dir)).toHaveLength(12);
    // The drops cost attempts: each charged the object in flight (a drop in the association
    // request, the whole batch), and each object's delivery one more. Which object a drop hits
    // depends on how the arrivals were batched, so the attempts are counted over all of them.
    const rows = await s.index.connection.all<{ attempts: number }>("SELECT attempts FROM outbox WHERE destination = 'DROPPY'");
    expect(rows.reduce((sum, r) => sum + r.attempts, 0)).toBeGreaterThanOrEqual(12 + proxy.cuts());
  });

  it('objects behind a drop are not charged an attempt: a peer that drops every association after two objects still gets all', async () => {
    const series = await ctSeries(path.join(fixtures, 'dropped-often'), { slices: 12, rows: 64, cols: 64 });
    const peer = await storescp({ aeTitle: 'CRASHY' });
    // About two and a half objects per association, every time, for longer than it takes.
    const proxy = await droppingProxy(peer.port, Array(20).fill(25_000));
    const s = await server(
      [{ plugin: 'route', options: { destination: 'CRASHY' } }],
      [node_('CRASHY', proxy.port, { ...fast, maxAttempts: 3 })],
    );
    await send(s.dicomPort, series.files);
    await until(
      '12 objects delivered or dead',
      async () => (await figures(s, 'CRASHY')).delivered + (await figures(s, 'CRASHY')).dead === 12 || undefined,
      30_000,
    );
    expect(await figures(s, 'CRASHY')).toMatchObject({ queued: 0, sending: 0, dead: 0, delivered: 12 });
    expect(proxy.cuts()).toBeGreaterThanOrEqual(4);
    await expectSameDatasets(series.files, peer.dir);
  });

  it('moves objects to the dead letters after maxAttempts; `outbox retry` sends them again', async () => {
    const port = await freePort();
    const s = await server([{ plugin: 'route', options: { destination: 'FLAKY' } }], [node_('FLAKY', port)]);
    await send(s.dicomPort, ct.files);
    await until('3 dead letters', async () => (await figures(s, 'FLAKY')).dead === 3 || undefined);
    const config = path.join(s.dataDir, 'config.json');
    const { stdout: json } = await run(node, [cli, 'outbox', '--json', '--config', config]);
    const listed = (JSON.parse(json) as { destination: string; dead: number; deadIds: string[]; lastError: string }[]).find(
      (d) => d.destination === 'FLAKY',
    )!;
    expect(listed.dead).toBe(3);
    expect(listed.deadIds).toHaveLength(3);
    expect(listed.lastError).toMatch(/connection refused/);
    const { stdout: table } = await run(node, [cli, 'outbox', '--config', config]);
    expect(table).toMatch(/^destination\s+queued\s+in flight\s+delivered\s+dead/m);
    expect(table).toMatch(/FLAKY\s+0\s+0\s+0\s+3/);
    const peer = await storescp({ aeTitle: 'FLAKY', port });
    // One by id, then the rest.
    const one = await run(node, [cli, 'outbox', 'retry', 'FLAKY', listed.deadIds[0], '--config', path.join(s.dataDir, 'config.json')]);
    expect(one.stdout).toMatch(/^1 dead letter/);
    await until('the one delivered', async () => (await figures(s, 'FLAKY')).delivered === 1 || undefined);
    expect((await figures(s, 'FLAKY')).dead).toBe(2);
    const rest = await run(node, [cli, 'outbox', 'retry', 'FLAKY', '--all', '--config', path.join(s.dataDir, 'config.json')]);
    expect(rest.stdout).toMatch(/^2 dead letter/);
    await until('all delivered', async () => (await figures(s, 'FLAKY')).delivered === 3 || undefined);
    await expectSameDatasets(ct.files, peer.dir);
    // Unknown destinations are refused.
    const unknown = await run(node, [cli, 'outbox', 'retry', 'NOPE', '--all', '--config', path.join(s.dataDir, 'config.json')]).catch(
      (e: { stderr: string; code: number }) => e,
    );
    expect((unknown as { stderr: string }).stderr).toMatch(/DF_ERR_DESTINATION_UNKNOWN/);
  });

  it('keeps the bytes for delivery after delete-source removed the received copy', async () => {
    const port = await freePort();
    const s = await server(
      [{ plugin: 'route', options: { destination: 'ARCHIVE' } }, { plugin: 'delete-source' }],
      [node_('ARCHIVE', port, { ...fast, maxAttempts: 50 })],
    );
    await send(s.dicomPort, ct.files);
    await s.engine.idle();
    // The received copies are gone (no database holds them)…
    await until(
      'received copies deleted',
      async () =>
        fs.readdirSync(path.join(s.dataDir, 'storage', 'objects'), { recursive: true }).filter((n) => String(n).endsWith('.dcm')).length ===
          0 || undefined,
    );
    expect((await figures(s, 'ARCHIVE')).delivered).toBe(0);
    // …and the outbox still delivers them, byte for byte.
    const peer = await storescp({ aeTitle: 'ARCHIVE', port });
    await until('delivered', async () => (await figures(s, 'ARCHIVE')).delivered === 3 || undefined);
    await expectSameDatasets(ct.files, peer.dir);
  });

  it('transcodes a JPEG-LS object for a peer that accepts only uncompressed syntaxes', async () => {
    const source = ct.files[0];
    const { file: jls } = await compress(source, 'jpeg-ls', path.join(fixtures, 'ct-jls.dcm'));
    const peer = await storescp({ aeTitle: 'PLAIN' }); // storescp's default: uncompressed only
    const s = await server([{ plugin: 'route', options: { destination: 'PLAIN' } }], [node_('PLAIN', peer.port)]);
    await send(s.dicomPort, [jls], ['-xt']); // propose JPEG-LS lossless: arrives compressed
    await until('delivered', async () => (await figures(s, 'PLAIN')).delivered === 1 || undefined);
    // Stored as it came (JPEG-LS), sent transcoded.
    const row = await s.index.connection.get(
      "SELECT transfer_syntax_uid, sent_transfer_syntax_uid, state FROM outbox WHERE destination = 'PLAIN'",
    );
    expect(row).toEqual({
      transfer_syntax_uid: '1.2.840.10008.1.2.4.80',
      sent_transfer_syntax_uid: '1.2.840.10008.1.2.1',
      state: 'delivered',
    });
    const [arrived] = receivedFiles(peer.dir);
    const got = await readPart10(arrived);
    expect(got.transferSyntaxUid).toBe('1.2.840.10008.1.2.1');
    // Lossless: the decoded pixels are the original's.
    const pixels = (file: string) => {
      const bytes = fs.readFileSync(file);
      return bytes.subarray(bytes.length - 32 * 32 * 2);
    };
    expect(Buffer.compare(pixels(arrived), pixels(source))).toBe(0);
    const dump = await dcmdump([arrived]);
    expect(dump.stdout).toMatch(/PatientName/);
  });

  it('transcodes Explicit to Implicit VR Little Endian for a peer that takes only Implicit, private tags kept', async () => {
    const withPrivate = await ctSliceWithPrivateTags(path.join(fixtures, 'private'));
    const peer = await storescp({ aeTitle: 'IMPLICIT', args: ['+xi'] });
    const s = await server([{ plugin: 'route', options: { destination: 'IMPLICIT' } }], [node_('IMPLICIT', peer.port)]);
    await send(s.dicomPort, withPrivate.files);
    await until('delivered', async () => (await figures(s, 'IMPLICIT')).delivered === 1 || undefined);
    const [arrived] = receivedFiles(peer.dir);
    expect((await readPart10(arrived)).transferSyntaxUid).toBe('1.2.840.10008.1.2');
    // Same elements and values (private ones shown as raw bytes in Implicit VR), same character set.
    const values = async (file: string) =>
      (await dcmdump(['-q', '+L', file])).stdout
        .split('\n')
        .filter((l) => /^\s*\(\w{4},\w{4}\)/.test(l) && !/^\s*\(0002,/.test(l))
        .map((l) =>
          l
            .replace(/#.*$/, '')
            .replace(/^(\s*\(\w{4},\w{4}\)) \S\S /, '$1 ')
            .trim(),
        );
    const sent = await values(withPrivate.files[0]);
    const got = await values(arrived);
    expect(got.length).toBe(sent.length);
    expect(got.find((l) => l.startsWith('(0008,0005)'))).toBe(sent.find((l) => l.startsWith('(0008,0005)')));
    expect(got.filter((l) => !/^\(0009,10|^\(0019,10/.test(l)).join('\n')).toBe(
      sent.filter((l) => !/^\(0009,10|^\(0019,10/.test(l)).join('\n'),
    );
  });

  it('with "wait", the job ends when its objects are delivered, and fails when they go to the dead letters', async () => {
    const peer = await storescp({ aeTitle: 'WAITED' });
    const down = await freePort();
    const s = await server(
      [
        { id: 'to-live', plugin: 'route', options: { destination: 'WAITED', wait: true } },
        { id: 'to-dead', plugin: 'route', options: { destination: 'NEVER', wait: true } },
      ],
      [node_('WAITED', peer.port), node_('NEVER', down, { ...fast, maxAttempts: 2 })],
      { retry: { maxAttempts: 1 } },
    );
    await send(s.dicomPort, [ct.files[0]]);
    await until('the job ended', async () =>
      (await s.jobs.listJobs({ pipeline: 'forward' })).find((j) => j.status === 'failed' || j.status === 'succeeded'),
    );
    const job = (await s.jobs.getJob((await s.jobs.listJobs({ pipeline: 'forward' }))[0].id))!;
    expect(job.status).toBe('failed');
    expect(job.error).toMatch(
      /step "to-dead" .*DF_ERR_DELIVERY_FAILED: 1 of 1 object\(s\) went to the dead letters \(first: NEVER: DF_ERR_PEER_UNREACHABLE/,
    );
    const [live, dead] = job.steps!;
    expect(live.status).toBe('succeeded');
    expect(live.outputs[0].rows![0]).toMatchObject({ destination: 'WAITED', state: 'delivered' });
    const deadLine = dead.log.find((l) => l.level === 'error')!;
    expect((deadLine.data as { dead: unknown[] }).dead[0]).toMatchObject({ destination: 'NEVER', state: 'dead', attempts: 2 });
    await expectSameDatasets([ct.files[0]], peer.dir);
  });

  it("an object the peer takes in no syntax fails with the peer's answers and ends in the dead letters", async () => {
    // A private SOP class: dicomflow keeps it (acceptUnknownSopClasses), storescp refuses it.
    const privateClass = path.join(fixtures, 'private-class.dcm');
    fs.copyFileSync(ct.files[0], privateClass);
    const modified = await run('dcmodify', ['-nb', '-m', 'SOPClassUID=1.2.826.0.1.3680043.9.7433.1.1', privateClass]);
    expect(modified.stderr).toBe('');
    const peer = await storescp({ aeTitle: 'STRICT' });
    const s = await startTestServer({
      pipelinesDir: pipelines([{ plugin: 'route', options: { destination: 'STRICT' } }]),
      defaultPipeline: false,
      dimse: { acceptUnknownSopClasses: true },
      remoteNodes: [node_('STRICT', peer.port, { ...fast, maxAttempts: 2 })],
    });
    servers.push(s);
    // storescu refuses unknown SOP classes; our own SCU sends whatever the file holds.
    const [sent] = await sendFiles({
      host: '127.0.0.1',
      port: s.dicomPort,
      callingAeTitle: 'MODALITY',
      calledAeTitle: 'DICOMFLOW',
      files: [privateClass],
    });
    expect(sent.outcome).toBe('success');
    await until('dead letter', async () => (await figures(s, 'STRICT')).dead === 1 || undefined);
    expect((await figures(s, 'STRICT')).lastError).toMatch(
      /^DF_ERR_CONTEXT_REJECTED: STRICT at 127\.0\.0\.1:\d+ did not accept SOP class 1\.2\.826\.0\.1\.3680043\.9\.7433\.1\.1 in ExplicitVRLittleEndian, nor Explicit or Implicit VR Little Endian to transcode to \(it answered: ExplicitVRLittleEndian refused \(abstract syntax \(SOP class\) not supported\), ImplicitVRLittleEndian refused/,
    );
    expect(receivedFiles(peer.dir)).toEqual([]);
  });

  it('rejects a pipeline naming an unknown destination when it loads', async () => {
    const s = await server([{ plugin: 'route', options: { destination: ['PACS', 'NOWHERE'] } }], [node_('PACS', 1)]);
    const problems = s.pipelines.problems().map((p) => `${p.pointer}: ${p.message}`);
    expect(problems).toEqual(['/steps/0/options/destination/1: unknown destination "NOWHERE" (remoteNodes: PACS)']);
  });

  it('delivers entries queued before a kill -9 after the restart', async () => {
    const dataDir = tempDir('df-route-crash-');
    const destinationPort = await freePort();
    const [dicomPort, httpPort] = [await freePort(), await freePort()];
    const config = path.join(dataDir, 'config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        dataDir,
        pipelinesDir: pipelines([{ plugin: 'route', options: { destination: 'AFTER' } }]),
        defaultPipeline: false,
        dimse: { port: dicomPort, host: '127.0.0.1' },
        http: { port: httpPort, host: '127.0.0.1' },
        storage: { minFreeMegabytes: 16 },
        remoteNodes: [node_('AFTER', destinationPort, { ...fast, maxAttempts: 50, initialRetrySeconds: 1, maxRetrySeconds: 1 })],
      }),
    );
    const first = await spawnServer(['--config', config]);
    children.push(first.child);
    await send(dicomPort, ct.files);
    const queued = async () =>
      JSON.parse((await run(node, [cli, 'outbox', '--json', '--config', config])).stdout)[0] as {
        queued: number;
        sending: number;
        lastError: string | null;
      };
    await untilAsync('3 entries queued with a failed attempt', async () => {
      const q = await queued();
      return (q.queued + q.sending === 3 && q.lastError !== null) || undefined;
    });
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    const peer = await storescp({ aeTitle: 'AFTER', port: destinationPort });
    const second = await spawnServer(['--config', config]);
    children.push(second.child);
    await untilAsync(
      'delivered after the restart',
      async () => ((await queued()) as unknown as { delivered: number }).delivered === 3 || undefined,
      30_000,
    );
    await expectSameDatasets(ct.files, peer.dir);
    second.child.kill('SIGTERM');
    await new Promise((resolve) => second.child.once('exit', resolve));
  });
});
