// The index's levels read a page at a time (keyset paging, for C-FIND's streamed answer): the
// pages together hold every row once, in the order of a read without pages, on both backends.
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { openTestIndexDatabase } from '../../../test/helpers/test-index.ts';
import { fileIndexedStudies } from '../../../test/fixtures/index-studies.ts';
import type { PageRequest } from '../index-store.ts';
import { SqlIndex } from './sql-index.ts';

const open: SqlIndex[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((i) => i.close()));
});

/** Every page of `read` until a short one, and how many pages it took. */
async function allPages<R extends { key?: string }>(
  read: (page: PageRequest) => Promise<R[]>,
  limit: number,
): Promise<{ rows: R[]; pages: number }> {
  const rows: R[] = [];
  let pages = 0;
  for (let after: string | undefined; ; ) {
    const page = await read({ after, limit });
    pages++;
    rows.push(...page);
    if (page.length < limit) return { rows, pages };
    after = page.at(-1)!.key;
  }
}

describe('index levels a page at a time', () => {
  it('patients, studies, series and instances: every row once, in order, pages of at most the limit', async () => {
    const index = new SqlIndex(await openTestIndexDatabase(tempDir()));
    open.push(index);
    await fileIndexedStudies(index, 'Paged', 23);
    await fileIndexedStudies(index, 'Other', 5, 'OTHER');
    const levels: Record<string, (p?: PageRequest) => Promise<{ key?: string }[]>> = {
      patients: (p?: PageRequest) => index.patients('Paged', {}, p),
      studies: (p?: PageRequest) => index.studies('Paged', {}, p),
      series: (p?: PageRequest) => index.series('Paged', {}, p),
      instances: (p?: PageRequest) => index.instances('Paged', {}, p),
    };
    for (const [name, read] of Object.entries(levels)) {
      const whole = await read();
      expect(whole, name).toHaveLength(23);
      const { rows, pages } = await allPages(read, 5);
      expect(pages, name).toBe(5);
      expect(
        rows.map((r) => r.key),
        name,
      ).toEqual(whole.map((r) => r.key));
      expect(new Set(rows.map((r) => r.key)).size, name).toBe(23);
    }
    // A filter holds across pages.
    const [first] = await index.studies('Paged', {}, { limit: 1 });
    expect(await index.studies('Paged', { patientId: first.patient.PatientID }, { limit: 5 })).toHaveLength(1);
    expect(await index.studies('Paged', { patientId: first.patient.PatientID }, { after: first.key, limit: 5 })).toHaveLength(0);
  });
});
