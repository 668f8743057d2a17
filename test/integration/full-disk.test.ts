// Issue 8, faults outside: the storage root on a small tmpfs fills up. New objects are refused
// with an out-of-resources status (A7xx) while the server stays up and keeps answering C-ECHO
// and C-FIND; nothing refused is indexed or left half written; once space returns, objects are
// accepted again.
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { caseIds, CT_IMAGE_STORAGE } from '../fuzz/corpus.ts';
import { instanceDataset } from '../fuzz/dicom-bytes.ts';
import { findscu, hasTool, parseFindscuResponses } from '../helpers/dcmtk.ts';
import {
  EXPLICIT_VR_LITTLE_ENDIAN,
  IMPLICIT_VR_LITTLE_ENDIAN,
  rawAssociate,
  VERIFICATION_SOP_CLASS,
  type RawAssociation,
} from '../helpers/raw-scu.ts';
import { canMount, smallDisk as mountSmallDisk } from '../helpers/small-disk.ts';
import { eventually } from '../helpers/receive-checks.ts';
import { startTestServer } from '../helpers/server.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

function smallDisk(mb: number): string {
  const disk = mountSmallDisk(mb, 'df-full-disk-');
  cleanups.push(disk.unmount);
  return disk.dir;
}

/** A 128 KiB CT object (256 × 256 16-bit pixels). */
function objectFor(n: number) {
  const ids = caseIds(8, n);
  return { ids, dataset: instanceDataset(ids, { size: 256 }) };
}

async function associate(port: number): Promise<RawAssociation> {
  return rawAssociate({
    port,
    calledAe: 'DICOMFLOW',
    contexts: [
      { id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] },
      { id: 3, abstractSyntax: CT_IMAGE_STORAGE, transferSyntaxes: [EXPLICIT_VR_LITTLE_ENDIAN] },
    ],
  });
}

describe.skipIf(!canMount)('a full disk', () => {
  it('refuses new objects with A7xx while C-ECHO and C-FIND answer, indexes nothing refused, and accepts again once space returns', async () => {
    const disk = smallDisk(24);
    const s = await startTestServer({ dataDir: disk, storage: { minFreeMegabytes: 4 } });
    cleanups.push(() => s.close());
    // Another program fills most of the disk, as happens on a shared volume.
    const filler = path.join(disk, 'someone-elses-file');
    fs.writeFileSync(filler, Buffer.alloc(12 << 20, 1));

    const assoc = await associate(s.dicomPort);
    const statuses: { n: number; status: number; comment?: string }[] = [];
    // Sent back to back: the free-space poll (once a second) falls behind, so the disk also
    // really runs out (ENOSPC) under writes, not only below the reserve.
    for (let n = 0; n < 120; n++) {
      const { ids, dataset } = objectFor(n);
      const r = await assoc.sendCStore({ sopClassUid: ids.sopClassUid, sopInstanceUid: ids.sopInstanceUid, datasetBytes: dataset });
      statuses.push({ n, status: r.status, comment: r.errorComment });
    }
    const accepted = statuses.filter((x) => x.status === 0);
    const refused = statuses.filter((x) => x.status !== 0);
    expect(accepted.length).toBeGreaterThan(5);
    expect(refused.length).toBeGreaterThan(20);
    // PS3.4 B.2.3: A7xx "Refused: Out of Resources", and nothing else.
    for (const r of refused)
      expect({ status: `0x${r.status.toString(16)}`, comment: r.comment }).toMatchObject({
        status: expect.stringMatching(/^0xa7/),
        comment: expect.stringMatching(/^DF_ERR_STORE_FULL/),
      });
    // Once refusing, it does not flap back while the disk stays full.
    expect(statuses.slice(statuses.indexOf(refused[0])).every((x) => x.status !== 0)).toBe(true);

    // The association and the server still answer.
    expect((await assoc.sendEcho()).status).toBe(0);
    await assoc.release();
    if (hasTool('findscu')) {
      const find = await findscu([
        '-S',
        '-aec',
        'DICOMFLOW',
        '-k',
        'QueryRetrieveLevel=STUDY',
        '-k',
        'StudyInstanceUID',
        '127.0.0.1',
        String(s.dicomPort),
      ]);
      expect(find.code, find.stderr).toBe(0);
      await s.engine.idle();
      expect(parseFindscuResponses(find.stdout + find.stderr).length).toBeGreaterThan(0);
    }
    // Every acknowledged object is indexed once; nothing refused is, nor left half written.
    const count = async (uid: string) =>
      (await s.index.connection.get<{ n: number }>(
        'SELECT count(*) AS n FROM objects WHERE sop_instance_uid = ? AND deleted_at IS NULL',
        uid,
      ))!.n;
    for (const a of accepted) expect(await count(caseIds(8, a.n).sopInstanceUid)).toBe(1);
    for (const r of refused) expect(await count(caseIds(8, r.n).sopInstanceUid)).toBe(0);
    expect(fs.readdirSync(path.join(disk, 'storage', 'incoming'))).toEqual([]);
    // The status page says so once the free-space poll (every second) has looked.
    const refusing = async () =>
      (
        (await fetch(`http://127.0.0.1:${s.httpPort}/api/status`, { headers: { authorization: `Bearer ${s.adminToken}` } }).then((r) =>
          r.json(),
        )) as { storage: { refusingNewObjects: boolean } }
      ).storage.refusingNewObjects;
    await eventually(refusing, (r) => r === true);

    // Space returns: the other program's file goes, and the next free-space poll sees it.
    fs.rmSync(filler);
    await eventually(refusing, (r) => r === false);
    const again = await associate(s.dicomPort);
    for (let n = 1000; n < 1010; n++) {
      const { ids, dataset } = objectFor(n);
      const r = await again.sendCStore({ sopClassUid: ids.sopClassUid, sopInstanceUid: ids.sopInstanceUid, datasetBytes: dataset });
      expect(r.status, r.errorComment).toBe(0);
      expect(await count(ids.sopInstanceUid)).toBe(1);
    }
    await again.release();
    // A refused object sent again is now accepted.
    const retry = await associate(s.dicomPort);
    const { ids, dataset } = objectFor(refused[0].n);
    expect(
      (await retry.sendCStore({ sopClassUid: ids.sopClassUid, sopInstanceUid: ids.sopInstanceUid, datasetBytes: dataset })).status,
    ).toBe(0);
    await retry.release();
    // Figures for `npm run proof`.
    if (process.env.DF_PROOF_DIR) {
      const byCause = (re: RegExp) => refused.filter((r) => re.test(r.comment ?? '')).length;
      let lost = 0;
      for (const a of accepted) if ((await count(caseIds(8, a.n).sopInstanceUid)) !== 1) lost++;
      fs.writeFileSync(
        path.join(process.env.DF_PROOF_DIR, 'full-disk.json'),
        JSON.stringify({
          sent: statuses.length,
          acknowledged: accepted.length,
          refusedA7xx: refused.length,
          refusedByReserve: byCause(/below its free/),
          refusedByEnospc: byCause(/no space left/),
          lost,
          acceptedAfterSpaceReturned: 11,
        }),
      );
    }
  }, 120_000);
});
