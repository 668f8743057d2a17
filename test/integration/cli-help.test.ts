// Issue 17: the CLI answers --version and `<command> --help` as DCMTK's and Orthanc's tools do.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');
const commands = [
  'serve',
  'validate',
  'jobs',
  'job',
  'rerun',
  'cancel',
  'run',
  'token',
  'force-complete',
  'import',
  'move',
  'copy',
  'replicate',
  'outbox',
  'nodes',
];

describe('CLI help and version', () => {
  it('prints the package version', async () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(repo, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) expect((await run(node, [cli, flag])).stdout.trim()).toBe(version);
  });

  it('prints each command’s own usage for --help and -h, exiting 0 without touching any data', async () => {
    const results = await Promise.all(commands.map((c) => run(node, [cli, c, c === 'token' ? '-h' : '--help'], { cwd: repo })));
    for (const [i, r] of results.entries()) {
      expect(r.stdout, commands[i]).toMatch(new RegExp(`^Usage:\\n  dicomflow ${commands[i]} `));
      expect(r.stderr, commands[i]).toBe('');
    }
  });

  it('lists every command in the general usage', async () => {
    const { stdout } = await run(node, [cli, '--help']);
    for (const c of commands) expect(stdout).toContain(`dicomflow ${c} `);
  });

  it('move without --user, as a login that is no configured user, says --user is needed (usage, exit 2)', async () => {
    const dir = tempDir('df-cli-user-');
    const config = path.join(dir, 'config.json');
    fs.writeFileSync(config, JSON.stringify({ dataDir: path.join(dir, 'data'), databases: [{ name: 'Import' }, { name: 'StudyA' }] }));
    const failed = (await run(node, [cli, 'move', '--config', config, '--from', 'Import', '--to', 'StudyA', '1.2.3']).catch((e) => e)) as {
      code: number;
      stderr: string;
    };
    expect(failed.code).toBe(2);
    expect(failed.stderr).toContain(
      `--user NAME is needed: your login name "${os.userInfo().username}" is not a user of the configuration`,
    );
  });
});
