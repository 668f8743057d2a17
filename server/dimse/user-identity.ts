import { timingSafeEqual } from 'node:crypto';
import { hashToken, type ApiTokenStore, type Users } from '../../core/users.ts';

/**
 * PS3.7 D.3.3.7 user identities checked against dicomflow's own users: the name must be a
 * configured user, and a passcode, when given, an API token of that user (or the administrator
 * token for "admin"). Tokens are what dicomflow already issues and revokes; no second password
 * store to keep.
 */
export function userIdentityVerifier(o: {
  users: Users;
  tokens: ApiTokenStore;
  adminToken: string;
}): (name: string, passcode: string | undefined) => Promise<boolean> {
  return async (name, passcode) => {
    if (!o.users.has(name)) return false;
    if (passcode === undefined) return true;
    if (name === 'admin' && sameSecret(passcode, o.adminToken)) return true;
    return (await o.tokens.findByHash(hashToken(passcode)))?.user === name;
  };
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
