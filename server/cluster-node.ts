import os from 'node:os';
import type { Logger } from 'pino';
import type { NodeRecord, SqlNodes } from '../core/store/sql/sql-nodes.ts';

export interface ClusterNodeOptions {
  nodes: SqlNodes;
  name: string;
  backend: 'sqlite' | 'postgres';
  /** Where the index lives (file or URL without password). */
  location: string;
  /** This node's load and queues, written with each heartbeat. */
  report: () => Record<string, unknown>;
  log: Logger;
  intervalMs?: number;
}

export const HEARTBEAT_MS = 2000;

/** Alive: not stopped, and a heartbeat within three intervals. */
export function nodeAlive(n: NodeRecord, intervalMs = HEARTBEAT_MS, now = Date.now()): boolean {
  return n.stoppedAt === undefined && now - Date.parse(n.heartbeatAt) < 3 * intervalMs;
}

export interface ClusterView {
  backend: 'sqlite' | 'postgres';
  location: string;
  node: string;
  heartbeatSeconds: number;
  nodes: (NodeRecord & { alive: boolean; self: boolean })[];
}

/**
 * This node in the list of nodes sharing the index: registered at start, a heartbeat with its
 * load every few seconds, marked stopped at a clean stop. A node whose heartbeat is older than
 * three intervals is shown as not alive (its jobs are taken over when their leases expire).
 */
export class ClusterNode {
  private readonly o: ClusterNodeOptions;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastCpu = process.cpuUsage();
  private lastAt = process.hrtime.bigint();

  constructor(options: ClusterNodeOptions) {
    this.o = options;
    this.intervalMs = options.intervalMs ?? HEARTBEAT_MS;
  }

  get name(): string {
    return this.o.name;
  }

  start(): void {
    this.o.nodes.started(this.o.name, this.sample());
    this.timer = setInterval(() => {
      try {
        this.o.nodes.heartbeat(this.o.name, this.sample());
      } catch (err) {
        this.o.log.error({ err }, 'writing the node heartbeat failed');
      }
    }, this.intervalMs);
    this.timer.unref();
  }

  /** The process's own figures beside what the server reports. */
  private sample(): Record<string, unknown> {
    const now = process.hrtime.bigint();
    const cpu = process.cpuUsage(this.lastCpu);
    const elapsedUs = Number(now - this.lastAt) / 1000;
    this.lastCpu = process.cpuUsage();
    this.lastAt = now;
    return {
      hostname: os.hostname(),
      pid: process.pid,
      cpus: os.availableParallelism(),
      loadAverage: os.loadavg().map((l) => Math.round(l * 100) / 100),
      // The main thread and its worker threads; worker processes report through the pool.
      processCpuPercent: elapsedUs > 0 ? Math.round(((cpu.user + cpu.system) / elapsedUs) * 1000) / 10 : 0,
      rssBytes: process.memoryUsage.rss(),
      ...this.o.report(),
    };
  }

  view(): ClusterView {
    const now = Date.now();
    return {
      backend: this.o.backend,
      location: this.o.location,
      node: this.o.name,
      heartbeatSeconds: this.intervalMs / 1000,
      nodes: this.o.nodes.list().map((n) => ({
        ...n,
        alive: nodeAlive(n, this.intervalMs, now),
        self: n.name === this.o.name,
      })),
    };
  }

  stop(): void {
    clearInterval(this.timer);
    try {
      this.o.nodes.stopped(this.o.name);
    } catch (err) {
      this.o.log.warn({ err }, 'marking this node stopped failed');
    }
  }
}
