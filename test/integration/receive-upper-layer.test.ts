// Issue 14, the DICOM upper layer as a hostile or careless peer meets it: timers (ARTIM, idle,
// DIMSE), the per-peer association limit, a C-STORE abandoned for the next command, commands
// that cannot be served, the peer's maximum PDU length, and arrival listeners that throw. Real
// sockets throughout (a raw upper-layer client, DCMTK); timers are configured at 1–2 s and every
// check polls for its condition with a deadline.
import { mkdtemp, rm } from 'node:fs/promises';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { hasTool, storescu } from '../helpers/dcmtk.ts';
import { eventually, storedObject } from '../helpers/receive-checks.ts';
import { startTestServer } from '../helpers/server.ts';

type TestServer = Awaited<ReturnType<typeof startTestServer>>;

const AE_TITLE = 'DICOMFLOW';

let tmp: string;
const servers: TestServer[] = [];

async function start(config: Record<string, unknown> = {}): Promise<TestServer> {
  const server = await startTestServer(config);
  servers.push(server);
  return server;
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'dicomflow-upper-layer-'));
});

afterEach(async () => {
  for (const server of servers.splice(0)) {
    await server.close();
    await rm(server.dataDir, { recursive: true, force: true });
  }
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

describe.skipIf(!hasTool('storescu'))('arrival listeners cannot touch the result of a C-STORE', () => {
  it('answers Success and keeps the object when a listener throws, and the next listener still hears of it', async () => {
    const server = await start();
    const ct = await ctSeries(path.join(tmp, 'listener'), { slices: 2, rows: 32, cols: 32, seed: 41 });
    server.events.on('InstanceReceived', () => {
      throw new Error('a listener that fails');
    });
    const heard: string[] = [];
    server.events.on('InstanceReceived', (event) => heard.push(event.sopInstanceUid));

    const sent = await storescu(['-aec', AE_TITLE, '127.0.0.1', String(server.dicomPort), ...ct.files]);
    expect(sent.code, `${sent.stdout}\n${sent.stderr}`).toBe(0);
    expect(sent.stderr).not.toMatch(/0110|Failed|Error/i);
    for (const uid of ct.sopInstanceUids) {
      const stored = await storedObject(server, uid);
      expect(fs.existsSync(stored.file)).toBe(true);
    }
    await eventually(() => heard.length, (n) => n === ct.sopInstanceUids.length);
    expect(heard.sort()).toEqual([...ct.sopInstanceUids].sort());
  });
});
