/**
 * multipart/related (RFC 2387) as DICOMweb carries studies: written part by part from files, and
 * read as a stream, part bodies handed on as they arrive, so a body of any size passes through in
 * constant memory.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import fs from 'node:fs';
import type { ServerResponse } from 'node:http';
import { dfError } from '../../../core/errors.ts';
import { SendBlocks } from '../../send-blocks.ts';

export interface OutgoingPart {
  contentType: string;
  /** Extra headers, e.g. Content-Location. */
  headers?: Record<string, string>;
  /** A file to stream, or bytes already in memory. */
  file?: string;
  bytes?: Uint8Array;
}

export function newBoundary(): string {
  return `dicomflow-${randomBytes(12).toString('hex')}`;
}

/** File parts are read in blocks of this size, two of them reused for the whole reply. */
const FILE_BLOCK_BYTES = 256 * 1024;

/**
 * Writes a multipart/related reply body to `res` and ends it. Parts come from an async iterable
 * so that a study is read (or transcoded) one instance at a time, as the client takes the bytes.
 * Files go out through two reused read blocks (server/send-blocks.ts): the next block is read
 * while the socket writes the last, and a whole study passes through in constant memory with no
 * allocation per file or per read. Rejects if a file cannot be read or the client went away; the
 * caller then destroys the response, which is all HTTP can say once the status line is sent.
 */
export async function writeMultipart(res: ServerResponse, boundary: string, parts: AsyncIterable<OutgoingPart>): Promise<void> {
  const blocks = new SendBlocks(FILE_BLOCK_BYTES);
  const closed = new Promise<never>((_, reject) => res.once('close', () => reject(new Error('the client closed the connection'))));
  closed.catch(() => {});
  const send = async (bytes: Uint8Array, written?: () => void): Promise<void> => {
    if (res.destroyed) {
      written?.();
      throw new Error('the client closed the connection');
    }
    if (!res.write(bytes, written)) await Promise.race([once(res, 'drain'), closed]);
  };
  for await (const part of parts) {
    let head = `--${boundary}\r\nContent-Type: ${part.contentType}\r\n`;
    for (const [name, value] of Object.entries(part.headers ?? {})) head += `${name}: ${value}\r\n`;
    const handle = part.bytes ? undefined : part.file ? await fs.promises.open(part.file, 'r') : undefined;
    try {
      const length = part.bytes ? part.bytes.byteLength : handle ? (await handle.stat()).size : 0;
      await send(Buffer.from(`${head}Content-Length: ${length}\r\n\r\n`, 'latin1'));
      if (part.bytes) await send(part.bytes);
      for (let at = 0; handle && at < length; ) {
        const { block, release } = await Promise.race([blocks.take(), closed]);
        let bytesRead = 0;
        try {
          ({ bytesRead } = await handle.read(block, 0, Math.min(block.length, length - at), at));
        } finally {
          if (bytesRead === 0) release();
        }
        if (bytesRead === 0) throw new Error(`${part.file} became shorter while it was sent`);
        await send(block.subarray(0, bytesRead), release);
        at += bytesRead;
      }
    } finally {
      await handle?.close();
    }
    await send(Buffer.from('\r\n', 'latin1'));
  }
  await send(Buffer.from(`--${boundary}--\r\n`, 'latin1'));
  res.end();
}

/** The parameters of a Content-Type or Accept media range: `type`, `boundary`, `transfer-syntax`… */
export function mediaTypeParameters(header: string): { mediaType: string; parameters: Record<string, string> } {
  const [first, ...rest] = splitOutsideQuotes(header, ';');
  const parameters: Record<string, string> = {};
  for (const p of rest) {
    const eq = p.indexOf('=');
    if (eq < 0) continue;
    const name = p.slice(0, eq).trim().toLowerCase();
    let value = p.slice(eq + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1).replace(/\\(.)/g, '$1');
    parameters[name] = value;
  }
  return { mediaType: first.trim().toLowerCase(), parameters };
}

export function splitOutsideQuotes(text: string, separator: string): string[] {
  const out: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"' && text[i - 1] !== '\\') quoted = !quoted;
    if (c === separator && !quoted) {
      out.push(current);
      current = '';
    } else current += c;
  }
  out.push(current);
  return out;
}

export type MultipartEvent = { kind: 'part'; headers: Record<string, string> } | { kind: 'data'; bytes: Buffer } | { kind: 'end' };

