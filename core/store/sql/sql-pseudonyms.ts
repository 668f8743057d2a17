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

/** The pseudonym table and installation secrets in the index (SQLite or PostgreSQL). */
export class SqlPseudonyms implements PseudonymStore {
  private readonly db: SqlDb;

  constructor(db: SqlDb) {
    this.db = db;
  }

  secret(name: string): string {
    // Two nodes creating it at once: the first insert wins and both read that one.
    this.db.prepare('INSERT INTO installation_secrets (name, value, created_at) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING').run(name, randomBytes(32).toString('hex'), new Date().toISOString());
    return String(this.db.prepare('SELECT value FROM installation_secrets WHERE name = ?').get(name)!.value);
  }

  record(rows: NewPseudonym[], createdBy: string): PseudonymRecord[] {
    return this.db.transaction(() => {
      const now = new Date().toISOString();
      const insert = this.db.prepare(
        'INSERT INTO pseudonyms (kind, original, pseudonym, date_offset_days, original_name, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, original) DO NOTHING',
      );
      const select = this.db.prepare('SELECT * FROM pseudonyms WHERE kind = ? AND original = ?');
      return rows.map((r) => {
        insert.run(r.kind, r.original, r.pseudonym, r.dateOffsetDays ?? null, r.originalName ?? null, now, createdBy);
        return toRecord(select.get(r.kind, r.original)!);
      });
    })();
  }

  find(value: string, kind?: PseudonymKind): PseudonymRecord[] {
    // A Patient ID alone finds the patient recorded without an Issuer of Patient ID ("ID\\").
    const withoutIssuer = `${value}\\`;
    const rows = kind
      ? this.db.prepare('SELECT * FROM pseudonyms WHERE kind = ? AND (original = ? OR original = ? OR pseudonym = ?) ORDER BY kind, original').all(kind, value, withoutIssuer, value)
      : this.db.prepare('SELECT * FROM pseudonyms WHERE original = ? OR original = ? OR pseudonym = ? ORDER BY kind, original').all(value, withoutIssuer, value);
    return rows.map(toRecord);
  }
}
