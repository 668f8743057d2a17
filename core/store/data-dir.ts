import fs from 'node:fs';

/** Patient data is for the server's user only, as PostgreSQL keeps its data directory. */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/**
 * Creates the data directory 0700 (and any missing parent), or finds it. `openMode` is the mode
 * of an existing directory that other users may read or enter: the caller warns, but leaves it
 * (a shared directory on a cluster may be group-readable on purpose).
 */
export function prepareDataDir(dir: string): { created: boolean; openMode?: number } {
  const created = !fs.existsSync(dir);
  fs.mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  if (created) return { created };
  const mode = fs.statSync(dir).mode & 0o777;
  return { created, openMode: mode & 0o077 ? mode : undefined };
}

/** Creates an empty file 0600 unless it exists, so that what opens it next keeps that mode. */
export function createPrivateFile(file: string): void {
  fs.closeSync(fs.openSync(file, 'a', PRIVATE_FILE_MODE));
}
