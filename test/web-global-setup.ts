import { ensureWebBuilt } from '../server/http/web.ts';

/**
 * The web page is built once for the run, before any test file starts: the browser tests see
 * the current sources, and no test rebuilds web/dist while another's server serves it (a rebuild
 * removes the directory for a moment, and a server starting then registers no page routes).
 */
export async function setup(): Promise<void> {
  const built = await ensureWebBuilt({ rebuild: true });
  if (built.error) throw new Error(`the web page does not build: ${built.error}`);
}
