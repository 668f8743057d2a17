import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import fsp, { type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

// The lock between processes, possibly on several hosts sharing the root: a file created with
// O_EXCL, held as a lease. Its holder renews the file's mtime every quarter lease; a lock whose
// owner is gone is stale and taken over. On this host that is known at once (process not
// running, or another boot); from another host only by its lease running out.

export const LOCK_FILE = '.dicomflow-fileset.lock';
const DEFAULT_LEASE_MS = 60_000;
const LOCK_WAIT_LOG_MS = 5000;
// A lock file that is not JSON: its writer may be between creating and filling it.
const UNFILLED_LOCK_MS = 10_000;

interface LockOwner {
  pid: number;
  hostname: string;
  bootId?: string;
  /** The dicomflow node (the step context's node name): tells the holder apart in a cluster. */
  node?: string;
  since: string;
  /** The holder's lease: waiters honour it, whatever their own. */
  leaseMs?: number;
}

interface LockFile {
  text: string;
  mtimeMs: number;
}

let leaseMs = DEFAULT_LEASE_MS;

/** Sets the lease of the locks taken from now on; returns the previous one (tests shorten it). */
export function setLockLeaseMs(ms: number): number {
  const previous = leaseMs;
  leaseMs = ms;
  return previous;
}

let bootId: string | undefined | null = null;
function currentBootId(): string | undefined {
  if (bootId === null) {
    try {
      bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      bootId = undefined;
    }
  }
  return bootId;
}

/**
 * Waits for the root's lock while `wanted()` (some request still waits). Returns its release,
 * or undefined when nobody wants it any more. The release rejects when the lock was taken over
 * meanwhile (the holder went longer than its lease without renewing it).
 */
export async function acquireLock(
  root: string,
  wanted: () => boolean,
  warn: (message: string) => void,
  node?: string,
): Promise<(() => Promise<void>) | undefined> {
  const file = path.join(root, LOCK_FILE);
  const me: LockOwner = {
    pid: process.pid,
    hostname: os.hostname(),
    bootId: currentBootId(),
    node,
    since: new Date().toISOString(),
    leaseMs,
  };
  const text = JSON.stringify(me);
  const started = Date.now();
  // Well before a lock could expire, so the log tells who is waited for.
  const warnAfterMs = Math.min(LOCK_WAIT_LOG_MS, leaseMs / 4);
  let warned = false;
  for (let delayMs = 5; ; delayMs = Math.min(delayMs * 2, 200)) {
    if (!wanted()) return undefined;
    try {
      const handle = await fsp.open(file, 'wx');
      try {
        await handle.writeFile(text);
      } finally {
        await handle.close();
      }
      return holdLease(file, text, me.leaseMs!, warn);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const held = await readLock(file);
    if (held.stale) {
      await removeLockIf(file, (now) => now.text === held.text && now.mtimeMs === held.mtimeMs);
      continue;
    }
    if (!warned && held.mtimeMs > 0 && Date.now() - started > warnAfterMs) {
      warned = true;
      const until =
        held.staleAt === undefined
          ? 'it is taken over once that process ends'
          : `it is considered stale and taken over at ${new Date(held.staleAt).toISOString()} unless its holder renews it`;
      warn(`waiting for the file-set lock ${file}, held by ${held.text || 'a writer that has not filled it in yet'}; ${until}`);
    }
    await new Promise((r) => setTimeout(r, delayMs));
  }
}

/** Renews the lock's mtime until released; the release removes the lock if it is still ours. */
function holdLease(file: string, text: string, lease: number, warn: (message: string) => void): () => Promise<void> {
  let renewing: Promise<void> | undefined;
  const renew = async () => {
    const now = new Date();
    // A waiter checking a takeover moves the file aside for a moment: absent, try next time.
    const current = await fsp.readFile(file, 'utf8').catch(() => undefined);
    if (current === undefined) return;
    if (current !== text) {
      clearInterval(timer);
      warn(
        `the file-set lock ${file} was taken over by ${current}: this writer went longer than its ${lease / 1000} s lease without renewing it`,
      );
      return;
    }
    await fsp.utimes(file, now, now).catch(() => undefined);
  };
  const timer = setInterval(() => {
    renewing ??= renew().finally(() => {
      renewing = undefined;
    });
  }, lease / 4);
  timer.unref();
  return async () => {
    clearInterval(timer);
    await renewing;
    if (!(await removeLockIf(file, (now) => now.text === text))) {
      throw new Error(
        `the file-set lock ${file} was taken over while this writer held it (it went longer than its ${lease / 1000} s lease without renewing it, e.g. a paused process or a stalled shared filesystem); another writer may have replaced its index and DICOMDIR, so run these jobs again`,
      );
    }
  };
}

/**
 * Whether the lock is stale, and when a live-looking one will be (`staleAt`) unless renewed;
 * without `staleAt` it waits for a process on this host.
 */
async function readLock(file: string): Promise<{ text: string; mtimeMs: number; stale: boolean; staleAt?: number }> {
  const held = await readLockFile(file);
  if (!held) return { text: '', mtimeMs: 0, stale: false }; // released meanwhile
  const { text, mtimeMs } = held;
  let owner: LockOwner;
  try {
    owner = JSON.parse(text) as LockOwner;
  } catch {
    // Empty for long, its writer crashed between creating and filling it.
    return { ...held, stale: Date.now() - mtimeMs > UNFILLED_LOCK_MS, staleAt: mtimeMs + UNFILLED_LOCK_MS };
  }
  const onThisHost = sameHostVerdict(owner);
  if (onThisHost !== undefined) return { ...held, stale: onThisHost };
  const staleAt = mtimeMs + (owner.leaseMs ?? leaseMs);
  return { ...held, stale: Date.now() > staleAt, staleAt };
}

/** Stale or not for a lock of this host (faster than the lease); undefined when it cannot tell. */
function sameHostVerdict(owner: LockOwner): boolean | undefined {
  if (owner.hostname !== os.hostname()) return undefined;
  if (owner.bootId && currentBootId() && owner.bootId !== currentBootId()) return true;
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return true;
    if (code === 'EPERM') return false; // running, as another user
    return undefined;
  }
}

/**
 * Text and mtime of one and the same file. Opening it first also makes an NFS client fetch
 * fresh attributes (close-to-open), where a bare stat may answer from its attribute cache.
 */
async function readLockFile(file: string): Promise<LockFile | undefined> {
  let handle: FileHandle;
  try {
    handle = await fsp.open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const { mtimeMs } = await handle.stat();
    return { text: await handle.readFile('utf8'), mtimeMs };
  } catch {
    return undefined;
  } finally {
    await handle.close();
  }
}

/**
 * Removes the lock if `isExpected` says it is the one meant; race-safe: it is moved aside first,
 * and if another process replaced or renewed it in between, put back. True when it was removed.
 */
async function removeLockIf(file: string, isExpected: (lock: LockFile) => boolean): Promise<boolean> {
  const aside = `${file}.${process.pid}.${randomUUID()}`;
  try {
    await fsp.rename(file, aside);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false; // someone else took it over first
    throw err;
  }
  const moved = await readLockFile(aside);
  const expected = moved !== undefined && isExpected(moved);
  if (!expected) await fsp.link(aside, file).catch(() => undefined);
  await fsp.rm(aside, { force: true });
  return expected;
}
