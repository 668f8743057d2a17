import { writeSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { promisify } from 'node:util';
import { constants, crc32, deflateRaw } from 'node:zlib';

/**
 * A gzip file written as pigz writes one: the data cut into blocks deflated in parallel (here on
 * libuv's thread pool, while the caller prepares the next blocks), each primed with the 32 KiB
 * before it so matches reach across block edges as in one stream, ended with a sync flush so
 * the pieces join into a single deflate stream; the CRC-32 is computed over the whole. The
 * result is one ordinary gzip member that any reader inflates.
 */

const BLOCK_BYTES = 1 << 20;
const WINDOW_BYTES = 32 * 1024;
// Magic, deflate, no flags, no mtime, no extra flags, OS unknown (RFC 1952 2.3).
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255]);
const deflateBlock = promisify(deflateRaw) as (
  data: Buffer,
  options: { level: number; dictionary?: Buffer; finishFlush: number },
) => Promise<Buffer>;

/** Writes all of `bytes` at the file's current position. */
export function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done);
}

/**
 * Gzips the chunks into the open file `fd`. The chunks must not be changed once yielded (they
 * are deflated later, on other threads).
 */
export async function writeGzip(fd: number, chunks: Iterable<Uint8Array> | AsyncIterable<Uint8Array>, level = 6): Promise<void> {
  writeAll(fd, GZIP_HEADER);
  const inFlight: Promise<Buffer>[] = [];
  const maxInFlight = availableParallelism() + 2;
  let crc = 0;
  let size = 0;
  let previous: Buffer | undefined;
  const submit = async (block: Buffer, last: boolean) => {
    crc = crc32(block, crc);
    size += block.length;
    const dictionary = previous === undefined ? undefined : previous.subarray(Math.max(0, previous.length - WINDOW_BYTES));
    inFlight.push(
      deflateBlock(block, {
        level,
        ...(dictionary === undefined ? {} : { dictionary }),
        finishFlush: last ? constants.Z_FINISH : constants.Z_SYNC_FLUSH,
      }),
    );
    previous = block;
    while (inFlight.length >= maxInFlight || (last && inFlight.length > 0)) writeAll(fd, await inFlight.shift()!);
  };
  // Blocks of about BLOCK_BYTES, one held back until we know whether it is the last.
  let held: Buffer | undefined;
  let parts: Uint8Array[] = [];
  let partBytes = 0;
  const cut = async () => {
    const block = parts.length === 1 ? toBuffer(parts[0]) : Buffer.concat(parts);
    parts = [];
    partBytes = 0;
    if (held !== undefined) await submit(held, false);
    held = block;
  };
  for await (const chunk of chunks) {
    for (let at = 0; at < chunk.length; ) {
      const take = Math.min(chunk.length - at, BLOCK_BYTES - partBytes);
      parts.push(chunk.subarray(at, at + take));
      partBytes += take;
      at += take;
      if (partBytes === BLOCK_BYTES) await cut();
    }
  }
  if (partBytes > 0) await cut();
  await submit(held ?? Buffer.alloc(0), true);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(size % 2 ** 32, 4);
  writeAll(fd, trailer);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
