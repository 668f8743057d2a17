import type { Random } from './random.ts';

/** Byte-level mutations of a valid buffer; each returns a new buffer and says what it did. */
export type Mutation = { bytes: Buffer; what: string };

export function flipBits(r: Random, input: Buffer, from = 0): Mutation {
  const b = Buffer.from(input);
  const n = r.int(1, 8);
  const at: number[] = [];
  for (let i = 0; i < n; i++) {
    const pos = r.int(Math.min(from, b.length - 1), b.length - 1);
    b[pos] ^= 1 << r.int(0, 7);
    at.push(pos);
  }
  return { bytes: b, what: `flipped bits at ${at.join(',')}` };
}

export function truncate(r: Random, input: Buffer, from = 0): Mutation {
  const cut = r.int(Math.min(from, input.length - 1), input.length - 1);
  return { bytes: input.subarray(0, cut), what: `truncated to ${cut} bytes` };
}

export function overwriteU32(r: Random, input: Buffer, from: number, bigEndian: boolean): Mutation {
  const b = Buffer.from(input);
  const pos = r.int(Math.min(from, b.length - 4), b.length - 4);
  const value = r.hostileLength(b.length - pos);
  if (bigEndian) b.writeUInt32BE(value, pos);
  else b.writeUInt32LE(value, pos);
  return { bytes: b, what: `u32 0x${value.toString(16)} at ${pos}` };
}

export function overwriteU16(r: Random, input: Buffer, from: number): Mutation {
  const b = Buffer.from(input);
  const pos = r.int(Math.min(from, b.length - 2), b.length - 2);
  const value = r.pick([0, 1, 0xffff, 0x8000, r.int(0, 0xffff)]);
  b.writeUInt16BE(value, pos);
  return { bytes: b, what: `u16 0x${value.toString(16)} at ${pos}` };
}

export function insertGarbage(r: Random, input: Buffer, from = 0): Mutation {
  const pos = r.int(Math.min(from, input.length), input.length);
  const junk = r.bytes(r.int(1, 64));
  return {
    bytes: Buffer.concat([input.subarray(0, pos), junk, input.subarray(pos)]),
    what: `inserted ${junk.length} random bytes at ${pos}`,
  };
}

export function duplicateRegion(r: Random, input: Buffer, from = 0): Mutation {
  const start = r.int(Math.min(from, input.length - 1), input.length - 1);
  const end = r.int(start, Math.min(input.length, start + 256));
  return {
    bytes: Buffer.concat([input.subarray(0, end), input.subarray(start, end), input.subarray(end)]),
    what: `duplicated bytes ${start}..${end}`,
  };
}

/** One random mutation out of the generic kinds. */
export function mutate(r: Random, input: Buffer, options: { from?: number; bigEndian?: boolean } = {}): Mutation {
  const from = options.from ?? 0;
  switch (r.int(0, 5)) {
    case 0:
      return flipBits(r, input, from);
    case 1:
      return truncate(r, input, from);
    case 2:
      return overwriteU32(r, input, from, options.bigEndian ?? false);
    case 3:
      return overwriteU16(r, input, from);
    case 4:
      return insertGarbage(r, input, from);
    default:
      return duplicateRegion(r, input, from);
  }
}
