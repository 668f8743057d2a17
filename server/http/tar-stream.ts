import fs from 'node:fs';
import { Readable } from 'node:stream';

/** One file of a tar archive: its name inside the archive, where it is, its size as listed. */
export interface TarEntry {
  name: string;
  path: string;
  size: number;
  mtimeMs: number;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  // width - 1 digits and a NUL, as POSIX ustar wants.
  return `${value.toString(8).padStart(width - 1, '0')}\0`;
}

/**
 * A ustar header (POSIX.1-1988). Names longer than 100 bytes are split at a slash into the
 * 155-byte prefix field; longer ones than both hold are refused by the caller's naming.
 */
export function tarHeader(entry: Pick<TarEntry, 'name' | 'size' | 'mtimeMs'>): Buffer {
  const header = Buffer.alloc(BLOCK, 0);
  let name = entry.name;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', 155);
    if (cut <= 0 || Buffer.byteLength(name.slice(cut + 1)) > 100) throw new Error(`tar entry name too long: ${name}`);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  header.write(name, 0, 100, 'utf8');
  header.write(octal(0o644, 8), 100, 'ascii');
  header.write(octal(0, 8), 108, 'ascii');
  header.write(octal(0, 8), 116, 'ascii');
  header.write(octal(entry.size, 12), 124, 'ascii');
  header.write(octal(Math.floor(entry.mtimeMs / 1000), 12), 136, 'ascii');
  header.write('        ', 148, 'ascii'); // the checksum counts itself as spaces
  header.write('0', 156, 'ascii'); // a regular file
  header.write('ustar\u000000', 257, 'binary');
  header.write(prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const b of header) sum += b;
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'ascii');
  return header;
}

/**
 * Streams the entries as one tar archive, file by file, without holding any in memory. A file
 * that shrank since it was listed is padded with zeros to its listed size (the header is
 * written first); one that grew is cut there: either way the archive stays readable.
 */
export function tarStream(entries: TarEntry[]): Readable {
  async function* blocks(): AsyncGenerator<Buffer> {
    for (const e of entries) {
      yield tarHeader(e);
      let sent = 0;
      if (e.size > 0) {
        for await (const chunk of fs.createReadStream(e.path, { start: 0, end: e.size - 1 })) {
          sent += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
      }
      const short = e.size - sent;
      const padding = (BLOCK - (e.size % BLOCK)) % BLOCK;
      if (short + padding > 0) yield Buffer.alloc(short + padding, 0);
    }
    yield Buffer.alloc(BLOCK * 2, 0); // two empty blocks end the archive
  }
  return Readable.from(blocks(), { objectMode: false });
}

/** Archive names for the files: `step/name`, made unique, with nothing that climbs out of the archive. */
export function archiveNames(files: { step: string; name: string }[]): string[] {
  const seen = new Set<string>();
  return files.map((f, i) => {
    const clean = (s: string) =>
      s
        .replace(/[^\w.-]/g, '_')
        .replace(/^\.+/, '_')
        .slice(0, 90) || 'file';
    let name = `${clean(f.step)}/${clean(f.name)}`;
    if (seen.has(name)) name = `${clean(f.step)}/${i}-${clean(f.name)}`;
    seen.add(name);
    return name;
  });
}
