import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, mrSeries } from '../fixtures/builder.ts';
import { findscu, parseFindscuResponses, runDcmtk, storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

let server: Awaited<ReturnType<typeof startTestServer>>;
let root: string;
let destinationPort: number;
let ct: Awaited<ReturnType<typeof ctSeries>>;
let mr: Awaited<ReturnType<typeof mrSeries>>;

beforeAll(async () => {
  root = path.join(tempDir('df-fileset-'), 'media');
  const pipelines = tempDir('df-pipelines-');
  fs.writeFileSync(
    path.join(pipelines, 'offline.json'),
    JSON.stringify({ name: 'offline', trigger: { on: 'instance' }, steps: [{ plugin: 'dicomdir', options: { root } }] }),
  );
  destinationPort = await freePort();
  server = await startTestServer({
    pipelinesDir: pipelines,
    dicomdirStores: [{ aeTitle: 'OFFLINE', root }],
    remoteNodes: [{ aeTitle: 'MOVESCU', host: '127.0.0.1', port: destinationPort }],
  });
  ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32, patientId: 'DIR1', studyDescription: 'Offline chest' });
  mr = await mrSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'DIR2' });
  expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...ct.files, ...mr.files])).code).toBe(0);
  await server.engine.idle();
});
afterAll(async () => {
  await server.close();
});

describe('a DICOMDIR store answering Query/Retrieve under its own AE title', () => {
  it('answers C-FIND from the file-set, with counts', async () => {
    const r = await findscu([
      '-S',
      '-aec',
      'OFFLINE',
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      'PatientID',
      '-k',
      'StudyInstanceUID',
      '-k',
      'ModalitiesInStudy',
      '-k',
      'NumberOfStudyRelatedInstances',
      '127.0.0.1',
      String(server.dicomPort),
    ]);
    const studies = parseFindscuResponses(r.stderr).sort((a, b) => String(a.PatientID).localeCompare(String(b.PatientID)));
    expect(studies.map((s) => [s.PatientID, s.StudyInstanceUID, s.ModalitiesInStudy, s.NumberOfStudyRelatedInstances])).toEqual([
      ['DIR1', ct.studyInstanceUid, 'CT', '3'],
      ['DIR2', mr.studyInstanceUid, 'MR', '2'],
    ]);
    const images = await findscu([
      '-S',
      '-aec',
      'OFFLINE',
      '-k',
      'QueryRetrieveLevel=IMAGE',
      '-k',
      `StudyInstanceUID=${ct.studyInstanceUid}`,
      '-k',
      `SeriesInstanceUID=${ct.seriesInstanceUid}`,
      '-k',
      'SOPInstanceUID',
      '127.0.0.1',
      String(server.dicomPort),
    ]);
    expect(
      parseFindscuResponses(images.stderr)
        .map((i) => i.SOPInstanceUID)
        .sort(),
    ).toEqual([...ct.sopInstanceUids].sort());
  });

  it('moves from the file-set: the files the DICOMDIR refers to, byte for byte', async () => {
    const out = tempDir('df-moved-');
    const r = await runDcmtk(
      'movescu',
      [
        '-S',
        '-aet',
        'MOVESCU',
        '-aem',
        'MOVESCU',
        '-aec',
        'OFFLINE',
        '--port',
        String(destinationPort),
        '+xa',
        '+B',
        '-od',
        out,
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        `StudyInstanceUID=${mr.studyInstanceUid}`,
        '127.0.0.1',
        String(server.dicomPort),
      ],
      { timeoutMs: 30_000, cwd: out },
    );
    expect(r.code, r.stderr).toBe(0);
    const received = fs.readdirSync(out).map((f) => splitPart10(fs.readFileSync(path.join(out, f))));
    expect(received.map((p) => p.sopInstanceUid).sort()).toEqual([...mr.sopInstanceUids].sort());
    const inFileSet = new Map(
      fs
        .readdirSync(root, { recursive: true, withFileTypes: true })
        .filter((e) => e.isFile() && /^I\d+$/.test(e.name))
        .map((e) => splitPart10(fs.readFileSync(path.join(e.parentPath, e.name))))
        .map((p) => [p.sopInstanceUid, p.dataset]),
    );
    for (const p of received) expect(p.dataset.equals(inFileSet.get(p.sopInstanceUid)!)).toBe(true);
  });

  it('keeps the database answering under the server AE title', async () => {
    const r = await findscu([
      '-S',
      '-aec',
      'DICOMFLOW',
      '-k',
      'QueryRetrieveLevel=STUDY',
      '-k',
      'StudyInstanceUID',
      '127.0.0.1',
      String(server.dicomPort),
    ]);
    expect(parseFindscuResponses(r.stderr)).toHaveLength(2);
  });
});
