import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/temp.ts';
import { ObjectStore } from './object-store.ts';

describe('ObjectWriter', () => {
  it('writes chunks of any size in order, batched, and past the pending-bytes limit, byte for byte', async () => {
    const store = new ObjectStore(tempDir('df-object-store-'));
    const sizes = [1, 132, 65536, 7, 200_000, 65536, 3, 1_000_000, 5_000_000, 65536, 17, 300_000];
    const chunks = sizes.map((n) => randomBytes(n));
    const writer = store.beginWrite();
    for (const c of chunks) writer.write(c);
    await writer.allWritten();
    expect(writer.error).toBeUndefined();
    expect(writer.size).toBe(sizes.reduce((a, b) => a + b, 0));
    const relative = writer.place();
    await writer.sync();
    expect(fs.readFileSync(path.join(store.root, relative)).equals(Buffer.concat(chunks))).toBe(true);
    store.close();
  });

  it('a discarded object leaves no file behind, even with writes in flight', async () => {
    const root = tempDir('df-object-store-');
    const store = new ObjectStore(root);
    const writer = store.beginWrite();
    writer.write(randomBytes(600_000));
    await writer.discard();
    expect(fs.existsSync(writer.tempPath)).toBe(false);
    store.close();
  });
});
