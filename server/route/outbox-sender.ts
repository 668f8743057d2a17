import fs from 'node:fs';
import path from 'node:path';
import { Piscina } from 'piscina';
import type { Logger } from 'pino';
import { readFileMetaOf, type FileMeta } from '../../core/dicom/part10.ts';
import { sopClassKeyword } from '../../core/dicom/sop-classes.ts';
import { canTranscode } from '../../core/dicom/transcode.ts';
import { EXPLICIT_VR_LE, IMPLICIT_VR_LE, transferSyntaxByUid } from '../../core/dicom/transfer-syntaxes.ts';
import { dfError, isDfError } from '../../core/errors.ts';
import { newId } from '../../core/ids.ts';
import type { DestinationCounts, OutboxEntry, OutboxStore } from '../../core/store/outbox-store.ts';
import {
  openAssociation,
  tlsOptionsForNode,
  type ContextProposal,
  type NodeTls,
  type StoreAssociation,
  type StoreResult,
} from '../dimse/store-scu.ts';
import { ContextResult, describeContextResult } from '../dimse/upper-layer.ts';
import { PeriodicWrite } from '../periodic-write.ts';

/** A remote node as the configuration gives it (remoteNodes[]), with its outbox settings. */
export interface RouteDestination extends NodeTls {
  aeTitle: string;
  host: string;
  port: number;
  outbox: { concurrency: number; maxAttempts: number; initialRetrySeconds: number; maxRetrySeconds: number; batchSize: number };
}

export interface OutboxSenderOptions {
  outbox: OutboxStore;
  destinations: RouteDestination[];
  callingAeTitle: string;
  log: Logger;
  /** Where transcoded copies live while they are sent. */
  workDir: string;
  /** The name this sender's leases carry (the node's). */
  owner?: string;
  /** Other nodes send from the same outbox (PostgreSQL): recover only this node's own entries. */
  shared?: boolean;
  /** How often due entries are looked for (new entries, retries, `outbox retry` from the CLI). */
  pollMs?: number;
  leaseMs?: number;
  connectTimeoutMs?: number;
  responseTimeoutMs?: number;
}

const ORPHAN_GRACE_MS = 10 * 60_000;
// PS3.8 9.3.2.2: at most 128 presentation contexts in one A-ASSOCIATE-RQ.
const MAX_CONTEXTS = 128;
// Errors that no later attempt can cure: the entry goes to the dead letters at once.
const PERMANENT = new Set(['DF_ERR_FILE_READ', 'DF_ERR_DATASET_MALFORMED', 'DF_ERR_PIXEL_DECODE']);
// Errors that say the destination as a whole is unavailable: hold it back until the retry time.
const DESTINATION_DOWN = new Set(['DF_ERR_PEER_UNREACHABLE', 'DF_ERR_ASSOCIATION_REJECTED', 'DF_ERR_PEER_TIMEOUT']);
const UNCOMPRESSED = [EXPLICIT_VR_LE, IMPLICIT_VR_LE];

interface DestinationState {
  active: number;
  /** Not before this time (ms): the destination was found down. */
  holdUntil: number;
}

/** The exponential backoff: initial × 2^(attempts−1), capped. */
export function retryDelaySeconds(attempts: number, o: RouteDestination['outbox']): number {
  return Math.min(o.maxRetrySeconds, o.initialRetrySeconds * 2 ** Math.max(0, attempts - 1));
}

/**
 * Delivers the outbox: per destination, up to `concurrency` associations at once, each sending
 * a claimed batch of due entries as their original bytes (store-scu). A destination that is down
 * only delays its own entries: every destination is claimed and sent independently, and one that
 * refuses connections is held back until its next retry time. Where the peer accepts the object's
 * SOP class only in Explicit or Implicit VR Little Endian, a transcoded copy is sent instead.
 */
export class OutboxSender {
  readonly owner: string;
  private readonly o: OutboxSenderOptions;
  private readonly states = new Map<string, DestinationState>();
  private readonly inFlight = new Set<Promise<void>>();
  private readonly associations = new Set<StoreAssociation>();
  private timer: NodeJS.Timeout | undefined;
  private leaseTimer: NodeJS.Timeout | undefined;
  /** Entries claimed by sends under way: their leases are renewed until the sends end. */
  private readonly claimed = new Set<string>();
  private closing = false;
  private transcoder: Piscina | undefined;
  /** The look for due entries under way (claims await the index): one at a time. */
  private ticking: Promise<void> | undefined;
  /** Woken while a look was under way: look again as soon as it ends. */
  private tickAgain = false;
  /** The lease renewal: none is sent while one still waits for the index. */
  private readonly renewal: PeriodicWrite;

