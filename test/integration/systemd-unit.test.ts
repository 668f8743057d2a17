// Issue 17: the systemd unit the deployment guide ships is one systemd accepts as written.
import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp.ts';
import { recordMissing } from '../helpers/skip-reasons.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const hasSystemd = (() => {
  try {
    execFileSync('systemd-analyze', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    recordMissing('systemd-analyze is not installed (Debian: systemd)');
    return false;
  }
})();

describe.skipIf(!hasSystemd)('docs/dicomflow.service', () => {
  it('passes systemd-analyze verify with no warning about it', async () => {
    // The unit names /opt/dicomflow; verify checks that ExecStart's program exists, so point it here.
    const dir = tempDir('df-unit-');
    const unit = path.join(dir, 'dicomflow.service');
    fs.writeFileSync(unit, fs.readFileSync(path.join(repo, 'docs/dicomflow.service'), 'utf8').replaceAll('/opt/dicomflow', repo));
    const { stderr } = await promisify(execFile)('systemd-analyze', ['verify', unit]);
    expect(stderr.split('\n').filter((line) => line.includes('dicomflow.service'))).toEqual([]);
  });

  it('is the unit the deployment guide shows', () => {
    const guide = fs.readFileSync(path.join(repo, 'docs/deployment.md'), 'utf8');
    const unitBody = fs
      .readFileSync(path.join(repo, 'docs/dicomflow.service'), 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('#') && l.trim() !== '');
    for (const line of unitBody) expect(guide).toContain(line);
  });
});
