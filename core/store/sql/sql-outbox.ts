import fs from 'node:fs';
import path from 'node:path';
import { newId } from '../../ids.ts';
import { fsyncDirectory } from '../object-store.ts';
import type { DestinationCounts, NewOutboxEntry, OutboxEntry, OutboxFailure, OutboxState, OutboxStore } from '../outbox-store.ts';
import { dialectOf, type Row, type SqlDb } from './sql-db.ts';

const INSERT = `INSERT INTO outbox (id, destination, path, sop_class_uid, sop_instance_uid, transfer_syntax_uid, size, source_key, job_id, step_id,
   state, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)`;
const DELIVERED = `UPDATE outbox SET state = 'delivered', delivered_at = ?, status = ?, sent_transfer_syntax_uid = ?, last_error_code = NULL, last_error = NULL,
   lease_owner = NULL, lease_expires_at = NULL WHERE id = ? RETURNING path`;
const FAILED = `UPDATE outbox SET state = ?, next_attempt_at = coalesce(?, next_attempt_at), status = coalesce(?, status), last_error_code = ?, last_error = ?,
   lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`;
const REQUEUE_OWNED =
  "UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'sending' AND lease_owner = ?";
const REQUEUE_ALL = "UPDATE outbox SET state = 'queued', lease_owner = NULL, lease_expires_at = NULL WHERE state = 'sending'";
const RETRY_DEAD_ALL = "UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ? WHERE state = 'dead' AND destination = ?";
const RETRYING = "SELECT destination, COUNT(*) AS n FROM outbox WHERE state = 'queued' AND attempts > 0 GROUP BY destination";
const COUNTS = `SELECT destination,
   ${(['queued', 'sending', 'delivered', 'dead'] as const).map((state) => `sum(CASE WHEN state = '${state}' THEN 1 ELSE 0 END) AS ${state}`).join(', ')},
   min(CASE WHEN state = 'queued' THEN next_attempt_at END) AS next_attempt_at,
   max(delivered_at) AS last_delivered_at
 FROM outbox GROUP BY destination ORDER BY destination`;
const LAST_ERROR = `SELECT last_error, last_attempt_at FROM outbox WHERE destination = ? AND last_error IS NOT NULL AND state <> 'delivered'
 ORDER BY last_attempt_at DESC LIMIT 1`;
const KNOWN_PATHS = "SELECT path FROM outbox WHERE state <> 'delivered'";

type ListFilter = { destination?: string; state?: OutboxState; jobId?: string; limit?: number };
const LIST_COLUMNS = [
  ['destination', 'destination'],
  ['state', 'state'],
  ['job_id', 'jobId'],
] as const;
/** One text per combination of filters given (eight at most), so each is prepared once. */
const LIST_TEXTS = new Map<string, string>();
function listText(filter: ListFilter): string {
  const used = LIST_COLUMNS.filter(([, key]) => filter[key] !== undefined);
  const key = used.map(([column]) => column).join(',');
  let text = LIST_TEXTS.get(key);
  if (text === undefined) {
    text = `SELECT * FROM outbox ${used.length ? `WHERE ${used.map(([column]) => `${column} = ?`).join(' AND ')}` : ''} ORDER BY id LIMIT ?`;
    LIST_TEXTS.set(key, text);
  }
  return text;
}

/**
 * The outbox in the index's database, its files under `<dataDir>/outbox/`. An entry's file is
 * made (and its directory synced) before its row commits, so a row always has its bytes; a crash
 * in between leaves a file without a row, which removeOrphans() deletes at start-up.
 *
 * Statements that name several entries pass their ids as one JSON array (one round trip, one
 * statement text whatever the count).
 */
export class SqlOutbox implements OutboxStore {
  private readonly db: SqlDb;
  private readonly dir: string;
  private readonly byIds: string;
  private readonly existingOfJob: string;
  private readonly existingWithoutJob: string;
  private readonly claimDue: string;
  private readonly renew: string;
  private readonly releaseIds: string;
  private readonly retryDeadIds: string;

  constructor(db: SqlDb, dir: string) {
    this.db = db;
    this.dir = dir;
    const d = dialectOf(db.dialect);
    const inIds = `id IN (SELECT ids.value FROM ${d.jsonElements('?', 'ids')})`;
    this.byIds = `SELECT * FROM outbox WHERE ${inIds}`;
    // What a step (or a send) already queued: one statement per destination and step, by the
    // job's index (or the destination's) rather than a lookup per object.
    const ofKeys = `step_id IS NOT DISTINCT FROM ? AND source_key IN (SELECT keys.value FROM ${d.jsonElements('?', 'keys')})`;
    this.existingOfJob = `SELECT * FROM outbox WHERE job_id = ? AND destination = ? AND ${ofKeys}`;
    this.existingWithoutJob = `SELECT * FROM outbox WHERE job_id IS NULL AND destination = ? AND ${ofKeys}`;
    // One statement: the due entries are locked (other nodes skip them) and leased at once.
    this.claimDue = `WITH due AS (
        SELECT id FROM outbox WHERE destination = ? AND ((state = 'queued' AND next_attempt_at <= ?) OR (state = 'sending' AND lease_expires_at < ?))
        ORDER BY next_attempt_at, id LIMIT ? ${d.skipLocked}
      )
      UPDATE outbox SET state = 'sending', attempts = attempts + 1, last_attempt_at = ?, lease_owner = ?, lease_expires_at = ?
      FROM due WHERE outbox.id = due.id
      ${d.returningRow('outbox')}`;
    this.renew = `UPDATE outbox SET lease_expires_at = ? WHERE lease_owner = ? AND state = 'sending' AND ${inIds}`;
    this.releaseIds = `UPDATE outbox SET state = 'queued', attempts = ${d.greatest('0', 'attempts - 1')}, lease_owner = NULL, lease_expires_at = NULL
      WHERE state = 'sending' AND ${inIds}`;
    this.retryDeadIds = `UPDATE outbox SET state = 'queued', attempts = 0, next_attempt_at = ? WHERE state = 'dead' AND destination = ? AND ${inIds}`;
  }

