/**
 * Hostile files through both file ways in: `dicomflow import` (its own process, beside the
 * running server) and the server's watch folder. Each file must end imported, or refused with
 * a DF_ERR-coded reason; nothing may be written outside the data directory.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileCase, type FileCase } from './file-cases.ts';
import { filesOutsideRoots, openIndex, type FuzzServer } from './harness.ts';
import { ESCAPE_SENTINELS, type Finding } from './dimse-fuzz.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');

export interface FileFuzzReport {
  files: number;
  imported: number;
  refused: number;
  duplicates: number;
  byFamily: Record<string, number>;
  crashes: number;
  filesOutsideRoots: string[];
  findings: Finding[];
  ms: number;
}

function judge(c: FileCase, imported: boolean, reason: string | undefined, way: string, find: (c: FileCase, p: string) => void): void {
  if (!imported && !/DF_ERR_[A-Z_]+/.test(reason ?? '')) find(c, `${way}: refused without a DF_ERR code: ${reason}`);
  if (imported && c.expect === 'fail') find(c, `${way}: imported a bad file`);
  if (!imported && c.expect === 'succeed') find(c, `${way}: refused a valid file: ${reason}`);
}

export async function runFileFuzz(server: FuzzServer, options: { seed: number; files: number; batch?: number }): Promise<FileFuzzReport> {
  const started = Date.now();
  const report: FileFuzzReport = {
    files: 0,
    imported: 0,
    refused: 0,
    duplicates: 0,
    byFamily: {},
    crashes: 0,
    filesOutsideRoots: [],
    findings: [],
    ms: 0,
  };
  const find = (c: FileCase, problem: string) =>
    report.findings.push({ seed: c.seed, index: c.index, family: c.family, what: c.what, problem });
  const batch = options.batch ?? 100;
  const configFile = path.join(server.root, 'config.json');
  const sourceRoot = path.join(server.root, 'data', 'fuzz-import');

  for (let from = 0; from < options.files; from += batch) {
    const cases = Array.from({ length: Math.min(batch, options.files - from) }, (_, i) => fileCase(options.seed, from + i));
    for (const c of cases) report.byFamily[c.family] = (report.byFamily[c.family] ?? 0) + 1;
    const half = Math.ceil(cases.length / 2);
    const viaImport = cases.slice(0, half);
    const viaWatch = cases.slice(half);

    // dicomflow import, on the server's data directory while it runs.
    const dir = path.join(sourceRoot, `batch-${from}`);
    fs.mkdirSync(dir, { recursive: true });
    for (const c of viaImport) fs.writeFileSync(path.join(dir, c.name), c.bytes);
    const result = await run(node, [cli, 'import', dir, '--config', configFile, '--user', 'fuzz'], { maxBuffer: 64 << 20 }).catch(
      (e: { code?: number; stdout?: string; stderr?: string }) => e,
    );
    const { code, stdout = '', stderr = '' } = result as { code?: number; stdout?: string; stderr?: string };
    if (code !== undefined && code !== 0 && code !== 3) {
      report.crashes++;
      report.findings.push({
        seed: options.seed,
        index: viaImport[0].index,
        family: 'import',
        what: `batch ${from}`,
        problem: `dicomflow import exited ${code}: ${stderr.slice(-500)}`,
      });
    } else {
      const refused = new Map<string, string>();
      for (const line of stdout.split('\n')) {
        const m = /^ {2}refused (.*?): (.*)$/.exec(line);
        if (m) refused.set(path.basename(m[1]), m[2]);
      }
      const duplicates = Number(/duplicates: (\d+)/.exec(stdout)?.[1] ?? 0);
      report.duplicates += duplicates;
      for (const c of viaImport) {
        const reason = refused.get(c.name);
        judge(c, reason === undefined, reason, 'import', find);
        if (reason === undefined) report.imported++;
        else report.refused++;
      }
    }

    // The watch folder: files appear whole (written aside, then renamed in).
    const watchBatch = path.join(server.watchDir, `batch-${from}`);
    const staging = path.join(server.root, 'data', 'fuzz-staging', `batch-${from}`);
    fs.mkdirSync(staging, { recursive: true });
    for (const c of viaWatch) fs.writeFileSync(path.join(staging, c.name), c.bytes);
    fs.renameSync(staging, watchBatch);
    const deadline = Date.now() + 60_000;
    const where = (c: FileCase) => {
      const done = path.join(server.watchDir, 'done', `batch-${from}`, c.name);
      const failed = path.join(server.watchDir, 'failed', `batch-${from}`, c.name);
      if (fs.existsSync(done)) return { imported: true };
      if (fs.existsSync(`${failed}.reason.txt`)) return { imported: false, reason: fs.readFileSync(`${failed}.reason.txt`, 'utf8').trim() };
      return undefined;
    };
    while (viaWatch.some((c) => !where(c)) && Date.now() < deadline && !server.exited()) await new Promise((r) => setTimeout(r, 200));
    for (const c of viaWatch) {
      const w = where(c);
      if (!w) {
        find(c, 'watch folder: neither imported nor refused within 60 s');
        continue;
      }
      judge(c, w.imported, w.reason, 'watch folder', find);
      if (w.imported) report.imported++;
      else report.refused++;
    }
    if (server.exited()) {
      report.crashes++;
      report.findings.push({
        seed: options.seed,
        index: viaWatch[0]?.index ?? -1,
        family: 'watch',
        what: `batch ${from}`,
        problem: `the server process ended (${server.exited()})`,
      });
      break;
    }
    // Refused files leave nothing in the index.
    const index = openIndex(server.dataDir);
    try {
      for (const c of cases) {
        if (c.sopInstanceUid === '' || c.expect !== 'fail') continue;
        if (index.objects(c.sopInstanceUid) > 0) find(c, 'a bad file was indexed');
      }
    } finally {
      index.close();
    }
    report.files += cases.length;
  }
  report.filesOutsideRoots = filesOutsideRoots(server.root, ['data', 'watch', 'pipelines', 'config.json'], ESCAPE_SENTINELS);
  report.ms = Date.now() - started;
  return report;
}
