// Issue 5, routing to Orthanc (Debian package `orthanc`) when it is installed: objects routed
// while Orthanc is down wait in the outbox and arrive once it starts, byte for byte, a
// compressed one in its own transfer syntax; nothing is lost.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunningServer } from '../../server/app.ts';
import { compress, ctSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { hasOrthanc, startOrthanc, type OrthancPeer } from '../helpers/orthanc.ts';
import { readPart10, splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const servers: RunningServer[] = [];
const peers: OrthancPeer[] = [];

afterAll(async () => {
  for (const s of servers) await s.close();
  for (const p of peers) await p.stop();
});

describe.skipIf(!hasOrthanc())('routing to Orthanc', () => {
  it('queues while Orthanc is down and delivers every object byte for byte once it is up', async () => {
    const fixtures = tempDir('df-route-orthanc-');
    const ct = await ctSeries(path.join(fixtures, 'ct'), { slices: 4, rows: 64, cols: 64 });
    const other = await ctSeries(path.join(fixtures, 'other'), { slices: 1, rows: 64, cols: 64 });
    const jpegLs = await compress(other.files[0], 'jpeg-ls', path.join(fixtures, 'ct-jls.dcm'));
    const orthancPort = await freePort();
    const pipelines = tempDir('df-route-orthanc-pipelines-');
    fs.writeFileSync(
      path.join(pipelines, 'forward.json'),
      JSON.stringify({ name: 'forward', trigger: { on: 'instance' }, steps: [{ plugin: 'route', options: { destination: 'ORTHANC' } }] }),
    );
    const s = await startTestServer({
      pipelinesDir: pipelines,
      defaultPipeline: false,
      remoteNodes: [
        {
          aeTitle: 'ORTHANC',
          host: '127.0.0.1',
          port: orthancPort,
          outbox: { concurrency: 1, maxAttempts: 20, initialRetrySeconds: 0.2, maxRetrySeconds: 0.5 },
        },
      ],
    });
    servers.push(s);

    const files = [...ct.files, jpegLs.file];
    for (const [batch, proposal] of [
      [ct.files, []],
      [[jpegLs.file], ['-xt']],
    ] as const) {
      // -xt proposes JPEG-LS lossless: the compressed object is received, kept and sent as it is.
      const sent = await storescu([...proposal, '-aet', 'MODALITY', '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...batch]);
      expect(sent.code, sent.stderr).toBe(0);
    }
    await s.engine.idle();
    // Down: the objects wait, having failed at least one attempt.
    await until('a failed attempt', async () => (await s.outbox.status()).find((d) => d.destination === 'ORTHANC' && d.lastError));

    const orthanc = await startOrthanc({ port: orthancPort });
    peers.push(orthanc);
    await until(
      'every object delivered',
      async () => (await s.outbox.status()).find((d) => d.destination === 'ORTHANC' && d.delivered === files.length),
      30_000,
    );

    const stored = await orthanc.instances();
    expect(stored.size).toBe(files.length);
    for (const file of files) {
      const original = await readPart10(file);
      const copy = stored.get(original.sopInstanceUid);
      expect(copy, `${path.basename(file)} stored by Orthanc`).toBeDefined();
      const arrived = splitPart10(copy!);
      expect(arrived.transferSyntaxUid).toBe(original.transferSyntaxUid);
      expect(Buffer.compare(arrived.dataset, original.dataset), `${path.basename(file)}: dataset bytes identical`).toBe(0);
    }
  });
});
