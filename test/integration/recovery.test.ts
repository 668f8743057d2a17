import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

describe('start-up after an unclean stop', () => {
  it('withdraws an object a power loss cut short, and keeps the intact ones', async () => {
    const data = tempDir();
    const first = await startTestServer({ dataDir: data });
    const ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(first.dicomPort), ...ct.files])).code).toBe(0);
    await first.engine.idle();
    const rows = await first.index.instances('Import', {});
    expect(rows).toHaveLength(3);
    await first.close();
    // Simulate the power loss: no clean-stop marker, and one file short of its bytes.
    for (const marker of fs.readdirSync(data).filter((n) => n.startsWith('.clean-stop'))) fs.rmSync(path.join(data, marker));
    const victim = path.join(data, 'storage', rows[0].objectPath);
    fs.truncateSync(victim, 200);
    const second = await startTestServer({ dataDir: data });
    try {
      const left = await second.index.instances('Import', {});
      expect(left).toHaveLength(2);
      expect(left.map((r) => r.objectPath)).not.toContain(rows[0].objectPath);
      expect(fs.existsSync(victim)).toBe(false);
    } finally {
      await second.close();
    }
  });
});
