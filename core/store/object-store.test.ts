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

  it('copies what it is given: the caller may reuse its buffer at once (a socket chunk dies young)', async () => {
    const store = new ObjectStore(tempDir('df-object-store-'));
    const reused = Buffer.alloc(100_000);
    const expected: Buffer[] = [];
    const writer = store.beginWrite();
    for (let i = 0; i < 30; i++) {
      reused.fill(i + 1);
      expected.push(Buffer.from(reused));
      writer.write(reused);
    }
    await writer.allWritten();
    const relative = writer.place();
    await writer.sync();
    expect(fs.readFileSync(path.join(store.root, relative)).equals(Buffer.concat(expected))).toBe(true);
    store.close();
  });

  it('many objects at once share the slabs; past them, bytes are written synchronously, byte for byte', async () => {
    const store = new ObjectStore(tempDir('df-object-store-'));
    const contents = Array.from({ length: 48 }, () => randomBytes(300_000));
    const writers = contents.map(() => store.beginWrite());
    for (let at = 0; at < 300_000; at += 65_536) writers.forEach((w, i) => w.write(contents[i].subarray(at, at + 65_536)));
    for (const [i, w] of writers.entries()) {
      await w.allWritten();
      expect(w.error).toBeUndefined();
      const relative = w.place();
      await w.sync();
      expect(fs.readFileSync(path.join(store.root, relative)).equals(contents[i])).toBe(true);
    }
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