  private toEntry = (r: Row): OutboxEntry => ({
    id: r.id,
    destination: r.destination,
    path: path.join(this.dir, r.path),
    sopClassUid: r.sop_class_uid,
    sopInstanceUid: r.sop_instance_uid,
    transferSyntaxUid: r.transfer_syntax_uid,
    size: Number(r.size),
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
    const result: OutboxEntry[] = [];
    const fresh: { entry: NewOutboxEntry; id: string; relative: string; size: number; at: number; twin?: boolean }[] = [];
    const dirs = new Set<string>();
    const inBatch = new Map<string, number>();
    const existing = await this.existing(entries);
    for (const entry of entries) {
      const found = existing.get(queueKey(entry));
      if (found) {
        result.push(this.toEntry(found));
        continue;
      }
      // The same object twice in one call (an input listed twice) is one entry.
      const key = queueKey(entry);
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
      await fs.promises.mkdir(path.dirname(target), { recursive: true });
      await keepReference(entry.file, target);
      dirs.add(path.dirname(target));
      fresh.push({ entry, id, relative, size: (await fs.promises.stat(target)).size, at: result.length });
      result.push(undefined as unknown as OutboxEntry);
    }
    if (fresh.length === 0) return result;
    // The links must be durable before the rows that promise them.
    await Promise.all([...dirs].map(fsyncDirectory));
    const now = new Date().toISOString();
    await this.db.transaction(async (tx) => {
      for (const f of fresh) {
        if (f.twin) continue;
        const e = f.entry;
        await tx.run(
          INSERT,
          f.id,
          e.destination,
          f.relative,
          e.sopClassUid,
          e.sopInstanceUid,
          e.transferSyntaxUid,
          f.size,
          e.sourceKey,
          e.jobId ?? null,
          e.stepId ?? null,
          now,
          now,
        );
      }
    });
    await this.db.syncDurable();
    const stored = new Map((await this.get(fresh.map((f) => f.id))).map((e) => [e.id, e]));
    for (const f of fresh) result[f.at] = stored.get(f.id)!;
    return result;
  }

  /** The entries already queued for these, by queueKey. */
  private async existing(entries: NewOutboxEntry[]): Promise<Map<string, Row>> {
    const groups = new Map<string, { entry: NewOutboxEntry; keys: Set<string> }>();
    for (const entry of entries) {
      const group = JSON.stringify([entry.destination, entry.jobId ?? null, entry.stepId ?? null]);
      const g = groups.get(group) ?? { entry, keys: new Set<string>() };
      g.keys.add(entry.sourceKey);
      groups.set(group, g);
    }
    const found = new Map<string, Row>();
    for (const { entry, keys } of groups.values()) {
      const sourceKeys = JSON.stringify([...keys]);
      const rows =
        entry.jobId !== undefined
          ? await this.db.all(this.existingOfJob, entry.jobId, entry.destination, entry.stepId ?? null, sourceKeys)
          : // Sends without a job look among all the destination's entries: a long read.
            await this.db.read(this.existingWithoutJob, entry.destination, entry.stepId ?? null, sourceKeys);
      for (const r of rows)
        found.set(
          queueKey({ destination: r.destination, sourceKey: r.source_key, jobId: r.job_id ?? undefined, stepId: r.step_id ?? undefined }),
          r,
        );
    }
    return found;
  }

  async claim(destination: string, owner: string, leaseMs: number, now: string, limit: number): Promise<OutboxEntry[]> {
    const leaseUntil = new Date(Date.parse(now) + leaseMs).toISOString();
    const rows = await this.db.all(this.claimDue, destination, now, now, limit, now, owner, leaseUntil);
    // RETURNING keeps no order: due first, as selected.
    rows.sort((a, b) =>
      a.next_attempt_at < b.next_attempt_at ? -1 : a.next_attempt_at > b.next_attempt_at ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    );
    return rows.map(this.toEntry);
  }

  async markDelivered(id: string, result: { status: number; sentTransferSyntaxUid: string }): Promise<void> {
    const r = await this.db.get<{ path: string }>(DELIVERED, new Date().toISOString(), result.status, result.sentTransferSyntaxUid, id);
    // The row is committed first: a crash before the removal leaves a file removeOrphans() takes.
    if (r) await fs.promises.rm(path.join(this.dir, r.path), { force: true });
  }

  async markFailed(id: string, failure: OutboxFailure): Promise<void> {
    await this.db.run(
      FAILED,
      failure.retryAt === undefined ? 'dead' : 'queued',
      failure.retryAt ?? null,
      failure.status ?? null,
      failure.errorCode,
      failure.error.slice(0, 4000),
      id,
    );
  }

  async renewLeases(owner: string, ids: string[], until: string): Promise<void> {
    if (ids.length === 0) return;
    await this.db.run(this.renew, until, owner, JSON.stringify(ids));
  }

  async release(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.run(this.releaseIds, JSON.stringify(ids));
  }

  async requeueInterrupted(owner?: string): Promise<number> {
    const r = owner !== undefined ? await this.db.run(REQUEUE_OWNED, owner) : await this.db.run(REQUEUE_ALL);
    return r.changes;
  }

  async retryDead(destination: string, ids?: string[]): Promise<number> {
    const now = new Date().toISOString();
    if (ids === undefined) return (await this.db.run(RETRY_DEAD_ALL, now, destination)).changes;
    if (ids.length === 0) return 0;
    return (await this.db.run(this.retryDeadIds, now, destination, JSON.stringify(ids))).changes;
  }

  async get(ids: string[]): Promise<OutboxEntry[]> {
    if (ids.length === 0) return [];
    const byId = new Map((await this.db.all(this.byIds, JSON.stringify(ids))).map((r) => [r.id as string, r]));
    return ids.flatMap((id) => {
      const r = byId.get(id);
      return r ? [this.toEntry(r)] : [];
    });
  }

  async list(filter: ListFilter): Promise<OutboxEntry[]> {
    const args = LIST_COLUMNS.flatMap(([, key]) => (filter[key] === undefined ? [] : [filter[key]]));
    return (await this.db.read(listText(filter), ...args, filter.limit ?? 1000)).map(this.toEntry);
  }

  async retryingCounts(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await this.db.read(RETRYING)) out[r.destination] = Number(r.n);
    return out;
  }

