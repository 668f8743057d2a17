/**
 * The DIMSE fuzz loop: cases in batches, and after every batch the invariants a hostile peer
 * must not break: the server process lives and answers C-ECHO, every refusal was logged with a
 * DF_ERR code, every acknowledged object is indexed exactly once and no refused one at all, and
 * no file appeared outside the data directory.
 */
import { dimseCase, type DimseCase } from './dimse-cases.ts';
import { echo, runCase, storeBait, type CaseOutcome } from './dimse-runner.ts';
import { filesOutsideRoots, openIndex, type FuzzServer, type LogLine } from './harness.ts';

export interface Finding {
  seed: number;
  index: number;
  family: string;
  what: string;
  problem: string;
}

export interface FuzzReport {
  cases: number;
  byFamily: Record<string, number>;
  answers: Record<string, number>;
  acknowledged: number;
  lost: number;
  duplicated: number;
  /** Refused objects that were indexed anyway. */
  refusedButIndexed: number;
  crashes: number;
  filesOutsideRoots: string[];
  findings: Finding[];
  ms: number;
}

export interface DimseFuzzOptions {
  seed: number;
  cases: number;
  /** Cases between invariant checks. */
  batch?: number;
  /** Replay only these case indexes. */
  only?: number[];
  onBatch?: (done: number, report: FuzzReport) => void;
}

export const ESCAPE_SENTINELS = ['/tmp/dffuzz-escape', '/tmp/x', '/x'];

function logged(lines: LogLine[], o: CaseOutcome): boolean {
  const ids = new Set(lines.filter((l) => l.peerPort === o.localPort && typeof l.associationId === 'string').map((l) => l.associationId));
  const uid = o.case.kind === 'store' ? o.case.sopInstanceUid : undefined;
  return lines.some(
    (l) =>
      typeof l.code === 'string' &&
      l.code.startsWith('DF_ERR_') &&
      (l.peerPort === o.localPort ||
        (l.associationId !== undefined && ids.has(l.associationId)) ||
        (uid !== undefined && uid !== '' && l.sopInstanceUid === uid)),
  );
}

export async function runDimseFuzz(server: FuzzServer, options: DimseFuzzOptions): Promise<FuzzReport> {
  const started = Date.now();
  const target = { host: server.host, port: server.port };
  const report: FuzzReport = {
    cases: 0,
    byFamily: {},
    answers: {},
    acknowledged: 0,
    lost: 0,
    duplicated: 0,
    refusedButIndexed: 0,
    crashes: 0,
    filesOutsideRoots: [],
    findings: [],
    ms: 0,
  };
  const indexes = options.only ?? Array.from({ length: options.cases }, (_, i) => i);
  const batchSize = options.batch ?? 25;
  const find = (c: DimseCase, problem: string) =>
    report.findings.push({ seed: c.seed, index: c.index, family: c.family, what: c.what, problem });

  await storeBait(target, options.seed);
  let seenLines = 0;
  for (let from = 0; from < indexes.length; from += batchSize) {
    const outcomes: CaseOutcome[] = [];
    for (const index of indexes.slice(from, from + batchSize)) {
      const c = dimseCase(options.seed, index);
      let outcome: CaseOutcome;
      try {
        outcome = await runCase(c, target);
      } catch (err) {
        find(c, `the case could not run: ${(err as Error).message}`);
        continue;
      }
      outcomes.push(outcome);
      if (server.exited()) break;
    }
    // Silence is never an answer: each case met with it waits (in parallel) for the server's
    // timers to end what it left open.
    await Promise.all(outcomes.map((o) => o.settle?.()));
    for (const outcome of outcomes) {
      const c = outcome.case;
      report.cases++;
      report.byFamily[c.family] = (report.byFamily[c.family] ?? 0) + 1;
      report.answers[outcome.answer] = (report.answers[outcome.answer] ?? 0) + 1;
      if (outcome.problem) find(c, outcome.problem);
    }

    // The invariants, once per batch.
    const exit = server.exited();
    if (exit) {
      report.crashes++;
      const last = outcomes.at(-1)?.case;
      report.findings.push({
        seed: options.seed,
        index: last?.index ?? -1,
        family: last?.family ?? '?',
        what: last?.what ?? '?',
        problem: `the server process ended (${exit})`,
      });
      break;
    }
    try {
      await echo(target);
    } catch (err) {
      const last = outcomes.at(-1)?.case;
      report.findings.push({
        seed: options.seed,
        index: last?.index ?? -1,
        family: 'batch',
        what: `after cases ${indexes[from]}..${last?.index}`,
        problem: `C-ECHO failed: ${(err as Error).message}`,
      });
    }
    // Refusals are logged before the answer is written; a short wait lets stdout catch up.
    await new Promise((r) => setTimeout(r, 150));
    const lines = server.logs();
    // The process survives an unhandled rejection (it logs it), but such a line is a bug found.
    for (const l of lines.slice(seenLines)) {
      if (/unhandled|uncaught/i.test(l.msg))
        report.findings.push({
          seed: options.seed,
          index: outcomes.at(-1)?.case.index ?? -1,
          family: 'batch',
          what: `cases ${indexes[from]}..`,
          problem: `${l.msg}: ${JSON.stringify(l.err).slice(0, 300)}`,
        });
    }
    seenLines = lines.length;
    const index = openIndex(server.dataDir);
    try {
      for (const o of outcomes) {
        if (o.refused && !logged(lines, o))
          find(o.case, `refused (${o.answer}${o.status === undefined ? '' : ` 0x${o.status.toString(16)}`}) with no DF_ERR log line`);
        if (o.case.kind !== 'store' || o.case.sopInstanceUid === '') continue;
        const n = index.objects(o.case.sopInstanceUid);
        if (o.acknowledged) {
          report.acknowledged++;
          if (n === 0) {
            report.lost++;
            find(o.case, 'acknowledged but not indexed');
          } else if (n > 1) {
            report.duplicated++;
            find(o.case, `acknowledged once, indexed ${n} times`);
          }
        } else if (n > 0) {
          report.refusedButIndexed++;
          find(o.case, `not acknowledged (${o.answer}) but indexed`);
        }
      }
    } finally {
      index.close();
    }
    const outside = filesOutsideRoots(server.root, ['data', 'watch', 'pipelines', 'config.json'], ESCAPE_SENTINELS);
    for (const f of outside) if (!report.filesOutsideRoots.includes(f)) report.filesOutsideRoots.push(f);
    report.ms = Date.now() - started;
    options.onBatch?.(Math.min(from + batchSize, indexes.length), report);
  }
  report.ms = Date.now() - started;
  return report;
}
