// run-program: a value from the received data, placed inside a path, stays one segment of it; a
// value that is a whole argument arrives as it is, and a program reads it after "--".
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ctSeries } from '../fixtures/builder.ts';
import { hasTool, storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const servers: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

/** Every path under root, relative to it. */
const tree = (root: string) => (fs.readdirSync(root, { recursive: true }) as string[]).sort();

describe.skipIf(!hasTool('storescu'))('run-program with hostile values', () => {
  it('a Patient ID, Study and Series Description become one safe segment of a path; whole arguments stay as sent', async () => {
    const work = tempDir('df-run-program-');
    // The program: makes the directory it is given, and records its arguments.
    const script = path.join(work, 'make-dir.sh');
    fs.writeFileSync(script, '#!/bin/sh\nprintf "%s\\n" "$@" > "$DF_OUTPUT_DIR/args.txt"\nfor last; do :; done\nmkdir -p -- "$last"\n');
    fs.chmodSync(script, 0o755);
    const pipelines = tempDir('df-pipelines-');
    fs.writeFileSync(
      path.join(pipelines, 'paths.json'),
      JSON.stringify({
        name: 'paths',
        trigger: { on: 'instance' },
        steps: [
          {
            plugin: 'run-program',
            options: {
              program: script,
              forEach: 'instance',
              args: [
                '{patientId}',
                '{studyDescription}',
                '--',
                '{seriesDescription}',
                '{outputDir}/{patientId}/{studyDescription}/{seriesDescription}',
              ],
            },
          },
        ],
      }),
    );
    const s = await startTestServer({ pipelinesDir: pipelines, defaultPipeline: false });
    servers.push(s);

    const ct = await ctSeries(tempDir(), {
      slices: 1,
      rows: 32,
      cols: 32,
      patientId: '../../etc',
      studyDescription: '-rf',
      seriesDescription: 'T1/../../x\u0007\u001b',
    });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    await s.engine.idle();
    const [job] = await s.jobs.listJobs({ pipeline: 'paths' });
    expect(job.status, job.error).toBe('succeeded');
    const outputDir = path.join(s.dataDir, 'jobs', job.id, 'outputs');
    // What the program was given: the whole-argument values as they came, the path made safe.
    const args = fs.readFileSync(path.join(outputDir, 'args.txt'), 'utf8').split('\n').slice(0, -1);
    expect(args.slice(0, 4)).toEqual(['../../etc', '-rf', '--', 'T1/../../x\u0007\u001b']);
    expect(args[4]).toBe(`${outputDir}/______etc/_rf/T1_______x__`);
    // Nothing was made outside the job's output directory.
    expect(tree(outputDir)).toEqual(['______etc', '______etc/_rf', '______etc/_rf/T1_______x__', 'args.txt']);
    expect(fs.existsSync(path.join(outputDir, '..', '..', 'etc'))).toBe(false);
    expect(fs.existsSync(path.join(s.dataDir, 'jobs', job.id, 'x'))).toBe(false);
  });
});
