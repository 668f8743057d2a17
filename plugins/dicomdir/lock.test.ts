import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { until } from '../../test/helpers/wait.ts';
import { acquireLock, LOCK_FILE, setLockLeaseMs } from './lock.ts';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'df-dicomdir-lock-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const LEASE_MS = 400;
let previousLease: number;
beforeEach(() => {
  previousLease = setLockLeaseMs(LEASE_MS);
});
afterEach(() => {
  setLockLeaseMs(previousLease);
});

let rootCount = 0;
function freshRoot(): { root: string; lock: string } {
  const root = path.join(tmp, `root-${rootCount++}`);
  fs.mkdirSync(root);
  return { root, lock: path.join(root, LOCK_FILE) };
}

/** A lock as a node on another host writes it, last renewed `ageMs` ago. */
function foreignLock(lock: string, ageMs: number): string {
  const text = JSON.stringify({
    pid: 4242,
    hostname: 'other-host.example',
    node: 'node-b',
    since: new Date().toISOString(),
    leaseMs: LEASE_MS,
  });
  fs.writeFileSync(lock, text);
  const renewed = new Date(Date.now() - ageMs);
  fs.utimesSync(lock, renewed, renewed);
  return text;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('file-set lock lease', () => {
  it('takes over a lock of another host whose lease ran out', async () => {
    const { root, lock } = freshRoot();
    foreignLock(lock, 10 * LEASE_MS);
    const release = await acquireLock(
      root,
      () => true,
      () => undefined,
      'node-a',
    );
    expect(release).toBeDefined();
    // The node comes from the step context (ctx.node.name), not from the environment.
    expect(JSON.parse(fs.readFileSync(lock, 'utf8'))).toMatchObject({ pid: process.pid, hostname: os.hostname(), node: 'node-a' });
    await release!();
    expect(fs.existsSync(lock)).toBe(false);
    // Nothing left beside it: the stale lock moved aside was removed.
    expect(fs.readdirSync(root)).toEqual([]);
  });

  it('waits for a renewed lock of another host, says when it turns stale, and proceeds once it is released', async () => {
    const { root, lock } = freshRoot();
    const text = foreignLock(lock, 0);
    // The other node renews its lease, then releases the lock.
    const renewer = setInterval(() => {
      const now = new Date();
      fs.utimesSync(lock, now, now);
    }, LEASE_MS / 4);
    const warnings: string[] = [];
    let acquired = false;
    const waiting = acquireLock(
      root,
      () => true,
      (m) => warnings.push(m),
    ).then((release) => {
      acquired = true;
      return release;
    });
    try {
      // Three leases pass while the other node renews: not taken, however long the pause lasts.
      await sleep(3 * LEASE_MS);
      expect(acquired).toBe(false);
      expect(fs.readFileSync(lock, 'utf8')).toBe(text);
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('other-host.example');
      expect(warnings[0]).toMatch(/considered stale and taken over at \d{4}-\d\d-\d\dT[\d:.]+Z unless its holder renews it/);
    } finally {
      clearInterval(renewer);
    }
    fs.rmSync(lock);
    const release = await waiting;
    expect(release).toBeDefined();
    expect(JSON.parse(fs.readFileSync(lock, 'utf8')).pid).toBe(process.pid);
    await release!();
    expect(fs.existsSync(lock)).toBe(false);
  });

  it('renews the mtime of a held lock, and stops at release', async () => {
    const { root, lock } = freshRoot();
    const warnings: string[] = [];
    const refTimers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const refTimersBefore = refTimers();
    const release = (await acquireLock(
      root,
      () => true,
      (m) => warnings.push(m),
    ))!;
    // The renewal timer does not keep the process alive.
    expect(refTimers()).toBe(refTimersBefore);
    // Backdate it, so that a renewal shows whatever the file system's mtime granularity.
    const old = new Date(Date.now() - 60_000);
    const renewed = () => fs.statSync(lock).mtimeMs > old.getTime() + 30_000;
    fs.utimesSync(lock, old, old);
    await until('a renewal', renewed);
    fs.utimesSync(lock, old, old);
    await until('a second renewal', renewed);
    await release();
    expect(fs.existsSync(lock)).toBe(false);
    // Released, it renews nothing: a later lock keeps its mtime, and no "taken over" warning.
    // (The pause is the time in which a renewal would have come: longer on a loaded machine only
    // makes the check stricter.)
    foreignLock(lock, 60_000);
    const mtimeMs = fs.statSync(lock).mtimeMs;
    await sleep(LEASE_MS / 2);
    expect(fs.statSync(lock).mtimeMs).toBe(mtimeMs);
    expect(warnings).toEqual([]);
  });

  it('tells a holder whose lock was taken over, and leaves the new holder’s lock alone', async () => {
    const { root, lock } = freshRoot();
    const warnings: string[] = [];
    const release = (await acquireLock(
      root,
      () => true,
      (m) => warnings.push(m),
    ))!;
    // As if this holder had stalled past its lease and another node had taken the lock over.
    const theirs = foreignLock(lock, 0);
    await until('the taken-over warning', () => /was taken over by .*other-host\.example/.test(warnings.join('\n')));
    await expect(release()).rejects.toThrow(/taken over while this writer held it/);
    expect(fs.readFileSync(lock, 'utf8')).toBe(theirs);
  });

  it('gives up waiting once nobody wants the lock', async () => {
    const { root, lock } = freshRoot();
    foreignLock(lock, 0);
    let wanted = true;
    setTimeout(() => (wanted = false), 50);
    expect(
      await acquireLock(
        root,
        () => wanted,
        () => undefined,
      ),
    ).toBeUndefined();
  });
});
