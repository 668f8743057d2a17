// Issue 17: what an operator reads at start is true. A first start is not an unclean stop, and
// the disabled example pipelines (waiting for a printer or a PACS) are not warnings every time.
import { Writable } from 'node:stream';
import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config/load.ts';
import { startServer } from '../../server/app.ts';
import { tempDir } from '../helpers/temp.ts';

const repoRoot = path.resolve(import.meta.dirname, '../..');

type LogLine = Record<string, unknown>;

/** A server on `dataDir` with the example pipelines, its log lines collected as parsed JSON. */
async function startLogged(dataDir: string): Promise<{ server: Awaited<ReturnType<typeof startServer>>; lines: LogLine[] }> {
  const lines: LogLine[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as LogLine);
      done();
    },
  });
  const file = path.join(dataDir, 'config.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      dataDir,
      pipelinesDir: path.join(repoRoot, 'pipelines'),
      dimse: { port: 0, host: '127.0.0.1' },
      http: { port: 0, host: '127.0.0.1' },
      storage: { minFreeMegabytes: 16 },
    }),
  );
  return { server: await startServer(loadConfig(file), pino({ level: 'info' }, sink)), lines };
}

async function startAndStop(dataDir: string, stop: 'clean' | 'none'): Promise<LogLine[]> {
  const { server, lines } = await startLogged(dataDir);
  if (stop === 'clean') await server.close();
  else {
    // As after kill -9: the server goes, its clean-stop marker is never written.
    const marker = path.join(dataDir, '.clean-stop');
    await server.close();
    fs.rmSync(marker, { force: true });
  }
  return lines;
}

/** Log call sites whose bindings name a `level` key: pino writes its own level first, and a second
 * `"level"` (the query level of a C-FIND) overrides it for every reader, so level filters break. */
function logCallsBindingLevel(dir: string): string[] {
  const found: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.test.ts')) continue;
    const file = path.join(entry.parentPath, entry.name);
    const text = fs.readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\b(?:log|logger|engineLog)\w*\s*\.\s*(?:trace|debug|info|warn|error|fatal|child)\s*\(\s*\{([^}]*)\}/g)) {
      if (/(^|[{,])\s*(?:level\s*[:,]|level\s*$)/.test(m[1])) found.push(`${path.relative(repoRoot, file)}: ${m[0]}`);
    }
  }
  return found;
}

describe('start-up logs', () => {
  it('no log line binds a second "level" key', () => {
    const found = ['server', 'core', 'plugins', 'workers'].flatMap((d) => logCallsBindingLevel(path.join(repoRoot, d)));
    expect(found).toEqual([]);
  });

  it('a first start reports no unclean stop and no warning for the disabled examples; an unclean stop is reported', async () => {
    const dataDir = tempDir('df-start-');
    const first = await startAndStop(dataDir, 'clean');
    expect(first.filter((l) => /unclean stop/.test(String(l.msg)))).toEqual([]);
    expect(first.filter((l) => (l.level as number) >= 40)).toEqual([]);
    const loaded = first.find((l) => l.msg === 'pipelines loaded');
    expect(loaded?.disabledNeedConfiguration).toContain('seed-secondary-capture-print');

    const second = await startAndStop(dataDir, 'none');
    expect(second.filter((l) => /unclean stop/.test(String(l.msg)))).toEqual([]);

    const third = await startAndStop(dataDir, 'clean');
    expect(third.filter((l) => /unclean stop/.test(String(l.msg))).length).toBe(1);
  });

  it('a clean stop whose marker cannot be written (a full disk) still stops everything, and says so', async () => {
    const dataDir = tempDir('df-stop-');
    const { server, lines } = await startLogged(dataDir);
    // What ENOSPC would do, without filling a disk: the marker's path cannot be written.
    fs.mkdirSync(path.join(dataDir, '.clean-stop'));
    await server.close();
    await expect(fetch(`http://127.0.0.1:${server.httpPort}/api/health`)).rejects.toThrow();
    expect(lines.some((l) => l.code === 'DF_ERR_STORE_WRITE' && /clean-stop marker/.test(String(l.msg)))).toBe(true);
  });
});
