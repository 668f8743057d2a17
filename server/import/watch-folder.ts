import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Receiver } from '../../core/receive/receive.ts';

export interface WatchFolderOptions {
  path: string;
  database: string;
  stableSeconds: number;
  pollSeconds: number;
  /** This node's name: nodes sharing the folder claim each file by renaming it into .claimed/<node>/. */
  node?: string;
}

interface Seen {
  size: number;
  mtimeMs: number;
  changedAt: number;
}

const DONE = 'done';
const FAILED = 'failed';
// Hidden, so no scan lists it: a file renamed in here belongs to one node (rename is atomic, one
// node wins), which makes a folder watched by several nodes import each file once.
const CLAIMED = '.claimed';

/**
 * A folder scanned continuously (PMOD's third way in). A file is imported once it has stopped
 * growing for stableSeconds, through the same spool → arrival → pipelines path as the network;
 * then moved to done/, or to failed/ with a <name>.reason.txt saying why.
 */
export class WatchFolder {
  private readonly o: WatchFolderOptions;
  private readonly receiver: Receiver;
  private readonly log: Logger;
  private readonly seen = new Map<string, Seen>();
  private timer: NodeJS.Timeout | undefined;
  private scanning = false;
  private stopped = false;
  readonly stats = { imported: 0, failed: 0, lastScanAt: undefined as string | undefined };

  constructor(options: WatchFolderOptions, receiver: Receiver, log: Logger) {
    this.o = options;
    this.receiver = receiver;
    this.log = log.child({ watchFolder: options.path });
  }

  start(): void {
    fs.mkdirSync(path.join(this.o.path, DONE), { recursive: true });
    fs.mkdirSync(path.join(this.o.path, FAILED), { recursive: true });
    this.returnClaimed();
    this.schedule(0);
  }

  private get claimedDir(): string {
    return path.join(this.o.path, CLAIMED, this.o.node ?? 'local');
  }

  /** Files this node claimed and never finished (a stop or crash) go back to be imported again. */
  private returnClaimed(): void {
    for (const file of filesUnder(this.claimedDir, () => false))
      moveInto(file, path.join(this.o.path, path.relative(this.claimedDir, file)));
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.scan(), delayMs);
  }

  /** One pass; exported for tests and the operator's "scan now". */
  async scan(): Promise<void> {
    if (this.scanning) return;
    this.scanning = true;
    try {
      const now = Date.now();
      const present = new Set<string>();
      for (const file of this.listFiles()) {
        present.add(file);
        let stat: fs.Stats;
        try {
          stat = fs.statSync(file);
        } catch {
          continue;
        }
        const before = this.seen.get(file);
        if (!before || before.size !== stat.size || before.mtimeMs !== stat.mtimeMs) {
          this.seen.set(file, { size: stat.size, mtimeMs: stat.mtimeMs, changedAt: now });
          continue;
        }
        if (now - before.changedAt < this.o.stableSeconds * 1000) continue;
        await this.importFile(file);
        this.seen.delete(file);
        if (this.stopped) return;
      }
      for (const file of [...this.seen.keys()]) if (!present.has(file)) this.seen.delete(file);
      this.stats.lastScanAt = new Date().toISOString();
    } catch (err) {
      this.log.error({ err }, 'watch folder scan failed');
    } finally {
      this.scanning = false;
      this.schedule(this.o.pollSeconds * 1000);
    }
  }

  private listFiles(): string[] {
    // Hidden files are editors' and copiers' temporaries; done/ and failed/ are ours.
    return filesUnder(this.o.path, (name, top) => name.startsWith('.') || (top && (name === DONE || name === FAILED))).sort();
  }

  private async importFile(found: string): Promise<void> {
    const relative = path.relative(this.o.path, found);
    const file = path.join(this.claimedDir, relative);
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.renameSync(found, file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // another node claimed it
      throw err;
    }
    const result = await this.receiver.receiveFile(file, {
      source: 'folder',
      database: this.o.database,
      createdBy: `watch folder ${this.o.path}`,
    });
    if (result.ok) {
      this.stats.imported++;
      moveInto(file, path.join(this.o.path, DONE, relative));
      return;
    }
    this.stats.failed++;
    const target = moveInto(file, path.join(this.o.path, FAILED, relative));
    fs.writeFileSync(`${target}.reason.txt`, `${result.error.code}: ${result.error.message}\n`);
    this.log.warn({ file: relative, code: result.error.code, reason: result.error.message }, 'watch folder refused a file');
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }
}

/** The files below `root`, leaving out the entries `skip` names (`top`: directly in `root`). */
function filesUnder(root: string, skip: (name: string, top: boolean) => boolean): string[] {
  const out: string[] = [];
  const walk = (dir: string, top: boolean) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (skip(e.name, top)) continue;
      const full = path.join(dir, e.name);
      if (e.isDirectory()) walk(full, false);
      else if (e.isFile()) out.push(full);
    }
  };
  walk(root, true);
  return out;
}

/** Moves a file, never overwriting: a name already taken gets .1, .2, … */
function moveInto(file: string, target: string): string {
  fs.mkdirSync(path.dirname(target), { recursive: true });
  let candidate = target;
  for (let n = 1; fs.existsSync(candidate); n++) candidate = `${target}.${n}`;
  fs.renameSync(file, candidate);
  return candidate;
}
