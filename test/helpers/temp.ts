import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const madeDirs: string[] = [];

/** A fresh temporary directory, removed after the test file (test/setup.ts). */
export function tempDir(prefix = 'dicomflow-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of madeDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}
