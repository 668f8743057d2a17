import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Reporter, TestModule } from 'vitest/node';
import { recordedReasons, SKIP_REASONS_DIR_ENV } from './helpers/skip-reasons.ts';

/**
 * Ends `npm test` with what was skipped and why: each file's skipped tests (by suite), then what
 * this machine lacks (recorded by hasTool, hasOrthanc and the other probes as the files load).
 */
export default class SkipReporter implements Reporter {
  private readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'df-skip-reasons-'));

  onInit(): void {
    process.env[SKIP_REASONS_DIR_ENV] = this.dir;
  }

  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped = new Map<string, Map<string, number>>();
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        if (test.result().state !== 'skipped') continue;
        const file = `${module.project.name ? `[${module.project.name}] ` : ''}${path.relative(process.cwd(), module.moduleId)}`;
        // Counted per outermost suite: that is where a describe.skipIf names what it needs.
        let outer = test.parent;
        while (outer.type === 'suite' && outer.parent.type === 'suite') outer = outer.parent;
        const suite = outer.type === 'suite' ? outer.name : '(file)';
        const bySuite = skipped.get(file) ?? new Map<string, number>();
        bySuite.set(suite, (bySuite.get(suite) ?? 0) + 1);
        skipped.set(file, bySuite);
      }
    }
    const reasons = recordedReasons(this.dir);
    fs.rmSync(this.dir, { recursive: true, force: true });
    if (skipped.size === 0 && reasons.length === 0) return;
    const lines = ['', 'Skipped:'];
    for (const [file, bySuite] of [...skipped].sort(([a], [b]) => a.localeCompare(b))) {
      for (const [suite, n] of bySuite) lines.push(`  ${file} > ${suite}: ${n} test${n === 1 ? '' : 's'}`);
    }
    if (reasons.length > 0) lines.push('Missing on this machine:', ...reasons.map((r) => `  ${r}`));
    else lines.push('Nothing is missing on this machine: these skips belong to the other back end or to the test itself.');
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}
