// Resident memory of a child process, from Linux's /proc/<pid>/status.
import fs from 'node:fs';

/** A field of /proc/<pid>/status in bytes (VmRSS, VmHWM…), or undefined once the process is gone. */
export function procStatusBytes(pid: number, field: 'VmRSS' | 'VmHWM'): number | undefined {
  let text: string;
  try {
    text = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(text);
  return match === null ? undefined : Number(match[1]) * 1024;
}

/**
 * Samples VmRSS every intervalMs while a transfer runs. `stop()` returns the peak: the larger of
 * the samples and VmHWM (the kernel's own high-water mark, which catches spikes between samples;
 * it covers the process's whole life, start-up included).
 */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  #peakSampledBytes = 0;
  /** VmRSS when sampling began: the process at rest, before the transfer. */
  readonly startBytes: number;

  constructor(pid: number, intervalMs = 50) {
    this.#pid = pid;
    this.startBytes = procStatusBytes(pid, 'VmRSS') ?? 0;
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
  }

  #sample(): void {
    const rss = procStatusBytes(this.#pid, 'VmRSS');
    if (rss !== undefined && rss > this.#peakSampledBytes) this.#peakSampledBytes = rss;
  }

  stop(): { peakBytes: number; peakSampledBytes: number } {
    clearInterval(this.#timer);
    this.#sample();
    const hwm = procStatusBytes(this.#pid, 'VmHWM') ?? 0;
    return { peakBytes: Math.max(hwm, this.#peakSampledBytes), peakSampledBytes: this.#peakSampledBytes };
  }
}
