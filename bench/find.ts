// C-FIND at scale (issue 14): the server's resident memory while DCMTK findscu asks universal
// STUDY queries of a database of thousands of studies, and how many matches a C-CANCEL lets
// through. The studies are filed into the index before the server starts (no bytes behind
// them: C-FIND reads only the index). The answer is streamed page by page, so the peak should
// stay near the resting RSS whatever the number of studies.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openIndexDatabase } from '../core/store/sql/open.ts';
import { SqlIndex } from '../core/store/sql/sql-index.ts';
import { fileIndexedStudies } from '../test/fixtures/index-studies.ts';
import { findscu, missingDcmtkTool, parseFindscuResponses } from '../test/helpers/dcmtk.ts';
import { cleanUp, makeTempDir, stopChild } from './support/cleanup.ts';
import { spawnDicomflow } from './support/dicomflow-process.ts';
import { procStatusBytes, RssSampler } from './support/memory.ts';
import { formatTable } from './support/table.ts';

export const description = 'C-FIND: server RSS during universal STUDY queries over thousands of studies, and a C-CANCEL';

const USAGE = `npm run bench -- find [--studies N] [--queries Q] [--cancel-after C]

  --studies N       studies in the queried database (default 3000)
  --queries Q       universal STUDY queries in a row (default 3)
  --cancel-after C  then one query that findscu cancels after C responses (default 5)`;

const mb = (bytes: number) => `${(bytes / (1 << 20)).toFixed(0)} MB`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { studies: { type: 'string' }, queries: { type: 'string' }, 'cancel-after': { type: 'string' }, help: { type: 'boolean' } },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const missing = missingDcmtkTool(['findscu']);
  if (missing) {
    console.error(missing);
    return 1;
  }
  const studies = Number(values.studies ?? 3000);
  const queries = Number(values.queries ?? 3);
  const cancelAfter = Number(values['cancel-after'] ?? 5);
  const root = makeTempDir('dicomflow-bench-find-');
  const dataDir = path.join(root, 'data');
  const pipelinesDir = path.join(root, 'pipelines');
  fs.mkdirSync(pipelinesDir, { recursive: true });
  fs.mkdirSync(dataDir, { recursive: true });
  const configFile = path.join(root, 'config.json');
  fs.writeFileSync(
    configFile,
    JSON.stringify({
      dataDir,
      pipelinesDir,
      defaultPipeline: false,
      dimse: { host: '127.0.0.1', port: 0 },
      http: { host: '127.0.0.1', port: 0 },
    }),
  );
  const started = Date.now();
  const index = new SqlIndex(await openIndexDatabase({ dataDir }));
  await fileIndexedStudies(index, 'Import', studies);
  await index.close();
  // This process stopped writing cleanly: the server has no objects of a crash to check (it
  // would find no bytes behind these rows, and withdraw them).
  fs.writeFileSync(path.join(dataDir, '.clean-stop'), new Date().toISOString());
  console.log(`${studies} studies filed into the index in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const server = await spawnDicomflow(configFile);
  let failed = false;
  try {
    const pid = server.child.pid!;
    const ask = async (extra: string[]) => {
      const t0 = Date.now();
      const result = await findscu(
        [
          '-S',
          '-v',
          ...extra,
          '-k',
          'QueryRetrieveLevel=STUDY',
          '-k',
          'StudyInstanceUID',
          '-k',
          'PatientID',
          '-k',
          'PatientName',
          '-k',
          'StudyDescription',
          '127.0.0.1',
          String(server.dicomPort),
        ],
        { timeoutMs: 600_000 },
      );
      const log = `${result.stdout}${result.stderr}`;
      return {
        seconds: (Date.now() - t0) / 1000,
        responses: parseFindscuResponses(log).length,
        final: /Received Final Find Response \(([^)]*)\)/.exec(log)?.[1] ?? `none (exit ${result.code})`,
      };
    };
    const rows: string[][] = [];
    const atRest = procStatusBytes(pid, 'VmRSS') ?? 0;
    const sampler = new RssSampler(pid);
    for (let q = 1; q <= queries; q++) {
      const r = await ask([]);
      if (r.responses !== studies || r.final !== 'Success') failed = true;
      rows.push([`universal #${q}`, String(r.responses), r.final, r.seconds.toFixed(1), mb(procStatusBytes(pid, 'VmRSS') ?? 0)]);
    }
    const cancelled = await ask(['--cancel', String(cancelAfter)]);
    if (!/Cancel/.test(cancelled.final)) failed = true;
    rows.push([
      `cancel after ${cancelAfter}`,
      String(cancelled.responses),
      cancelled.final,
      cancelled.seconds.toFixed(1),
      mb(procStatusBytes(pid, 'VmRSS') ?? 0),
    ]);
    const { peakSampledBytes } = sampler.stop();
    console.log(formatTable(['query', 'responses', 'final status', 'seconds', 'RSS after'], rows));
    console.log(`dicomflow RSS: ${mb(atRest)} at rest, ${mb(peakSampledBytes)} peak while answering (sampled every 50 ms)`);
    if (server.problems.length > 0) console.log(`server warnings:\n${server.problems.slice(0, 10).join('\n')}`);
  } finally {
    server.stopping();
    await stopChild(server.child);
    await cleanUp();
  }
  return failed ? 1 : 0;
}
