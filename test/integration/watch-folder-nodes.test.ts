// A watch folder several nodes scan (a shared file system): each file is claimed by one node
// (an atomic rename) and imported once; a node's unfinished claims return at its next start.
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Receiver } from '../../core/receive/receive.ts';
import { WatchFolder } from '../../server/import/watch-folder.ts';
import { tempDir } from '../helpers/temp.ts';

/** Counts what it is given; a real import is not the point here. */
function countingReceiver(seen: string[]): Receiver {
  return {
    receiveFile: async (file: string) => {
      seen.push(fs.readFileSync(file, 'utf8'));
      await new Promise((r) => setTimeout(r, 2));
      return { ok: true } as never;
    },
  } as unknown as Receiver;
}

describe('a watch folder scanned by several nodes', () => {
  it('imports each file once, whichever node claims it', async () => {
    const folder = tempDir('df-watch-');
    for (let i = 0; i < 60; i++) {
      fs.mkdirSync(path.join(folder, `s${i % 3}`), { recursive: true });
      fs.writeFileSync(path.join(folder, `s${i % 3}`, `f${i}.dcm`), `file ${i}`);
    }
    const seen: string[] = [];
    const nodes = ['node-a', 'node-b', 'node-c'].map(
      (node) =>
        new WatchFolder(
          { path: folder, database: 'Import', stableSeconds: 0, pollSeconds: 60, node },
          countingReceiver(seen),
          pino({ level: 'silent' }),
        ),
    );
    nodes.forEach((n) => n.start());
    // Two passes each: the first notes the files, the second imports the stable ones.
    for (let pass = 0; pass < 2; pass++) await Promise.all(nodes.map((n) => n.scan()));
    nodes.forEach((n) => n.stop());
    expect(seen.sort()).toEqual(Array.from({ length: 60 }, (_, i) => `file ${i}`).sort());
    expect(fs.readdirSync(path.join(folder, 'done')).sort()).toEqual(['s0', 's1', 's2']);
    expect(nodes.reduce((n, w) => n + w.stats.imported, 0)).toBe(60);
  });

  it("returns a node's unfinished claims to the folder when it starts again", async () => {
    const folder = tempDir('df-watch-');
    const claimed = path.join(folder, '.claimed', 'node-a', 'series', 'f.dcm');
    fs.mkdirSync(path.dirname(claimed), { recursive: true });
    fs.writeFileSync(claimed, 'left by a crash');
    const seen: string[] = [];
    const w = new WatchFolder(
      { path: folder, database: 'Import', stableSeconds: 0, pollSeconds: 60, node: 'node-a' },
      countingReceiver(seen),
      pino({ level: 'silent' }),
    );
    w.start();
    expect(fs.existsSync(path.join(folder, 'series', 'f.dcm'))).toBe(true);
    await w.scan();
    await w.scan();
    w.stop();
    expect(seen).toEqual(['left by a crash']);
    expect(fs.existsSync(path.join(folder, 'done', 'series', 'f.dcm'))).toBe(true);
  });
});
