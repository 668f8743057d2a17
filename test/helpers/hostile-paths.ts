import net from 'node:net';

/**
 * Other spellings of an API path, as a client probing for a way around the token would send
 * them: percent-escaped letters, double escapes, escaped slashes, case, dot segments, trailing
 * and doubled slashes, `;` parameters, query strings, escaped NUL/space, the absolute form.
 * `route` is a concrete path such as `/api/jobs/x`.
 */
export function spellingsOf(route: string, host: string): string[] {
  const rest = route.replace(/^\/api\//, '');
  const [first, ...others] = rest;
  const pct = (c: string) => `%${c.charCodeAt(0).toString(16).padStart(2, '0')}`;
  const restEscaped = `${pct(first)}${others.join('')}`;
  return [
    // percent-escaped letters (lower- and upper-case hex), one or all
    `/%61pi/${rest}`,
    `/a%70i/${rest}`,
    `/ap%69/${rest}`,
    `/%61%70%69/${rest}`,
    `/%61%70%69/${rest.replace(/./g, pct)}`,
    `/api/${restEscaped}`,
    `/%41PI/${rest}`,
    // double escapes
    `/%2561pi/${rest}`,
    `/api/%25${pct(first).slice(1)}${others.join('')}`,
    // escaped slashes
    `/api%2F${rest}`,
    `/api%2f${rest}`,
    `/%2Fapi/${rest}`,
    `/api/${rest.replace(/\//g, '%2F')}`,
    // case
    `/API/${rest}`,
    `/Api/${rest}`,
    `/api/${rest.toUpperCase()}`,
    `/aPi/${rest}`,
    // dot segments, raw and escaped
    `/x/../api/${rest}`,
    `/./api/${rest}`,
    `/api/./${rest}`,
    `/api/x/../${rest}`,
    `/%2e/api/${rest}`,
    `/x/%2e%2e/api/${rest}`,
    `/x/%2E%2E/api/${rest}`,
    `/api/${rest}/.`,
    `/api/${rest}/..`,
    // slashes
    `/api/${rest}/`,
    `/api/${rest}//`,
    `//api/${rest}`,
    `/api//${rest}`,
    // parameters and queries
    `/api/${rest};`,
    `/api/${rest};jsessionid=x`,
    `/api;x/${rest}`,
    `/api/${rest}?`,
    `/api/${rest}?x=1`,
    `/%61pi/${rest}?x=1`,
    `/api/${rest}%3Fx=1`,
    // escaped NUL, space and tab
    `/api/${rest}%00`,
    `/api/${rest}%20`,
    `/api/${rest}%09`,
    `/api/${rest}.`,
    // the absolute form of the request target (RFC 9112 3.2.2)
    `http://${host}/api/${rest}`,
    `http://${host}/%61pi/${rest}`,
    // the path itself, unaltered
    route,
  ];
}

export interface RawReply {
  status?: number;
  headers: Record<string, string>;
  body: string;
  /** Why there was no complete reply: a timeout, a reset, a close before the status line. */
  noReply?: string;
}

/**
 * One HTTP/1.1 request on its own socket, the target sent byte for byte as given (fetch and
 * node:http would normalize or refuse some). Reads at most 64 KiB of the body, so an endless
 * event stream answered in error still ends.
 */
export function rawRequest(
  port: number,
  method: string,
  target: string,
  options: { headers?: Record<string, string>; timeoutMs?: number } = {},
): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const finish = (noReply?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      const text = Buffer.concat(chunks).toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n');
      const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      if (!statusLine || headEnd < 0) return resolve({ headers: {}, body: '', noReply: noReply ?? 'closed before a status line' });
      const headers: Record<string, string> = {};
      for (const line of text.slice(0, headEnd).split('\r\n').slice(1)) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      let body = text.slice(headEnd + 4);
      if (headers['transfer-encoding'] === 'chunked') body = dechunk(body);
      resolve({ status: Number(statusLine[1]), headers, body });
    };
    // A bound on a wait for a reply that may never come: "no reply" is a failure.
    const timer = setTimeout(() => finish('no reply within the deadline'), options.timeoutMs ?? 10_000);
    socket.on('data', (d: Buffer) => {
      chunks.push(d);
      size += d.length;
      if (size > 65_536) finish();
    });
    socket.on('end', () => finish());
    socket.on('close', () => finish());
    socket.on('error', (err) => finish(err.message));
    const headers = { host: `127.0.0.1:${port}`, connection: 'close', ...options.headers };
    socket.write(
      `${method} ${target} HTTP/1.1\r\n${Object.entries(headers)
        .map(([k, v]) => `${k}: ${v}\r\n`)
        .join('')}\r\n`,
    );
  });
}

function dechunk(body: string): string {
  let out = '';
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf('\r\n', at);
    if (lineEnd < 0) return out;
    const size = parseInt(body.slice(at, lineEnd), 16);
    if (!(size > 0)) return out;
    out += body.slice(lineEnd + 2, lineEnd + 2 + size);
    at = lineEnd + 2 + size + 2;
  }
}

/**
 * A request without a valid token was refused if the answer is 401 DF_ERR_UNAUTHORIZED, or the
 * not-found reply (404 DF_ERR_ROUTE_UNKNOWN) and nothing more. Anything else, or no answer, is
 * a way in.
 */
export function refusal(method: string, reply: RawReply): { refused: true } | { refused: false; why: string } {
  if (reply.noReply !== undefined) return { refused: false, why: `no reply (${reply.noReply})` };
  if (reply.status !== 401 && reply.status !== 404) return { refused: false, why: `status ${reply.status}: ${reply.body.slice(0, 120)}` };
  if (method === 'HEAD') return reply.body === '' ? { refused: true } : { refused: false, why: 'HEAD reply with a body' };
  let body: { code?: unknown; message?: unknown };
  try {
    body = JSON.parse(reply.body);
  } catch {
    return { refused: false, why: `status ${reply.status} without a JSON error: ${reply.body.slice(0, 120)}` };
  }
  const keys = Object.keys(body).sort().join(',');
  const expected = reply.status === 401 ? 'DF_ERR_UNAUTHORIZED' : 'DF_ERR_ROUTE_UNKNOWN';
  if (keys !== 'code,message' || body.code !== expected)
    return { refused: false, why: `status ${reply.status} with ${reply.body.slice(0, 120)}` };
  return { refused: true };
}