  private get leaseMs(): number {
    return this.o.leaseMs ?? 30_000;
  }

  constructor(options: OutboxSenderOptions) {
    this.o = options;
    this.owner = options.owner ?? newId();
    this.renewal = new PeriodicWrite('the outbox lease renewal', options.log);
    for (const d of options.destinations) this.states.set(d.aeTitle, { active: 0, holdUntil: 0 });
  }

  /** Entries a stop or crash left sending are queued again; files without an entry go. */
  async start(): Promise<void> {
    const requeued = await this.o.outbox.requeueInterrupted(this.o.shared ? this.owner : undefined);
    // Another node may be between linking a file and committing its row: only old orphans go.
    const orphans = await this.o.outbox.removeOrphans(this.o.shared ? ORPHAN_GRACE_MS : 0);
    if (requeued > 0 || orphans > 0) this.o.log.info({ requeued, orphans }, 'outbox recovered after a stop');
    // Transcoded copies are made per attempt; any left by a crash are of no use.
    await fs.promises.rm(this.o.workDir, { recursive: true, force: true });
    await fs.promises.mkdir(this.o.workDir, { recursive: true });
    this.schedule(0);
    // A slow peer can take longer than a lease over one batch; another node takes over only
    // the entries of a sender that stopped renewing (it died).
    this.leaseTimer = setInterval(() => this.renewLeases(), this.leaseMs / 3);
    this.leaseTimer.unref();
  }

  /** A renewal that waits for a stalled index resolves late or fails (logged); none overlaps it. */
  private renewLeases(): void {
    if (this.claimed.size === 0) return;
    const ids = [...this.claimed];
    this.renewal.tick(() => this.o.outbox.renewLeases(this.owner, ids, new Date(Date.now() + this.leaseMs).toISOString()));
  }

  /** Whether this remote node is configured (remoteNodes): a destination the sender delivers to. */
  isDestination(aeTitle: string): boolean {
    return this.states.has(aeTitle);
  }

  /** Look for due entries now (a step queued some). */
  wake(): void {
    if (!this.closing) this.schedule(0);
  }

