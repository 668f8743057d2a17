// Issue 17: an operator deletes a study or series from a database, with rights and an audit
// row; the original bytes go once no other database holds them, and never before.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { issueToken } from '../../core/users.ts';
import { ctSeries, mrSeries, type BuiltSeries } from '../fixtures/builder.ts';
import { apiClient } from '../helpers/api.ts';
import { storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';
import { until } from '../helpers/wait.ts';

describe('deleting from a database', () => {
  let s: Awaited<ReturnType<typeof startTestServer>>;
  let ct: BuiltSeries;
  let mr: BuiltSeries;
  const token: Record<string, string> = {};
  const as = (user: string) => apiClient(s.httpPort, token[user]);
  const objectPaths = async (series: BuiltSeries) =>
    (await s.index.instances('Import', { seriesInstanceUids: [series.seriesInstanceUid] })).map((r) =>
      s.objects.absolutePath(r.objectPath),
    );

  beforeAll(async () => {
    s = await startTestServer({
      databases: [{ name: 'Import' }, { name: 'StudyA' }],
      users: [
        { name: 'alice', role: 'manager', databases: { Import: 'write', StudyA: 'write' } },
        { name: 'olga', role: 'operator', databases: { Import: 'write' } },
        { name: 'rita', role: 'manager', databases: { Import: 'read' } },
      ],
    });
    for (const user of ['alice', 'olga', 'rita']) token[user] = (await issueToken(s.tokens, s.users, user)).token;
    ct = await ctSeries(tempDir(), { slices: 3, rows: 16, cols: 16, patientId: 'DEL1' });
    mr = await mrSeries(tempDir(), { slices: 2, rows: 16, cols: 16, patientId: 'DEL2' });
    expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files, ...mr.files])).code).toBe(0);
    await s.engine.idle();
  });
  afterAll(() => s?.close());

  it('is refused without a manager role or without write on the database, and names what is missing', async () => {
    const route = `/api/databases/Import/studies/${ct.studyInstanceUid}`;
    expect(await as('olga').del(route)).toMatchObject({ status: 403, body: { code: 'DF_ERR_FORBIDDEN' } });
    expect(await as('rita').del(route)).toMatchObject({ status: 403, body: { code: 'DF_ERR_FORBIDDEN' } });
    expect(await as('alice').del('/api/databases/Import/studies/1.2.3.404')).toMatchObject({
      status: 404,
      body: { code: 'DF_ERR_NOT_FOUND' },
    });
    expect(await as('alice').del(`/api/databases/Import/studies/${ct.studyInstanceUid}/series/${mr.seriesInstanceUid}`)).toMatchObject({
      status: 404,
    });
    expect(await s.index.studies('Import', { studyInstanceUids: [ct.studyInstanceUid] })).toHaveLength(1);
  });

  it('keeps the bytes of a study another database holds, and deletes those of one it alone held', async () => {
    const copied = await as('alice').post('/api/databases/Import/transfer', {
      to: 'StudyA',
      mode: 'copy',
      level: 'study',
      uid: ct.studyInstanceUid,
    });
    expect(copied).toMatchObject({ status: 200, body: { instances: 3 } });
    const ctFiles = await objectPaths(ct);
    const mrFiles = await objectPaths(mr);
    expect([...ctFiles, ...mrFiles].every((f) => fs.existsSync(f))).toBe(true);

    expect(await as('alice').del(`/api/databases/Import/studies/${ct.studyInstanceUid}`)).toMatchObject({
      status: 200,
      body: { instances: 3, released: 3 },
    });
    expect(await as('alice').del(`/api/databases/Import/studies/${mr.studyInstanceUid}/series/${mr.seriesInstanceUid}`)).toMatchObject({
      status: 200,
      body: { instances: 2, released: 2 },
    });

    // Gone from Import at once: study, series, patient rows pruned.
    expect(await s.index.studies('Import', {})).toEqual([]);
    expect(await s.index.patients('Import', {})).toEqual([]);
    // The MR's bytes are collected; the CT's stay, StudyA still holds them.
    await until('the MR objects deleted', async () => mrFiles.every((f) => !fs.existsSync(f)), 30_000);
    expect(ctFiles.every((f) => fs.existsSync(f))).toBe(true);
    expect(await s.index.instances('StudyA', { studyInstanceUids: [ct.studyInstanceUid] })).toHaveLength(3);

    const deletes = (await s.index.auditLog(10)).filter((a) => a.action === 'delete');
    expect(deletes.map((a) => [a.user, a.details.level, a.details.uid])).toEqual(
      expect.arrayContaining([
        ['alice', 'study', ct.studyInstanceUid],
        ['alice', 'series', mr.seriesInstanceUid],
      ]),
    );
  });
});
