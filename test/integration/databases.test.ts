import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ctSeries, mrSeries } from '../fixtures/builder.ts';
import { findscu, parseFindscuResponses, storescu } from '../helpers/dcmtk.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');

const config = {
  databases: [{ name: 'Import' }, { name: 'StudyA', aeTitle: 'STUDYA' }, { name: 'StudyB', aeTitle: 'STUDYB' }],
  users: [
    { name: 'ATL_Manager', role: 'manager', databases: { '*': 'write' } },
    { name: 'bob', role: 'manager', databases: { Import: 'read', StudyB: 'write' } },
    { name: 'reader_b', role: 'reader', databases: { StudyB: 'read' } },
  ],
};

describe('moving studies between databases (PMOD ATL_Manager)', () => {
  it('moves a received study from Import into a study database with rights, keeping the bytes and recording who did it', async () => {
    const s = await startTestServer(config);
    try {
      const configFile = path.join(tempDir(), 'config.json');
      fs.writeFileSync(configFile, JSON.stringify({ ...config, dataDir: s.dataDir, index: s.config.index }));
      const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'ATL1' });
      const mr = await mrSeries(tempDir(), { slices: 1, rows: 32, cols: 32, patientId: 'ATL1', studyUid: ct.studyInstanceUid });
      expect(
        (await storescu(['-aet', 'SCANNER', '-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...ct.files, ...mr.files])).code,
      ).toBe(0);
      await s.engine.idle();
      const before = (await s.index.instances('Import', {})).map((r) => r.objectPath).sort();
      expect(before).toHaveLength(3);

      // Without the right: bob may only read Import, so he cannot move out of it.
      const denied = await run(node, [
        cli,
        'move',
        '--config',
        configFile,
        '--from',
        'Import',
        '--to',
        'StudyB',
        ct.studyInstanceUid,
        '--user',
        'bob',
      ]).catch((e) => e);
      expect(denied.code).toBe(1);
      expect(denied.stderr).toContain('DF_ERR_FORBIDDEN: user "bob" has no write right on database "Import"');
      const readerDenied = await run(node, [
        cli,
        'copy',
        '--config',
        configFile,
        '--from',
        'Import',
        '--to',
        'StudyB',
        ct.studyInstanceUid,
        '--user',
        'reader_b',
      ]).catch((e) => e);
      expect(readerDenied.stderr).toContain('is a reader; this needs admin or manager');

      const moved = await run(node, [
        cli,
        'move',
        '--config',
        configFile,
        '--from',
        'Import',
        '--to',
        'StudyA',
        ct.studyInstanceUid,
        '--user',
        'ATL_Manager',
      ]);
      expect(moved.stdout).toContain('move: 3 instance(s) from Import to StudyA: 3 filed, 0 already there');
      expect(await s.index.instances('Import', {})).toHaveLength(0);
      expect(await s.index.studies('Import', {})).toHaveLength(0);
      const after = await s.index.instances('StudyA', {});
      expect(after.map((r) => r.objectPath).sort()).toEqual(before);
      expect(new Set(after.map((r) => `${r.createdBy}/${r.source}`))).toEqual(new Set(['ATL_Manager/move']));

      // Queried through the study database's AE title, the moved study is there with all its series.
      const found = await findscu([
        '-S',
        '-aec',
        'STUDYA',
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        `StudyInstanceUID=${ct.studyInstanceUid}`,
        '-k',
        'ModalitiesInStudy',
        '-k',
        'NumberOfStudyRelatedInstances',
        '127.0.0.1',
        String(s.dicomPort),
      ]);
      const [study] = parseFindscuResponses(found.stderr);
      expect(study.NumberOfStudyRelatedInstances).toBe('3');
      expect(String(study.ModalitiesInStudy).split('\\').sort()).toEqual(['CT', 'MR']);

      // bob may copy the series into StudyB (read on the source, write on the target).
      const copied = await run(node, [
        cli,
        'copy',
        '--config',
        configFile,
        '--from',
        'StudyA',
        '--to',
        'StudyB',
        '--series',
        ct.seriesInstanceUid,
        '--user',
        'ATL_Manager',
      ]);
      expect(copied.stdout).toContain('2 filed');
      expect(await s.index.instances('StudyA', {})).toHaveLength(3);
      expect(await s.index.instances('StudyB', {})).toHaveLength(2);
      expect((await s.index.auditLog(10)).map((a) => `${a.user} ${a.action}`)).toEqual(['ATL_Manager copy', 'ATL_Manager move']);
    } finally {
      await s.close();
    }
  });

  it('replicates a whole database with the initiating user as creator', async () => {
    const s = await startTestServer(config);
    try {
      const configFile = path.join(tempDir(), 'config.json');
      fs.writeFileSync(configFile, JSON.stringify({ ...config, dataDir: s.dataDir, index: s.config.index }));
      const ct = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32 });
      await storescu(['-aec', 'STUDYA', '127.0.0.1', String(s.dicomPort), ...ct.files]);
      await s.engine.idle();
      const out = await run(node, [
        cli,
        'replicate',
        '--config',
        configFile,
        '--from',
        'StudyA',
        '--to',
        'StudyB',
        '--all',
        '--user',
        'ATL_Manager',
      ]);
      expect(out.stdout).toContain('2 filed');
      const rows = await s.index.instances('StudyB', {});
      expect(rows.map((r) => `${r.createdBy}/${r.source}`)).toEqual([
        'ATL_Manager (replication from StudyA)/replication',
        'ATL_Manager (replication from StudyA)/replication',
      ]);
      const missing = await run(node, [
        cli,
        'move',
        '--config',
        configFile,
        '--from',
        'StudyA',
        '--to',
        'StudyB',
        '1.2.3.404',
        '--user',
        'ATL_Manager',
      ]).catch((e) => e);
      expect(missing.stderr).toContain('DF_ERR_NOT_FOUND: no study 1.2.3.404 in database "StudyA"');
    } finally {
      await s.close();
    }
  });
});
