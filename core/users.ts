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
    if (!this.may(name, right, database)) throw dfError('DF_ERR_FORBIDDEN', `user "${name}" has no ${right} right on database "${database}"`);
  }

  /** Moving and copying between databases is for managers and admins. */
  requireRole(name: string, roles: Role[]): void {
    const user = this.get(name);
    if (!roles.includes(user.role)) throw dfError('DF_ERR_FORBIDDEN', `user "${name}" is a ${user.role}; this needs ${roles.join(' or ')}`);
  }
}