  async counts(): Promise<DestinationCounts[]> {
    const rows = await this.db.read(COUNTS);
    return Promise.all(
      rows.map(async (r) => {
        // Among every entry of the destination (delivered ones are kept): a long read too.
        const [e] = await this.db.read(LAST_ERROR, r.destination);
        return {
          destination: r.destination,
          queued: Number(r.queued),
          sending: Number(r.sending),
          delivered: Number(r.delivered),
          dead: Number(r.dead),
          nextAttemptAt: r.next_attempt_at ?? null,
          lastError: e?.last_error ?? null,
          lastErrorAt: e?.last_attempt_at ?? null,
          lastDeliveredAt: r.last_delivered_at ?? null,
        };
      }),
    );
  }

  async removeOrphans(graceMs = 0): Promise<number> {
    let shards: string[];
    try {
      shards = await fs.promises.readdir(this.dir);
    } catch {
      return 0; // no outbox yet
    }
    const files: string[] = [];
    for (const shard of shards) {
      const names = await fs.promises.readdir(path.join(this.dir, shard)).catch(() => [] as string[]);
      for (const name of names) files.push(path.join(shard, name));
    }
    if (files.length === 0) return 0;
    // Listed before the rows are read: a file whose row commits after this read was linked
    // after the listing, or within the grace (other nodes), and is kept either way.
    const known = new Set((await this.db.read<{ path: string }>(KNOWN_PATHS)).map((r) => r.path));
    let removed = 0;
    for (const relative of files) {
      if (known.has(relative)) continue;
      // A link changes its file's ctime: a file linked within the grace may be committing.
      if (graceMs > 0) {
        const stat = await fs.promises.stat(path.join(this.dir, relative)).catch(() => undefined);
        if (!stat || Date.now() - stat.ctimeMs < graceMs) continue;
      }
      await fs.promises.rm(path.join(this.dir, relative), { force: true });
      removed++;
    }
    return removed;
  }
}

/** What makes an entry the same as another: queued once per destination, object, job and step. */
function queueKey(e: Pick<NewOutboxEntry, 'destination' | 'sourceKey' | 'jobId' | 'stepId'>): string {
  return JSON.stringify([e.destination, e.sourceKey, e.jobId ?? null, e.stepId ?? null]);
}

/**
 * A hard link shares the bytes at no cost and outlives the removal of the original; across file
 * systems (EXDEV) or where links are not allowed, a synced copy does the same.
 */
async function keepReference(source: string, target: string): Promise<void> {
  // A file already there is a leftover of an attempt that never committed its row.
  await fs.promises.rm(target, { force: true });
  try {
    await fs.promises.link(source, target);
    return;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EXDEV' && code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EMLINK') throw err;
  }
  await fs.promises.copyFile(source, target);
  const handle = await fs.promises.open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
