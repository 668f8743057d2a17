import type { SqlDb } from './sql-db.ts';

export interface NodeRecord {
  name: string;
  startedAt: string;
  heartbeatAt: string;
  stoppedAt?: string;
  /** What the node last reported: its load, queues and addresses. */
  status: Record<string, unknown>;
}

/** The nodes that share this index, each writing its heartbeat and load every few seconds. */
export class SqlNodes {
  private readonly db: SqlDb;

  constructor(db: SqlDb) {
    this.db = db;
  }

  started(name: string, status: Record<string, unknown>): void {
    const now = new Date().toISOString();
    this.db
      .prepare(
        `INSERT INTO nodes (name, started_at, heartbeat_at, stopped_at, status) VALUES (?, ?, ?, NULL, ?)
         ON CONFLICT (name) DO UPDATE SET started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, status = excluded.status`,
      )
      .run(name, now, now, JSON.stringify(status));
  }

  heartbeat(name: string, status: Record<string, unknown>): void {
    this.db.prepare('UPDATE nodes SET heartbeat_at = ?, status = ? WHERE name = ?').run(new Date().toISOString(), JSON.stringify(status), name);
  }

  stopped(name: string): void {
    this.db.prepare('UPDATE nodes SET stopped_at = ? WHERE name = ?').run(new Date().toISOString(), name);
  }

  list(): NodeRecord[] {
    return this.db
      .prepare('SELECT * FROM nodes ORDER BY name')
      .all()
      .map((r) => ({
        name: r.name,
        startedAt: r.started_at,
        heartbeatAt: r.heartbeat_at,
        stoppedAt: r.stopped_at ?? undefined,
        status: JSON.parse(r.status),
      }));
  }
}
