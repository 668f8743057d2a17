import os from 'node:os';
import type { Logger } from 'pino';
import type { NodeRecord, SqlNodes } from '../core/store/sql/sql-nodes.ts';
import { PeriodicWrite } from './periodic-write.ts';

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
 *
 * A heartbeat is a statement like any other: when the database stalls it resolves late (or
 * fails, and is logged), and no second one is sent while the first is still waiting, so a
 * stall never piles writes up on the pool.
 */
export class ClusterNode {
  private readonly o: ClusterNodeOptions;
  private readonly intervalMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastCpu = process.cpuUsage();
  private lastAt = process.hrtime.bigint();
  private readonly heartbeat: PeriodicWrite;

  constructor(options: ClusterNodeOptions) {
    this.o = options;
    this.intervalMs = options.intervalMs ?? HEARTBEAT_MS;
    this.heartbeat = new PeriodicWrite('the node heartbeat', options.log);
  }

  get name(): string {
    return this.o.name;
  }

  async start(): Promise<void> {
    await this.o.nodes.started(this.o.name, this.sample());
    this.timer = setInterval(() => this.heartbeat.tick(() => this.o.nodes.heartbeat(this.o.name, this.sample())), this.intervalMs);
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

  async view(): Promise<ClusterView> {
    const list = await this.o.nodes.list();
    const now = Date.now();
    return {
      backend: this.o.backend,
      location: this.o.location,
      node: this.o.name,
      heartbeatSeconds: this.intervalMs / 1000,
      nodes: list.map((n) => ({
        ...n,
        alive: nodeAlive(n, this.intervalMs, now),
        self: n.name === this.o.name,
      })),
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    // After the last heartbeat, so none lands on a closed database.
    await this.heartbeat.settled();
    try {
      await this.o.nodes.stopped(this.o.name);
    } catch (err) {
      this.o.log.warn({ err }, 'marking this node stopped failed');
    }
  }
}
