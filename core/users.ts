import { createHash, randomBytes } from 'node:crypto';
import { dfError } from './errors.ts';

/**
 * Users, roles and per-database rights: the model the HTTP API and the CLI share. A role sets
 * what a user may do to the server; the rights say which databases they may read or write.
 * An admin has every right; a manager moves and copies between the databases granted; an
 * operator runs and reruns jobs; a reader only reads.
 */
export type Role = 'admin' | 'manager' | 'operator' | 'reader';
export type DatabaseRight = 'read' | 'write';

export interface UserDefinition {
  name: string;
  role: Role;
  /** Database name (or "*" for all) → right; write includes read. */
  databases?: Record<string, DatabaseRight>;
}

export class Users {
  private readonly byName: Map<string, UserDefinition>;

  constructor(users: UserDefinition[]) {
    this.byName = new Map(users.map((u) => [u.name, u]));
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  list(): UserDefinition[] {
    return [...this.byName.values()];
  }

  /** The databases (of those given) the user may read. */
  readable(name: string, databases: string[]): string[] {
    return databases.filter((db) => this.may(name, 'read', db));
  }

  get(name: string): UserDefinition {
    const user = this.byName.get(name);
    if (!user) throw dfError('DF_ERR_FORBIDDEN', `unknown user "${name}": add it to "users" in the configuration`);
    return user;
  }

  may(name: string, right: DatabaseRight, database: string): boolean {
    const user = this.byName.get(name);
    if (!user) return false;
    if (user.role === 'admin') return true;
    const granted = user.databases?.[database] ?? user.databases?.['*'];
    return granted === 'write' || granted === right;
  }

  /** Throws DF_ERR_FORBIDDEN naming what is missing. */
  require(name: string, right: DatabaseRight, database: string): void {
    this.get(name);
    if (!this.may(name, right, database))
      throw dfError('DF_ERR_FORBIDDEN', `user "${name}" has no ${right} right on database "${database}"`);
  }

  /** Moving and copying between databases is for managers and admins. */
  requireRole(name: string, roles: Role[]): void {
    const user = this.get(name);
    if (!roles.includes(user.role)) throw dfError('DF_ERR_FORBIDDEN', `user "${name}" is a ${user.role}; this needs ${roles.join(' or ')}`);
  }
}

/**
 * The user of the administrator token that dicomflow writes to <dataDir>/admin-token at first
 * start, unless the configuration defines a user of that name itself.
 */
export const BOOTSTRAP_ADMIN: UserDefinition = { name: 'admin', role: 'admin' };

export interface ApiToken {
  id: string;
  user: string;
  description?: string;
  createdAt: string;
  lastUsedAt?: string;
}

/** API tokens, kept only as hashes: a stolen index does not hand out working tokens. */
export interface ApiTokenStore {
  create(user: string, tokenHash: string, description?: string): Promise<ApiToken>;
  /** The token's record if the hash is known and not revoked; notes the use. */
  findByHash(tokenHash: string): Promise<ApiToken | undefined>;
  list(user?: string): Promise<ApiToken[]>;
  revoke(id: string): Promise<boolean>;
}

/** A token is random (192 bits), so one SHA-256 is enough: there is nothing to brute-force. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export function newTokenSecret(): string {
  return `dft_${randomBytes(24).toString('base64url')}`;
}

/** Makes a token for a configured user; the secret is returned once and never stored. */
export async function issueToken(
  store: ApiTokenStore,
  users: Users,
  user: string,
  description?: string,
): Promise<{ token: string; record: ApiToken }> {
  users.get(user);
  const token = newTokenSecret();
  return { token, record: await store.create(user, hashToken(token), description) };
}
