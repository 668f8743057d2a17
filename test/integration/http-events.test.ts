// Issue 14, HTTP: the live event stream sends a job's events (queued, started, progress,
// finished with its error) only to users who may see the job, as it does arrivals; open
// streams are capped per user and in all.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { openEvents, type SseEvent } from '../helpers/api.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '../..');

const databases = [{ name: 'Import' }, { name: 'StudyA', aeTitle: 'STUDYA' }, { name: 'StudyB', aeTitle: 'STUDYB' }];
const users = [
  { name: 'ann', role: 'reader', databases: { StudyA: 'read' } },
  { name: 'bea', role: 'operator', databases: { StudyB: 'read' } },
  { name: 'cid', role: 'reader', databases: { StudyA: 'read' } },
  { name: 'dan', role: 'reader', databases: { StudyB: 'read' } },
];

type Server = Awaited<ReturnType<typeof startTestServer>>;

/** Sends one object to the database behind `calledAe`; returns its SOP Instance UID. */
async function sendTo(s: Server, calledAe: string): Promise<string> {
  return (await sendStudyTo(s, calledAe)).sopInstanceUids[0];
}

async function sendStudyTo(s: Server, calledAe: string) {
  const ct = await ctSeries(tempDir(), { slices: 1, rows: 8, cols: 8 });
  expect((await storescu(['-aec', calledAe, '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
  return ct;
}

const jobEvents = (events: SseEvent[]) => events.filter((e) => e.event === 'job');
/** The job over the object, once its end is on `events` (the admin's stream). */
async function finishedJob(s: Server, events: SseEvent[], sopInstanceUid: string): Promise<string | undefined> {
  const arrival = events.find((e) => e.event === 'arrival' && e.data.sopInstanceUid === sopInstanceUid);
  if (!arrival) return undefined;
  const job = (await s.jobs.listJobs({ limit: 100 })).find((j) => j.inputs.includes(arrival.data.id));
  return job && events.some((e) => e.event === 'job' && e.data.type === 'finished' && e.data.jobId === job.id) ? job.id : undefined;
}

describe('job events on the live stream follow the rights on the job’s database', () => {
  let s: Server;
  const token: Record<string, string> = {};
  beforeAll(async () => {
    // A job per object: the default pipeline files in each arrival's commit and makes none, so a
    // pipeline that processes each object (filing it again is a no-op with progress) makes them.
    const pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'per-object.json'),
      JSON.stringify({
        name: 'per-object',
        trigger: { on: 'instance' },
        steps: [
          { id: 'file', plugin: 'store' },
          { id: 'again', plugin: 'store' },
        ],
      }),
    );
    s = await startTestServer({ databases, users, pipelinesDir });
    token.admin = s.adminToken;
    for (const u of users) token[u.name] = (await issueToken(s.tokens, s.users, u.name)).token;
  });
  afterAll(() => s?.close());

  it('sends a job’s events only to readers of its database (and admins)', async () => {
    const admin = await openEvents(s.httpPort, token.admin);
    const ann = await openEvents(s.httpPort, token.ann);
    const bea = await openEvents(s.httpPort, token.bea);
    try {
      expect([admin.status, ann.status, bea.status]).toEqual([200, 200, 200]);
      // One job on StudyA, then one on StudyB, then another on StudyA: each stream is in order,
      // so once a user has the events of a later job, the earlier ones it was sent are there too.
      const a1 = await sendTo(s, 'STUDYA');
      const jobA1 = await until('the StudyA job to finish', async () => finishedJob(s, admin.events, a1));
      const b1 = await sendTo(s, 'STUDYB');
      const jobB1 = await until('the StudyB job to finish', async () => finishedJob(s, admin.events, b1));
      const a2 = await sendTo(s, 'STUDYA');
      const jobA2 = await until('the second StudyA job to finish', async () => finishedJob(s, admin.events, a2));

      await until('ann to see the second StudyA job end', async () =>
        ann.events.some((e) => e.event === 'job' && e.data.type === 'finished' && e.data.jobId === jobA2),
      );
      await until('bea to see the StudyB job end', async () =>
        bea.events.some((e) => e.event === 'job' && e.data.type === 'finished' && e.data.jobId === jobB1),
      );
      const jobsSeen = (events: SseEvent[]) => new Set(jobEvents(events).map((e) => e.data.jobId));
      expect(jobsSeen(ann.events)).toEqual(new Set([jobA1, jobA2]));
      expect(jobsSeen(admin.events)).toEqual(new Set([jobA1, jobB1, jobA2]));
      // bea's stream has jobB1's end, written after all of jobA1's events: none of those came.
      expect(jobsSeen(bea.events).has(jobB1)).toBe(true);
      expect(jobsSeen(bea.events).has(jobA1)).toBe(false);
      const typesA1 = jobEvents(ann.events)
        .filter((e) => e.data.jobId === jobA1)
        .map((e) => e.data.type);
      expect([typesA1[0], typesA1.at(-1), typesA1.includes('started'), typesA1.includes('progress')]).toEqual([
        'queued',
        'finished',
        true,
        true,
      ]);
      // Arrivals keep following the same rights.
      await until(
        'the arrival events',
        async () => ann.events.some((e) => e.data.sopInstanceUid === a2) && bea.events.some((e) => e.data.sopInstanceUid === b1),
      );
      expect(ann.events.filter((e) => e.event === 'arrival').map((e) => e.data.sopInstanceUid)).toEqual([a1, a2]);
      expect(bea.events.filter((e) => e.event === 'arrival').map((e) => e.data.sopInstanceUid)).toEqual([b1]);
    } finally {
      admin.close();
      ann.close();
      bea.close();
    }
  });

  it('sends the events of a job run by hand to its maker, not to readers of other databases', async () => {
    // bea runs the default pipeline on a StudyB study by hand; a reader of StudyA sees none of it.
    const b = await sendStudyTo(s, 'STUDYB');
    await until('the StudyB object to be filed', async () =>
      (await s.index.studies('StudyB', {})).some((r) => r.study.StudyInstanceUID === b.studyInstanceUid),
    );
    await s.engine.idle();
    const bea = await openEvents(s.httpPort, token.bea);
    const cid = await openEvents(s.httpPort, token.cid);
    try {
      const study = b.studyInstanceUid;
      const run = await fetch(`http://127.0.0.1:${s.httpPort}/api/pipelines/store-received/run`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token.bea}`, 'content-type': 'application/json' },
        body: JSON.stringify({ database: 'StudyB', study }),
      });
      expect(run.status).toBe(202);
      const { jobId } = (await run.json()) as { jobId: string };
      await until('bea to see her job end', async () =>
        bea.events.some((e) => e.event === 'job' && e.data.type === 'finished' && e.data.jobId === jobId),
      );
      // A marker cid may see, sent after bea's job ended: cid's stream has everything before it.
      const a = await sendTo(s, 'STUDYA');
      await until('cid to see the StudyA arrival', async () =>
        cid.events.some((e) => e.event === 'arrival' && e.data.sopInstanceUid === a),
      );
      expect(jobEvents(cid.events).filter((e) => e.data.jobId === jobId)).toEqual([]);
    } finally {
      bea.close();
      cid.close();
    }
  });
  it('shows an arrival with no database recorded to admins only, on the stream and in /api/arrivals', async () => {
    const sop = await sendTo(s, 'STUDYA');
    const stored = await until('the arrival', async () => (await s.index.recentArrivals(50)).find((a) => a.sopInstanceUid === sop));
    expect(stored.database).toBe('StudyA');
    // Rows from before databases have none.
    await s.index.connection.run('UPDATE arrivals SET database_name = NULL WHERE id = ?', stored.id);
    const list = async (user: string) =>
      (
        (await (
          await fetch(`http://127.0.0.1:${s.httpPort}/api/arrivals?limit=500`, { headers: { authorization: `Bearer ${token[user]}` } })
        ).json()) as { sopInstanceUid: string }[]
      ).map((a) => a.sopInstanceUid);
    expect(await list('admin')).toContain(sop);
    expect(await list('ann')).not.toContain(sop);

    const admin = await openEvents(s.httpPort, token.admin);
    const ann = await openEvents(s.httpPort, token.ann);
    try {
      const { database: _d, ...withoutDatabase } = stored;
      s.events.announce('InstanceReceived', { ...withoutDatabase, sopInstanceUid: '1.2.3.999.1', absolutePath: '/nowhere' });
      // Announced after it, to ann's database: once ann has this one, she was sent the first if ever.
      s.events.announce('InstanceReceived', { ...stored, sopInstanceUid: '1.2.3.999.2', absolutePath: '/nowhere' });
      await until('ann to get the second announcement', async () => ann.events.some((e) => e.data.sopInstanceUid === '1.2.3.999.2'));
      await until(
        'admin to get both',
        async () =>
          admin.events.filter((e) => e.event === 'arrival' && String(e.data.sopInstanceUid).startsWith('1.2.3.999.')).length === 2,
      );
      expect(ann.events.filter((e) => e.event === 'arrival').map((e) => e.data.sopInstanceUid)).toEqual(['1.2.3.999.2']);
    } finally {
      admin.close();
      ann.close();
    }
  });
});

