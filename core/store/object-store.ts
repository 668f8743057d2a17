import fs from 'node:fs';
import path from 'node:path';
import { dfError } from '../errors.ts';
import { newId } from '../ids.ts';
import { CoalescedSync } from './coalesced-sync.ts';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from './data-dir.ts';

/**
 * Original objects, byte for byte, as immutable files named by an id dicomflow makes: no path
 * ever contains a value from a dataset, so a hostile UID cannot reach outside the root.
 *
 *   <root>/incoming/<id>.part    being received (removed at start-up: never acknowledged);
 *                                on a cluster each node has its own, incoming/<node>/
 *   <root>/objects/YYYY/MM/DD/HH/<id>.dcm kept; indexes refer to it by its relative path
 */
export class ObjectStore {
  readonly root: string;
  private readonly incomingDir: string;
  /** Empty files made ahead of need; moved into incoming/ when an object starts to arrive. */
  private readonly spareDir: string;
  private readonly knownDirs = new Set<string>();
  /** Open object directories, each with its shared fsync; the newest few stay open. */
  private readonly dirSyncs = new Map<string, DirectorySync>();
  private readonly spares: { id: string; tempPath: string; fd: number }[] = [];
  /** Write buffers of every object being received. */
  readonly slabs = new WriteSlabs();
  private sparesOpening = 0;
  private closed = false;
  /** This node had never used this root before (its incoming folder did not exist). */
  readonly firstUse: boolean;

