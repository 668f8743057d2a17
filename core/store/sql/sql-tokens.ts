import { newId } from '../../ids.ts';
import type { ApiToken, ApiTokenStore } from '../../users.ts';
import type { SqlDb } from './sql-db.ts';

interface Row {
  id: string;
  user_name: string;
  description: string | null;
  created_at: string;
  last_used_at: string | null;
}

const toToken = (r: Row): ApiToken => ({
  id: r.id,
  user: r.user_name,
  description: r.description ?? undefined,
  createdAt: r.created_at,
  lastUsedAt: r.last_used_at ?? undefined,
});

// A token used many times a second would write as often; once a minute is enough to tell use.
const LAST_USED_RESOLUTION_MS = 60_000;

/** API tokens in the index database, shared with the CLI's `dicomflow token`. */
export class SqlApiTokens implements ApiTokenStore {
  private readonly db: SqlDb;

  constructor(db: SqlDb) {
    this.db = db;
  }

  create(user: string, tokenHash: string, description?: string): ApiToken {
    const row: Row = { id: newId(), user_name: user, description: description ?? null, created_at: new Date().toISOString(), last_used_at: null };
    this.db
      .prepare('INSERT INTO api_tokens (id, user_name, token_hash, description, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(row.id, user, tokenHash, row.description, row.created_at);
    return toToken(row);
  }

  findByHash(tokenHash: string): ApiToken | undefined {
    const r = this.db.prepare('SELECT * FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL').get(tokenHash) as Row | undefined;
    if (!r) return undefined;
    const now = Date.now();
    if (!r.last_used_at || now - Date.parse(r.last_used_at) > LAST_USED_RESOLUTION_MS) {
      r.last_used_at = new Date(now).toISOString();
      this.db.prepare('UPDATE api_tokens SET last_used_at = ? WHERE id = ?').run(r.last_used_at, r.id);
    }
    return toToken(r);
  }

  list(user?: string): ApiToken[] {
    const rows = user
      ? this.db.prepare('SELECT * FROM api_tokens WHERE revoked_at IS NULL AND user_name = ? ORDER BY id').all(user)
      : this.db.prepare('SELECT * FROM api_tokens WHERE revoked_at IS NULL ORDER BY id').all();
    return (rows as Row[]).map(toToken);
  }

  revoke(id: string): boolean {
    return this.db.prepare('UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id).changes > 0;
  }
}
