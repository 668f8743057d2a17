/**
 * `npm run proof`: the long version of issue 8's attacks, with the figures for the README.
 *
 *   - the DIMSE and file fuzzers (test/fuzz/run.ts): thousands of generated hostile cases
 *     against a real server process;
 *   - the full-disk, worker-out-of-memory, hostile-configuration and TLS tests (vitest);
 *   - HTTP access (test/integration/http-access.test.ts): every registered route without a
 *     token, and each API path spelt 44 ways, as sent and as HEAD; a reply other than 401 or
 *     the fixed 404, or no reply, is a failure;
 *   - the DICOM port's doors (test/proof/dimse-doors.ts): connections that never associate,
 *     idle associations from one host, commands without their data sets (or cut short, or
 *     unreadable), a throwing arrival listener; no reply is a failure in each;
 *   - the kill -9 fault injection (test/proof/crash-harness.ts): SIGKILLs at seeded random
 *     moments while senders push and store, DICOMDIR, route and a worker step run; then the
 *     same on a cluster (2 nodes on one PostgreSQL index of its own and one data directory, a
 *     3 s lease): each kill takes a random node, which restarts under its name a while later;
 *   - the sustained load (bench/load.ts): 8 senders with a series trigger firing.
 *
 * Options: --seed N (default: today's date, printed, so a run is replayed with it), --cases N
 * (DIMSE cases, default 5000), --files N (hostile files, default 800), --kill-points N (default
 * 20), --cluster-kill-points N (default 12), --load-minutes M (default 10; 0 skips it), --out
 * FILE (JSON report).
 * Exits 1 if anything failed.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';

const repo = path.resolve(import.meta.dirname, '..');
const node = fs.existsSync(path.join(repo, 'node_modules/.bin/node')) ? path.join(repo, 'node_modules/.bin/node') : process.execPath;
const today = Number(new Date().toISOString().slice(0, 10).replace(/-/g, ''));
const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: String(today) },
    cases: { type: 'string', default: '5000' },
    files: { type: 'string', default: '800' },
    'kill-points': { type: 'string', default: '20' },
    'cluster-kill-points': { type: 'string', default: '12' },
    'load-minutes': { type: 'string', default: '10' },
    out: { type: 'string', default: path.join(os.tmpdir(), 'dicomflow-proof-report.json') },
  },
});

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string; seconds: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(node, args, { cwd: repo, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      process.stderr.write(d);
    });
    child.on('exit', (code) => resolve({ code: code ?? 1, stdout, stderr, seconds: Math.round((Date.now() - started) / 1000) }));
  });
}

/**
 * The DICOM port's rows (test/proof/dimse-doors.ts): what each kind of careless or hostile peer
 * met, counted; "no reply" (still open and silent at the deadline) is a failure there.
 */
function dimseDoorsRows(x: Record<string, any>): string[] {
  const counts = (o: Record<string, number>) =>
    Object.entries(o)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
  const kinds = Object.entries(x.commands.byCase as Record<string, Record<string, number>>)
    .map(([name, o]) => `${name}: ${counts(o)}`)
    .join('; ');
  return [
    `| slow connections: ${x.slow.connections} that never associate (${x.slow.silent} silent, ${x.slow.partialRequest} with part of an A-ASSOCIATE-RQ), ARTIM ${x.timerSeconds} s | ${counts(x.slow.endings)}; all closed after ${x.slow.secondsToAllClosed} s |`,
    `| idle associations: one host opens ${x.idle.associations} and sends nothing (idle timer ${x.timerSeconds} s, ${x.maxAssociationsPerPeer} per peer of ${x.maxAssociations}) | accepted ${x.idle.accepted}, rejected "local limit exceeded" ${x.idle.rejectedLocalLimit}, otherwise ${x.idle.rejectedOtherwise}; another host let in meanwhile: ${x.idle.otherHostAccepted ? 'yes' : 'NO'}; ended: ${counts(x.idle.endings)} after ${x.idle.secondsToAllEnded} s |`,
    `| commands without their data sets, cut short or unreadable (${x.commands.cases} kinds × ${x.commands.rounds}, DIMSE timer ${x.timerSeconds} s) | ${kinds}; partial files left ${x.commands.partialFilesLeft} |`,
    `| an arrival listener that throws, ${x.listener.objects} C-STOREs | statuses ${counts(x.listener.statuses)}; indexed ${x.listener.indexed}; the listener threw ${x.listener.listenerThrew} times |`,
  ];
}

