/**
 * The fuzzers from the command line: `node test/fuzz/run.ts [--seed N] [--cases N] [--files N]
 * [--only I,J]`. Prints a JSON report; exits 1 on any finding. Used by `npm run proof`.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { runDimseFuzz } from './dimse-fuzz.ts';
import { runFileFuzz } from './file-fuzz.ts';
import { startFuzzServer } from './harness.ts';

const { values } = parseArgs({
  options: {
    seed: { type: 'string', default: '1' },
    cases: { type: 'string', default: '3000' },
    files: { type: 'string', default: '400' },
    only: { type: 'string' },
  },
});
const seed = Number(values.seed);
const server = await startFuzzServer();
try {
  const dimse = await runDimseFuzz(server, {
    seed,
    cases: Number(values.cases),
    batch: 50,
    only: values.only?.split(',').map(Number),
    onBatch: (done, r) => console.error(`dimse: ${done} cases, ${r.findings.length} findings, ${Math.round(r.ms / 1000)} s`),
  });
  const files = values.only ? undefined : await runFileFuzz(server, { seed, files: Number(values.files) });
  console.log(JSON.stringify({ seed, dimse, files }, null, 2));
  const findings =
    dimse.findings.length + (files?.findings.length ?? 0) + dimse.filesOutsideRoots.length + (files?.filesOutsideRoots.length ?? 0);
  process.exitCode = findings === 0 ? 0 : 1;
} finally {
  await server.stop();
  fs.rmSync(server.root, { recursive: true, force: true });
}