const MAX_HEADER_BYTES = 16 * 1024;
const CRLF = Buffer.from('\r\n');
const HEADER_END = Buffer.from('\r\n\r\n');

/**
 * A push parser: feed it the body's chunks, get back what each completed (a part's headers, its
 * bytes, its end). Only a delimiter's length of bytes is held back between chunks.
 */
export class MultipartReader {
  private readonly delimiter: Buffer;
  private pending: Buffer;
  private state: 'preamble' | 'afterDelimiter' | 'headers' | 'body' | 'done' = 'preamble';

  constructor(boundary: string) {
    // RFC 2046 5.1.1 says at most 70 characters, but Orthanc's DICOMweb plugin sends 73: be liberal.
    if (!/^[ -~]{1,200}$/.test(boundary))
      throw dfError('DF_ERR_REQUEST_INVALID', 'the multipart boundary is missing or not 1–200 printable characters (RFC 2046 5.1.1)');
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1');
    // The first delimiter may open the body without the CRLF before it.
    this.pending = Buffer.from('\r\n');
  }

  get finished(): boolean {
    return this.state === 'done';
  }

  push(chunk: Buffer): MultipartEvent[] {
    const events: MultipartEvent[] = [];
    const held = this.pending;
    const reach = this.delimiter.length - 1;
    if (this.state === 'body' && held.length > 0 && chunk.length >= reach) {
      // Inside a part, the held-back bytes are data unless a delimiter starts among them, which
      // the seam (them and this chunk's first bytes) shows. Most chunks are then taken as they
      // are: copying each into a joined buffer doubled what a large body left for the GC.
      const at = Buffer.concat([held, chunk.subarray(0, reach)]).indexOf(this.delimiter);
      if (at >= 0 && at < held.length) this.pending = Buffer.concat([held, chunk]);
      else {
        events.push({ kind: 'data', bytes: held });
        this.pending = chunk;
      }
    } else this.pending = held.length === 0 ? chunk : Buffer.concat([held, chunk]);
    for (;;) {
      if (this.state === 'done') {
        this.pending = Buffer.alloc(0);
        return events;
      }
      if (this.state === 'preamble' || this.state === 'body') {
        const at = this.pending.indexOf(this.delimiter);
        if (at < 0) {
          // Keep what could be the start of a delimiter split across chunks.
          const keep = Math.min(this.pending.length, this.delimiter.length - 1);
          if (this.state === 'body' && this.pending.length > keep)
            events.push({ kind: 'data', bytes: this.pending.subarray(0, this.pending.length - keep) });
          this.pending = this.pending.subarray(this.pending.length - keep);
          return events;
        }
        if (this.state === 'body') {
          if (at > 0) events.push({ kind: 'data', bytes: this.pending.subarray(0, at) });
          events.push({ kind: 'end' });
        }
        this.pending = this.pending.subarray(at + this.delimiter.length);
        this.state = 'afterDelimiter';
        continue;
      }
      if (this.state === 'afterDelimiter') {
        if (this.pending.length < 2) return events;
        if (this.pending[0] === 0x2d && this.pending[1] === 0x2d) {
          this.state = 'done';
          continue;
        }
        // RFC 2046: transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        const eol = this.pending.indexOf(CRLF);
        if (eol < 0) {
          if (this.pending.length > 1024) throw dfError('DF_ERR_REQUEST_INVALID', 'a multipart delimiter is not followed by a line end');
          return events;
        }
        this.pending = this.pending.subarray(eol + 2);
        this.state = 'headers';
        continue;
      }
      // headers
      const end = this.pending.subarray(0, 2).equals(CRLF) ? -2 : this.pending.indexOf(HEADER_END);
      if (end === -1) {
        if (this.pending.length > MAX_HEADER_BYTES)
          throw dfError('DF_ERR_REQUEST_INVALID', `a multipart part's headers exceed ${MAX_HEADER_BYTES} bytes`);
        return events;
      }
      const text = end === -2 ? '' : this.pending.toString('latin1', 0, end);
      const headers: Record<string, string> = {};
      for (const line of text.split('\r\n')) {
        const colon = line.indexOf(':');
        if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      events.push({ kind: 'part', headers });
      this.pending = this.pending.subarray(end === -2 ? 2 : end + 4);
      this.state = 'body';
    }
  }

  /** Call at the end of the body: a body cut short before its close delimiter is an error. */
  end(): void {
    if (this.state !== 'done') throw dfError('DF_ERR_REQUEST_INVALID', 'the multipart body ends before its closing delimiter');
  }
}
