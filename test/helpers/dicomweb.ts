// A small DICOMweb client for tests, on Node's fetch: multipart bodies are built and split here
// independently of the server's own multipart code.
import { randomBytes } from 'node:crypto';

export interface Part {
  headers: Record<string, string>;
  body: Buffer;
}

/** A multipart/related body of application/dicom parts. */
export function stowBody(files: Buffer[], options: { boundary?: string; partType?: string } = {}): { body: Buffer; contentType: string } {
  const boundary = options.boundary ?? `test-${randomBytes(8).toString('hex')}`;
  const chunks: Buffer[] = [];
  for (const file of files) {
    chunks.push(
      Buffer.from(`--${boundary}\r\nContent-Type: ${options.partType ?? 'application/dicom'}\r\n\r\n`),
      file,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), contentType: `multipart/related; type="application/dicom"; boundary=${boundary}` };
}

/** Splits a multipart body by the boundary of its Content-Type (RFC 2046). */
export function splitMultipart(contentType: string, body: Buffer): Part[] {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) throw new Error(`no boundary in ${contentType}`);
  const delimiter = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let at = body.indexOf(delimiter);
  while (at >= 0) {
    const start = at + delimiter.length;
    if (body.subarray(start, start + 2).toString() === '--') break;
    const headerEnd = body.indexOf('\r\n\r\n', start);
    const next = body.indexOf(Buffer.concat([Buffer.from('\r\n'), delimiter]), headerEnd);
    const headers: Record<string, string> = {};
    for (const line of body.toString('latin1', start + 2, headerEnd).split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    parts.push({ headers, body: body.subarray(headerEnd + 4, next) });
    at = next + 2;
  }
  return parts;
}

export function dicomwebClient(port: number, token: string) {
  const base = `http://127.0.0.1:${port}/dicomweb`;
  const auth = { authorization: `Bearer ${token}` };
  return {
    base,
    async get(path: string, accept?: string) {
      const res = await fetch(base + path, { headers: { ...auth, ...(accept ? { accept } : {}) } });
      const body = Buffer.from(await res.arrayBuffer());
      return { status: res.status, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) };
    },
    async stow(path: string, body: Buffer | ReadableStream<Uint8Array>, contentType: string) {
      const res = await fetch(base + path, {
        method: 'POST',
        headers: { ...auth, 'content-type': contentType },
        body,
        duplex: 'half',
      } as RequestInit);
      const text = await res.text();
      return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
    },
  };
}
