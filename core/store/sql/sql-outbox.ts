import fs from 'node:fs';
import path from 'node:path';
import { newId } from '../../ids.ts';
import { fsyncDirectory } from '../object-store.ts';
import type { DestinationCounts, NewOutboxEntry, OutboxEntry, OutboxFailure, OutboxState, OutboxStore } from '../outbox-store.ts';
import { dialectOf, type Dialect, type Row, type SqlDb, type SqlStatement } from './sql-db.ts';

/**
 * The outbox in the index's database, its files under `<dataDir>/outbox/`. An entry's file is
 * made (and its directory synced) before its row commits, so a row always has its bytes; a crash
 * in between leaves a file without a row, which removeOrphans() deletes at start-up.
 */
export class SqlOutbox implements OutboxStore {
  private readonly db: SqlDb;
  private readonly d: Dialect;
  private readonly dir: string;

  constructor(db: SqlDb, dir: string) {
    this.db = db;
    this.d = dialectOf(db.dialect);
    this.dir = dir;
  }

  private sql(text: string): SqlStatement {
    return this.db.prepare(text);
  }

  private toEntry = (r: Row): OutboxEntry => ({
    id: r.id,
    destination: r.destination,
    path: path.join(this.dir, r.path),
    sopClassUid: r.sop_class_uid,
    sopInstanceUid: r.sop_instance_uid,
    transferSyntaxUid: r.transfer_syntax_uid,
    size: r.size,
    jobId: r.job_id ?? undefined,
    stepId: r.step_id ?? undefined,
    state: r.state,
    attempts: r.attempts,
    createdAt: r.created_at,
    nextAttemptAt: r.next_attempt_at,
    lastAttemptAt: r.last_attempt_at ?? undefined,
    deliveredAt: r.delivered_at ?? undefined,
    status: r.status ?? undefined,
    sentTransferSyntaxUid: r.sent_transfer_syntax_uid ?? undefined,
    lastErrorCode: r.last_error_code ?? undefined,
    lastError: r.last_error ?? undefined,
  });

  async enqueue(entries: NewOutboxEntry[]): Promise<OutboxEntry[]> {
    const existing = this.sql('SELECT * FROM outbox WHERE destination = ? AND source_key = ? AND job_id IS NOT DISTINCT FROM ? AND step_id IS NOT DISTINCT FROM ?');
    const result: OutboxEntry[] = [];
    const fresh: { entry: NewOutboxEntry; id: string; relative: string; size: number; at: number; twin?: boolean }[] = [];
    const dirs = new Set<string>();
    const inBatch = new Map<string, number>();
    for (const entry of entries) {
      const found = existing.get(entry.destination, entry.sourceKey, entry.jobId ?? null, entry.stepId ?? null) as Row | undefined;
      if (found) {
        result.push(this.toEntry(found));
        continue;
      }
      // The same object twice in one call (an input listed twice) is one entry.
      const key = JSON.stringify([entry.destination, entry.sourceKey, entry.jobId, entry.stepId]);
      const twin = inBatch.get(key);
      if (twin !== undefined) {
        fresh.push({ ...fresh[twin], at: result.length, twin: true });
        result.push(undefined as unknown as OutboxEntry);
        continue;
      }
      inBatch.set(key, fresh.length);
      const id = newId();
      // The id's last characters are random: 256 directories, evenly filled.
      const relative = path.join(id.slice(-2), `${id}.dcm`);
      const target = path.join(this.dir, relative);
      fs.mkdirSync(path.dirname(target), { recursive: true });
      keepReference(entry.file, target);
      dirs.add(path.dirname(target));
      fresh.push({ entry, id, relative, size: fs.statSync(target).size, at: result.length });
      result.push(undefined as unknown as OutboxEntry);
    }
    if (fresh.length === 0) return result;
    // The links must be durable before the rows that promise them.
    await Promise.all([...dirs].map(fsyncDirectory));
    const now = new Date().toISOString();
    const insert = this.sql(
      `INSERT INTO outbox (id, destination, path, sop_class_uid, sop_instance_uid, transfer_syntax_uid, size, source_key, job_id, step_id,
         state, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)`,
    );
    this.db.transaction(() => {
      for (const f of fresh) {
        if (f.twin) continue;
        const e = f.entry;
        insert.run(f.id, e.destination, f.relative, e.sopClassUid, e.sopInstanceUid, e.transferSyntaxUid, f.size, e.sourceKey, e.jobId ?? null, e.stepId ?? null, now, now);
      }
    })();
    await this.db.syncDurable();
    for (const f of fresh) result[f.at] = this.toEntry(this.sql('SELECT * FROM outbox WHERE id = ?').get(f.id) as Row);
    return result;
  }

