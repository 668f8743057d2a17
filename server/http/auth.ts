import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { dfError } from '../../core/errors.ts';
import { BOOTSTRAP_ADMIN, hashToken, type ApiTokenStore, type Role, type UserDefinition, type Users } from '../../core/users.ts';

/**
 * The bootstrap token: made at first start, kept in <dataDir>/admin-token (mode 0600), so the
 * one who runs the server can make the other users' tokens (`dicomflow token create`).
 */
export function loadOrCreateAdminToken(dataDir: string): { token: string; file: string; created: boolean } {
  const file = path.join(dataDir, 'admin-token');
  if (fs.existsSync(file)) return { token: fs.readFileSync(file, 'utf8').trim(), file, created: false };
  const token = `dft_${randomBytes(24).toString('base64url')}`;
  // Written aside and linked into place: nodes starting together on one data directory agree
  // on the first token, and none reads a half-written file.
  const aside = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(aside, `${token}\n`, { mode: 0o600, flag: 'wx' });
  try {
    fs.linkSync(aside, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return { token: fs.readFileSync(file, 'utf8').trim(), file, created: false };
  } finally {
    fs.rmSync(aside, { force: true });
  }
  return { token, file, created: true };
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function tokenMatches(presented: string | undefined, expected: string): boolean {
  if (!presented) return false;
  return timingSafeEqual(digest(presented), digest(expected));
}

export function bearerToken(header: string | undefined): string | undefined {
  const m = /^Bearer\s+(\S+)$/i.exec(header ?? '');
  return m?.[1];
}

/** The user a bearer token stands for; rejects with DF_ERR_UNAUTHORIZED. */
export async function authenticate(
  header: string | undefined,
  o: { adminToken: string; tokens: ApiTokenStore; users: Users },
): Promise<UserDefinition> {
  const presented = bearerToken(header);
  if (!presented)
    throw dfError(
      'DF_ERR_UNAUTHORIZED',
      'send "Authorization: Bearer <token>" (a token from `dicomflow token create --user NAME`, or data/admin-token)',
    );
  if (tokenMatches(presented, o.adminToken)) return o.users.has(BOOTSTRAP_ADMIN.name) ? o.users.get(BOOTSTRAP_ADMIN.name) : BOOTSTRAP_ADMIN;
  const record = await o.tokens.findByHash(hashToken(presented));
  if (!record) throw dfError('DF_ERR_UNAUTHORIZED', 'the bearer token is unknown or revoked');
  // A token outlives a user removed from the configuration, but no longer opens anything.
  if (!o.users.has(record.user)) throw dfError('DF_ERR_UNAUTHORIZED', `the token's user "${record.user}" is no longer configured`);
  return o.users.get(record.user);
}

export function requireRole(user: UserDefinition, roles: Role[], action: string): void {
  if (!roles.includes(user.role))
    throw dfError('DF_ERR_FORBIDDEN', `user "${user.name}" is a ${user.role}; ${action} needs ${roles.join(' or ')}`);
}

/** Who may start, rerun and cancel jobs. */
export const RUNS_JOBS: Role[] = ['admin', 'manager', 'operator'];
