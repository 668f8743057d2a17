import fs from 'node:fs';
import type { Logger } from 'pino';

// Objects acknowledged were synced; only unacknowledged ones, written in the seconds before a
// power loss, can be short. Ten minutes covers any association's in-flight objects.
const UNCLEAN_STOP_WINDOW_MS = 10 * 60 * 1000;

/** What recovery needs of the index: this node's recent objects, and withdrawing one. */
export interface RecoveryIndex {
  recentObjects(windowMs: number): Promise<{ id: string; path: string; size: number }[]>;
  markObjectLost(objectId: string): Promise<void>;
}

/** What recovery needs of the object store. */
export interface RecoveryObjects {
  /** No incoming folder yet: a first start, with nothing of this node's to check. */
  readonly firstUse: boolean;
  absolutePath(relativePath: string): string;
  remove(relativePath: string): Promise<void>;
}

/**
 * After a crash or power loss (no clean-stop marker), checks that the objects written just
 * before it have their full size on disk. A kill -9 cannot cut a file short (the page cache
 * survives it); a power loss can, for objects whose Success was never sent. A clean stop leaves
 * the marker (markCleanStop), which this consumes.
 */
export async function verifyAfterUncleanStop(marker: string, index: RecoveryIndex, objects: RecoveryObjects, log: Logger): Promise<void> {
  if (fs.existsSync(marker)) {
    fs.rmSync(marker);
    return;
  }
  // A first start has no marker either, and nothing of this node's to check.
  if (objects.firstUse) return;
  let lost = 0;
  const recent = await index.recentObjects(UNCLEAN_STOP_WINDOW_MS);
  for (const o of recent) {
    let size = -1;
    try {
      size = (await fs.promises.stat(objects.absolutePath(o.path))).size;
    } catch {
      // missing: counted below
    }
    if (size === o.size) continue;
    lost++;
    log.error(
      { objectId: o.id, path: o.path, expected: o.size, found: size },
      'object cut short by an unclean stop; it was never acknowledged and is withdrawn',
    );
    await index.markObjectLost(o.id);
    void objects.remove(o.path);
  }
  log.info({ checked: recent.length, lost }, 'checked recent objects after an unclean stop');
}

/**
 * The last act of a clean stop, once nothing is received or written any more. A marker that
 * cannot be written (a full disk) only means the next start checks recent objects: the safe side.
 */
export function markCleanStop(marker: string, log: Logger): void {
  try {
    fs.writeFileSync(marker, new Date().toISOString());
  } catch (err) {
    log.error({ err, code: 'DF_ERR_STORE_WRITE' }, 'could not write the clean-stop marker; the next start checks recent objects');
  }
}
