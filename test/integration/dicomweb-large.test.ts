// Issue 18: a large study streams through DICOMweb in both directions. A 200 MB STOW-RS body is
// sent as a stream and written to the spool part by part; the same study comes back as a
// streamed WADO-RS multipart read from the files. Neither grows the server by the body's size:
// the server runs as its own process, whose peak RSS (VmHWM) is read from /proc.
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { freePort } from '../helpers/net.ts';
import { spawnServer, tempDir } from '../helpers/server.ts';

const COPIES = 24;
let server: ChildProcess;
let httpPort: number;
let ct: BuiltSeries;
let token: string;

beforeAll(async () => {
  const dataDir = tempDir('df-dicomweb-large-');
  httpPort = await freePort();
  server = (await spawnServer(['--data', dataDir, '--port', String(await freePort()), '--http-port', String(httpPort)])).child;
  token = fs.readFileSync(path.join(dataDir, 'admin-token'), 'utf8').trim();
  // One slice of 2048 × 2048 × 16 bits (8 MiB), sent COPIES times as different instances.
  ct = await ctSeries(tempDir(), { slices: 1, rows: 2048, cols: 2048, patientId: 'BIG-1' });
});

afterAll(async () => {
  if (server && server.exitCode === null) {
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  }
});

/** The server's resident set now and at its peak since the last reset, in bytes (Linux /proc). */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1]) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

/** Resets the peak (VmHWM) to the current RSS (proc(5): clear_refs "5"). */
function resetPeak(pid: number): void {
  fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** The same file under another SOP Instance UID of the same length (in meta and dataset alike). */
function variantUid(uid: string, i: number): string {
  return uid.slice(0, -3) + String(100 + i);
}

/** A multipart/related body streamed from the file, never whole in memory. */
function streamedBody(boundary: string): ReadableStream<Uint8Array> {
  const original = Buffer.from(ct.sopInstanceUids[0], 'latin1');
  let i = 0;
  let reader: AsyncIterator<Buffer> | undefined;
  let first = true;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (!reader) {
        if (i === COPIES) {
          controller.enqueue(Buffer.from(`--${boundary}--\r\n`));
          controller.close();
          return;
        }
        controller.enqueue(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`));
        reader = fs.createReadStream(ct.files[0], { highWaterMark: 256 * 1024 })[Symbol.asyncIterator]();
        first = true;
        return;
      }
      const next = await reader.next();
      if (next.done) {
        controller.enqueue(Buffer.from('\r\n'));
        reader = undefined;
        i++;
        return;
      }
      let chunk = next.value;
      if (first) {
        // The UIDs sit in the first chunk (file meta and the dataset's header).
        chunk = Buffer.from(chunk);
        const replacement = Buffer.from(variantUid(ct.sopInstanceUids[0], i), 'latin1');
        for (let at = chunk.indexOf(original); at >= 0; at = chunk.indexOf(original, at + 1)) replacement.copy(chunk, at);
        first = false;
      }
      controller.enqueue(chunk);
    },
  });
}

describe('DICOMweb with a large study', () => {
  it(`stores a ${COPIES * 8} MiB STOW-RS body and sends it back as WADO-RS without holding either in memory`, async () => {
    const fileBytes = fs.statSync(ct.files[0]).size;
    expect(fileBytes).toBeGreaterThan(8 * 1024 * 1024);
    const bodyBytes = fileBytes * COPIES;
    const pid = server.pid!;
    const auth = { authorization: `Bearer ${token}` };
    resetPeak(pid);
    const before = memoryOf(pid).rss;
    {
      const boundary = 'large-study-boundary';
      const res = await fetch(`http://127.0.0.1:${httpPort}/dicomweb/Import/studies`, {
        method: 'POST',
        headers: { ...auth, 'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}` },
        body: streamedBody(boundary),
        duplex: 'half',
      } as RequestInit);
      const reply = (await res.json()) as Record<string, { Value?: unknown[] }>;
      expect(res.status, JSON.stringify(reply)).toBe(200);
      expect(reply['00081199'].Value).toHaveLength(COPIES);
      const stowPeak = memoryOf(pid).peak - before;

      const count = async () => {
        const r = await fetch(`http://127.0.0.1:${httpPort}/dicomweb/Import/studies?StudyInstanceUID=${ct.studyInstanceUid}`, {
          headers: auth,
        });
        const [study] = (await r.json()) as Record<string, { Value?: unknown[] }>[];
        return study?.['00201208']?.Value?.[0];
      };
      // Filing runs in the store pipeline after the reply: poll for it with a deadline.
      const deadline = Date.now() + 60_000;
      let filed = await count();
      while (filed !== COPIES && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        filed = await count();
      }
      expect(filed).toBe(COPIES);
      resetPeak(pid);
      const wadoBefore = memoryOf(pid).rss;
      const wado = await fetch(`http://127.0.0.1:${httpPort}/dicomweb/Import/studies/${ct.studyInstanceUid}`, { headers: auth });
      expect(wado.status).toBe(200);
      let received = 0;
      for await (const chunk of wado.body as unknown as AsyncIterable<Uint8Array>) received += chunk.byteLength;
      const wadoPeak = memoryOf(pid).peak - wadoBefore;

      // Every stored object comes back: the body is at least the files' bytes.
      expect(received).toBeGreaterThan(bodyBytes);
      // Buffered whole, either direction would add the body's size (over 190 MiB); streamed, a
      // few chunks and write batches are in flight at a time.
      expect(
        stowPeak,
        `STOW grew RSS by ${Math.round(stowPeak / 2 ** 20)} MiB for a ${Math.round(bodyBytes / 2 ** 20)} MiB body`,
      ).toBeLessThan(bodyBytes / 2);
      expect(
        wadoPeak,
        `WADO grew RSS by ${Math.round(wadoPeak / 2 ** 20)} MiB for a ${Math.round(received / 2 ** 20)} MiB reply`,
      ).toBeLessThan(bodyBytes / 2);
    }
  }, 180_000);
});