  /** Per destination: the outbox's counts and the associations open now. */
  async status(): Promise<(DestinationCounts & { associations: number; host: string; port: number })[]> {
    const counts = new Map((await this.o.outbox.counts()).map((c) => [c.destination, c]));
    return this.o.destinations.map((d) => ({
      ...(counts.get(d.aeTitle) ?? {
        destination: d.aeTitle,
        queued: 0,
        sending: 0,
        delivered: 0,
        dead: 0,
        nextAttemptAt: null,
        lastError: null,
        lastErrorAt: null,
        lastDeliveredAt: null,
      }),
      associations: this.states.get(d.aeTitle)!.active,
      host: d.host,
      port: d.port,
    }));
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.timer);
    clearInterval(this.leaseTimer);
    // A look under way may still start sends: they are among those waited for.
    await this.ticking;
    // Sends under way get a moment to finish; then their associations are aborted and the entries
    // not acknowledged are queued again, their attempt not counted.
    const settled = Promise.allSettled([...this.inFlight]);
    const grace = new Promise<void>((resolve) => setTimeout(resolve, 5000).unref());
    await Promise.race([settled, grace]);
    for (const a of this.associations) a.abort();
    await settled;
    await this.renewal.settled();
    await this.transcoder?.destroy();
  }

  private schedule(ms: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.tick(), ms);
    this.timer.unref();
  }

  private tick(): void {
    if (this.closing) return;
    if (this.ticking) {
      this.tickAgain = true;
      return;
    }
    this.ticking = this.claimDue().finally(() => {
      this.ticking = undefined;
      if (this.closing) return;
      const again = this.tickAgain;
      this.tickAgain = false;
      this.schedule(again ? 0 : (this.o.pollMs ?? 500));
    });
  }

  /** Claims due entries for every destination with room, and starts their sends. */
  private async claimDue(): Promise<void> {
    try {
      const now = Date.now();
      for (const d of this.o.destinations) {
        const state = this.states.get(d.aeTitle)!;
        if (state.holdUntil > now) continue;
        while (state.active < d.outbox.concurrency) {
          const batch = await this.o.outbox.claim(d.aeTitle, this.owner, this.leaseMs, new Date(now).toISOString(), d.outbox.batchSize);
          if (batch.length === 0) break;
          if (this.closing) {
            // Stopping began while the claim waited: nothing is sent, the attempt not counted.
            await this.o.outbox.release(batch.map((e) => e.id));
            return;
          }
          state.active++;
          for (const e of batch) this.claimed.add(e.id);
          const delivery: Promise<void> = this.deliver(d, batch)
            .catch((err) => this.o.log.error({ err, destination: d.aeTitle }, 'outbox delivery failed unexpectedly'))
            .finally(() => {
              for (const e of batch) this.claimed.delete(e.id);
              state.active--;
              this.inFlight.delete(delivery);
              this.wake();
            });
          this.inFlight.add(delivery);
        }
      }
    } catch (err) {
      this.o.log.error({ err }, 'outbox claim failed');
    }
  }

  private async deliver(d: RouteDestination, claimed: OutboxEntry[]): Promise<void> {
    const log = this.o.log.child({ destination: d.aeTitle });
    // Each entry's own meta: a file gone or unreadable cannot be sent, ever.
    const batch: { entry: OutboxEntry; meta: FileMeta }[] = [];
    for (const entry of claimed) {
      try {
        const handle = await fs.promises.open(entry.path, 'r');
        try {
          batch.push({ entry, meta: await readFileMetaOf(handle) });
        } finally {
          await handle.close();
        }
      } catch (err) {
        await this.fail(
          d,
          entry,
          Object.assign(err as Error, { code: (err as NodeJS.ErrnoException).code ? 'DF_ERR_FILE_READ' : 'DF_ERR_DATASET_MALFORMED' }),
          log,
        );
      }
    }
    const { contexts, fits, over } = proposals(batch);
    if (over.length > 0) await this.o.outbox.release(over.map((b) => b.entry.id));
    if (fits.length === 0) return;
    let association: StoreAssociation;
    try {
      association = await openAssociation({
        host: d.host,
        port: d.port,
        callingAeTitle: this.o.callingAeTitle,
        calledAeTitle: d.aeTitle,
        tls: tlsOptionsForNode(d),
        contexts,
        connectTimeoutMs: this.o.connectTimeoutMs,
        responseTimeoutMs: this.o.responseTimeoutMs,
      });
    } catch (err) {
      if (this.closing) return this.o.outbox.release(fits.map((b) => b.entry.id));
      for (const b of fits) await this.fail(d, b.entry, err as Error, log);
      this.holdIfDown(d, err as Error, fits);
      return;
    }
    this.associations.add(association);
    let ended: { err: Error; attempts: number } | undefined;
    try {
      for (const [i, { entry, meta }] of fits.entries()) {
        if (this.closing || !association.isOpen) {
          // Not sent because the association ended before them: queued again without charging
          // an attempt (charged, a peer that drops every association after a few objects sent
          // the objects at the back of the batch to the dead letters without one try). The peer
          // that dropped it is left alone until the failed object's retry time.
          const rest = fits.slice(i).map((b) => b.entry);
          await this.o.outbox.release(rest.map((e) => e.id));
          if (!this.closing && ended !== undefined && !PERMANENT.has(errorCode(ended.err))) {
            const state = this.states.get(d.aeTitle)!;
            state.holdUntil = Math.max(state.holdUntil, Date.now() + retryDelaySeconds(ended.attempts, d.outbox) * 1000);
          }
          return;
        }
        try {
          const { result, sentTransferSyntaxUid } = await this.storeOne(association, entry, meta);
          if (result.outcome === 'failure') {
            const text = `${association.peer} answered C-STORE with failure status 0x${result.status.toString(16).padStart(4, '0')}${result.errorComment ? ` (${result.errorComment})` : ''}`;
            await this.fail(d, entry, Object.assign(new Error(text), { code: 'DF_ERR_STORE_REFUSED' }), log, result.status);
          } else {
            await this.o.outbox.markDelivered(entry.id, { status: result.status, sentTransferSyntaxUid });
            log.debug(
              { outboxId: entry.id, sopInstanceUid: entry.sopInstanceUid, status: result.status, sentTransferSyntaxUid },
              'delivered',
            );
          }
        } catch (err) {
          if (this.closing) {
            await this.o.outbox.release(fits.slice(i).map((b) => b.entry.id));
            return;
          }
          await this.fail(d, entry, err as Error, log);
          if (!association.isOpen) ended = { err: err as Error, attempts: entry.attempts };
        }
      }
      await association.release().catch(() => association.abort());
    } finally {
      this.associations.delete(association);
    }
  }

  /** The original bytes when the peer took the object's own transfer syntax, else a transcoded copy. */
  private async storeOne(
    association: StoreAssociation,
    entry: OutboxEntry,
    meta: FileMeta,
  ): Promise<{ result: StoreResult; sentTransferSyntaxUid: string }> {
    const accepted = association.acceptedContexts.filter((c) => c.abstractSyntax === meta.sopClassUid);
    const own = accepted.some((c) => c.transferSyntax === meta.transferSyntaxUid);
    const alternative = UNCOMPRESSED.find((ts) => accepted.some((c) => c.transferSyntax === ts));
    if (own) return { result: await association.store({ file: entry.path }), sentTransferSyntaxUid: meta.transferSyntaxUid };
    if (alternative === undefined || !canTranscode(meta.transferSyntaxUid)) {
      const answers = association.contexts
        .filter((c) => c.abstractSyntax === meta.sopClassUid)
        .map(
          (c) =>
            `${tsName(c.proposedTransferSyntaxes[0])} ${c.result === ContextResult.Acceptance ? 'accepted' : `refused (${describeContextResult(c.result)})`}`,
        );
      const why =
        alternative === undefined
          ? 'nor Explicit or Implicit VR Little Endian to transcode to'
          : `and objects in ${tsName(meta.transferSyntaxUid)} cannot be transcoded`;
      throw dfError(
        'DF_ERR_CONTEXT_REJECTED',
        `${association.peer} did not accept SOP class ${sopClassKeyword(meta.sopClassUid) ?? meta.sopClassUid} in ${tsName(meta.transferSyntaxUid)}, ${why} (it answered: ${answers.join(', ')})`,
      );
    }
    const copy = path.join(this.o.workDir, `${entry.id}.dcm`);
    try {
      this.transcoder ??= new Piscina({
        filename: new URL('./transcode-worker.ts', import.meta.url).href,
        minThreads: 0,
        maxThreads: 1,
        idleTimeout: 30_000,
      });
      await this.transcoder.run({ source: entry.path, target: copy, transferSyntaxUid: alternative });
      return { result: await association.store({ file: copy }), sentTransferSyntaxUid: alternative };
    } finally {
      await fs.promises.rm(copy, { force: true });
    }
  }

  private async fail(d: RouteDestination, entry: OutboxEntry, err: Error, log: Logger, status?: number): Promise<void> {
    const code = errorCode(err);
    const permanent = PERMANENT.has(code);
    const dead = permanent || entry.attempts >= d.outbox.maxAttempts;
    const retryAt = dead ? undefined : new Date(Date.now() + retryDelaySeconds(entry.attempts, d.outbox) * 1000).toISOString();
    const error = err.message.startsWith('DF_ERR_') ? err.message : `${code}: ${err.message}`;
    await this.o.outbox.markFailed(entry.id, { errorCode: code, error, status, retryAt });
    const data = { outboxId: entry.id, sopInstanceUid: entry.sopInstanceUid, attempts: entry.attempts, code, err: err.message };
    if (dead) log.error({ ...data, permanent }, 'outbox entry moved to the dead letters');
    else log.warn({ ...data, retryAt }, 'delivery failed; will retry');
  }

  /** A destination that cannot be reached waits as a whole, instead of one connect per batch. */
  private holdIfDown(d: RouteDestination, err: Error, batch: { entry: OutboxEntry }[]): void {
    if (!DESTINATION_DOWN.has(errorCode(err))) return;
    const attempts = Math.min(...batch.map((b) => b.entry.attempts));
    this.states.get(d.aeTitle)!.holdUntil = Date.now() + retryDelaySeconds(attempts, d.outbox) * 1000;
  }
}

