import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

function sources(dir: string): string[] {
  return fs
    .readdirSync(path.join(root, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => path.join(e.parentPath, e.name));
}

/**
 * Every module a file reaches by a literal specifier: static imports and re-exports, dynamic
 * `import('…')`, and `new URL('…', import.meta.url)` (how workers and plugins are loaded).
 */
function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [
    ...[...text.matchAll(/^\s*(?:import|export)\s[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]),
    ...[...text.matchAll(/\bimport\(\s*['"`]([^'"`$]+)['"`]\s*\)/g)].map((m) => m[1]),
    ...[...text.matchAll(/\bnew URL\(\s*['"`]([^'"`$]+)['"`]\s*,\s*import\.meta\.url\s*\)/g)].map((m) => m[1]),
  ];
}

/** The files a file reaches inside the repository, as paths relative to it. */
function targetsOf(file: string): string[] {
  return importsOf(file)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => path.relative(root, path.resolve(path.dirname(file), spec)));
}

const rel = (file: string) => path.relative(root, file);

/** The rooms of the flow, in its order: each calls only the next one down, and store/ below them all. */
const FLOW = ['receive', 'arrivals', 'trigger', 'jobs', 'lifecycle'];
const roomOf = (relative: string): string | undefined => {
  const [top, room] = relative.split(path.sep);
  return top === 'core' && (FLOW.includes(room) || room === 'store') ? room : undefined;
};

describe('what importsOf sees', () => {
  it('finds static, dynamic and import.meta.url references', () => {
    const file = path.join(root, 'test', `.architecture-probe-${process.pid}.ts`);
    fs.writeFileSync(
      file,
      [
        "import { a } from './a.ts';",
        "export type { B } from '../b.ts';",
        "const c = await import('./c.ts');",
        "const d = new Worker(new URL('../d.ts', import.meta.url));",
        'const e = await import(somewhere);',
      ].join('\n'),
    );
    try {
      expect(importsOf(file)).toEqual(['./a.ts', '../b.ts', './c.ts', '../d.ts']);
    } finally {
      fs.rmSync(file);
    }
  });
});

describe('one direction of flow', () => {
  it('core/ never imports server/, workers/ or plugins/, statically, dynamically or by URL (news goes up only as events)', () => {
    const offenders = sources('core').flatMap((file) =>
      targetsOf(file)
        .filter((target) => ['server', 'workers', 'plugins'].some((room) => target.startsWith(room + path.sep)))
        .map((target) => `${rel(file)} → ${target}`),
    );
    expect(offenders).toEqual([]);
  });

  it('plugins/ reach the engine only through core/ (never server/)', () => {
    const offenders = sources('plugins').flatMap((file) =>
      targetsOf(file)
        .filter((target) => target.startsWith(`server${path.sep}`))
        .map((target) => `${rel(file)} → ${target}`),
    );
    expect(offenders).toEqual([]);
  });

  it('the rooms of core/ call only down the flow: receive → arrivals → trigger → jobs → lifecycle, store/ below them all', () => {
    const offenders = sources('core')
      .filter((file) => !file.endsWith('.test.ts'))
      .flatMap((file) => {
        const from = roomOf(rel(file));
        if (!from) return [];
        return targetsOf(file).flatMap((target) => {
          const to = roomOf(target);
          if (!to || to === from || to === 'store') return [];
          // store/ is below every room; a room reaches only the next one down.
          const allowed = from !== 'store' && FLOW.indexOf(to) === FLOW.indexOf(from) + 1;
          return allowed ? [] : [`core/${from} → ${target}`];
        });
      });
    expect(offenders).toEqual([]);
  });

  it('the rooms exist and hold what the flow says', () => {
    for (const room of [...FLOW, 'store']) expect(fs.existsSync(path.join(root, 'core', room)), `core/${room}/`).toBe(true);
    expect(fs.existsSync(path.join(root, 'core/lifecycle/recovery.ts'))).toBe(true);
    // One interface per stage of the flow's durable state.
    for (const stage of ['arrival-queue', 'trigger-groups', 'job-queue', 'object-lifecycle'])
      expect(fs.existsSync(path.join(root, `core/store/${stage}.ts`)), stage).toBe(true);
  });
});

describe('server/app.ts only wires', () => {
  const app = path.join(root, 'server/app.ts');
  const text = fs.readFileSync(app, 'utf8');

  it('holds no SQL and runs no statement', () => {
    expect(text).not.toMatch(/\b(SELECT\s[\s\S]*?\sFROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+(TABLE|INDEX))\b/);
    expect(text).not.toMatch(/\b(db|connection)\.(run|get|all|read|exec|transaction)\(/);
  });

  it('opens the database through the factory and constructs stores, never a driver or the stores’ SQL helpers', () => {
    const sqlModules = targetsOf(app)
      .filter((t) => t.startsWith(path.join('core', 'store', 'sql') + path.sep))
      .map((t) => path.basename(t));
    expect(sqlModules.filter((m) => !(m === 'open.ts' || /^sql-[a-z-]+\.ts$/.test(m)))).toEqual([]);
    expect(sqlModules.filter((m) => m === 'sql-db.ts')).toEqual([]);
  });

  it('leaves recovery and the free-space guard to core/lifecycle (it checks no file itself)', () => {
    expect(targetsOf(app)).toEqual(
      expect.arrayContaining([path.join('core', 'lifecycle', 'recovery.ts'), path.join('core', 'lifecycle', 'free-space.ts')]),
    );
    expect(text).not.toMatch(/\bstatSync\(|\bstatfs\(|\.freeBytes\(\)|recentObjects\(|markObjectLost\(/);
  });
});