  /** `node`: on a shared root, this node's own incoming and spare folders (others' are in use). */
  constructor(root: string, options: { node?: string } = {}) {
    this.root = path.resolve(root);
    this.incomingDir = path.join(this.root, 'incoming', ...(options.node ? [options.node] : []));
    this.spareDir = path.join(this.root, 'spare', ...(options.node ? [options.node] : []));
    this.firstUse = !fs.existsSync(this.incomingDir);
    // Modes stated, not left to the umask: the CLI (import) writes here too.
    fs.mkdirSync(this.incomingDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    fs.mkdirSync(this.spareDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    fs.mkdirSync(path.join(this.root, 'objects'), { recursive: true, mode: PRIVATE_DIR_MODE });
  }

  /** Half-received objects from before a crash were never acknowledged: drop them. */
  removeIncoming(): number {
    let removed = 0;
    // Folders are other nodes' own incoming folders (a shared root): not ours to clear.
    for (const entry of fs.readdirSync(this.incomingDir, { withFileTypes: true })) {
      if (entry.isDirectory()) continue;
      fs.rmSync(path.join(this.incomingDir, entry.name), { force: true });
      removed++;
    }
    for (const entry of fs.readdirSync(this.spareDir, { withFileTypes: true })) {
      if (!entry.isDirectory()) fs.rmSync(path.join(this.spareDir, entry.name), { force: true });
    }
    return removed;
  }

  beginWrite(): ObjectWriter {
    const spare = this.spares.pop();
    this.refillSpares();
    if (spare) {
      // A rename within one file system is metadata only; the open descriptor follows the file.
      const tempPath = path.join(this.incomingDir, `${spare.id}.part`);
      try {
        fs.renameSync(spare.tempPath, tempPath);
        return new ObjectWriter(this, spare.id, tempPath, spare.fd);
      } catch {
        fs.close(spare.fd, () => {});
      }
    }
    const id = newId();
    return new ObjectWriter(this, id, path.join(this.incomingDir, `${id}.part`));
  }

  /**
   * Creating a file waits on the file system's journal, which the previous object's fsync keeps
   * busy: measured here at 0.5 ms on the event loop per object. A couple of incoming files are
   * therefore created ahead, on the thread pool.
   */
  private refillSpares(): void {
    while (this.spares.length + this.sparesOpening < 2) {
      this.sparesOpening++;
      const id = newId();
      const tempPath = path.join(this.spareDir, `${id}.part`);
      fs.open(tempPath, 'wx', PRIVATE_FILE_MODE, (err, fd) => {
        this.sparesOpening--;
        if (err) return;
        if (this.closed) fs.close(fd, () => fs.rm(tempPath, { force: true }, () => {}));
        else this.spares.push({ id, tempPath, fd });
      });
    }
  }

  /** Releases the files created ahead. */
  close(): void {
    this.closed = true;
    for (const s of this.spares.splice(0)) {
      fs.closeSync(s.fd);
      fs.rmSync(s.tempPath, { force: true });
    }
    // A directory whose fsync is still under way is closed by that fsync's end.
    for (const sync of this.dirSyncs.values()) sync.closeWhenIdle();
    this.dirSyncs.clear();
  }

  absolutePath(relativePath: string): string {
    const resolved = path.resolve(this.root, relativePath);
    if (!resolved.startsWith(this.root + path.sep)) throw new Error(`object path ${relativePath} is outside the storage root`);
    return resolved;
  }

  /** Moves a fully written, synced file into objects/; its directory entry is synced by syncPlacement. */
  place(id: string, tempPath: string): string {
    // Objects of the same hour share a directory: the directory fsync that makes a placement
    // durable then hits one hot directory instead of creating a fresh one per object.
    const now = new Date();
    const hour = [now.getUTCFullYear(), now.getUTCMonth() + 1, now.getUTCDate(), now.getUTCHours()].map((n) => String(n).padStart(2, '0'));
    const relative = path.join('objects', ...hour, `${id}.dcm`);
    const dir = path.dirname(path.join(this.root, relative));
    if (!this.knownDirs.has(dir)) this.makeDurableDirectory(dir);
    // A rename is metadata only (microseconds); doing it synchronously saves a thread-pool hop
    // on the path every acknowledgement waits for.
    fs.renameSync(tempPath, path.join(this.root, relative));
    return relative;
  }

  /** Creates dir and its missing parents, syncing each parent so the new entries survive a crash. */
  private makeDurableDirectory(dir: string): void {
    if (!fs.existsSync(dir)) {
      this.makeDurableDirectory(path.dirname(dir));
      try {
        fs.mkdirSync(dir, { mode: PRIVATE_DIR_MODE });
      } catch (err) {
        // Another node sharing the data directory created it between the check and here.
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const fd = fs.openSync(path.dirname(dir), 'r');
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    }
    this.knownDirs.add(dir);
  }

  /**
   * A rename is durable only once its directory is synced (POSIX: fsync on the directory).
   * Objects of one hour share a directory: its descriptor stays open (no open and close per
   * object) and placements that wait together share one fsync.
   */
  syncPlacement(relativePath: string): Promise<void> {
    const dir = path.dirname(this.absolutePath(relativePath));
    let sync = this.dirSyncs.get(dir);
    if (!sync) {
      sync = new DirectorySync(dir);
      this.dirSyncs.set(dir, sync);
      this.closeIdleDirectories();
    }
    return sync.request();
  }

  /** Past the newest DIRECTORIES_KEPT, directories with no sync under way are closed. */
  private closeIdleDirectories(): void {
    let over = this.dirSyncs.size - DIRECTORIES_KEPT;
    for (const [dir, sync] of this.dirSyncs) {
      if (over <= 0) break;
      if (sync.close()) {
        this.dirSyncs.delete(dir);
        over--;
      }
    }
  }

  async freeBytes(): Promise<number> {
    const s = await fs.promises.statfs(this.root);
    return s.bavail * s.bsize;
  }

  async remove(relativePath: string): Promise<void> {
    await fs.promises.rm(this.absolutePath(relativePath), { force: true });
  }
}

// Object directories kept open at once: this hour's and a few before it (writes near the hour's turn).
const DIRECTORIES_KEPT = 4;

/**
 * One object directory's descriptor and its shared fsync. Object directories are never removed
 * while the store runs (place() already counts on that), so the descriptor stays the directory.
 */
class DirectorySync {
  private readonly dir: string;
  private fd: Promise<number> | undefined;
  private readonly sync: CoalescedSync;
  private closing = false;
  private active = 0;

  constructor(dir: string) {
    this.dir = dir;
    this.sync = new CoalescedSync(() => this.fsyncOnce());
  }

  request(): Promise<void> {
    return this.sync.request();
  }

  private async fsyncOnce(): Promise<void> {
    this.fd ??= new Promise<number>((resolve, reject) => fs.open(this.dir, 'r', (err, fd) => (err ? reject(err) : resolve(fd))));
    this.active++;
    try {
      let fd: number;
      try {
        fd = await this.fd;
      } catch (err) {
        // A failed open is not kept: the next object tries again.
        this.fd = undefined;
        throw err;
      }
      await new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve())));
    } finally {
      if (--this.active === 0 && this.closing) this.release();
    }
  }

