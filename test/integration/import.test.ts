import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { ctSeries, encodePart10, mrSeries } from '../fixtures/builder.ts';
import { runDcmtk } from '../helpers/dcmtk.ts';
import { until } from '../helpers/wait.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

describe('watch folder', () => {
  it('imports a file once it stopped growing, moves it to done/, and refuses a non-DICOM file with a reason', async () => {
    const watched = tempDir('df-watch-');
    const s = await startTestServer({
      databases: [{ name: 'Import' }, { name: 'Folder' }],
      watchFolders: [{ path: watched, database: 'Folder', stableSeconds: 2, pollSeconds: 0.2 }],
    });
    closers.push(() => s.close());
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 64, cols: 64 });
    const bytes = fs.readFileSync(ct.files[0]);
    // A slow copier: the file grows in four steps, with pauses (the gaps a copier leaves, not a
    // wait for anything) well under stableSeconds. Taken while growing, the file would have been
    // refused as cut short (failed/), not imported whole (done/), as checked below.
    const target = path.join(watched, 'incoming-scan', 'slice.dcm');
    fs.mkdirSync(path.dirname(target));
    const quarter = Math.ceil(bytes.length / 4);
    for (let i = 0; i < 4; i++) {
      fs.appendFileSync(target, bytes.subarray(i * quarter, (i + 1) * quarter));
      if (i < 3) await new Promise((r) => setTimeout(r, 300));
    }
    fs.writeFileSync(path.join(watched, 'notes.txt'), 'not an image\n');
    const done = path.join(watched, 'done', 'incoming-scan', 'slice.dcm');
    await until('the import', async () => fs.existsSync(done) && fs.existsSync(path.join(watched, 'failed', 'notes.txt.reason.txt')));
    expect(fs.readFileSync(done).equals(bytes)).toBe(true);
    expect(
      fs
        .readdirSync(path.join(watched, 'failed'), { recursive: true })
        .map(String)
        .filter((n) => n.includes('slice')),
    ).toEqual([]);
    expect(fs.readFileSync(path.join(watched, 'failed', 'notes.txt.reason.txt'), 'utf8')).toMatch(
      /DF_ERR_DATASET_MALFORMED: notes.txt: not a DICOM Part 10 file/,
    );
    await s.engine.idle();
    const [row] = await s.index.instances('Folder', {});
    expect(row).toMatchObject({ source: 'folder', createdBy: `watch folder ${watched}` });
    expect(row.instance.SOPInstanceUID).toBe(ct.sopInstanceUids[0]);
  });
});