/** The "cluster kills" row: test/proof/crash-harness.ts --nodes, its figures in words. */
function clusterCrashRow(c: Record<string, any>): string {
  const byNode = Object.entries(c.killsByNode as Record<string, number>)
    .map(([node, n]) => `${node} ${n}`)
    .join(', ');
  const j = c.jobs;
  const t = c.triggers;
  return (
    `| cluster kills: kill -9 of a random node of 2 (one PostgreSQL index, one data directory, lease 3 s) while 4 senders push to both and the same pipelines run | ` +
    `${c.killPoints} kills (${byNode}; +${c.killsDuringStartup} during restarts) in ${Math.round(c.durationMs / 1000)} s: ${c.objectsAcknowledged} objects acknowledged, lost ${c.lost}, indexed twice ${c.duplicatedInIndex}, corrupt ${c.corrupt}; ` +
    `jobs ${j.total}, interrupted ${j.interrupted} (taken over by the other node ${j.takenOver}, requeued at restart ${j.requeuedAtRestart}), completed ${j.interruptedCompleted}, failed ${j.failed}, stuck ${j.stuck}; ` +
    `series groups fired ${t.seriesGroupsFired} (jobs ${t.seriesJobs}, fired twice ${t.seriesRefired}), arrivals matched twice ${t.instanceJobsTwice}; ` +
    `outbox owed ${c.outbox.owed}, delivered ${c.outbox.delivered}; DICOMDIR ${c.dicomdir.valid ? 'valid' : 'INVALID'}, missing ${c.dicomdir.missing}; JPEGs missing ${c.workerStep.missing}; problems ${c.problems.length} |`
  );
}

/**
 * The "API paths spelt many ways" row (test/integration/http-access.test.ts): each guarded API
 * route in 44 spellings, as sent and as HEAD, without a token. Refused means 401, or the fixed
 * 404 with nothing of the request in it; any other answer, and no answer, is a failure.
 */
function httpSpellingsRow(h: { routes: number; requests: number; byStatus: Record<string, number>; failures: string[] }): string {
  const statuses = Object.entries(h.byStatus)
    .map(([status, n]) => `${status === 'none' ? 'no reply' : status} ${n}`)
    .join(', ');
  return `| API paths spelt many ways without a token (percent-escapes, double escapes, escaped slashes, case, dot segments, trailing and doubled slashes, \`;\` parameters, queries, the absolute form) on every guarded route | ${h.requests} requests over ${h.routes} routes: ${statuses}; not refused ${h.failures.length} |`;
}

interface VitestSummary {
  passed: number;
  failed: number;
  skipped: number;
  failures: string[];
}

async function vitest(files: string[], env: NodeJS.ProcessEnv = {}): Promise<VitestSummary & { seconds: number }> {
  const report = path.join(os.tmpdir(), `dicomflow-proof-${process.pid}-${Date.now()}.json`);
  const r = await run(
    [path.join(repo, 'node_modules/vitest/vitest.mjs'), 'run', ...files, '--reporter=json', `--outputFile=${report}`],
    env,
  );
  try {
    const json = JSON.parse(fs.readFileSync(report, 'utf8')) as {
      numPassedTests: number;
      numFailedTests: number;
      numPendingTests: number;
      testResults: { assertionResults: { fullName: string; status: string; failureMessages: string[] }[] }[];
    };
    const failures = json.testResults.flatMap((f) =>
      f.assertionResults.filter((a) => a.status === 'failed').map((a) => `${a.fullName}: ${a.failureMessages[0]?.split('\n')[0]}`),
    );
    return { passed: json.numPassedTests, failed: json.numFailedTests, skipped: json.numPendingTests, failures, seconds: r.seconds };
  } catch {
    return {
      passed: 0,
      failed: 1,
      skipped: 0,
      failures: [`vitest did not report (exit ${r.code}): ${r.stderr.slice(-400)}`],
      seconds: r.seconds,
    };
  } finally {
    fs.rmSync(report, { force: true });
  }
}

const seed = Number(values.seed);
console.error(`proof: seed ${seed}, ${values.cases} DIMSE cases, ${values.files} files`);
const figuresDir = fs.mkdtempSync(path.join(os.tmpdir(), 'dicomflow-proof-'));

