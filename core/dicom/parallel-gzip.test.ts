import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { writeGzip } from './parallel-gzip.ts';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'df-parallel-gzip-'));
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

async function gzipFile(name: string, chunks: Uint8Array[], level?: number): Promise<Buffer> {
  const file = path.join(root, name);
  const fd = fs.openSync(file, 'w');
  try {
    await writeGzip(fd, chunks, level);
  } finally {
    fs.closeSync(fd);
  }
  return fs.readFileSync(file);
}

describe('parallel gzip', () => {
  it('writes one gzip member that inflates to the input, across block edges and odd chunk sizes', async () => {
    // 3.3 MB of repetitive 16-bit data: matches reach back across the 1 MiB block edges.
    const data = Buffer.alloc(3_300_001);
    let x = 12345;
    for (let i = 0; i < data.length; i++) {
      x = (x * 1103515245 + 12345) >>> 0;
      data[i] = i % 7 === 0 ? x >>> 24 : (i >> 9) & 0xff;
    }
    const chunks = [data.subarray(0, 352), data.subarray(352, 1_500_000), data.subarray(1_500_000, 1_500_001), data.subarray(1_500_001)];
    const gz = await gzipFile('blocks.gz', chunks, 6);
    expect(gz.subarray(0, 3)).toEqual(Buffer.from([0x1f, 0x8b, 8]));
    expect(gunzipSync(gz).equals(data)).toBe(true);
    // Priming each block with the window before it keeps the size of one stream's.
    const { gzipSync } = await import('node:zlib');
    expect(gz.length).toBeLessThan(gzipSync(data, { level: 6 }).length * 1.01);
  });

  it('writes an empty member for no data', async () => {
    expect(gunzipSync(await gzipFile('empty.gz', [])).length).toBe(0);
  });
});
