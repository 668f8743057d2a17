/**
 * One fsync for everyone who asks while another is running (group commit). An fsync covers the
 * writes that completed before it started, so a caller is answered by the first sync that starts
 * after its call: the one running may have started before the caller's write, and does not count.
 * Objects arriving on four associations then cost one WAL fsync (or directory fsync) per round
 * instead of one each, on a thread pool of four.
 */
export class CoalescedSync {
  private readonly syncOnce: () => Promise<void>;
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(syncOnce: () => Promise<void>) {
    this.syncOnce = syncOnce;
  }

  /** Resolves once a sync that started after this call has finished (rejects if that sync failed). */
  request(): Promise<void> {
    if (!this.running) return this.start();
    this.next ??= this.running.then(
      () => this.startNext(),
      () => this.startNext(),
    );
    return this.next;
  }

  /** Whether a sync is running or waiting to start. */
  get busy(): boolean {
    return this.running !== undefined || this.next !== undefined;
  }

  private startNext(): Promise<void> {
    this.next = undefined;
    return this.start();
  }

  private start(): Promise<void> {
    const sync = this.syncOnce().finally(() => {
      if (this.running === sync) this.running = undefined;
    });
    this.running = sync;
    return sync;
  }
}
