/**
 * A seeded generator (mulberry32): the same seed gives the same cases on every machine, so a
 * failing case is replayed from its seed and index alone.
 */
export class Random {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Case n of a run: its own stream, independent of how many draws earlier cases made. */
  static forCase(seed: number, index: number): Random {
    return new Random(Math.imul(seed ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35));
  }

  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(0, 255);
    return b;
  }

  /** A 32-bit length far beyond anything that follows: huge, or "negative" as int32. */
  hugeLength(): number {
    return this.pick([0xffffffff, 0xfffffffe, 0x80000000, 0x7fffffff, 0x40000000, 0x10000000 + this.int(0, 99)]) >>> 0;
  }

  /** A 32-bit length a parser must not trust: huge, "negative" as int32, or just past the end. */
  hostileLength(actual: number): number {
    return (
      this.pick([
        0xffffffff,
        0xfffffffe,
        0x80000000,
        0x7fffffff,
        0x40000000,
        actual + 1,
        actual + this.int(2, 4096),
        0x10000000 + this.int(0, 99),
      ]) >>> 0
    );
  }
}
