import type { Logger } from 'pino';

/**
 * A write repeated on a timer (the node heartbeat, the outbox lease renewal) that never overlaps
 * itself. While the index stalls, the write in flight resolves late or fails (logged) and the
 * ticks meanwhile are skipped (logged once), so a stall does not pile writes up on the pool.
 */
export class PeriodicWrite {
  private readonly what: string;
  private readonly log: Logger;
  private inFlight: Promise<void> | undefined;
  /** A tick was skipped waiting for the write in flight. */
  private skipped = false;

  constructor(what: string, log: Logger) {
    this.what = what;
    this.log = log;
  }

  /** Starts `write` unless the previous one still waits. */
  tick(write: () => Promise<void>): void {
    if (this.inFlight) {
      if (!this.skipped) this.log.warn(`${this.what} waits for the index; skipped until it answers`);
      this.skipped = true;
      return;
    }
    const sentAt = Date.now();
    this.inFlight = write()
      .then(
        () => {
          if (this.skipped) this.log.info({ waitedMs: Date.now() - sentAt }, `${this.what} written again`);
        },
        (err: unknown) => this.log.error({ err, waitedMs: Date.now() - sentAt }, `${this.what} failed`),
      )
      .finally(() => {
        this.inFlight = undefined;
        this.skipped = false;
      });
  }

  /** Resolves once the write under way, if any, has ended (it never rejects). */
  async settled(): Promise<void> {
    await this.inFlight;
  }
}
