import { randomFillSync } from 'node:crypto';

let lastMs = 0;
let counter = 0;
// Random bytes drawn 4 KB at a time: one randomBytes() call per id cost more than the rest of it
// (a received object takes four ids or more).
const POOL_BYTES = 4096;
const pool = Buffer.alloc(POOL_BYTES);
let poolAt = POOL_BYTES;
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

/**
 * Time-ordered, globally unique ids (UUID version 7, RFC 9562) for rows that several nodes may
 * create at once: arrivals, objects, jobs. Sorting by id sorts by creation time, also within one
 * millisecond on one node: rand_a holds a 12-bit counter (RFC 9562 6.2, method 1), so jobs
 * queued together run in the order their arrivals came.
 */
export function newId(): string {
  let ms = Date.now();
  if (ms <= lastMs) {
    counter++;
    if (counter > 0xfff) {
      lastMs++;
      counter = 0;
    }
    ms = lastMs;
  } else {
    lastMs = ms;
    counter = 0;
  }
  if (poolAt + 8 > POOL_BYTES) {
    randomFillSync(pool);
    poolAt = 0;
  }
  const r = poolAt;
  poolAt += 8;
  // 48-bit unix_ts_ms, version 7 with the 12-bit counter, variant 10 with 62 random bits.
  const high = Math.floor(ms / 0x10000);
  const hex = (n: number) => HEX[n & 0xff];
  const time = hex(high >>> 24) + hex(high >>> 16) + hex(high >>> 8) + hex(high) + hex(ms >>> 8) + hex(ms);
  return (
    `${time.slice(0, 8)}-${time.slice(8)}-${hex(0x70 | (counter >> 8))}${hex(counter)}-` +
    `${hex((pool[r] & 0x3f) | 0x80)}${hex(pool[r + 1])}-` +
    `${hex(pool[r + 2])}${hex(pool[r + 3])}${hex(pool[r + 4])}${hex(pool[r + 5])}${hex(pool[r + 6])}${hex(pool[r + 7])}`
  );
}
