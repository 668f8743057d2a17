import fs from 'node:fs';
import path from 'node:path';

const webDir = path.resolve(import.meta.dirname, '../../web');

/** Where the built web page lives (`npm run build:web`, run by `npm ci` through `prepare`). */
export function webRoot(): string {
  return path.join(webDir, 'dist');
}

/**
 * Builds the web page if it is missing (a clone where `npm ci` ran with scripts off), or always
 * with `rebuild` (once per test run, test/web-global-setup.ts, so no test sees a stale build). Sources edited since the
 * last build are not otherwise detected: run `npm run build:web`. Vite is a development
 * dependency: without it the API still runs, and the reason is returned.
 */
export async function ensureWebBuilt(options: { rebuild?: boolean } = {}): Promise<{ built: boolean; error?: string }> {
  if (!options.rebuild && fs.existsSync(path.join(webRoot(), 'index.html'))) return { built: false };
  // Several servers may start at once on a fresh tree (tests): each builds into its own
  // directory and renames it into place, so none serves or deletes another's half-written page.
  const staging = path.join(webDir, `.dist-${process.pid}-${Date.now()}`);
  try {
    const { build } = await import('vite');
    await build({ configFile: path.join(webDir, 'vite.config.ts'), logLevel: 'warn', build: { outDir: staging, emptyOutDir: true } });
    if (options.rebuild) fs.rmSync(webRoot(), { recursive: true, force: true });
    try {
      fs.renameSync(staging, webRoot());
    } catch {
      // Another process put its build in place first: keep that one.
    }
    return { built: true };
  } catch (err) {
    return { built: false, error: (err as Error).message };
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
}