const tsName = (uid: string): string => transferSyntaxByUid(uid)?.keyword ?? uid;

/** DF_ERR_* of an error, also of one rebuilt from a worker thread (the code stays in the message). */
function errorCode(err: Error): string {
  if (isDfError(err)) return err.code;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && code.startsWith('DF_ERR_')) return code;
  return /^(DF_ERR_[A-Z_]+):/.exec(err.message)?.[1] ?? 'DF_ERR_DELIVERY_FAILED';
}

/**
 * The presentation contexts for a batch: per SOP class, each of its objects' transfer syntaxes
 * alone (so the peer judges each on its own), then Explicit and Implicit VR Little Endian for the
 * transcoding fallback. Objects whose contexts would pass the limit wait for the next batch.
 */
function proposals<T extends { meta: FileMeta }>(batch: T[]): { contexts: ContextProposal[]; fits: T[]; over: T[] } {
  const keys = new Set<string>();
  const contexts: ContextProposal[] = [];
  const fits: T[] = [];
  const over: T[] = [];
  for (const b of batch) {
    const wanted = [...new Set([b.meta.transferSyntaxUid, ...UNCOMPRESSED])]
      .map((ts) => `${b.meta.sopClassUid}|${ts}`)
      .filter((k) => !keys.has(k));
    if (contexts.length + wanted.length > MAX_CONTEXTS) {
      over.push(b);
      continue;
    }
    for (const k of wanted) {
      keys.add(k);
      const [abstractSyntax, ts] = k.split('|');
      contexts.push({ abstractSyntax, transferSyntaxes: [ts] });
    }
    fits.push(b);
  }
  return { contexts, fits, over };
}
