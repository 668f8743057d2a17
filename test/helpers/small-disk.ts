import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { recordMissing } from './skip-reasons.ts';
import { tempDir } from './temp.ts';

/** Mounting a tmpfs needs root (CI containers and this machine run tests as root). */
export const canMount = process.getuid?.() === 0 && fs.existsSync('/bin/mount');
if (!canMount) recordMissing('mounting a tmpfs (full-disk tests) needs root and /bin/mount');

/** A tmpfs of `mb` MiB at a fresh directory; `unmount` removes it (call it after the test). */
export function smallDisk(mb: number, prefix = 'df-small-disk-'): { dir: string; unmount: () => void } {
  const dir = tempDir(prefix);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { stdio: 'pipe' });
  return {
    dir,
    unmount: () => {
      execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