  claim(destination: string, owner: string, leaseMs: number, now: string, limit: number): OutboxEntry[] {
    return this.db.transaction(() => {
      const rows = this.sql(
        `SELECT * FROM outbox WHERE destination = ? AND ((state = 'queued' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_expires_at < ?))
         ORDER BY next_attempt_at, id LIMIT ? ${this.d.skipLocked}`,
      ).all(destination, now, now, limit) as Row[];
      const leaseUntil = new Date(Date.parse(now) + leaseMs).toISOString();
      const update = this.sql("UPDATE outbox SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?, lease_owner = ?, lease_expires_at = ? WHERE id = ?");
      return rows.map((r) => {
        update.run(now, owner, leaseUntil, r.id);
        return this.toEntry({ ...r, state: 'sending', attempts: r.attempts + 1, last_attempt_at: now });
      });
    })();
  }

  async markDelivered(id: string, result: { status: number; sentTransferSyntaxUid: string }): Promise<void> {
    const r = this.sql('SELECT path FROM outbox WHERE id = ?').get(id) as { path: string } | undefined;
    this.sql(
      `UPDATE outbox SET state = 'delivered', delivered_at = ?, status = ?, sent_transfer_syntax_uid = ?, last_error_code = NULL, last_error = NULL,
         lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`,
    ).run(new Date().toISOString(), result.status, result.sentTransferSyntaxUid, id);
    // The row is committed first: a crash before the removal leaves a file removeOrphans() takes.
    if (r) await fs.promises.rm(path.join(this.dir, r.path), { force: true });
  }

  markFailed(id: string, failure: OutboxFailure): void {
    this.sql(
      `UPDATE outbox SET state = ?, next_attempt_at = coalesce(?, next_attempt_at), status = coalesce(?, status), last_error_code = ?, last_error = ?,
         lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`,
    ).run(failure.retryAt === undefined ? 'dead' : 'queued', failure.retryAt ?? null, failure.status ?? null, failure.errorCode, failure.error.slice(0, 4000), id);
  }

  renewLeases(owner: string, ids: string[], until: string): void {
    if (ids.length === 0) return;
    const renew = this.sql("UPDATE outbox SET lease_expires_at = ? WHERE id = ? AND lease_owner = ? AND state = 'sending'");
    this.db.transaction(() => ids.forEach((id) => renew.run(until, id, owner)))();
  }

  release(ids: string[]): void {
    const update = this.sql(`UPDATE outbox SET state = 'queued', attempts = ${this.d.greatest('0', 'attempts - 1')}, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND state = 'sending'`);
    this.db.transaction(() => ids.forEach((id) => update.run(id)))();
  }

  requeueInterrupted(owner?: string): number {
    if (owner !== undefined) {
      return this.sql("UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'sending' AND lease_owner = ?").run(owner).changes;
    }
    return this.sql("UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'sending'").run().changes;
  }

  retryDead(destination: string, ids?: string[]): number {
    const now = new Date().toISOString();
    const update = this.sql("UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ? WHERE state = 'dead' AND destination = ? AND id = ?");
    if (ids !== undefined) return this.db.transaction(() => ids.reduce((n, id) => n + update.run(now, destination, id).changes, 0))();
    return this.sql("UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ? WHERE state = 'dead' AND destination = ?").run(now, destination).changes;
  }

