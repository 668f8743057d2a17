import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]);
}

describe('one direction of flow', () => {
  it('core/ never imports server/, workers/ or plugins/ (news goes up only as events)', () => {
    const offenders = sources('core').flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.startsWith('.'))
        .map((spec) => path.resolve(path.dirname(file), spec))
        .filter((target) => ['server', 'workers', 'plugins'].some((room) => target.startsWith(path.join(root, room) + path.sep)))
        .map((target) => `${path.relative(root, file)} → ${path.relative(root, target)}`),
    );
    expect(offenders).toEqual([]);
  });

  it('plugins/ reach the engine only through core/ (never server/)', () => {
    const offenders = sources('plugins').flatMap((file) =>
      importsOf(file)
        .filter((spec) => spec.includes('/server/'))
        .map((spec) => `${path.relative(root, file)} → ${spec}`),
    );
    expect(offenders).toEqual([]);
  });
});