const fuzzRun = await run([path.join(repo, 'test/fuzz/run.ts'), '--seed', String(seed), '--cases', values.cases, '--files', values.files]);
let fuzz: { dimse: Record<string, any>; files: Record<string, any> } | undefined;
try {
  fuzz = JSON.parse(fuzzRun.stdout);
} catch {
  fuzz = undefined;
}

const suites: Record<string, string[]> = {
  'full disk and worker out of memory': ['test/integration/full-disk.test.ts', 'test/integration/worker-oom.test.ts'],
  'hostile configuration and pipelines': ['test/integration/hostile-config.test.ts'],
  'transport security (TLS, user identity)': ['test/integration/tls.test.ts'],
  'HTTP access on the matched route': ['test/integration/http-access.test.ts'],
};
// Other parts of issue 8 (kill -9 fault injection, hostile HTTP), run when they are there.
const proofDir = path.join(repo, 'test/proof');
for (const file of fs.existsSync(proofDir) ? fs.readdirSync(proofDir).filter((f) => f.endsWith('.test.ts')) : []) {
  suites[file.replace(/\.test\.ts$/, '')] = [path.join('test/proof', file)];
}
for (const file of ['test/integration/hostile-http.test.ts']) {
  if (fs.existsSync(path.join(repo, file))) suites[path.basename(file, '.test.ts')] = [file];
}
const doorsRun = await run([path.join(repo, 'test/proof/dimse-doors.ts'), '--json']);
const crashRun = await run([
  path.join(repo, 'test/proof/crash-harness.ts'),
  '--kill-points',
  values['kill-points'],
  '--senders',
  '6',
  '--per-sender',
  '200',
  '--seed',
  String(seed),
  '--json',
]);
const clusterCrashRun = await run([
  path.join(repo, 'test/proof/crash-harness.ts'),
  ...[
    '--nodes',
    'node-a,node-b',
    '--lease-seconds',
    '3',
    '--kill-points',
    values['cluster-kill-points'],
    '--senders',
    '4',
    '--per-sender',
    '150',
    '--seed',
    String(seed),
    '--json',
  ],
]);
const figuresOf = (r: { stdout: string }): Record<string, any> | undefined => {
  try {
    return JSON.parse(r.stdout);
  } catch {
    return undefined;
  }
};
const doors = figuresOf(doorsRun);
const crash = figuresOf(crashRun);
const clusterCrash = figuresOf(clusterCrashRun);
const loadMinutes = Number(values['load-minutes']);
const loadRun = loadMinutes > 0 ? await run([path.join(repo, 'bench/run.ts'), 'load', '--minutes', String(loadMinutes)]) : undefined;

const results: Record<string, VitestSummary & { seconds: number }> = {};
for (const [name, files] of Object.entries(suites)) results[name] = await vitest(files, { DF_PROOF_DIR: figuresDir });
const fullDisk = fs.existsSync(path.join(figuresDir, 'full-disk.json'))
  ? JSON.parse(fs.readFileSync(path.join(figuresDir, 'full-disk.json'), 'utf8'))
  : undefined;
const httpSpellings = fs.existsSync(path.join(figuresDir, 'http-spellings.json'))
  ? JSON.parse(fs.readFileSync(path.join(figuresDir, 'http-spellings.json'), 'utf8'))
  : undefined;
fs.rmSync(figuresDir, { recursive: true, force: true });

