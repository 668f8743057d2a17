// Issue 14, HTTP: /api/health reports storage as not ok when the free space under the storage
// root is at or below the reserve (storage.minFreeMegabytes), a full disk included when the
// reserve is 0; it said ok at 100 % full.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canMount, smallDisk as mountSmallDisk } from '../helpers/small-disk.ts';
import { startTestServer } from '../helpers/server.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  // Each runs even if one before it failed: a mount must not outlive the test.
  const errors: unknown[] = [];
  for (const c of cleanups.reverse())
    await Promise.resolve()
      .then(c)
      .catch((err: unknown) => errors.push(err));
  if (errors.length > 0) throw errors[0];
});

function smallDisk(mb: number): string {
  const disk = mountSmallDisk(mb, 'df-health-disk-');
  cleanups.push(disk.unmount);
  return disk.dir;
}

/** Another program's file grows until the disk has `leaveBytes` or less free (0: until ENOSPC). */
function fill(disk: string, leaveBytes: number): string {
  const file = path.join(disk, 'someone-elses-file');
  // Gone before the server stops, whatever the test's outcome (a clean stop writes a marker).
  cleanups.push(() => fs.rmSync(file, { force: true }));
  const fd = fs.openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) {
      const free = fs.statfsSync(disk).bavail * fs.statfsSync(disk).bsize;
      if (free <= leaveBytes) break;
      fs.writeSync(fd, chunk, 0, Math.min(chunk.length, Math.max(1, free - leaveBytes)));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  return file;
}

async function health(port: number): Promise<{ status: number; body: Record<string, boolean> }> {
  const res = await fetch(`http://127.0.0.1:${port}/api/health`);
  return { status: res.status, body: (await res.json()) as Record<string, boolean> };
}

describe.skipIf(!canMount)('the health probe and free space', () => {
  it('says storage is not ok on a full disk even with no reserve, and ok again once space returns', async () => {
    const disk = smallDisk(16);
    const s = await startTestServer({ dataDir: disk, storage: { minFreeMegabytes: 0 } });
    cleanups.push(() => s.close());
    expect(await health(s.httpPort)).toMatchObject({ status: 200, body: { ok: true, storage: true } });
    const filler = fill(disk, 0);
    expect(fs.statfsSync(disk).bavail).toBe(0);
    const full = await waitForHealth(s.httpPort, 503);
    expect(full).toEqual({ status: 503, body: { ok: false, dicom: true, index: true, storage: false } });
    fs.rmSync(filler);
    await waitForHealth(s.httpPort, 200);
  });

  it('says storage is not ok when the free space is below storage.minFreeMegabytes', async () => {
    const disk = smallDisk(24);
    const s = await startTestServer({ dataDir: disk, storage: { minFreeMegabytes: 8 } });
    cleanups.push(() => s.close());
    expect((await health(s.httpPort)).status).toBe(200);
    const filler = fill(disk, 4 << 20);
    expect(await waitForHealth(s.httpPort, 503)).toEqual({ status: 503, body: { ok: false, dicom: true, index: true, storage: false } });
    fs.rmSync(filler);
    expect(await waitForHealth(s.httpPort, 200)).toEqual({ status: 200, body: { ok: true, dicom: true, index: true, storage: true } });
  });
});

/** Polls the probe until it answers `status` (the free-space poll runs five times a second). */
async function waitForHealth(port: number, status: number): Promise<{ status: number; body: Record<string, boolean> }> {
  for (const deadline = Date.now() + 10_000; ; ) {
    const h = await health(port);
    if (h.status === status) return h;
    if (Date.now() > deadline) return h;
    await new Promise((r) => setTimeout(r, 100));
  }
}
