/**
 * Read buffers for sending files over a socket, reused instead of allocated per read.
 *
 * A fresh Buffer per file read is an ArrayBuffer whose memory V8 frees only when the Buffer is
 * collected. Most of them live long enough to reach the old generation, whose collection V8
 * starts once about 64 MB of such memory has piled up. Measured while a 2.1 GB study went out
 * with C-GET, C-MOVE or WADO-RS, that garbage was 30–70 MB, and the malloc heap it fragmented
 * stayed resident afterwards (bench/README.md, "Peak RSS of a 2 GB transfer"). A block is read
 * into again only after the socket has written out everything taken from it (the write's
 * callback), so the bytes a peer receives are never overwritten while they wait in the socket's
 * queue.
 */
export class SendBlocks {
  readonly blockBytes: number;
  readonly #blocks: Buffer[];
  /** Per block: resolves once the socket is done with what was last sent from it. */
  readonly #free: Promise<void>[];
  #next = 0;

  /** `count` 2: one block is read into while the other is written. */
  constructor(blockBytes: number, count = 2) {
    this.blockBytes = blockBytes;
    this.#blocks = Array.from({ length: count }, () => Buffer.allocUnsafeSlow(blockBytes));
    this.#free = this.#blocks.map(() => Promise.resolve());
  }

  /**
   * The next block, once it is free again. The caller must call `release` exactly once: as the
   * callback of the last socket write that carries bytes of the block, or at once if none does.
   * Socket write callbacks run in order, also with an error when the socket is destroyed.
   */
  async take(): Promise<{ block: Buffer; release: () => void }> {
    const i = this.#next;
    this.#next = (i + 1) % this.#blocks.length;
    await this.#free[i];
    let release!: () => void;
    this.#free[i] = new Promise<void>((resolve) => (release = resolve));
    return { block: this.#blocks[i], release };
  }
}
