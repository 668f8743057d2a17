import fs from 'node:fs';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../core/config/load.ts';
import { startServer, type RunningServer } from '../../server/app.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { tempDir } from '../helpers/temp.ts';
import { until } from '../helpers/wait.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const servers: RunningServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

/**
 * A site folder as an operator sets it up: the configuration beside a node_modules that holds
 * the plugin package (copied, as npm installs it) and dicomflow itself (a link to this checkout,
 * as `npm install /path/to/dicomflow` makes it), so the package's `import 'dicomflow/plugin'`
 * resolves through dicomflow's "exports".
 */
function siteWithPluginPackage(): string {
  const site = tempDir('df-plugin-site-');
  fs.mkdirSync(path.join(site, 'node_modules'));
  fs.symlinkSync(repo, path.join(site, 'node_modules', 'dicomflow'), 'dir');
  fs.cpSync(path.join(repo, 'test/fixtures/plugin-package'), path.join(site, 'node_modules', 'dicomflow-example-plugin'), {
    recursive: true,
  });
  return site;
}

describe('a plugin from its own package', () => {
  it('loads through plugins.packages, imports dicomflow/plugin, and runs in the worker pool with the node, job, version and database in its context', async () => {
    const site = siteWithPluginPackage();
    const pipelinesDir = path.join(site, 'pipelines');
    fs.mkdirSync(pipelinesDir);
    fs.writeFileSync(
      path.join(pipelinesDir, 'cards.json'),
      JSON.stringify({
        name: 'cards',
        trigger: { on: 'instance' },
        steps: [{ plugin: 'example-job-card', options: { title: 'arrival card' } }],
      }),
    );
    const configFile = path.join(site, 'dicomflow.json');
    fs.writeFileSync(
      configFile,
      JSON.stringify({
        dataDir: path.join(site, 'data'),
        pipelinesDir,
        defaultPipeline: false,
        plugins: { packages: ['dicomflow-example-plugin'] },
        cluster: { nodeName: 'ward-node' },
        dimse: { port: 0, host: '127.0.0.1' },
        http: { port: 0, host: '127.0.0.1' },
        storage: { minFreeMegabytes: 16 },
        log: { level: 'warn' },
      }),
    );
    const s = await startServer(loadConfig(configFile), pino({ level: process.env.DF_TEST_LOG ?? 'silent' }));
    servers.push(s);
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    expect((await storescu(['-aet', 'SCANNER', '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    const job = await until('the job', async () =>
      (await s.jobs.listJobs({})).find((j) => j.status === 'succeeded' || j.status === 'failed'),
    );
    const detail = (await s.jobs.getJob(job.id))!;
    expect(detail, JSON.stringify(detail.steps, null, 2)).toMatchObject({ status: 'succeeded', pipeline: 'cards' });
    const [step] = detail.steps!;
    expect(step.plugin).toBe('example-job-card');
    const file = step.outputs.find((o) => o.kind === 'file')!.path!;
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({
      title: 'arrival card',
      node: 'ward-node',
      jobId: job.id,
      pipeline: 'cards',
      pipelineVersion: s.pipelines.get('cards')!.hash,
      trigger: 'instance',
      database: s.config.defaultDatabase,
      instances: [{ sopInstanceUid: ct.sopInstanceUids[0], modality: 'CT' }],
    });
    expect(step.outputs.find((o) => o.kind === 'table')).toMatchObject({ name: 'instances', rows: [{ modality: 'CT' }] });
  });
});