  /** Closes the descriptor now if no fsync is under way; false if one is. */
  close(): boolean {
    if (this.sync.busy) return false;
    this.release();
    return true;
  }

  closeWhenIdle(): void {
    this.closing = true;
    if (!this.sync.busy) this.release();
  }

  private release(): void {
    const fd = this.fd;
    this.fd = undefined;
    void fd?.then(
      (n) => fs.close(n, () => {}),
      () => {},
    );
  }
}

/** Makes a directory's entries (a new link or rename in it) durable. */
export async function fsyncDirectory(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

// Bytes handed to the thread pool and not yet written; beyond this, writes block the event loop
// (a synchronous pwrite), which stops reading from the socket: TCP's flow control then holds
// the sender back, so a fast sender and a slow disk cannot pile the object up in memory.
const MAX_PENDING_BYTES = 4 * 1024 * 1024;
// Bytes are gathered into slabs of this size, one write each: each write call costs the event
// loop tens of microseconds whatever its size, and wakes a thread-pool thread that competes with
// the loop for the cores. A 512 KB image (a CT slice) then takes one write, not three.
const SLAB_BYTES = 1024 * 1024;
// Slabs kept for reuse by all receptions together (16 MiB, made as needed): past that, writes
// are synchronous. Eight associations at once use about two each.
const SLABS_KEPT = 16;

/**
 * Write buffers shared by every object being received, reused rather than allocated. The bytes
 * of a socket chunk are copied into a slab at once, so the chunk (a fresh 64 KB ArrayBuffer per
 * read) dies young, in the next scavenge. Held until its write finished, as before, a chunk
 * outlived two scavenges under load and was promoted: V8 then freed it only at a major GC, which
 * external memory starts after ~64 MB of such garbage, and the malloc heap it fragmented stayed
 * resident. Receiving 2.1 GB peaked at 276–281 MB RSS that way, with 70 MB of dead chunks.
 */
export class WriteSlabs {
  private readonly free: Buffer[] = [];
  private made = 0;

  /** A slab, or undefined when all of them are being written (the caller then writes synchronously). */
  take(): Buffer | undefined {
    const slab = this.free.pop();
    if (slab) return slab;
    if (this.made === SLABS_KEPT) return undefined;
    this.made++;
    return Buffer.allocUnsafeSlow(SLAB_BYTES);
  }

  give(slab: Buffer): void {
    this.free.push(slab);
  }
}

/**
 * One object being received. Bytes are copied into slabs (WriteSlabs) and each full slab is
 * written at its offset (pwrite) on the thread pool: written synchronously, the page-cache
 * copies cost about 1 ms of the event loop per 512 KB object here, a fifth of everything the
 * receive path does. The writes are awaited (allWritten()) before the object is placed and
 * indexed, so an indexed object's bytes are all in its file; the slow part, fsync, is
 * asynchronous in sync().
 */
export class ObjectWriter {
  readonly id: string;
  readonly tempPath: string;
  private readonly store: ObjectStore;
  private fd: number | undefined;
  private written = 0;
  /** The slab being filled, from file offset slabPosition, slabBytes of it used. */
  private slab: Buffer | undefined;
  private slabBytes = 0;
  private slabPosition = 0;
  private pendingBytes = 0;
  private pendingWrites = 0;
  private whenWritten: (() => void)[] = [];
  private placedPath: string | undefined;
  private failure: Error | undefined;

  constructor(store: ObjectStore, id: string, tempPath: string, fd?: number) {
    this.store = store;
    this.id = id;
    this.tempPath = tempPath;
    if (fd !== undefined) {
      this.fd = fd;
      return;
    }
    try {
      this.fd = fs.openSync(tempPath, 'wx', PRIVATE_FILE_MODE);
    } catch (err) {
      this.fail(err);
    }
  }

  get size(): number {
    return this.written;
  }

  get error(): Error | undefined {
    return this.failure;
  }

  /** Takes the bytes; the caller may reuse `chunk` as soon as this returns. */
  write(chunk: Buffer): void {
    if (this.failure || this.fd === undefined || chunk.length === 0) return;
    for (let at = 0; at < chunk.length; ) {
      if (!this.slab) {
        this.slab = this.store.slabs.take();
        this.slabBytes = 0;
        this.slabPosition = this.written;
        if (!this.slab) {
          // Every slab is being written: the rest goes synchronously (see MAX_PENDING_BYTES).
          this.writeNow(chunk.subarray(at), this.written);
          this.written += chunk.length - at;
          return;
        }
      }
      const copied = chunk.copy(this.slab, this.slabBytes, at);
      at += copied;
      this.slabBytes += copied;
      this.written += copied;
      if (this.slabBytes === this.slab.length) this.flush();
    }
  }

  /** Hands the slab being filled to the thread pool (or writes it now past MAX_PENDING_BYTES). */
  private flush(): void {
    const slab = this.slab;
    const bytes = this.slabBytes;
    this.slab = undefined;
    this.slabBytes = 0;
    if (!slab) return;
    if (bytes === 0 || this.failure || this.fd === undefined) {
      this.store.slabs.give(slab);
      return;
    }
    if (this.pendingBytes + bytes > MAX_PENDING_BYTES) {
      this.writeNow(slab.subarray(0, bytes), this.slabPosition);
      this.store.slabs.give(slab);
      return;
    }
    this.pendingBytes += bytes;
    this.pendingWrites++;
    this.writeAt(this.fd, slab, 0, bytes, this.slabPosition, bytes);
  }

  /** The rare, blocking path. */
  private writeNow(bytes: Buffer, position: number): void {
    if (this.failure || this.fd === undefined) return;
    try {
      for (let off = 0; off < bytes.length; ) off += fs.writeSync(this.fd, bytes, off, bytes.length - off, position + off);
    } catch (err) {
      this.fail(err);
    }
  }

  private writeAt(fd: number, slab: Buffer, from: number, to: number, position: number, total: number): void {
    fs.write(fd, slab, from, to - from, position, (err, written) => {
      if (!err && from + written < to) return this.writeAt(fd, slab, from + written, to, position + written, total);
      if (err) this.fail(err);
      this.store.slabs.give(slab);
      this.pendingBytes -= total;
      if (--this.pendingWrites === 0) for (const resolve of this.whenWritten.splice(0)) resolve();
    });
  }

  /** Resolves once every chunk handed to write() is in the file (or has failed: see error). */
  allWritten(): Promise<void> {
    this.flush();
    if (this.pendingWrites === 0) return Promise.resolve();
    return new Promise((resolve) => this.whenWritten.push(resolve));
  }

  /**
   * Moves the complete file into objects/ (a synchronous rename: metadata only, microseconds)
   * and returns its path relative to the store root. Durability comes from sync(), which the
   * receiver runs alongside the index's own sync so that the waits overlap.
   */
  place(): string {
    if (this.failure || this.fd === undefined) throw this.failure ?? new Error('object writer has no file');
    try {
      this.placedPath = this.store.place(this.id, this.tempPath);
      return this.placedPath;
    } catch (err) {
      this.fail(err);
      throw this.failure;
    }
  }

  /** fsync the file and its directory entry, then close it. */
  async sync(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined || this.placedPath === undefined) throw new Error('sync() before place()');
    this.fd = undefined;
    try {
      await Promise.all([
        new Promise<void>((resolve, reject) => fs.fsync(fd, (err) => (err ? reject(err) : resolve()))),
        this.store.syncPlacement(this.placedPath),
      ]);
    } catch (err) {
      this.fail(err);
      throw this.failure;
    } finally {
      // Synced already, the close has nothing to flush (microseconds): done here rather than as
      // one more thread-pool task per object.
      try {
        fs.closeSync(fd);
      } catch {
        // the descriptor is released either way
      }
    }
  }

  async discard(): Promise<void> {
    await this.allWritten();
    if (this.fd !== undefined) {
      try {
        fs.closeSync(this.fd);
      } catch {
        // already closed or never opened: nothing to release
      }
      this.fd = undefined;
    }
    await fs.promises.rm(this.tempPath, { force: true });
    if (this.placedPath !== undefined) await this.store.remove(this.placedPath);
  }

  private fail(err: unknown): void {
    if (this.failure) return;
    const e = err as NodeJS.ErrnoException;
    this.failure =
      e.code === 'ENOSPC' || e.code === 'EDQUOT'
        ? dfError('DF_ERR_STORE_FULL', `no space left to store the object: ${e.message}`, { cause: err })
        : dfError('DF_ERR_STORE_WRITE', `cannot write the object: ${e.message}`, { cause: err });
  }
}
