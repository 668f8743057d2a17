import { randomBytes, createHash, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

/**
 * Until users and roles exist, one administrator token guards the API: made at first start,
 * kept in <dataDir>/admin-token (mode 0600), compared by hash in constant time.
 */
export function loadOrCreateAdminToken(dataDir: string): { token: string; file: string; created: boolean } {
  const file = path.join(dataDir, 'admin-token');
  if (fs.existsSync(file)) return { token: fs.readFileSync(file, 'utf8').trim(), file, created: false };
  const token = `dft_${randomBytes(24).toString('base64url')}`;
  fs.writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
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
