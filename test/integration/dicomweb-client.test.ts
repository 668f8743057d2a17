// Issue 18: the `dicomweb-client` npm package (what OHIF is built on) as an independent client of
// dicomflow's DICOMweb service: STOW, QIDO, WADO of instances, metadata, frames and rendered images.
import fs from 'node:fs';
import path from 'node:path';
import { api as dicomweb } from 'dicomweb-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import type { RunningServer } from '../../server/app.ts';
import { ctSeries } from '../fixtures/builder.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';
import { XhrOnFetch } from '../helpers/xhr-on-fetch.ts';

// The package's typings come from its JSDoc and mark optional options as required.
type Call = (options: Record<string, unknown>) => Promise<unknown>;
type Client = Record<
  | 'storeInstances'
  | 'searchForStudies'
  | 'searchForInstances'
  | 'retrieveInstance'
  | 'retrieveSeries'
  | 'retrieveInstanceMetadata'
  | 'retrieveBulkData'
  | 'retrieveInstanceFrames'
  | 'retrieveInstanceRendered',
  Call
>;

let s: RunningServer & { dataDir: string };
const previousXhr = (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest;

beforeAll(async () => {
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = XhrOnFetch;
  s = await startTestServer({ users: [{ name: 'viewer', role: 'operator', databases: { Import: 'write' } }] });
});

afterAll(async () => {
  (globalThis as { XMLHttpRequest?: unknown }).XMLHttpRequest = previousXhr;
  await s?.close();
});

describe('DICOMweb with the dicomweb-client package', () => {
  it('stores, searches and retrieves a series', async () => {
    const client = new dicomweb.DICOMwebClient({
      url: `http://127.0.0.1:${s.httpPort}/dicomweb/Import`,
      headers: { Authorization: `Bearer ${(await issueToken(s.tokens, s.users, 'viewer')).token}` },
      verbose: false,
      singlepart: false,
    }) as unknown as Client;
    const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'DWC-1', patientName: 'CLIENT^DICOMWEB' });
    const files = ct.files.map((f) => fs.readFileSync(f));
    await client.storeInstances({ datasets: files.map((b) => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)) });
    await s.engine.idle();
    await until('filed', async () => (await s.index.instances('Import', { studyInstanceUids: [ct.studyInstanceUid] })).length === 2);

    const studies = (await client.searchForStudies({ queryParams: { PatientName: 'CLIENT*' } })) as Record<string, { Value: unknown[] }>[];
    expect(studies.map((d) => d['0020000D'].Value[0])).toEqual([ct.studyInstanceUid]);
    expect(studies[0]['00201208'].Value).toEqual([2]);
    const instances = (await client.searchForInstances({
      studyInstanceUID: ct.studyInstanceUid,
      seriesInstanceUID: ct.seriesInstanceUid,
    })) as Record<string, { Value: unknown[] }>[];
    expect(instances.map((d) => d['00080018'].Value[0]).sort()).toEqual([...ct.sopInstanceUids].sort());

    const ids = { studyInstanceUID: ct.studyInstanceUid, seriesInstanceUID: ct.seriesInstanceUid, sopInstanceUID: ct.sopInstanceUids[0] };
    const instance = (await client.retrieveInstance(ids)) as ArrayBuffer;
    const row = (await s.index.instances('Import', { sopInstanceUids: [ct.sopInstanceUids[0]] }))[0];
    expect(Buffer.from(instance).equals(fs.readFileSync(path.join(s.dataDir, 'storage', row.objectPath)))).toBe(true);
    expect(splitPart10(Buffer.from(instance)).dataset.equals(splitPart10(files[0]).dataset)).toBe(true);

    const series = (await client.retrieveSeries({
      studyInstanceUID: ct.studyInstanceUid,
      seriesInstanceUID: ct.seriesInstanceUid,
    })) as ArrayBuffer[];
    expect(series).toHaveLength(2);

    const [metadata] = (await client.retrieveInstanceMetadata(ids)) as Record<string, { BulkDataURI?: string; Value?: unknown[] }>[];
    expect(metadata['00100020'].Value).toEqual(['DWC-1']);
    expect(metadata['7FE00010'].BulkDataURI).toMatch(/\/bulkdata\/7FE00010$/);
    const bulk = (await client.retrieveBulkData({ BulkDataURI: metadata['7FE00010'].BulkDataURI! })) as ArrayBuffer[];
    expect(bulk[0].byteLength).toBe(32 * 32 * 2);

    const frames = (await client.retrieveInstanceFrames({ ...ids, frameNumbers: [1] })) as ArrayBuffer[];
    expect(Buffer.from(frames[0]).equals(Buffer.from(bulk[0]))).toBe(true);

    const [rendered] = (await client.retrieveInstanceRendered({ ...ids, mediaTypes: [{ mediaType: 'image/png' }] })) as ArrayBuffer[];
    expect(Buffer.from(rendered).subarray(1, 4).toString()).toBe('PNG');
  });
});
