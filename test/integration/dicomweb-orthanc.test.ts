// Issue 18: Orthanc with its DICOMweb plugin (Debian `orthanc-dicomweb`) as an independent
// DICOMweb client of dicomflow, configured with dicomflow's Import database as a DICOMweb server:
// QIDO through Orthanc, WADO-RS retrieval into Orthanc, STOW-RS from Orthanc into dicomflow, with
// the bytes that arrive compared on both sides.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import type { RunningServer } from '../../server/app.ts';
import { compress, ctSeries, mrSeries } from '../fixtures/builder.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { hasOrthancDicomWeb, ORTHANC_DICOMWEB_PLUGIN, startOrthanc, type OrthancPeer } from '../helpers/orthanc.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const servers: RunningServer[] = [];
const peers: OrthancPeer[] = [];

afterAll(async () => {
  for (const p of peers) await p.stop();
  for (const s of servers) await s.close();
});

describe.skipIf(!hasOrthancDicomWeb())('DICOMweb with Orthanc as the client', () => {
  it('answers QIDO through Orthanc, is retrieved into Orthanc byte for byte, and takes Orthanc’s STOW', async () => {
    const s = await startTestServer({ users: [{ name: 'orthanc', role: 'operator', databases: { Import: 'write' } }] });
    servers.push(s);
    const token = (await issueToken(s.tokens, s.users, 'orthanc')).token;
    const ct = await ctSeries(tempDir(), {
      slices: 3,
      rows: 32,
      cols: 32,
      patientId: 'OR-CT',
      patientName: 'ORTHANC^CT',
      studyDate: '20240301',
    });
    const other = await ctSeries(tempDir(), { slices: 1, rows: 32, cols: 32, patientId: 'OR-JLS' });
    const jlsOther = await compress(other.files[0], 'jpeg-ls', path.join(tempDir(), 'other-jls.dcm'));
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files])).code).toBe(0);
    expect((await storescu(['-xt', '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), jlsOther.file])).code).toBe(0);
    await s.engine.idle();
    await until('filed', async () => (await s.index.instances('Import', {})).length === 4);
    expect(jlsOther.transferSyntaxUid).toBe('1.2.840.10008.1.2.4.80');

    const orthanc = await startOrthanc({
      config: {
        Plugins: [ORTHANC_DICOMWEB_PLUGIN],
        DicomWeb: {
          Enable: true,
          Servers: {
            dicomflow: { Url: `http://127.0.0.1:${s.httpPort}/dicomweb/Import/`, HttpHeaders: { Authorization: `Bearer ${token}` } },
          },
        },
      },
    });
    peers.push(orthanc);
    const rest = async (method: string, url: string, body?: unknown) => {
      const res = await fetch(`http://127.0.0.1:${orthanc.httpPort}${url}`, {
        method,
        ...(body === undefined ? {} : { body: body instanceof Buffer ? body : JSON.stringify(body) }),
      });
      const text = await res.text();
      if (!res.ok) throw new Error(`Orthanc ${method} ${url}: ${res.status} ${text}\n${orthanc.log().slice(-2000)}`);
      return text === '' ? undefined : JSON.parse(text);
    };

    // QIDO-RS, Orthanc asking dicomflow.
    const studies = await rest('POST', '/dicom-web/servers/dicomflow/qido', { Uri: '/studies', Arguments: { PatientName: 'ORTHANC*' } });
    // Orthanc's client answers in its own simplified form: a string per attribute. (It drops
    // IS values sent as JSON numbers, which PS3.18 F.2.3 asks for and Orthanc's own server sends.)
    expect(studies).toHaveLength(1);
    expect(studies[0]['0020000D'].Value).toBe(ct.studyInstanceUid);
    expect(studies[0]['00100010'].Value).toBe('ORTHANC^CT');
    expect(studies[0]['00080061'].Value).toBe('CT');
    const series = await rest('POST', '/dicom-web/servers/dicomflow/qido', { Uri: `/studies/${ct.studyInstanceUid}/series` });
    expect(series.map((x: Record<string, { Value: string }>) => x['0020000E'].Value)).toEqual([ct.seriesInstanceUid]);

    // WADO-RS: Orthanc retrieves the study and the compressed object; what it stores is ours, byte for byte.
    const otherRow = (await s.index.instances('Import', { sopInstanceUids: [other.sopInstanceUids[0]] }))[0];
    await rest('POST', '/dicom-web/servers/dicomflow/retrieve', {
      Resources: [{ Study: ct.studyInstanceUid }, { Study: otherRow.study.StudyInstanceUID, Series: otherRow.series.SeriesInstanceUID }],
    });
    const inOrthanc = await orthanc.instances();
    expect(inOrthanc.size).toBe(4);
    for (const row of await s.index.instances('Import', {})) {
      const ours = splitPart10(fs.readFileSync(path.join(s.dataDir, 'storage', row.objectPath)));
      const theirs = splitPart10(inOrthanc.get(row.instance.SOPInstanceUID)!);
      expect(theirs.transferSyntaxUid).toBe(row.transferSyntaxUid);
      expect(theirs.dataset.equals(ours.dataset)).toBe(true);
    }

    // STOW-RS: Orthanc sends objects it holds (an MR series, one slice in JPEG-LS) into dicomflow.
    const mr = await mrSeries(tempDir(), { slices: 2, rows: 16, cols: 16, patientId: 'OR-MR' });
    const jlsUpload = await compress(mr.files[0], 'jpeg-ls', path.join(tempDir(), 'mr-jls.dcm'));
    const uploaded: string[] = [];
    for (const file of [jlsUpload.file, mr.files[1]]) uploaded.push((await rest('POST', '/instances', fs.readFileSync(file))).ID);
    const stow = await rest('POST', '/dicom-web/servers/dicomflow/stow', { Resources: uploaded, Synchronous: true });
    expect(stow).toBeDefined();
    await s.engine.idle();
    await until(
      'the MR series filed',
      async () => (await s.index.instances('Import', { studyInstanceUids: [mr.studyInstanceUid] })).length === 2,
    );
    const sent = new Map([
      [mr.sopInstanceUids[0], jlsUpload.file],
      [mr.sopInstanceUids[1], mr.files[1]],
    ]);
    for (const row of await s.index.instances('Import', { studyInstanceUids: [mr.studyInstanceUid] })) {
      const original = splitPart10(fs.readFileSync(sent.get(row.instance.SOPInstanceUID)!));
      const ours = splitPart10(fs.readFileSync(path.join(s.dataDir, 'storage', row.objectPath)));
      expect(ours.transferSyntaxUid).toBe(original.transferSyntaxUid);
      expect(ours.dataset.equals(original.dataset)).toBe(true);
      expect(`${row.createdBy}/${row.source}`).toBe('orthanc/dicomweb');
    }
  });
});
