// De-identification time: one CT study (private tags included) de-identified by dicomflow's
// deidentify step (its own code, the pool of worker processes a server uses, the pseudonym table
// on SQLite) and by Orthanc's study anonymization (POST /studies/{id}/anonymize, its PS3.15 basic
// profile), in the same run, round-robin. Both read every object and write a de-identified copy
// to their storage; Orthanc also indexes its copies (dicomflow's engine files them after the step,
// which is not timed here).
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { EngineServices } from '../core/jobs/services.ts';
import { createStepContext } from '../core/jobs/step-context.ts';
import { PluginRegistry } from '../core/plugin-registry.ts';
import { openIndexDatabase } from '../core/store/sql/open.ts';
import { SqlPseudonyms } from '../core/store/sql/sql-pseudonyms.ts';
import plugin from '../plugins/deidentify/index.ts';
import { ctSeries } from '../test/fixtures/builder.ts';
import { hasTool, storescu } from '../test/helpers/dcmtk.ts';
import { hasOrthanc, startOrthanc } from '../test/helpers/orthanc.ts';
import { seriesStepInputs } from '../test/helpers/series-step.ts';
import { createStepPool } from '../workers/pool.ts';
import { makeTempDir, removeTempDir } from './support/cleanup.ts';
import { formatTable, median } from './support/table.ts';

export const description =
  'a CT study de-identified by the deidentify step and by Orthanc (POST /studies/{id}/anonymize): seconds side by side';

const USAGE = `npm run bench -- deidentify [--slices N] [--size N] [--runs R]

  --slices N   CT slices (default 300)
  --size N     rows and columns (default 512)
  --runs R     timed runs per tool after one warm-up each (default 3); the median counts`;

export async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { slices: { type: 'string' }, size: { type: 'string' }, runs: { type: 'string' }, help: { type: 'boolean' } },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!hasOrthanc() || !hasTool('storescu')) {
    console.error('Orthanc and DCMTK storescu are needed (Debian: orthanc, dcmtk); this bench compares against Orthanc');
    return 1;
  }
  const slices = Number(values.slices ?? 300);
  const size = Number(values.size ?? 512);
  const runs = Number(values.runs ?? 3);
  const work = makeTempDir('df-bench-deidentify-');
  const threads = os.availableParallelism();
  const pool = createStepPool({ threads });
  const db = await openIndexDatabase({ dataDir: work });
  const orthanc = await startOrthanc();
  try {
    const ct = await ctSeries(path.join(work, 'ct'), {
      slices,
      rows: size,
      cols: size,
      withPrivateTags: true,
      uidSeed: 'bench-deidentify',
    });
    const megabytes = ct.files.reduce((sum, f) => sum + Number(execFileSync('stat', ['-c', '%s', f], { encoding: 'utf8' })), 0) / 1e6;
    const registry = new PluginRegistry();
    registry.register(plugin, new URL('../plugins/deidentify/index.ts', import.meta.url).href);
    const registered = registry.resolve('deidentify')!;
    const options = {};
    registered.validateOptions(options);
    const inputs = seriesStepInputs(ct);
    const services = { pseudonyms: new SqlPseudonyms(db) } as unknown as EngineServices;
    let n = 0;
    const dicomflowRun = async (): Promise<number> => {
      const jobDir = path.join(work, 'jobs', String(n++));
      const signal = new AbortController().signal;
      const { ctx, effects } = createStepContext(
        {
          job: {
            id: `bench-${n}`,
            pipeline: 'bench',
            pipelineVersion: '0123456789abcdef',
            database: 'default',
            attempt: 1,
            trigger: { on: 'study', callingAeTitles: [], peerAddresses: [] },
          },
          node: { name: 'test-node' },
          step: { id: 'deidentify', index: 0 },
          inputs,
          previousOutputs: [],
          scratchDir: path.join(jobDir, 'scratch'),
          outputDir: path.join(jobDir, 'outputs'),
        },
        signal,
        () => {},
        undefined,
        services,
        (call, transferList) => pool.runTask(call, { signal, transferList }),
      );
      const started = performance.now();
      await plugin.run(ctx, options as never);
      const seconds = (performance.now() - started) / 1000;
      const written = effects.outputs.filter((o) => o.kind === 'instance').length;
      if (written !== slices) throw new Error(`dicomflow wrote ${written} of ${slices} objects`);
      removeTempDir(jobDir);
      return seconds;
    };

    const sent = await storescu(['-aec', orthanc.aeTitle, '127.0.0.1', String(orthanc.port), ...ct.files]);
    if (sent.code !== 0) throw new Error(`storescu to Orthanc failed: ${sent.stderr}`);
    const rest = async (method: string, url: string, body?: unknown) => {
      const response = await fetch(`http://127.0.0.1:${orthanc.httpPort}${url}`, {
        method,
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      if (!response.ok) throw new Error(`Orthanc ${method} ${url} answered ${response.status}: ${await response.text()}`);
      return response.json() as Promise<any>;
    };
    const [studyId] = (await rest('GET', '/studies')) as string[];
    const orthancRun = async (): Promise<number> => {
      const started = performance.now();
      const result = await rest('POST', `/studies/${studyId}/anonymize`, { Synchronous: true });
      const seconds = (performance.now() - started) / 1000;
      const count = ((await rest('GET', `/studies/${result.ID}/instances`)) as unknown[]).length;
      if (count !== slices) throw new Error(`Orthanc wrote ${count} of ${slices} objects`);
      await rest('DELETE', `/studies/${result.ID}`);
      return seconds;
    };

    await dicomflowRun();
    await orthancRun();
    const times = { dicomflow: [] as number[], orthanc: [] as number[] };
    for (let r = 0; r < runs; r++) {
      times.dicomflow.push(await dicomflowRun());
      times.orthanc.push(await orthancRun());
    }
    const version = execFileSync('Orthanc', ['--version'], { encoding: 'utf8' }).split('\n')[0];
    const row = (name: string, t: number[]) => [
      name,
      median(t).toFixed(2),
      (slices / median(t)).toFixed(0),
      (megabytes / median(t)).toFixed(0),
      t.map((x) => x.toFixed(2)).join(' '),
    ];
    console.log(
      `${slices} CT slices ${size}×${size} with private tags (${megabytes.toFixed(0)} MB), ${runs} runs after a warm-up, ${threads} worker processes for dicomflow`,
    );
    console.log(
      formatTable(
        ['tool', 'median s', 'objects/s', 'MB/s', 'runs s'],
        [row('dicomflow deidentify', times.dicomflow), row(version, times.orthanc)],
      ),
    );
    console.log(`dicomflow / Orthanc: ${(median(times.dicomflow) / median(times.orthanc)).toFixed(2)}× the time`);
    return 0;
  } finally {
    await orthanc.stop();
    await pool.destroy();
    await db.close();
    removeTempDir(work);
  }
}
