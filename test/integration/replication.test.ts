import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ctSeries, mrSeries } from '../fixtures/builder.ts';
import { findscu, parseFindscuResponses, storescu } from '../helpers/dcmtk.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');

describe('replication from a remote DICOM node', () => {
  it('copies a study from a second dicomflow with C-GET, the initiating user recorded as creator', async () => {
    const remote = await startTestServer({ dimse: { aeTitle: 'NODEB' } });
    const ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32, withPrivateTags: true });
    const mr = await mrSeries(tempDir(), { slices: 2, rows: 32, cols: 32, studyUid: ct.studyInstanceUid, patientId: ct.patientId });
    const other = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'OTHER-PATIENT' });
    expect((await storescu(['-aec', 'NODEB', '127.0.0.1', String(remote.dicomPort), ...ct.files, ...mr.files, ...other.files])).code).toBe(
      0,
    );
    await remote.engine.idle();

    const localConfig = {
      remoteNodes: [{ aeTitle: 'NODEB', host: '127.0.0.1', port: remote.dicomPort }],
      users: [
        { name: 'ATL_Manager', role: 'manager', databases: { '*': 'write' } },
        { name: 'reader', role: 'reader', databases: { Import: 'read' } },
      ],
    };
    const local = await startTestServer(localConfig);
    try {
      const configFile = path.join(tempDir(), 'config.json');
      fs.writeFileSync(configFile, JSON.stringify({ ...localConfig, dataDir: local.dataDir }));
      const denied = await run(node, [
        cli,
        'replicate',
        '--config',
        configFile,
        '--from-node',
        'NODEB',
        '--to',
        'Import',
        '--study',
        ct.studyInstanceUid,
        '--user',
        'reader',
      ]).catch((e) => e);
      expect(denied.stderr).toContain('DF_ERR_FORBIDDEN');

      const out = await run(node, [
        cli,
        'replicate',
        '--config',
        configFile,
        '--from-node',
        'NODEB',
        '--to',
        'Import',
        '--study',
        ct.studyInstanceUid,
        '--user',
        'ATL_Manager',
      ]);
      expect(out.stdout).toContain('replicate from NODEB: 5 received, 0 failed, 0 warnings (final status 0x0000)');
      // Filed in each arrival's commit: C-FIND finds them as soon as the command exits.
      const found = await findscu([
        '-S',
        '-v',
        '-aec',
        'DICOMFLOW',
        '-k',
        'QueryRetrieveLevel=SERIES',
        '-k',
        `StudyInstanceUID=${ct.studyInstanceUid}`,
        '-k',
        'SeriesInstanceUID',
        '-k',
        'NumberOfSeriesRelatedInstances',
        '127.0.0.1',
        String(local.dicomPort),
      ]);
      expect(found.code, found.stderr).toBe(0);
      const series = parseFindscuResponses(`${found.stdout}${found.stderr}`).map((r) => [
        r.SeriesInstanceUID,
        Number(r.NumberOfSeriesRelatedInstances),
      ]);
      expect(new Map(series as [string, number][])).toEqual(
        new Map([
          [ct.seriesInstanceUid, 3],
          [mr.seriesInstanceUid, 2],
        ]),
      );
      const rows = await local.index.instances('Import', {});
      expect(rows).toHaveLength(5);
      expect(new Set(rows.map((r) => `${r.createdBy}/${r.source}`))).toEqual(new Set(['ATL_Manager (replication from NODEB)/replication']));
      // The bytes are the remote's stored objects, unchanged.
      // A patient: C-FIND lists its studies on the node, C-GET fetches each.
      const patient = await run(node, [
        cli,
        'replicate',
        '--config',
        configFile,
        '--from-node',
        'NODEB',
        '--to',
        'Import',
        '--patient',
        'OTHER-PATIENT',
        '--user',
        'ATL_Manager',
      ]);
      expect(patient.stdout).toContain('replicate from NODEB: 2 received, 0 failed');
      expect(await local.index.instances('Import', {})).toHaveLength(7);
      // The whole node: everything again (already here: kept as it was by the duplicate policy).
      const all = await run(node, [
        cli,
        'replicate',
        '--config',
        configFile,
        '--from-node',
        'NODEB',
        '--to',
        'Import',
        '--all',
        '--user',
        'ATL_Manager',
      ]);
      expect(all.stdout).toContain('replicate from NODEB: 7 received, 0 failed');
      await local.engine.idle();
      expect(await local.index.instances('Import', {})).toHaveLength(7);
      const remoteBytes = new Map(
        (await remote.index.instances('Import', {})).map((r) => {
          const p = splitPart10(fs.readFileSync(remote.objects.absolutePath(r.objectPath)));
          return [p.sopInstanceUid, p.dataset];
        }),
      );
      for (const r of await local.index.instances('Import', {})) {
        const p = splitPart10(fs.readFileSync(local.objects.absolutePath(r.objectPath)));
        expect(p.dataset.equals(remoteBytes.get(p.sopInstanceUid)!), p.sopInstanceUid).toBe(true);
      }
      // A node that is not configured is refused before anything is sent.
      const unknown = await run(node, [
        cli,
        'replicate',
        '--config',
        configFile,
        '--from-node',
        'NOWHERE',
        '--to',
        'Import',
        '--study',
        ct.studyInstanceUid,
        '--user',
        'ATL_Manager',
      ]).catch((e) => e);
      expect(unknown.stderr).toContain('no remote node "NOWHERE"');
    } finally {
      await local.close();
      await remote.close();
    }
  });
});
