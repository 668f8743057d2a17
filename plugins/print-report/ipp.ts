import { randomInt } from 'node:crypto';
import { createRequire } from 'node:module';
import { dfError } from '../../core/errors.ts';

/**
 * A small IPP/1.1–2.0 client (RFC 8011) over fetch: the `ipp` package encodes and decodes the
 * messages; the HTTP exchange is ours, so every request has a timeout and follows the step's
 * abort signal (the package's own client has neither).
 */

type IppAttributes = Record<string, unknown>;
interface IppMessage {
  version: string;
  operation?: string;
  statusCode?: string;
  id: number;
  'operation-attributes-tag': IppAttributes;
  'job-attributes-tag'?: IppAttributes | IppAttributes[];
  data?: Buffer;
}
const ipp = createRequire(import.meta.url)('ipp') as { serialize(message: IppMessage): Buffer; parse(bytes: Buffer): IppMessage };

/** RFC 8011 5.3.7 job-state keywords that end a job. */
export const FINAL_JOB_STATES = new Set(['completed', 'aborted', 'canceled']);

export interface IppJob {
  jobId: number;
  state: string;
  reasons: string[];
  name?: string;
  message?: string;
}

/** ipp://host[:port]/path → http://host:port/path (RFC 3510: port 631 by default; ipps over TLS, RFC 7472). */
export function httpUrlOf(printerUri: string): string {
  const url = new URL(printerUri);
  if (url.protocol !== 'ipp:' && url.protocol !== 'ipps:')
    throw dfError('DF_ERR_PRINT_FAILED', `${printerUri} is not an ipp:// or ipps:// URI`);
  return `${url.protocol === 'ipps:' ? 'https' : 'http'}://${url.hostname.includes(':') ? `[${url.hostname}]` : url.hostname}:${url.port || '631'}${url.pathname}${url.search}`;
}

export class IppClient {
  readonly printerUri: string;
  readonly #httpUrl: string;
  readonly #requestTimeoutMs: number;
  readonly #userName: string;

  constructor(printerUri: string, options: { requestTimeoutMs?: number; userName?: string } = {}) {
    this.printerUri = printerUri;
    this.#httpUrl = httpUrlOf(printerUri);
    this.#requestTimeoutMs = options.requestTimeoutMs ?? 30_000;
    this.#userName = options.userName ?? 'dicomflow';
  }

  async request(operation: string, attributes: IppAttributes, signal: AbortSignal, data?: Buffer): Promise<IppMessage> {
    const message: IppMessage = {
      version: '2.0',
      operation,
      id: randomInt(1, 2 ** 31 - 1),
      // RFC 8011 4.1.4: charset, natural language and target come first, in this order.
      'operation-attributes-tag': {
        'attributes-charset': 'utf-8',
        'attributes-natural-language': 'en',
        'printer-uri': this.printerUri,
        'requesting-user-name': this.#userName,
        ...attributes,
      },
      ...(data ? { data } : {}),
    };
    let response: Response;
    try {
      response = await fetch(this.#httpUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/ipp' },
        body: new Uint8Array(ipp.serialize(message)),
        signal: AbortSignal.any([signal, AbortSignal.timeout(this.#requestTimeoutMs)]),
      });
    } catch (err) {
      if (signal.aborted) throw err;
      throw dfError(
        'DF_ERR_PRINT_FAILED',
        `${operation} to ${this.printerUri} failed: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}`,
        { cause: err },
      );
    }
    if (!response.ok)
      throw dfError('DF_ERR_PRINT_FAILED', `${operation} to ${this.printerUri}: HTTP ${response.status} ${response.statusText}`);
    const answer = ipp.parse(Buffer.from(await response.arrayBuffer()));
    if (!String(answer.statusCode).startsWith('successful')) {
      const detail = answer['operation-attributes-tag']?.['status-message'];
      throw dfError('DF_ERR_PRINT_FAILED', `${operation} to ${this.printerUri}: ${answer.statusCode}${detail ? ` (${detail})` : ''}`);
    }
    return answer;
  }

  /** Print-Job (RFC 8011 4.2.1) with the document in the request. */
  async printJob(document: Buffer, documentFormat: string, jobName: string, signal: AbortSignal): Promise<IppJob> {
    const answer = await this.request('Print-Job', { 'job-name': jobName, 'document-format': documentFormat }, signal, document);
    return jobOf(first(answer['job-attributes-tag']));
  }

  async getJob(jobId: number, signal: AbortSignal): Promise<IppJob> {
    const answer = await this.request(
      'Get-Job-Attributes',
      { 'job-id': jobId, 'requested-attributes': ['job-id', 'job-name', 'job-state', 'job-state-reasons', 'job-state-message'] },
      signal,
    );
    return jobOf({ 'job-id': jobId, ...first(answer['job-attributes-tag']) });
  }

  /** Get-Jobs (RFC 8011 4.2.6) of every state, so a rerun can find the job an earlier attempt sent. */
  async getJobs(signal: AbortSignal): Promise<IppJob[]> {
    const answer = await this.request(
      'Get-Jobs',
      { 'which-jobs': 'all', 'requested-attributes': ['job-id', 'job-name', 'job-state', 'job-state-reasons'] },
      signal,
    );
    const jobs = answer['job-attributes-tag'];
    return (Array.isArray(jobs) ? jobs : jobs ? [jobs] : []).map(jobOf);
  }
}

function first(value: IppAttributes | IppAttributes[] | undefined): IppAttributes {
  return (Array.isArray(value) ? value[0] : value) ?? {};
}

function jobOf(attributes: IppAttributes): IppJob {
  const reasons = attributes['job-state-reasons'];
  return {
    jobId: Number(attributes['job-id']),
    state: String(attributes['job-state'] ?? 'unknown'),
    reasons: (Array.isArray(reasons) ? reasons : reasons === undefined ? [] : [reasons]).map(String),
    ...(attributes['job-name'] === undefined ? {} : { name: String(attributes['job-name']) }),
    ...(attributes['job-state-message'] === undefined ? {} : { message: String(attributes['job-state-message']) }),
  };
}