describe('import from disk or CD', () => {
  it('imports the files a DICOMDIR lists, records the user as creator, and reports duplicates on a second import', async () => {
    const disc = tempDir('df-disc-');
    const ct = await ctSeries(path.join(disc, 'CT'), { slices: 3, rows: 32, cols: 32, fileName: (i) => `IM${String(i).padStart(6, '0')}` });
    const mr = await mrSeries(path.join(disc, 'MR'), { slices: 2, rows: 32, cols: 32, fileName: (i) => `IM${String(i).padStart(6, '0')}` });
    const made = await runDcmtk('dcmmkdir', ['--recurse', '+id', disc, '+D', path.join(disc, 'DICOMDIR'), '+I', 'CT', 'MR']);
    expect(made.code, made.stderr).toBe(0);
    // Not listed by the DICOMDIR: a viewer's leftovers on the disc are not imported.
    fs.writeFileSync(path.join(disc, 'AUTORUN.INF'), '[autorun]\n');
    fs.writeFileSync(
      path.join(disc, 'extra.dcm'),
      encodePart10({
        SOPClassUID: '1.2.840.10008.5.1.4.1.1.7',
        SOPInstanceUID: '1.2.3.999',
        StudyInstanceUID: '1.2.3',
        SeriesInstanceUID: '1.2.3.4',
        PatientID: 'X',
      }),
    );

    const data = tempDir();
    const first = await run(node, [cli, 'import', disc, '--data', data, '--db', 'Import', '--user', 'alice']);
    expect(first.stdout).toContain('files: 5  imported: 5  duplicates: 0  refused: 0');
    expect(first.stderr).toContain('(listed by its DICOMDIR)');

    // The server, started afterwards, runs the pipelines on the imported arrivals.
    const s = await startTestServer({ dataDir: data });
    closers.push(() => s.close());
    await until('the imported objects to be filed', async () => (await s.index.instances('Import', {})).length === 5);
    const rows = await s.index.instances('Import', {});
    expect(new Set(rows.map((r) => r.createdBy))).toEqual(new Set(['alice']));
    expect(new Set(rows.map((r) => r.source))).toEqual(new Set(['import']));
    expect(rows.map((r) => r.instance.SOPInstanceUID).sort()).toEqual([...ct.sopInstanceUids, ...mr.sopInstanceUids].sort());

    // Again while the server runs: nothing new, every file a duplicate.
    const second = await run(node, [cli, 'import', disc, '--data', data, '--user', 'bob']);
    expect(second.stdout).toContain('files: 5  imported: 0  duplicates: 5  refused: 0');
  });

  it('imports a plain folder, refusing what is not DICOM with the reason, and exits 3', async () => {
    const folder = tempDir('df-folder-');
    await ctSeries(path.join(folder, 'a'), { slices: 2, rows: 32, cols: 32 });
    fs.writeFileSync(path.join(folder, 'a', 'readme.txt'), 'hello');
    const other = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    fs.writeFileSync(path.join(folder, 'cut.dcm'), fs.readFileSync(other.files[0]).subarray(0, 600));
    const data = tempDir();
    const result = await run(node, [cli, 'import', folder, '--data', data, '--user', 'carol']).catch(
      (e: { code: number; stdout: string }) => e,
    );
    expect((result as { code: number }).code).toBe(3);
    const out = (result as { stdout: string }).stdout;
    expect(out).toContain('files: 4  imported: 2  duplicates: 0  refused: 2');
    expect(out).toMatch(/refused .*readme\.txt: DF_ERR_DATASET_MALFORMED: not a DICOM Part 10 file/);
    expect(out).toMatch(/refused .*cut\.dcm: DF_ERR_DATASET_MALFORMED/);
  });

  it('refuses a malformed file as malformed, not as a duplicate, whether its SOP Instance UID came before or is stored already', async () => {
    const ct = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32 });
    const bytes = fs.readFileSync(ct.files[0]);
    // The same file meta (so the same SOP Instance UID), the dataset cut short.
    const cut = bytes.subarray(0, bytes.length - 100);
    const data = tempDir();
    // In one import: the cut copy comes first; the good one after it is not its "duplicate".
    const first = tempDir('df-cut-first-');
    fs.writeFileSync(path.join(first, 'a-cut.dcm'), cut);
    fs.writeFileSync(path.join(first, 'b-good.dcm'), bytes);
    const one = await run(node, [cli, 'import', first, '--data', data, '--user', 'dave']).catch((e: { code: number; stdout: string }) => e);
    expect((one as { stdout: string }).stdout).toContain('files: 2  imported: 1  duplicates: 0  refused: 1');
    expect((one as { stdout: string }).stdout).toMatch(
      /refused .*a-cut\.dcm: DF_ERR_DATASET_MALFORMED: dataset ends inside the value of \(7FE0,0010\)/,
    );
    // Once the object is stored, a cut copy of it is refused, a good copy is a duplicate.
    const s = await startTestServer({ dataDir: data });
    closers.push(() => s.close());
    await until('the imported object to be filed', async () => (await s.index.instances(s.config.defaultDatabase, {})).length === 1);
    const again = tempDir('df-cut-again-');
    fs.writeFileSync(path.join(again, 'cut.dcm'), cut);
    fs.writeFileSync(path.join(again, 'good.dcm'), bytes);
    const two = await run(node, [cli, 'import', again, '--data', data, '--user', 'dave']).catch((e: { code: number; stdout: string }) => e);
    expect((two as { code: number }).code).toBe(3);
    expect((two as { stdout: string }).stdout).toContain('files: 2  imported: 0  duplicates: 1  refused: 1');
    expect((two as { stdout: string }).stdout).toMatch(
      /refused .*\/cut\.dcm: DF_ERR_DATASET_MALFORMED: dataset ends inside the value of \(7FE0,0010\)/,
    );
  });
});
