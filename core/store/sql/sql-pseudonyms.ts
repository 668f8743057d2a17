import { randomBytes } from 'node:crypto';
import type { NewPseudonym, PseudonymKind, PseudonymRecord, PseudonymStore } from '../pseudonym-store.ts';
import type { Row, SqlDb } from './sql-db.ts';

const toRecord = (r: Row): PseudonymRecord => ({
  kind: r.kind,
  original: r.original,
  pseudonym: r.pseudonym,
  ...(r.date_offset_days === null || r.date_offset_days === undefined ? {} : { dateOffsetDays: Number(r.date_offset_days) }),
  ...(r.original_name === null || r.original_name === undefined ? {} : { originalName: r.original_name }),
  createdAt: r.created_at,
  ...(r.created_by ? { createdBy: r.created_by } : {}),
});

const INSERT_SECRET = 'INSERT INTO installation_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING';
const SECRET = 'SELECT value FROM installation_secrets WHERE name = ?';
const INSERT = `INSERT INTO pseudonyms (kind, original, pseudonym, date_offset_days, original_name, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)
  ON CONFLICT (kind, original) DO NOTHING`;
const ONE = 'SELECT * FROM pseudonyms WHERE kind = ? AND original = ?';
const FIND_OF_KIND = 'SELECT * FROM pseudonyms WHERE kind = ? AND (original = ? OR original = ? OR pseudonym = ?) ORDER BY kind, original';
// No index serves a pseudonym of any kind: a scan, so a read off the event loop.
const FIND = 'SELECT * FROM pseudonyms WHERE original = ? OR original = ? OR pseudonym = ? ORDER BY kind, original';

/** The pseudonym table and installation secrets in the index (SQLite or PostgreSQL). */
export class SqlPseudonyms implements PseudonymStore {
  private readonly db: SqlDb;
  /** A secret never changes once stored: read once per process. */
  private readonly secrets = new Map<string, Promise<string>>();

  constructor(db: SqlDb) {
    this.db = db;
  }

  secret(name: string): Promise<string> {
    let secret = this.secrets.get(name);
    if (secret === undefined) {
      secret = this.loadSecret(name);
      this.secrets.set(name, secret);
      // A failure (the database away) is not kept: the next call asks again.
      secret.catch(() => this.secrets.delete(name));
    }
    return secret;
  }

  private async loadSecret(name: string): Promise<string> {
    // Two nodes creating it at once: the first insert wins and both read that one.
    await this.db.run(INSERT_SECRET, name, randomBytes(32).toString('hex'), new Date().toISOString());
    const r = await this.db.get<{ value: string }>(SECRET, name);
    return String(r!.value);
  }

  record(rows: NewPseudonym[], createdBy: string): Promise<PseudonymRecord[]> {
    if (rows.length === 0) return Promise.resolve([]);
    return this.db.transaction(async (tx) => {
      const now = new Date().toISOString();
      const out: PseudonymRecord[] = [];
      for (const r of rows) {
        await tx.run(INSERT, r.kind, r.original, r.pseudonym, r.dateOffsetDays ?? null, r.originalName ?? null, now, createdBy);
        out.push(toRecord((await tx.get(ONE, r.kind, r.original))!));
      }
      return out;
    });
  }

  async find(value: string, kind?: PseudonymKind): Promise<PseudonymRecord[]> {
    // A Patient ID alone finds the patient recorded without an Issuer of Patient ID ("ID\\").
    const withoutIssuer = `${value}\\`;
    const rows = kind
      ? await this.db.read(FIND_OF_KIND, kind, value, withoutIssuer, value)
      : await this.db.read(FIND, value, withoutIssuer, value);
    return rows.map(toRecord);
  }
}
