/**
 * The routing outbox: objects waiting to be sent to a remote DICOM node. Each entry holds its
 * own reference to the bytes (a hard link, or a copy across file systems, under the outbox
 * directory), so a pipeline may delete the received copy before delivery happens. Entries move
 * queued → sending → delivered, or back to queued with a later attempt time, or to dead after
 * the destination's maxAttempts; a dead entry waits for an operator to reschedule it. Every
 * method returns a promise: the outbox lives in the index database (SQLite or PostgreSQL).
 */

export type OutboxState = 'queued' | 'sending' | 'delivered' | 'dead';

export interface OutboxEntry {
  id: string;
  /** The remote node's AE title (remoteNodes[].aeTitle). */
  destination: string;
  /** Absolute path of the outbox's own reference to the bytes (gone once delivered). */
  path: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  size: number;
  jobId?: string;
  stepId?: string;
  state: OutboxState;
  /** Attempts started (a claim counts as one). */
  attempts: number;
  createdAt: string;
  nextAttemptAt: string;
  lastAttemptAt?: string;
  deliveredAt?: string;
  /** The C-STORE-RSP status of the last answered attempt. */
  status?: number;
  /** The transfer syntax it was delivered in (differs from transferSyntaxUid when transcoded). */
  sentTransferSyntaxUid?: string;
  lastErrorCode?: string;
  lastError?: string;
}

export interface NewOutboxEntry {
  destination: string;
  /** The file to keep a reference to: linked (or copied) into the outbox. */
  file: string;
  sopClassUid: string;
  sopInstanceUid: string;
  transferSyntaxUid: string;
  /** Identifies what was queued, for idempotency: a step that runs again queues nothing twice. */
  sourceKey: string;
  jobId?: string;
  stepId?: string;
}

export interface DestinationCounts {
  destination: string;
  queued: number;
  sending: number;
  delivered: number;
  dead: number;
  /** Earliest next attempt of a queued entry. */
  nextAttemptAt: string | null;
  lastError: string | null;
  lastErrorAt: string | null;
  lastDeliveredAt: string | null;
}

export interface OutboxFailure {
  errorCode: string;
  error: string;
  status?: number;
  /** Retry at this time, or undefined to move the entry to dead. */
  retryAt?: string;
}

export interface OutboxStore {
  /**
   * Links each file into the outbox and records the entries durably (file and row synced) before
   * resolving. An entry with the same (destination, sourceKey, jobId, stepId) is not queued again:
   * its existing record is returned.
   */
  enqueue(entries: NewOutboxEntry[]): Promise<OutboxEntry[]>;
  /** Due entries of one destination, marked sending under a lease (expired leases are taken over). */
  claim(destination: string, owner: string, leaseMs: number, now: string, limit: number): Promise<OutboxEntry[]>;
  /** Acknowledged by the peer: the outbox's copy of the bytes is removed. */
  markDelivered(id: string, result: { status: number; sentTransferSyntaxUid: string }): Promise<void>;
  /** A failed attempt: queued again at retryAt, or dead. */
  markFailed(id: string, failure: OutboxFailure): Promise<void>;
  /** Extends the leases `owner` holds on these entries (sends still under way). */
  renewLeases(owner: string, ids: string[], until: string): Promise<void>;
  /** Claimed but never tried (shutdown): queued again, the attempt not counted. */
  release(ids: string[]): Promise<void>;
  /** After a crash or stop: entries left sending (by this owner, or by anyone) are queued again (at least once). */
  requeueInterrupted(owner?: string): Promise<number>;
  /** Dead entries of a destination (all, or these ids) queued again now with fresh attempts. */
  retryDead(destination: string, ids?: string[]): Promise<number>;
  /** The entries of these ids, in their order (unknown ids left out). */
  get(ids: string[]): Promise<OutboxEntry[]>;
  /** A listing (oldest first, `limit` default 1000); a long read, off the event loop on SQLite. */
  list(filter: { destination?: string; state?: OutboxState; jobId?: string; limit?: number }): Promise<OutboxEntry[]>;
  counts(): Promise<DestinationCounts[]>;
  /** Queued entries that were tried and failed at least once (waiting for their retry), per destination. */
  retryingCounts(): Promise<Record<string, number>>;
  /**
   * Removes outbox files no entry refers to (left by a crash between link and commit). With
   * other nodes writing, only files linked more than `graceMs` ago (one may be committing now).
   */
  removeOrphans(graceMs?: number): Promise<number>;
}
