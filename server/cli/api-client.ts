import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { DfError, dfError, type ErrorCode } from '../../core/errors.ts';

/**
 * How the CLI talks to a running server's HTTP API. The server writes <dataDir>/server.json
 * (its pid and HTTP port) while it runs; the token is --token, DICOMFLOW_TOKEN, or the
 * administrator token in <dataDir>/admin-token for whoever may read it.
 */
export interface ApiFlags {
  server?: string;
  token?: string;
}

export interface ApiEvent {
  event: string;
  data: any;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, owned by someone else.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function serverUrl(config: ResolvedConfig, flags: ApiFlags): string | undefined {
  const explicit = flags.server ?? process.env.DICOMFLOW_URL;
  if (explicit) return explicit.replace(/\/+$/, '');
  // One node: server.json. Nodes sharing the data directory: servers/<node>.json each; any
  // running on this host will do.
  const serversDir = path.join(config.dataDir, 'servers');
  const candidates = [
    path.join(config.dataDir, 'server.json'),
    ...(fs.existsSync(serversDir) ? fs.readdirSync(serversDir).map((f) => path.join(serversDir, f)) : []),
  ];
  let endpoint: { pid: number; httpPort: number; httpHost: string; scheme?: 'http' | 'https'; hostname?: string } | undefined;
  for (const file of candidates) {
    try {
      const found = JSON.parse(fs.readFileSync(file, 'utf8'));
      if ((found.hostname === undefined || found.hostname === os.hostname()) && alive(found.pid)) {
        endpoint = found;
        break;
      }
    } catch {
      // gone or half-written: the next
    }
  }
  if (!endpoint) return undefined;
  const host = ['0.0.0.0', '::', ''].includes(endpoint.httpHost) ? '127.0.0.1' : endpoint.httpHost;
  // HTTPS with a private CA: the CLI trusts it through NODE_EXTRA_CA_CERTS (docs/http-api.md).
  return `${endpoint.scheme ?? 'http'}://${host.includes(':') ? `[${host}]` : host}:${endpoint.httpPort}`;
}

function tokenFor(config: ResolvedConfig, flags: ApiFlags): string | undefined {
  const given = flags.token ?? process.env.DICOMFLOW_TOKEN;
  if (given) return given;
  try {
    return fs.readFileSync(path.join(config.dataDir, 'admin-token'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

const unreachable = (err: unknown) => {
  const code = ((err as { cause?: { code?: string } }).cause?.code ?? '') as string;
  return ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EHOSTUNREACH'].includes(code);
};

export class ApiClient {
  readonly url: string;
  private readonly token: string;

  constructor(url: string, token: string) {
    this.url = url;
    this.token = token;
  }

  async request<T>(method: string, route: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(this.url + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    if (!res.ok) {
      let reply: { code?: string; message?: string } = {};
      try {
        reply = JSON.parse(text);
      } catch {
        // not JSON: a proxy's page, say
      }
      // The server's own code and message, as if the command had failed here.
      throw new DfError((reply.code ?? 'DF_ERR_INTERNAL') as ErrorCode, reply.message ?? `HTTP ${res.status} from ${this.url}${route}`);
    }
    return (text === '' ? undefined : JSON.parse(text)) as T;
  }

  get<T>(route: string): Promise<T> {
    return this.request<T>('GET', route);
  }

  post<T>(route: string, body: unknown = {}): Promise<T> {
    return this.request<T>('POST', route, body);
  }

  /** Follows /api/events until `signal` aborts. Resolves once the stream is open. */
  async events(onEvent: (e: ApiEvent) => void, signal: AbortSignal): Promise<void> {
    const res = await fetch(`${this.url}/api/events`, { headers: { authorization: `Bearer ${this.token}` }, signal });
    if (!res.ok || !res.body) throw dfError('DF_ERR_SERVER_UNREACHABLE', `events: HTTP ${res.status} from ${this.url}`);
    void readServerSentEvents(res.body, onEvent);
  }
}

/** The API of the server running on this data directory (or --server), if one answers. */
export function findApi(config: ResolvedConfig, flags: ApiFlags): ApiClient | undefined {
  const url = serverUrl(config, flags);
  if (!url) return undefined;
  const token = tokenFor(config, flags);
  if (!token) throw dfError('DF_ERR_UNAUTHORIZED', `a server runs at ${url}: pass --token TOKEN or set DICOMFLOW_TOKEN`);
  return new ApiClient(url, token);
}

/**
 * Through the running server's API when there is one; otherwise (no server, or it does not
 * answer) `direct`, which works on the data directory itself.
 */
export async function viaApiOr<T>(
  config: ResolvedConfig,
  flags: ApiFlags,
  viaApi: (api: ApiClient) => Promise<T>,
  direct: () => T | Promise<T>,
): Promise<T> {
  const api = findApi(config, flags);
  if (!api) return direct();
  try {
    return await viaApi(api);
  } catch (err) {
    if (!unreachable(err)) throw err;
    // A server named on purpose must answer; one found through server.json may have just stopped.
    if (flags.server ?? process.env.DICOMFLOW_URL) throw dfError('DF_ERR_SERVER_UNREACHABLE', `${api.url} does not answer`, { cause: err });
    return direct();
  }
}

/**
 * Reads a text/event-stream body (event and data lines, blocks ending in a blank line) until it
 * ends or is aborted; data is JSON, as /api/events sends it.
 */
export async function readServerSentEvents(body: NonNullable<Response['body']>, onEvent: (e: ApiEvent) => void): Promise<void> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) onEvent({ event, data: JSON.parse(data) });
      }
    }
  } catch {
    // aborted
  }
}
