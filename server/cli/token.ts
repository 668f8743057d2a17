import os from 'node:os';
import type { ResolvedConfig } from '../../core/config/load.ts';
import { dfError } from '../../core/errors.ts';
import { SqlIndex } from '../../core/store/sql/sql-index.ts';
import { openIndexDatabase } from '../../core/store/sql/open.ts';
import { SqlApiTokens } from '../../core/store/sql/sql-tokens.ts';
import { BOOTSTRAP_ADMIN, issueToken, Users, type ApiToken } from '../../core/users.ts';

/**
 * `dicomflow token create|list|revoke`: API tokens, on the data directory itself (who may write
 * there may already read data/admin-token). A running server sees a new or revoked token at
 * its next request. Listing and revoking need an index already; a first token may come before it.
 */
async function open(config: ResolvedConfig, existing = false) {
  const index = new SqlIndex(await openIndexDatabase(config, { existing }));
  const users = new Users(config.users.some((u) => u.name === BOOTSTRAP_ADMIN.name) ? config.users : [...config.users, BOOTSTRAP_ADMIN]);
  return { index, tokens: new SqlApiTokens(index.connection), users };
}

const actor = () => `${os.userInfo().username} (command line)`;

export async function createToken(
  config: ResolvedConfig,
  user: string,
  description?: string,
): Promise<{ token: string; record: ApiToken }> {
  const { index, tokens, users } = await open(config);
  try {
    if (!users.has(user))
      throw dfError(
        'DF_ERR_USAGE',
        `unknown user "${user}": add it to "users" in the configuration (configured: ${users
          .list()
          .map((u) => u.name)
          .join(', ')})`,
      );
    const made = await issueToken(tokens, users, user, description);
    await index.recordAudit(actor(), 'token-create', { tokenId: made.record.id, for: user });
    return made;
  } finally {
    await index.close();
  }
}

export async function listTokens(config: ResolvedConfig, user?: string): Promise<ApiToken[]> {
  const { index, tokens } = await open(config, true);
  try {
    return await tokens.list(user);
  } finally {
    await index.close();
  }
}

export async function revokeToken(config: ResolvedConfig, id: string): Promise<void> {
  const { index, tokens } = await open(config, true);
  try {
    if (!(await tokens.revoke(id))) throw dfError('DF_ERR_TOKEN_UNKNOWN', `no token ${id} in force`);
    await index.recordAudit(actor(), 'token-revoke', { tokenId: id });
  } finally {
    await index.close();
  }
}