describe('live event streams are capped', () => {
  let s: Server;
  const token: Record<string, string> = {};
  beforeAll(async () => {
    s = await startTestServer({ databases, users, http: { eventStreams: { perUser: 2, total: 3 } } });
    for (const u of users) token[u.name] = (await issueToken(s.tokens, s.users, u.name)).token;
  });
  afterAll(() => s?.close());

  async function open(user: string) {
    const controller = new AbortController();
    const res = await fetch(`http://127.0.0.1:${s.httpPort}/api/events`, {
      headers: { authorization: `Bearer ${token[user]}` },
      signal: controller.signal,
    });
    const body = res.ok ? undefined : await res.json();
    return { status: res.status, body, retryAfter: res.headers.get('retry-after'), close: () => controller.abort() };
  }

  it('refuses a user’s stream beyond http.eventStreams.perUser with 429, and any beyond .total with 503, until one closes', async () => {
    const ann1 = await open('ann');
    const ann2 = await open('ann');
    expect([ann1.status, ann2.status]).toEqual([200, 200]);
    const ann3 = await open('ann');
    expect(ann3).toMatchObject({ status: 429, body: { code: 'DF_ERR_TOO_MANY_EVENT_STREAMS' }, retryAfter: expect.any(String) });
    const bea1 = await open('bea');
    expect(bea1.status).toBe(200);
    const cid1 = await open('cid');
    expect(cid1).toMatchObject({ status: 503, body: { code: 'DF_ERR_EVENT_STREAMS_FULL' } });
    expect(cid1.body.message).toContain('http.eventStreams.total');

    // A closed stream frees its place (the server notices the close: poll for it).
    ann1.close();
    let cid2: Awaited<ReturnType<typeof open>> | undefined;
    for (const deadline = Date.now() + 20_000; !cid2; ) {
      const attempt = await open('cid');
      if (attempt.status === 200) cid2 = attempt;
      else if (Date.now() > deadline) throw new Error(`no place for cid after ann's stream closed: ${attempt.status}`);
      else await new Promise((r) => setTimeout(r, 100));
    }
    expect((await open('ann')).status).toBe(503);
    for (const stream of [ann2, bea1, cid2]) stream.close();
  });
});

