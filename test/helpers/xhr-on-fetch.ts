// The part of XMLHttpRequest that the dicomweb-client package uses, on Node's fetch: that client
// is written for browsers, and Node has no XMLHttpRequest. Tests only.
export class XhrOnFetch {
  readyState = 0;
  status = 0;
  response: unknown = null;
  responseType: '' | 'arraybuffer' | 'json' | 'text' = '';
  withCredentials = false;
  onreadystatechange: (() => void) | null = null;
  onload: (() => void) | null = null;
  onloadstart: (() => void) | null = null;
  onloadend: (() => void) | null = null;
  onerror: ((err: unknown) => void) | null = null;
  onprogress: (() => void) | null = null;
  private method = 'GET';
  private url = '';
  private readonly requestHeaders: Record<string, string> = {};
  private responseHeaders = new Headers();

  open(method: string, url: string): void {
    this.method = method;
    this.url = url;
    this.readyState = 1;
  }

  setRequestHeader(name: string, value: string): void {
    this.requestHeaders[name] = value;
  }

  getResponseHeader(name: string): string | null {
    return this.responseHeaders.get(name);
  }

  getAllResponseHeaders(): string {
    return [...this.responseHeaders.entries()].map(([k, v]) => `${k}: ${v}`).join('\r\n');
  }

  send(body?: ArrayBuffer | Uint8Array | string): void {
    this.onloadstart?.();
    fetch(this.url, { method: this.method, headers: this.requestHeaders, body: body as BodyInit | undefined }).then(
      async (res) => {
        const bytes = await res.arrayBuffer();
        this.status = res.status;
        this.responseHeaders = res.headers;
        const text = () => new TextDecoder().decode(bytes);
        this.response =
          this.responseType === 'arraybuffer'
            ? bytes
            : this.responseType === 'json'
              ? bytes.byteLength === 0
                ? null
                : JSON.parse(text())
              : text();
        this.readyState = 4;
        this.onreadystatechange?.();
        this.onload?.();
        this.onloadend?.();
      },
      (err: unknown) => {
        this.readyState = 4;
        this.onerror?.(err);
        this.onreadystatechange?.();
      },
    );
  }
}
