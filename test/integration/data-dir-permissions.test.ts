// Patient data on disk is the server user's only: the data directory 0700, files 0600 (as
// PostgreSQL keeps its data directory), whatever umask the server or the CLI was started with.
import fs from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config/load.ts';
import { startServer } from '../../server/app.ts';
import { importCommand } from '../../server/cli/import.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { hasTool, storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const startedWith = process.umask();
afterAll(() => {
  process.umask(startedWith);
});

const modeOf = (p: string) => fs.statSync(p).mode & 0o777;

/** Every directory and file under root, with its mode. */
function modes(root: string): { dirs: Map<string, number>; files: Map<string, number> } {
  const dirs = new Map<string, number>([[root, modeOf(root)]]);
  const files = new Map<string, number>();
  for (const entry of fs.readdirSync(root, { recursive: true, withFileTypes: true })) {
    const p = path.join(entry.parentPath, entry.name);
    if (entry.isDirectory()) dirs.set(p, modeOf(p));
    else if (entry.isFile()) files.set(p, modeOf(p));
  }
  return { dirs, files };
}

describe.skipIf(!hasTool('storescu'))('data directory permissions', () => {
  const servers: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.close();
  });

  it('a server started with umask 022 creates the data directory 0700 and its files 0600', async () => {
    process.umask(0o022);
    const dataDir = path.join(tempDir(), 'fresh', 'data');
    const server = await startTestServer({ dataDir, index: { backend: 'sqlite' } });
    servers.push(server);
    const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32 });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...ct.files])).code).toBe(0);
    await server.engine.idle();

    expect(modeOf(dataDir)).toBe(0o700);
    const { dirs, files } = modes(dataDir);
    const objects = [...files.keys()].filter((f) => f.endsWith('.dcm'));
    expect(objects).toHaveLength(2);
    expect(files.get(path.join(dataDir, 'index.sqlite'))).toBe(0o600);
    expect(dirs.get(path.join(dataDir, 'storage'))).toBe(0o700);
    for (const [dir, mode] of dirs) expect(mode, dir).toBe(0o700);
    for (const [file, mode] of files) expect(mode, file).toBe(0o600);
  });

  it('dicomflow import with umask 022 creates a new data directory 0700 and its files 0600', async () => {
    process.umask(0o022);
    const dataDir = path.join(tempDir(), 'imported');
    const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32 });
    const summary = await importCommand(loadConfig(undefined, { dataDir }), path.dirname(ct.files[0]), undefined, 'tester');
    expect(summary.imported).toBe(2);
    const { dirs, files } = modes(dataDir);
    expect([...files.keys()].filter((f) => f.endsWith('.dcm'))).toHaveLength(2);
    expect(files.get(path.join(dataDir, 'index.sqlite'))).toBe(0o600);
    for (const [dir, mode] of dirs) expect(mode, dir).toBe(0o700);
    for (const [file, mode] of files) expect(mode, file).toBe(0o600);
  });

  it('a start on an existing data directory that others may read warns once, with its code', async () => {
    const dataDir = path.join(tempDir(), 'wide');
    fs.mkdirSync(dataDir);
    fs.chmodSync(dataDir, 0o755);
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
        done();
      },
    });
    const configFile = path.join(tempDir(), 'config.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        dataDir,
        dimse: { port: 0, host: '127.0.0.1' },
        http: { port: 0, host: '127.0.0.1' },
        storage: { minFreeMegabytes: 16 },
      }),
    );
    const server = await startServer(loadConfig(configFile), pino({ level: 'warn' }, sink));
    servers.push(server);
    const warnings = lines.filter((l) => l.code === 'DF_ERR_DATA_DIR_PERMISSIONS');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ dataDir, mode: '0755' });
    // Left as it was: the operator decides.
    expect(modeOf(dataDir)).toBe(0o755);
  });
});