const d = fuzz?.dimse;
const f = fuzz?.files;
const lines = [
  `## Proof (seed ${seed}, ${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores)`,
  '',
  '| attack | figures |',
  '|---|---|',
  d
    ? `| DIMSE fuzz (${Object.keys(d.byFamily).length} families) | ${d.cases} cases in ${Math.round(d.ms / 1000)} s: answers ${Object.entries(
        d.answers,
      )
        .map(([k, v]) => `${k} ${v}`)
        .join(
          ', ',
        )}; crashes ${d.crashes}; findings ${d.findings.length}; objects acknowledged ${d.acknowledged}, lost ${d.lost}, duplicated ${d.duplicated}; refused but indexed ${d.refusedButIndexed}; files outside roots ${d.filesOutsideRoots.length} |`
    : `| DIMSE fuzz | did not report (exit ${fuzzRun.code}) |`,
  f
    ? `| hostile files (import + watch folder) | ${f.files} files in ${Math.round(f.ms / 1000)} s: imported ${f.imported}, refused with a DF_ERR code ${f.refused}; crashes ${f.crashes}; findings ${f.findings.length}; files outside roots ${f.filesOutsideRoots.length} |`
    : '| hostile files | did not report |',
  fullDisk
    ? `| full disk (tmpfs) | ${fullDisk.sent} objects sent: ${fullDisk.acknowledged} acknowledged, ${fullDisk.refusedA7xx} refused A700 (${fullDisk.refusedByReserve} by the free-space reserve, ${fullDisk.refusedByEnospc} on ENOSPC), lost ${fullDisk.lost}; ${fullDisk.acceptedAfterSpaceReturned} accepted after space returned |`
    : '| full disk (tmpfs) | no figures (not root, or the test failed) |',
  httpSpellings
    ? httpSpellingsRow(httpSpellings)
    : '| API paths spelt many ways, no token | did not report (the test failed before its figures) |',
  ...(doors
    ? dimseDoorsRows(doors)
    : [
        `| DICOM port: slow and idle connections, commands without data sets, a throwing listener | did not report (exit ${doorsRun.code}) |`,
      ]),
  crash
    ? `| kill -9 while 6 senders push and store, DICOMDIR, route and a worker step run | ${crash.killPoints} kills (+${crash.killsDuringStartup} during restarts) in ${Math.round(crash.durationMs / 1000)} s: ${crash.objectsAcknowledged} objects acknowledged, lost ${crash.lost}, indexed twice ${crash.duplicatedInIndex}, corrupt ${crash.corrupt}; jobs interrupted ${crash.jobs.interrupted}, completed ${crash.jobs.interruptedCompleted}, stuck ${crash.jobs.stuck}; outbox owed ${crash.outbox.owed}, delivered ${crash.outbox.delivered}; DICOMDIR ${crash.dicomdir.valid ? 'valid' : 'INVALID'}, missing ${crash.dicomdir.missing}; problems ${crash.problems.length} |`
    : `| kill -9 fault injection | did not report (exit ${crashRun.code}) |`,
  clusterCrash ? clusterCrashRow(clusterCrash) : `| cluster kills | did not report (exit ${clusterCrashRun.code}) |`,
  loadRun
    ? `| sustained load, ${loadMinutes} min (bench/load.ts) | exit ${loadRun.code}; its table is printed below |`
    : '| sustained load | skipped (--load-minutes 0) |',
  ...Object.entries(results).map(
    ([name, r]) => `| ${name} | ${r.passed} passed, ${r.failed} failed, ${r.skipped} skipped (${r.seconds} s) |`,
  ),
];
if (loadRun) lines.push('', loadRun.stdout.trim());
console.log(lines.join('\n'));
const findings = [...(d?.findings ?? []), ...(f?.findings ?? [])];
for (const x of findings.slice(0, 30)) console.log(`finding: seed ${x.seed} case ${x.index} (${x.family}: ${x.what}): ${x.problem}`);
for (const [name, r] of Object.entries(results)) for (const failure of r.failures) console.log(`failed (${name}): ${failure}`);
for (const failure of httpSpellings?.failures.slice(0, 30) ?? []) console.log(`failed (API path without a token): ${failure}`);
for (const problem of doors?.problems ?? []) console.log(`failed (DICOM port): ${problem}`);
for (const problem of crash?.problems ?? []) console.log(`failed (kill -9): ${problem}`);
for (const problem of clusterCrash?.problems ?? []) console.log(`failed (cluster kills): ${problem}`);
fs.writeFileSync(
  values.out,
  JSON.stringify({ seed, fuzz, fullDisk, httpSpellings, doors, crash, clusterCrash, load: loadRun?.stdout, suites: results }, null, 2),
);
console.error(`report written to ${values.out}`);

const ok =
  fuzz !== undefined &&
  findings.length === 0 &&
  d!.filesOutsideRoots.length === 0 &&
  f!.filesOutsideRoots.length === 0 &&
  httpSpellings !== undefined &&
  httpSpellings.failures.length === 0 &&
  doors !== undefined &&
  doors.problems.length === 0 &&
  crash !== undefined &&
  crash.problems.length === 0 &&
  clusterCrash !== undefined &&
  clusterCrash.problems.length === 0 &&
  (loadRun === undefined || loadRun.code === 0) &&
  Object.values(results).every((r) => r.failed === 0);
process.exitCode = ok ? 0 : 1;
