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

const INSERT = 'INSERT INTO api_tokens (id, user_name, token_hash, description, created_at) VALUES (?, ?, ?, ?, ?)';
const BY_HASH = 'SELECT id, user_name, description, created_at, last_used_at FROM api_tokens WHERE token_hash = ? AND revoked_at IS NULL';
const USED = 'UPDATE api_tokens SET last_used_at = ? WHERE id = ?';
const LIST_ALL = 'SELECT id, user_name, description, created_at, last_used_at FROM api_tokens WHERE revoked_at IS NULL ORDER BY id';
const LIST_OF_USER =
  'SELECT id, user_name, description, created_at, last_used_at FROM api_tokens WHERE revoked_at IS NULL AND user_name = ? ORDER BY id';
const REVOKE = 'UPDATE api_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL';

/** API tokens in the index database, shared with the CLI's `dicomflow token`. */
export class SqlApiTokens implements ApiTokenStore {
  private readonly db: SqlDb;

  constructor(db: SqlDb) {
    this.db = db;
  }

  async create(user: string, tokenHash: string, description?: string): Promise<ApiToken> {
    const row: Row = {
      id: newId(),
      user_name: user,
      description: description ?? null,
      created_at: new Date().toISOString(),
      last_used_at: null,
    };
    await this.db.run(INSERT, row.id, user, tokenHash, row.description, row.created_at);
    return toToken(row);
  }

  async findByHash(tokenHash: string): Promise<ApiToken | undefined> {
    const r = await this.db.get<Row>(BY_HASH, tokenHash);
    if (!r) return undefined;
    const now = Date.now();
    if (!r.last_used_at || now - Date.parse(r.last_used_at) > LAST_USED_RESOLUTION_MS) {
      r.last_used_at = new Date(now).toISOString();
      await this.db.run(USED, r.last_used_at, r.id);
    }
    return toToken(r);
  }

  async list(user?: string): Promise<ApiToken[]> {
    const rows = user ? await this.db.read<Row>(LIST_OF_USER, user) : await this.db.read<Row>(LIST_ALL);
    return rows.map(toToken);
  }

  async revoke(id: string): Promise<boolean> {
    return (await this.db.run(REVOKE, new Date().toISOString(), id)).changes > 0;
  }
}
