import type { SqlDb } from './sql-db.ts';

export interface NodeRecord {
  name: string;
  startedAt: string;
  heartbeatAt: string;
  stoppedAt?: string;
  /** What the node last reported: its load, queues and addresses. */
  status: Record<string, unknown>;
}

const STARTED = `INSERT INTO nodes (name, started_at, heartbeat_at, stopped_at, status) VALUES (?, ?, ?, NULL, ?)
  ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, status = excluded.status`;
const HEARTBEAT = 'UPDATE nodes SET heartbeat_at = ?, status = ? WHERE name = ?';
const STOPPED = 'UPDATE nodes SET stopped_at = ? WHERE name = ?';
const LIST = 'SELECT * FROM nodes ORDER BY name';

/** The nodes that share this index, each writing its heartbeat and load every few seconds. */
export class SqlNodes {
  private readonly db: SqlDb;

  constructor(db: SqlDb) {
    this.db = db;
  }

  async started(name: string, status: Record<string, unknown>): Promise<void> {
    const now = new Date().toISOString();
    await this.db.run(STARTED, name, now, now, JSON.stringify(status));
  }

  async heartbeat(name: string, status: Record<string, unknown>): Promise<void> {
    await this.db.run(HEARTBEAT, new Date().toISOString(), JSON.stringify(status), name);
  }

  async stopped(name: string): Promise<void> {
    await this.db.run(STOPPED, new Date().toISOString(), name);
  }

  /** Every node that ever registered (their reports can be large): a read off the event loop. */
  async list(): Promise<NodeRecord[]> {
    return (await this.db.read(LIST)).map((r) => ({
      name: r.name,
      startedAt: r.started_at,
      heartbeatAt: r.heartbeat_at,
      stoppedAt: r.stopped_at ?? undefined,
      status: JSON.parse(r.status),
    }));
  }
}
