// Issue 14: a command that reads what a server recorded, pointed at a directory with no index
// (a typo, the wrong disk), says so and fails; it does not leave an empty index there.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');

// No server named: the commands work on the data directory itself.
const { DICOMFLOW_URL: _url, DICOMFLOW_TOKEN: _token, ...withoutServer } = process.env;

describe('CLI on a data directory without an index', () => {
  it('jobs, job, cancel, nodes, outbox and token list fail with DF_ERR_INDEX_MISSING and create nothing', async () => {
    const data = tempDir('df-no-index-');
    const commands = [['jobs'], ['job', 'J1'], ['cancel', 'J1'], ['nodes'], ['outbox'], ['token', 'list']];
    const results = await Promise.all(
      commands.map((args) =>
        run(node, [cli, ...args, '--data', data], { env: withoutServer }).then(
          (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
          (e: { code: number; stdout: string; stderr: string }) => e,
        ),
      ),
    );
    for (const [i, r] of results.entries()) {
      expect(r.code, `${commands[i].join(' ')}: ${r.stdout}${r.stderr}`).toBe(1);
      expect(r.stderr, commands[i].join(' ')).toContain(`DF_ERR_INDEX_MISSING: no index at ${path.join(data, 'index.sqlite')}`);
    }
    expect(fs.readdirSync(data)).toEqual([]);
  });
});
