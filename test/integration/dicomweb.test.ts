// Issue 18, DICOMweb (PS3.18) per database at /dicomweb/<db>/: STOW-RS into the same reception
// as a C-STORE, QIDO-RS with C-FIND's matching, WADO-RS of the original bytes, metadata with bulk
// data URIs, frames, rendered images; under the API's tokens and database rights.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import type { RunningServer } from '../../server/app.ts';
import { compress, ctSeries, mrSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { dicomwebClient, splitMultipart, stowBody } from '../helpers/dicomweb.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

const IMPLICIT_VR_LE = '1.2.840.10008.1.2';
const EXPLICIT_VR_LE = '1.2.840.10008.1.2.1';
const JPEG_LS = '1.2.840.10008.1.2.4.80';

let s: RunningServer & { dataDir: string };
let ct: BuiltSeries;
let mr: BuiltSeries;
let jls: { file: string; sopInstanceUid: string };
const token: Record<string, string> = {};

const value = (dataset: Record<string, { Value?: unknown[] }>, tag: string) => dataset[tag]?.Value?.[0];

beforeAll(async () => {
  s = await startTestServer({
    databases: [{ name: 'Import' }, { name: 'Other', aeTitle: 'OTHER' }],
    users: [
      { name: 'wendy', role: 'operator', databases: { Import: 'write' } },
      { name: 'rita', role: 'reader', databases: { Import: 'read' } },
    ],
  });
  for (const user of ['wendy', 'rita']) token[user] = (await issueToken(s.tokens, s.users, user)).token;
  ct = await ctSeries(tempDir(), {
    slices: 3,
    rows: 32,
    cols: 32,
    patientId: 'PID-CT',
    patientName: 'DOE^JOHN',
    studyDate: '20240105',
    studyDescription: 'CT HEAD',
  });
  mr = await mrSeries(tempDir(), { slices: 2, rows: 16, cols: 16, patientId: 'PID-MR', patientName: 'SMITH^ANNA', studyDate: '20231201' });
  const other = await ctSeries(tempDir(), {
    slices: 1,
    rows: 32,
    cols: 32,
    patientId: 'PID-JLS',
    patientName: 'LEE^KIM',
    studyDate: '20220202',
  });
  jls = {
    file: (await compress(other.files[0], 'jpeg-ls', path.join(tempDir(), 'jls.dcm'))).file,
    sopInstanceUid: other.sopInstanceUids[0],
  };
});

afterAll(async () => {
  await s?.close();
});

describe('DICOMweb', () => {
  it('STOW-RS stores through the reception, durably, with the user as creator; refuses without write right', async () => {
    const wendy = dicomwebClient(s.httpPort, token.wendy);
    const rita = dicomwebClient(s.httpPort, token.rita);
    const { body, contentType } = stowBody([...ct.files, ...mr.files, jls.file].map((f) => fs.readFileSync(f)));

    expect((await rita.stow('/Import/studies', body, contentType)).status).toBe(403);
    expect((await dicomwebClient(s.httpPort, 'nope').stow('/Import/studies', body, contentType)).status).toBe(401);
    expect((await wendy.stow('/Nowhere/studies', body, contentType)).status).toBe(404);
    expect((await wendy.stow('/Other/studies', body, contentType)).status).toBe(403);
    expect((await wendy.stow('/Import/studies', body, 'application/dicom')).status).toBe(415);

    const stored = await wendy.stow('/Import/studies', body, contentType);
    expect(stored.status).toBe(200);
    const referenced = stored.body['00081199'].Value as Record<string, { Value?: unknown[] }>[];
    expect(referenced.map((r) => value(r, '00081155')).sort()).toEqual(
      [...ct.sopInstanceUids, ...mr.sopInstanceUids, jls.sopInstanceUid].sort(),
    );
    expect(String(value(referenced[0], '00081190'))).toMatch(
      /^http:\/\/127\.0\.0\.1:\d+\/dicomweb\/Import\/studies\/[0-9.]+\/series\/[0-9.]+\/instances\/[0-9.]+$/,
    );
    expect(stored.body['00081198']).toBeUndefined();

    // Acknowledged means an arrival row per object, from the dicomweb source, by wendy.
    const arrivals = (await s.index.recentArrivals(20)).filter((a) => a.source === 'dicomweb');
    expect(arrivals).toHaveLength(6);
    expect(new Set(arrivals.map((a) => `${a.userName}/${a.createdBy}/${a.database}`))).toEqual(new Set(['wendy/wendy/Import']));
    await s.engine.idle();
    await until('filed into Import', async () => (await s.index.instances('Import', {})).length === 6);
    // The stored object is the sender's dataset, byte for byte, after a fresh file meta header.
    for (const row of await s.index.instances('Import', { studyInstanceUids: [ct.studyInstanceUid] })) {
      const file = ct.files[ct.sopInstanceUids.indexOf(row.instance.SOPInstanceUID)];
      expect(
        splitPart10(fs.readFileSync(path.join(s.dataDir, 'storage', row.objectPath))).dataset.equals(
          splitPart10(fs.readFileSync(file)).dataset,
        ),
      ).toBe(true);
      expect(`${row.createdBy}/${row.source}`).toBe('wendy/dicomweb');
    }
  });

  it('STOW-RS lists malformed parts and objects of another study in FailedSOPSequence and keeps nothing of them', async () => {
    const wendy = dicomwebClient(s.httpPort, token.wendy);
    const extra = await ctSeries(tempDir(), { slices: 2, rows: 16, cols: 16, patientId: 'PID-X' });
    const good = fs.readFileSync(extra.files[0]);
    const truncated = good.subarray(0, good.length - 100);
    const incoming = path.join(s.dataDir, 'storage', 'incoming');
    const { body, contentType } = stowBody([Buffer.from('not dicom at all'), good, truncated]);
    const mixed = await wendy.stow('/Import/studies', body, contentType);
    expect(mixed.status).toBe(202);
    expect((mixed.body['00081199'].Value as object[]).length).toBe(1);
    const failed = mixed.body['00081198'].Value as Record<string, { Value?: unknown[] }>[];
    expect(failed.map((f) => value(f, '00081197'))).toEqual([0xc000, 0xc000]);
    // The truncated copy named the same instance as the good one: only the good one is stored.
    expect(value(failed[1], '00081155')).toBe(extra.sopInstanceUids[0]);

    const wrongStudy = stowBody([fs.readFileSync(extra.files[1])]);
    const refused = await wendy.stow(`/Import/studies/${ct.studyInstanceUid}`, wrongStudy.body, wrongStudy.contentType);
    expect(refused.status).toBe(409);
    expect(value((refused.body['00081198'].Value as Record<string, { Value?: unknown[] }>[])[0], '00081197')).toBe(0xa900);
    const arrivals = (await s.index.recentArrivals(50)).filter((a) => a.attributes.PatientID === 'PID-X');
    expect(arrivals.map((a) => a.sopInstanceUid)).toEqual([extra.sopInstanceUids[0]]);
    expect(fs.readdirSync(incoming).filter((f) => f.endsWith('.part'))).toEqual([]);
  });

  it('QIDO-RS searches with C-FIND matching, counts, includefield, limit and offset', async () => {
    const rita = dicomwebClient(s.httpPort, token.rita);
    const studies = async (query: string) => {
      const r = await rita.get(`/Import/studies${query}`);
      expect(r.status, r.body.toString()).toBe(200);
      expect(r.headers.get('content-type')).toContain('application/dicom+json');
      return r.json() as Record<string, { vr: string; Value?: unknown[] }>[];
    };
    const uidsOf = (list: Record<string, { Value?: unknown[] }>[]) => list.map((d) => value(d, '0020000D')).sort();

    expect(uidsOf(await studies('?PatientName=DOE*'))).toEqual([ct.studyInstanceUid]);
    expect(uidsOf(await studies('?00100010=smith^anna'))).toEqual([mr.studyInstanceUid]);
    expect(uidsOf(await studies('?StudyDate=20231101-20240131'))).toEqual([ct.studyInstanceUid, mr.studyInstanceUid].sort());
    expect(uidsOf(await studies(`?StudyInstanceUID=${ct.studyInstanceUid}\\${mr.studyInstanceUid}`))).toEqual(
      [ct.studyInstanceUid, mr.studyInstanceUid].sort(),
    );
    expect(uidsOf(await studies('?ModalitiesInStudy=MR&fuzzymatching=false'))).toEqual([mr.studyInstanceUid]);

    const [study] = await studies(`?StudyInstanceUID=${ct.studyInstanceUid}`);
    expect(value(study, '00201208')).toBe(3); // NumberOfStudyRelatedInstances
    expect(value(study, '00201206')).toBe(1); // NumberOfStudyRelatedSeries
    expect(study['00080061'].Value).toEqual(['CT']); // ModalitiesInStudy
    expect(study['00100010'].Value).toEqual([{ Alphabetic: 'DOE^JOHN' }]);
    expect(study['00100010'].vr).toBe('PN');
    expect(value(study, '00081030')).toBe('CT HEAD');
    expect(value(study, '00081190')).toBe(`http://127.0.0.1:${s.httpPort}/dicomweb/Import/studies/${ct.studyInstanceUid}`);

    const all = await studies('?limit=10&includefield=all');
    expect(all).toHaveLength(4);
    expect(all[0]['00080020']?.vr).toBe('DA');
    const paged = [...(await studies('?limit=1')), ...(await studies('?limit=1&offset=1')), ...(await studies('?limit=2&offset=2'))];
    expect(uidsOf(paged)).toEqual(uidsOf(all));
    expect(await studies('?offset=4')).toEqual([]);

    const series = await rita.get('/Import/series?Modality=MR');
    expect(series.json().map((d: Record<string, { Value?: unknown[] }>) => value(d, '0020000E'))).toEqual([mr.seriesInstanceUid]);
    expect(value(series.json()[0], '00201209')).toBe(2);
    const instances = (
      await rita.get(`/Import/studies/${ct.studyInstanceUid}/series/${ct.seriesInstanceUid}/instances?includefield=00280010`)
    ).json();
    expect(instances.map((d: Record<string, { Value?: unknown[] }>) => value(d, '00080018')).sort()).toEqual(
      [...ct.sopInstanceUids].sort(),
    );
    expect(value(instances[0], '00280010')).toBe(32);
    expect((await rita.get(`/Import/instances?SOPInstanceUID=${ct.sopInstanceUids[1]}`)).json()).toHaveLength(1);

    const fuzzy = await rita.get('/Import/studies?fuzzymatching=true&PatientName=DOE*');
    expect(fuzzy.headers.get('warning')).toMatch(/^299 /);
    const bad = await rita.get('/Import/studies?StudyDate=2024-bad');
    expect(bad.status).toBe(400);
    expect(bad.json().code).toBe('DF_ERR_QUERY_INVALID');
    expect((await rita.get('/Import/studies?NoSuchKeyword=1')).status).toBe(400);
    expect((await rita.get('/Import/studies', 'application/dicom+xml')).status).toBe(406);
    expect((await rita.get('/Other/studies')).status).toBe(403);
  });

  it('WADO-RS sends the stored bytes, transcodes only when asked, and refuses what it cannot make', async () => {
    const rita = dicomwebClient(s.httpPort, token.rita);
    const study = await rita.get(`/Import/studies/${ct.studyInstanceUid}`);
    expect(study.status).toBe(200);
    const contentType = study.headers.get('content-type')!;
    expect(contentType).toMatch(/^multipart\/related; type="application\/dicom"; boundary=/);
    const parts = splitMultipart(contentType, study.body);
    expect(parts).toHaveLength(3);
    const stored = new Map(
      (await s.index.instances('Import', { studyInstanceUids: [ct.studyInstanceUid] })).map((r) => [
        r.instance.SOPInstanceUID,
        fs.readFileSync(path.join(s.dataDir, 'storage', r.objectPath)),
      ]),
    );
    for (const part of parts) {
      expect(part.headers['content-type']).toBe(`application/dicom; transfer-syntax=${EXPLICIT_VR_LE}`);
      expect(part.body.equals(stored.get(splitPart10(part.body).sopInstanceUid)!)).toBe(true);
    }

    const instancePath = `/Import/studies/${ct.studyInstanceUid}/series/${ct.seriesInstanceUid}/instances/${ct.sopInstanceUids[0]}`;
    const implicit = await rita.get(instancePath, `multipart/related; type="application/dicom"; transfer-syntax=${IMPLICIT_VR_LE}`);
    const [transcoded] = splitMultipart(implicit.headers.get('content-type')!, implicit.body);
    expect(transcoded.headers['content-type']).toBe(`application/dicom; transfer-syntax=${IMPLICIT_VR_LE}`);
    expect(splitPart10(transcoded.body).transferSyntaxUid).toBe(IMPLICIT_VR_LE);
    const any = await rita.get(instancePath, 'multipart/related; type="application/dicom"; transfer-syntax=*');
    expect(splitMultipart(any.headers.get('content-type')!, any.body)[0].body.equals(stored.get(ct.sopInstanceUids[0])!)).toBe(true);
    const jpeg = await rita.get(instancePath, 'multipart/related; type="application/dicom"; transfer-syntax=1.2.840.10008.1.2.4.50');
    expect(jpeg.status).toBe(406);
    expect(jpeg.json().code).toBe('DF_ERR_NOT_ACCEPTABLE');
    expect((await rita.get(`/Import/studies/1.2.3.4.5`)).status).toBe(404);
  });

  it('WADO-RS metadata, bulk data, frames, rendered images and thumbnails', async () => {
    const rita = dicomwebClient(s.httpPort, token.rita);
    const instancePath = `/Import/studies/${ct.studyInstanceUid}/series/${ct.seriesInstanceUid}/instances/${ct.sopInstanceUids[1]}`;
    const meta = await rita.get(`${instancePath}/metadata`);
    expect(meta.status).toBe(200);
    const [dataset] = meta.json();
    expect(value(dataset, '00080018')).toBe(ct.sopInstanceUids[1]);
    expect(dataset['00100010'].Value).toEqual([{ Alphabetic: 'DOE^JOHN' }]);
    expect(dataset['00280010']).toEqual({ vr: 'US', Value: [32] });
    const bulkUri = dataset['7FE00010'].BulkDataURI as string;
    expect(bulkUri).toBe(`http://127.0.0.1:${s.httpPort}/dicomweb${instancePath}/bulkdata/7FE00010`);
    expect((await rita.get(`/Import/studies/${ct.studyInstanceUid}/metadata`)).json()).toHaveLength(3);

    const original = splitPart10(fs.readFileSync(ct.files[1]));
    const pixelBytes = 32 * 32 * 2;
    const bulk = await rita.get(bulkUri.slice(rita.base.length));
    const [pixels] = splitMultipart(bulk.headers.get('content-type')!, bulk.body);
    expect(pixels.body.length).toBe(pixelBytes);
    // Native pixel data is the file's last value.
    expect(pixels.body.equals(original.dataset.subarray(original.dataset.length - pixelBytes))).toBe(true);
    const frame = await rita.get(`${instancePath}/frames/1`, 'multipart/related; type="application/octet-stream"');
    expect(splitMultipart(frame.headers.get('content-type')!, frame.body)[0].body.equals(pixels.body)).toBe(true);
    expect((await rita.get(`${instancePath}/frames/2`)).status).toBe(404);

    const jpeg = await rita.get(`${instancePath}/rendered`);
    expect(jpeg.headers.get('content-type')).toBe('image/jpeg');
    expect(jpeg.body.subarray(0, 2).toString('hex')).toBe('ffd8');
    const png = await rita.get(`${instancePath}/rendered?window=40,400,sigmoid`, 'image/png');
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(png.body.subarray(1, 4).toString()).toBe('PNG');
    expect((await rita.get(`${instancePath}/rendered?window=40,-1`)).status).toBe(400);
    const thumb = await rita.get(`/Import/studies/${ct.studyInstanceUid}/thumbnail?viewport=16,16`);
    expect(thumb.status).toBe(200);
    expect(thumb.body.subarray(0, 2).toString('hex')).toBe('ffd8');

    // A compressed object: frames as stored (its JPEG-LS codestream) or decoded on request.
    const jlsRow = (await s.index.instances('Import', { sopInstanceUids: [jls.sopInstanceUid] }))[0];
    const jlsPath = `/Import/studies/${jlsRow.study.StudyInstanceUID}/series/${jlsRow.series.SeriesInstanceUID}/instances/${jls.sopInstanceUid}`;
    const asStored = await rita.get(`${jlsPath}/frames/1`, 'multipart/related; type="image/jls"');
    expect(asStored.headers.get('content-type')).toMatch(/^multipart\/related; type="image\/jls"/);
    const [codestream] = splitMultipart(asStored.headers.get('content-type')!, asStored.body);
    expect(codestream.headers['content-type']).toBe(`image/jls; transfer-syntax=${JPEG_LS}`);
    expect(codestream.body.subarray(0, 2).toString('hex')).toBe('ffd8');
    const decoded = await rita.get(`${jlsPath}/frames/1`, 'multipart/related; type="application/octet-stream"');
    expect(splitMultipart(decoded.headers.get('content-type')!, decoded.body)[0].body.length).toBe(pixelBytes);
    const explicit = await rita.get(jlsPath, `multipart/related; type="application/dicom"; transfer-syntax=${EXPLICIT_VR_LE}`);
    expect(splitPart10(splitMultipart(explicit.headers.get('content-type')!, explicit.body)[0].body).transferSyntaxUid).toBe(
      EXPLICIT_VR_LE,
    );
    expect((await rita.get(`${jlsPath}/frames/1`, 'multipart/related; type="image/jp2"')).status).toBe(406);
  });

  it('is listed in the OpenAPI document', async () => {
    const res = await fetch(`http://127.0.0.1:${s.httpPort}/api/openapi.json`, { headers: { authorization: `Bearer ${s.adminToken}` } });
    const doc = (await res.json()) as { paths: Record<string, unknown> };
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/dicomweb/{db}/studies',
        '/dicomweb/{db}/studies/{study}/series/{series}/instances/{instance}/frames/{frames}',
        '/dicomweb/{db}/studies/{study}/metadata',
      ]),
    );
  });
});
