import fs from 'node:fs';
import path from 'node:path';

/** Set by the skip reporter for the whole run; the test processes inherit it. */
export const SKIP_REASONS_DIR_ENV = 'DF_TEST_SKIP_REASONS_DIR';

/**
 * Records why something a test needs is missing on this machine (a peer tool, a capability),
 * so that `npm test` can end with the suites it skipped and why: missing peers cannot hide
 * coverage. One file per reason, so concurrent test processes never interleave.
 */
export function recordMissing(reason: string): void {
  const dir = process.env[SKIP_REASONS_DIR_ENV];
  if (!dir) return;
  const name = Buffer.from(reason).toString('base64url').slice(0, 200);
  fs.writeFileSync(path.join(dir, name), reason);
}

export function recordedReasons(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .map((f) => fs.readFileSync(path.join(dir, f), 'utf8'))
    .sort();
}
