import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ctSeries, mrSeries } from '../fixtures/builder.ts';
import { runDcmtk, storescu } from '../helpers/dcmtk.ts';
import { freePort } from '../helpers/net.ts';
import { splitPart10 } from '../helpers/part10.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

let server: Awaited<ReturnType<typeof startTestServer>>;
let destinationPort: number;
let ct: Awaited<ReturnType<typeof ctSeries>>;
let mr: Awaited<ReturnType<typeof mrSeries>>;

beforeAll(async () => {
  destinationPort = await freePort();
  server = await startTestServer({ remoteNodes: [{ aeTitle: 'MOVESCU', host: '127.0.0.1', port: destinationPort }] });
  ct = await ctSeries(tempDir(), { slices: 3, rows: 32, cols: 32, patientId: 'MOVE1', withPrivateTags: true });
  mr = await mrSeries(tempDir(), { slices: 2, rows: 32, cols: 32, patientId: 'MOVE1', studyUid: ct.studyInstanceUid });
  expect((await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(server.dicomPort), ...ct.files, ...mr.files])).code).toBe(0);
  await server.engine.idle();
});
afterAll(async () => {
  await server.close();
});

/** movescu as its own move destination: it receives the sub-operations on --port. */
async function move(keys: string[], destination = 'MOVESCU') {
  const out = tempDir('df-moved-');
  const result = await runDcmtk(
    'movescu',
    [
      '-v',
      '-S',
      '-aet',
      'MOVESCU',
      '-aem',
      destination,
      '-aec',
      'DICOMFLOW',
      '--port',
      String(destinationPort),
      '+xa',
      '+B',
      '-od',
      out,
      ...keys.flatMap((k) => ['-k', k]),
      '127.0.0.1',
      String(server.dicomPort),
    ],
    { timeoutMs: 30_000, cwd: out },
  );
  return { result, out, files: fs.readdirSync(out).map((f) => path.join(out, f)) };
}

describe('C-MOVE SCP with DCMTK movescu', () => {
  it('moves a study to a configured destination as the original bytes, private tags and all', async () => {
    const { result, files } = await move(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ct.studyInstanceUid}`]);
    expect(result.code, result.stderr).toBe(0);
    expect(files).toHaveLength(5);
    // Compared with what dicomflow stored (storescu itself re-encodes sequences on the way in).
    const part10 = (f: string) => splitPart10(fs.readFileSync(f));
    const stored = (await server.index.instances('Import', {})).map((r) => server.objects.absolutePath(r.objectPath));
    const sent = new Map(stored.map((f) => [part10(f).sopInstanceUid, part10(f).dataset]));
    for (const f of files) {
      const received = part10(f);
      expect(sent.has(received.sopInstanceUid), `${received.sopInstanceUid} of ${[...sent.keys()].join(', ')}`).toBe(true);
      expect(received.dataset.equals(sent.get(received.sopInstanceUid)!), received.sopInstanceUid).toBe(true);
    }
    // A pending response after each sub-operation, then the final one.
    expect(result.stderr.match(/Received Move Response \d+ \(Pending\)/g)).toHaveLength(4);
    expect(result.stderr).toMatch(/Received Final Move Response \(Success\)/);
  });

  it('moves a series and single images', async () => {
    const series = await move([
      'QueryRetrieveLevel=SERIES',
      `StudyInstanceUID=${ct.studyInstanceUid}`,
      `SeriesInstanceUID=${mr.seriesInstanceUid}`,
    ]);
    expect(series.files).toHaveLength(2);
    const image = await move([
      'QueryRetrieveLevel=IMAGE',
      `StudyInstanceUID=${ct.studyInstanceUid}`,
      `SeriesInstanceUID=${ct.seriesInstanceUid}`,
      `SOPInstanceUID=${ct.sopInstanceUids[0]}\\${ct.sopInstanceUids[2]}`,
    ]);
    expect(image.files).toHaveLength(2);
  });

  it('refuses an unknown destination with A801 and a retrieve without its unique key with A900', async () => {
    const unknown = await move(['QueryRetrieveLevel=STUDY', `StudyInstanceUID=${ct.studyInstanceUid}`], 'NOWHERE');
    expect(unknown.files).toHaveLength(0);
    expect(unknown.result.stderr).toMatch(/Final Move Response \(Refused: MoveDestinationUnknown\)/);
    const noKey = await move(['QueryRetrieveLevel=SERIES', `StudyInstanceUID=${ct.studyInstanceUid}`]);
    expect(noKey.result.stderr).toMatch(/Final Move Response \(Error: DataSetDoesNotMatchSOPClass\)/);
  });

  it('reports failed sub-operations when the destination is down', async () => {
    const down = await freePort();
    const s = await startTestServer({ remoteNodes: [{ aeTitle: 'DOWN', host: '127.0.0.1', port: down }] });
    try {
      const c = await ctSeries(tempDir(), { slices: 2, rows: 32, cols: 32 });
      await storescu(['-aec', 'DICOMFLOW', '127.0.0.1', String(s.dicomPort), ...c.files]);
      await s.engine.idle();
      const r = await runDcmtk(
        'movescu',
        [
          '-v',
          '-S',
          '-aem',
          'DOWN',
          '-aec',
          'DICOMFLOW',
          '-k',
          'QueryRetrieveLevel=STUDY',
          '-k',
          `StudyInstanceUID=${c.studyInstanceUid}`,
          '127.0.0.1',
          String(s.dicomPort),
        ],
        { timeoutMs: 30_000 },
      );
      expect(r.stderr).toMatch(/Final Move Response \(Refused: OutOfResourcesSubOperations\)/);
    } finally {
      await s.close();
    }
  });
});
