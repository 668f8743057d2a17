import { readServerSentEvents, type ApiEvent } from '../../server/cli/api-client.ts';
/** A small client for the HTTP API in tests: each call returns the status and the parsed body. */
export interface ApiReply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export function apiClient(port: number, token?: string) {
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, route: string, body?: unknown): Promise<ApiReply> => {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + route, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text);
    return { status: res.status, body: parsed, headers: res.headers };
  };
  return {
    base,
    get: (route: string) => call('GET', route),
    post: (route: string, body?: unknown) => call('POST', route, body),
    del: (route: string) => call('DELETE', route),
    call,
  };
}

export type SseEvent = ApiEvent;

/** Reads /api/events into an array until closed. */
export async function openEvents(port: number, token: string): Promise<{ events: SseEvent[]; status: number; close: () => void }> {
  const controller = new AbortController();
  const res = await fetch(`http://127.0.0.1:${port}/api/events`, {
    headers: { authorization: `Bearer ${token}` },
    signal: controller.signal,
  });
  const events: SseEvent[] = [];
  if (res.ok && res.body) {
    void readServerSentEvents(res.body, (e) => events.push(e));
  }
  return { events, status: res.status, close: () => controller.abort() };
}
