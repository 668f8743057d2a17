// What making one received object durable costs on this disk, measured directly: the part of a
// durable store that storescp (which answers once the file is in the page cache) does not pay.
// Each object's bytes are written to a temporary file first (untimed: storescp pays that too),
// then timed: fsync(file), rename into place, fsync(directory).
import fs from 'node:fs';
import path from 'node:path';
import { median } from './table.ts';

export interface DurableWriteRun {
  objects: number;
  objectBytes: number;
  /** Median over the objects of fsync(file) + rename + fsync(directory), in seconds. */
  medianSeconds: number;
  fsyncFileMedianSeconds: number;
  renameMedianSeconds: number;
  fsyncDirectoryMedianSeconds: number;
}

/**
 * Writes `objects` files (the contents of `sources`, round-robin) under `dir`, which must be on
 * the filesystem being measured and is left holding them. Synchronous on purpose: nothing else
 * runs in the bench meanwhile, and the thread pool's hop would be counted as the disk's.
 */
export function measureDurableWrite(dir: string, sources: readonly Buffer[], objects: number): DurableWriteRun {
  const incoming = path.join(dir, 'incoming');
  const placed = path.join(dir, 'objects');
  fs.mkdirSync(incoming, { recursive: true });
  fs.mkdirSync(placed, { recursive: true });
  const fsyncFile: number[] = [];
  const rename: number[] = [];
  const fsyncDir: number[] = [];
  const total: number[] = [];
  let bytes = 0;
  const dirFd = fs.openSync(placed, 'r');
  try {
    for (let i = 0; i < objects; i++) {
      const data = sources[i % sources.length];
      bytes += data.length;
      const tempPath = path.join(incoming, `${i}.part`);
      const fd = fs.openSync(tempPath, 'wx', 0o600);
      try {
        for (let offset = 0; offset < data.length; ) offset += fs.writeSync(fd, data, offset);
        const t0 = performance.now();
        fs.fsyncSync(fd);
        const t1 = performance.now();
        fs.renameSync(tempPath, path.join(placed, `${i}.dcm`));
        const t2 = performance.now();
        fs.fsyncSync(dirFd);
        const t3 = performance.now();
        fsyncFile.push((t1 - t0) / 1000);
        rename.push((t2 - t1) / 1000);
        fsyncDir.push((t3 - t2) / 1000);
        total.push((t3 - t0) / 1000);
      } finally {
        fs.closeSync(fd);
      }
    }
  } finally {
    fs.closeSync(dirFd);
  }
  return {
    objects,
    objectBytes: bytes / objects,
    medianSeconds: median(total),
    fsyncFileMedianSeconds: median(fsyncFile),
    renameMedianSeconds: median(rename),
    fsyncDirectoryMedianSeconds: median(fsyncDir),
  };
}

/** The mount point and filesystem type `file` lives on, from /proc/self/mounts (longest prefix). */
export function filesystemOf(file: string): string {
  let best: { mount: string; type: string; device: string } | undefined;
  try {
    for (const line of fs.readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
      const [device, mount, type] = line.split(' ');
      if (mount === undefined) continue;
      const inside = mount === '/' || file === mount || file.startsWith(`${mount}/`);
      if (inside && (best === undefined || mount.length >= best.mount.length)) best = { mount, type, device };
    }
  } catch {
    return 'unknown filesystem';
  }
  return best === undefined ? 'unknown filesystem' : `${best.device} on ${best.mount} (${best.type})`;
}