describe('a live event stream whose reader stopped reading', () => {
  let s: Server;
  // Each failed job's end event carries its 200 KB error: a few dozen fill any socket buffer.
  const message = 'x'.repeat(200_000);
  beforeAll(async () => {
    const pipelinesDir = tempDir();
    fs.writeFileSync(
      path.join(pipelinesDir, 'loud-failure.json'),
      JSON.stringify({
        name: 'loud-failure',
        trigger: { on: 'instance' },
        retry: { maxAttempts: 1 },
        steps: [{ plugin: 'test-throws', options: { message } }],
      }),
    );
    s = await startTestServer({
      pipelinesDir,
      plugins: { directories: [path.join(repo, 'test/fixtures/plugins')] },
      defaultPipeline: false,
    });
  });
  afterAll(() => s?.close());

  it('is closed once more than 1 MiB waits unsent to it, while readers that read get every event', async () => {
    const reader = await openEvents(s.httpPort, s.adminToken);
    // A stream opened on a raw socket that reads the reply's head, then nothing more.
    const stalled = net.connect({ port: s.httpPort, host: '127.0.0.1' });
    let head = '';
    await new Promise<void>((resolve) => {
      const onHead = (d: Buffer) => {
        head += d.toString('latin1');
        if (!head.includes('\r\n\r\n')) return;
        stalled.pause();
        stalled.off('data', onHead);
        resolve();
      };
      stalled.on('data', onHead);
      stalled.write(`GET /api/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${s.adminToken}\r\n\r\n`);
    });
    expect(head).toMatch(/^HTTP\/1\.1 200/);
    let stalledClosed = false;
    stalled.on('close', () => (stalledClosed = true));
    stalled.on('error', () => (stalledClosed = true));
    try {
      // 60 failed jobs: 12 MB of end events, more than the socket buffers hold.
      const ct = await ctSeries(tempDir(), { slices: 60, rows: 8, cols: 8 });
      expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
      const ends = await until(
        'the reading stream to get all 60 job ends',
        async () => {
          const finished = reader.events.filter((e) => e.event === 'job' && e.data.type === 'finished');
          return finished.length >= 60 && finished;
        },
        120_000,
      );
      expect(ends.every((e) => String(e.data.error).endsWith(message))).toBe(true);
      // The stalled stream was dropped by the server: reading it now reaches its end.
      stalled.on('data', () => {});
      stalled.resume();
      await until('the stalled stream to be closed', async () => stalledClosed);
    } finally {
      reader.close();
      stalled.destroy();
    }
  }, 180_000);
});
