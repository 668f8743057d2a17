import type fs from 'node:fs/promises';
import { SendBlocks } from '../send-blocks.ts';
import { P_DATA_HEADER_BYTES, PdvControl, pDataHeader, writePDataHeader } from './upper-layer.ts';

/**
 * A stored object's data set going out as data PDVs, one P-DATA-TF each, of at most
 * `fragmentBytes` (the peer's max PDU less the PDV header): C-STORE requests of C-MOVE, C-GET
 * and sends. The file is read into two reused blocks; each block also holds the P-DATA-TF
 * headers of its fragments, so nothing is allocated per read or per PDU.
 */
export class DatasetPdvSender {
  readonly #fragmentBytes: number;
  /** Data bytes per block: a whole number of fragments. */
  readonly #dataBytes: number;
  readonly #blocks: SendBlocks;

  constructor(fragmentBytes: number, readBlockBytes: number) {
    this.#fragmentBytes = fragmentBytes;
    this.#dataBytes = Math.max(1, Math.floor(readBlockBytes / fragmentBytes)) * fragmentBytes;
    this.#blocks = new SendBlocks(this.#dataBytes + (this.#dataBytes / fragmentBytes) * P_DATA_HEADER_BYTES);
  }

  /**
   * Bytes [offset, offset+length) of the file. `write` sends the parts in order and calls
   * `written` from the socket's callback of the last one. `readError` makes the error thrown
   * when the file cannot be read (or became shorter).
   */
  async send(o: {
    handle: fs.FileHandle;
    contextId: number;
    offset: number;
    length: number;
    write(parts: Buffer[], written?: () => void): Promise<void>;
    readError(message: string, cause?: unknown): Error;
  }): Promise<void> {
    if (o.length <= 0) {
      await o.write([pDataHeader(o.contextId, PdvControl.Last, 0)]);
      return;
    }
    for (let sent = 0; sent < o.length; ) {
      const { block, release } = await this.#blocks.take();
      let handedOver = false;
      try {
        let bytesRead: number;
        try {
          ({ bytesRead } = await o.handle.read(block, 0, Math.min(this.#dataBytes, o.length - sent), o.offset + sent));
        } catch (err) {
          throw o.readError((err as Error).message, err);
        }
        if (bytesRead === 0) throw o.readError(`the file became shorter while it was sent (${sent} of ${o.length} dataset bytes)`);
        const parts: Buffer[] = [];
        let header = this.#dataBytes;
        for (let at = 0; at < bytesRead; at += this.#fragmentBytes, header += P_DATA_HEADER_BYTES) {
          const fragment = block.subarray(at, Math.min(at + this.#fragmentBytes, bytesRead));
          const last = sent + at + fragment.length === o.length;
          parts.push(writePDataHeader(block.subarray(header), o.contextId, last ? PdvControl.Last : 0, fragment.length), fragment);
        }
        handedOver = true;
        await o.write(parts, release);
        sent += bytesRead;
      } finally {
        if (!handedOver) release();
      }
    }
  }
}