  get(ids: string[]): OutboxEntry[] {
    const get = this.sql('SELECT * FROM outbox WHERE id = ?');
    return ids.flatMap((id) => {
      const r = get.get(id) as Row | undefined;
      return r ? [this.toEntry(r)] : [];
    });
  }

  list(filter: { destination?: string; state?: OutboxState; jobId?: string; limit?: number }): OutboxEntry[] {
    const where: string[] = [];
    const args: unknown[] = [];
    for (const [column, value] of [['destination', filter.destination], ['state', filter.state], ['job_id', filter.jobId]] as const) {
      if (value === undefined) continue;
      where.push(`${column} = ?`);
      args.push(value);
    }
    const sql = `SELECT * FROM outbox ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    return (this.sql(sql).all(...args, filter.limit ?? 1000) as Row[]).map(this.toEntry);
  }

  retryingCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.sql("SELECT destination, COUNT(*) AS n FROM outbox WHERE state = 'queued' AND attempts > 0 GROUP BY destination").all() as Row[]) {
      out[r.destination] = Number(r.n);
    }
    return out;
  }

  counts(): DestinationCounts[] {
    const rows = this.sql(
      `SELECT destination,
         ${['queued', 'sending', 'delivered', 'dead'].map((state) => `sum(CASE WHEN state = '${state}' THEN 1 ELSE 0 END) AS ${state}`).join(', ')},
         min(CASE WHEN state = 'queued' THEN next_attempt_at END) AS next_attempt_at,
         max(delivered_at) AS last_delivered_at
       FROM outbox GROUP BY destination ORDER BY destination`,
    ).all() as Row[];
    const lastError = this.sql(
      `SELECT last_error, last_attempt_at FROM outbox WHERE destination = ? AND last_error IS NOT NULL AND state <> 'delivered'
       ORDER BY last_attempt_at DESC LIMIT 1`,
    );
    return rows.map((r) => {
      const e = lastError.get(r.destination) as Row | undefined;
      return {
        destination: r.destination,
        queued: r.queued,
        sending: r.sending,
        delivered: r.delivered,
        dead: r.dead,
        nextAttemptAt: r.next_attempt_at ?? null,
        lastError: e?.last_error ?? null,
        lastErrorAt: e?.last_attempt_at ?? null,
        lastDeliveredAt: r.last_delivered_at ?? null,
      };
    });
  }

  async removeOrphans(graceMs = 0): Promise<number> {
    let removed = 0;
    const known = this.sql("SELECT 1 FROM outbox WHERE path = ? AND state <> 'delivered'");
    let shards: string[];
    try {
      shards = await fs.promises.readdir(this.dir);
    } catch {
      return 0; // no outbox yet
    }
    for (const shard of shards) {
      const names = await fs.promises.readdir(path.join(this.dir, shard)).catch(() => [] as string[]);
      for (const name of names) {
        if (known.get(path.join(shard, name)) !== undefined) continue;
        // A link changes its file's ctime: a file linked within the grace may be committing.
        if (graceMs > 0) {
          const stat = await fs.promises.stat(path.join(this.dir, shard, name)).catch(() => undefined);
          if (!stat || Date.now() - stat.ctimeMs < graceMs) continue;
        }
        await fs.promises.rm(path.join(this.dir, shard, name), { force: true });
        removed++;
      }
    }
    return removed;
  }
}

/**
 * A hard link shares the bytes at no cost and outlives the removal of the original; across file
 * systems (EXDEV) or where links are not allowed, a synced copy does the same.
 */
function keepReference(source: string, target: string): void {
  // A file already there is a leftover of an attempt that never committed its row.
  fs.rmSync(target, { force: true });
  try {
    fs.linkSync(source, target);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
  }
  fs.copyFileSync(source, target);
  const fd = fs.openSync(target, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}
