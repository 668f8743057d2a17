import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ctSeries, mrSeries, petSeries } from '../fixtures/builder.ts';
import { dcmdump, parseDump, runDcmtk, storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const servers: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.close();
});

function pipelinesDir(pipelines: Record<string, unknown>[]): string {
  const dir = tempDir('df-pipelines-');
  for (const p of pipelines) fs.writeFileSync(path.join(dir, `${(p as { name: string }).name}.json`), JSON.stringify(p, null, 2));
  return dir;
}

describe('dicomdir step on a real server', () => {
  it('keeps a DICOMDIR current while three modalities send at once', async () => {
    const root = path.join(tempDir('df-fileset-'), 'media');
    const s = await startTestServer({
      pipelinesDir: pipelinesDir([
        { name: 'media', trigger: { on: 'instance' }, steps: [{ plugin: 'dicomdir', options: { root, fileSetId: 'DICOMFLOW_IT' } }] },
      ]),
      defaultPipeline: false,
      engine: { workerThreads: 1 },
    });
    servers.push(s);

    const fixtures = tempDir('df-dicomdir-fixtures-');
    const [ct, mr, pt] = await Promise.all([
      ctSeries(path.join(fixtures, 'ct'), {
        slices: 6,
        rows: 32,
        cols: 32,
        seed: 11,
        patientId: 'IT_CT',
        patientName: 'Computed^Tomography',
      }),
      mrSeries(path.join(fixtures, 'mr'), {
        slices: 5,
        rows: 32,
        cols: 32,
        seed: 12,
        patientId: 'IT_MR',
        patientName: 'Magnetic^Resonance',
      }),
      petSeries(path.join(fixtures, 'pt'), {
        slices: 2,
        rows: 16,
        cols: 16,
        frameDurationsSec: [30, 60],
        seed: 13,
        patientId: 'IT_PT',
        patientName: 'Positron^Emission',
      }),
    ]);
    const series = [ct, mr, pt];
    const sent = await Promise.all(
      series.map((x) => storescu(['-aet', `${x.modality}SCU`, '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...x.files])),
    );
    for (const r of sent) expect(r.code, r.stderr).toBe(0);
    await s.engine.idle();

    const total = series.reduce((n, x) => n + x.files.length, 0);
    const jobs = await s.jobs.listJobs({ pipeline: 'media' });
    expect(jobs).toHaveLength(total);
    expect(
      await Promise.all(
        jobs.filter((j) => j.status !== 'succeeded').map(async (j) => [j.id, j.status, (await s.jobs.getJob(j.id))?.error]),
      ),
    ).toEqual([]);

    // DCMTK reads it without a complaint.
    const dicomdir = path.join(root, 'DICOMDIR');
    const dump = await dcmdump([dicomdir]);
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stderr).toBe('');
    expect(dump.stdout).not.toMatch(/^[WE]: /m);

    // dicom3tools validates the Basic Directory IOD (and the offsets): no errors, and no warnings either.
    const vfy = await runDcmtk('dciodvfy', [dicomdir]);
    const report = `${vfy.stdout}${vfy.stderr}`.split('\n').filter((l) => l.trim() !== '');
    expect(report.filter((l) => /^Error/.test(l))).toEqual([]);
    expect(report).toEqual(['BasicDirectory']);

    // Every SOP Instance listed exactly once, by DCMTK's own search through the records.
    const search = await dcmdump(['-Un', '+P', 'ReferencedSOPInstanceUIDInFile', '+P', 'ReferencedFileID', dicomdir]);
    expect(search.code, search.stderr).toBe(0);
    const listed = [...search.stdout.matchAll(/\(0004,1511\) UI \[([^\]]*)\]/g)].map((m) => m[1].replace(/\0+$/, ''));
    const fileIds = [...search.stdout.matchAll(/\(0004,1500\) CS \[([^\]]*)\]/g)].map((m) => m[1].trim());
    const sentUids = series.flatMap((x) => x.sopInstanceUids);
    expect([...listed].sort()).toEqual([...sentUids].sort());
    expect(fileIds).toHaveLength(total);
    expect(new Set(fileIds).size).toBe(total);
    for (const id of fileIds) expect(id).toMatch(/^DICOM\\P\d{7}\\S\d{7}\\E\d{7}\\I\d{7}$/);

    // Three patients, each with one study and one series, in DCMTK's reading of the records.
    const records = parseDump((await dcmdump(['-Un', dicomdir])).stdout)[0].DirectoryRecordSequence as Record<string, string>[];
    const ofType = (type: string) => records.filter((r) => r.DirectoryRecordType === type);
    expect(
      ofType('PATIENT')
        .map((r) => r.PatientID)
        .sort(),
    ).toEqual(['IT_CT', 'IT_MR', 'IT_PT']);
    expect(
      ofType('STUDY')
        .map((r) => r.StudyInstanceUID)
        .sort(),
    ).toEqual(series.map((x) => x.studyInstanceUid).sort());
    expect(
      ofType('SERIES')
        .map((r) => r.Modality)
        .sort(),
    ).toEqual(['CT', 'MR', 'PT']);

    // Each referenced file exists and holds exactly the bytes dicomflow received and stored.
    const received = new Map<string, string>();
    for (const job of jobs) {
      for (const input of await s.jobs.stepInputs(job.inputs)) received.set(input.sopInstanceUid, s.objects.absolutePath(input.path));
    }
    const image = ofType('IMAGE');
    expect(image).toHaveLength(total);
    for (const r of image) {
      const file = path.join(root, ...r.ReferencedFileID.split('\\'));
      const original = received.get(r.ReferencedSOPInstanceUIDInFile)!;
      expect(fs.readFileSync(file).equals(fs.readFileSync(original)), `${file} equals ${original}`).toBe(true);
    }

    // DCMTK's DICOMDIR updater, on a copy, finds every file already listed and consistent.
    const copy = path.join(tempDir('df-fileset-copy-'), 'media');
    fs.cpSync(root, copy, { recursive: true });
    const update = await runDcmtk('dcmmkdir', ['--update', '+r', 'DICOM'], { cwd: copy });
    expect(update.code, update.stderr).toBe(0);
    expect(`${update.stdout}${update.stderr}`).not.toMatch(/^[WE]: /m);
    const updated = parseDump((await dcmdump(['-Un', path.join(copy, 'DICOMDIR')])).stdout)[0].DirectoryRecordSequence as unknown[];
    expect(updated).toHaveLength(records.length);
  });
});
