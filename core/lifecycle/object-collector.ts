import type { Logger } from 'pino';
import type { ObjectLifecycle } from '../store/object-lifecycle.ts';

export interface ObjectCollectorOptions {
  lifecycle: ObjectLifecycle;
  /** Deletes the file of an object (its path relative to the object store). */
  removeObject(path: string): Promise<void>;
  log: Logger;
}

const COLLECTION_DELAY_MS = 200;

/**
 * Deletes the bytes of released objects that no database, job or open group needs, a little
 * after jobs end, in one pass: the query looks at every unfinished job, which is too much to
 * run after each of hundreds of small jobs.
 */
export class ObjectCollector {
  private readonly o: ObjectCollectorOptions;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(options: ObjectCollectorOptions) {
    this.o = options;
  }

  schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.collect();
    }, COLLECTION_DELAY_MS);
  }

  private async collect(): Promise<void> {
    let collectable: { id: string; path: string }[];
    try {
      if (!(await this.o.lifecycle.hasReleasedObjects())) return;
      collectable = await this.o.lifecycle.collectableObjects();
    } catch (err) {
      this.o.log.error({ err }, 'finding released objects failed; next job end tries again');
      return;
    }
    for (const o of collectable) {
      if (this.closed) return;
      try {
        await this.o.removeObject(o.path);
        await this.o.lifecycle.markObjectDeleted(o.id);
      } catch (err) {
        this.o.log.warn({ err, objectId: o.id }, 'cannot delete a released object');
      }
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }
}
