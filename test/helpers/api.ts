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

export interface SseEvent {
  event: string;
  data: any;
}

/** Reads /api/events into an array until closed. */
export async function openEvents(port: number, token: string): Promise<{ events: SseEvent[]; status: number; close: () => void }> {
  const controller = new AbortController();
  const res = await fetch(`http://127.0.0.1:${port}/api/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
  const events: SseEvent[] = [];
  if (res.ok && res.body) {
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    void (async () => {
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
            if (event && data) events.push({ event, data: JSON.parse(data) });
          }
        }
      } catch {
        // aborted
      }
    })();
  }
  return { events, status: res.status, close: () => controller.abort() };
}
