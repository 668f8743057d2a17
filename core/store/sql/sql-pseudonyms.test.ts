// The pseudonym table on both back ends (the postgres project runs core/store/** too).
import { afterEach, describe, expect, it } from 'vitest';
import { tempDir } from '../../../test/helpers/temp.ts';
import { openTestIndexDatabase } from '../../../test/helpers/test-index.ts';
import type { SqlDb } from './sql-db.ts';
import { SqlPseudonyms } from './sql-pseudonyms.ts';

const open: SqlDb[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((db) => db.close()));
});

async function store(): Promise<SqlPseudonyms> {
  const db = await openTestIndexDatabase(tempDir());
  open.push(db);
  return new SqlPseudonyms(db);
}

describe('pseudonym table', () => {
  it('creates the installation secret once and returns the same one after', async () => {
    const s = await store();
    const first = await s.secret('deidentify');
    expect(first).toMatch(/^[0-9a-f]{64}$/);
    expect(await s.secret('deidentify')).toBe(first);
    expect(await s.secret('other')).not.toBe(first);
  });

  it('keeps the first pseudonym recorded for an original and finds it both ways', async () => {
    const s = await store();
    const [patient] = await s.record(
      [{ kind: 'patient', original: 'PID1\\HOSP', pseudonym: 'ANONAAAA', dateOffsetDays: -400, originalName: 'Doe^Jane' }],
      'pipeline p, job 1',
    );
    expect(patient).toMatchObject({
      kind: 'patient',
      original: 'PID1\\HOSP',
      pseudonym: 'ANONAAAA',
      dateOffsetDays: -400,
      originalName: 'Doe^Jane',
      createdBy: 'pipeline p, job 1',
    });
    // A later run proposing another value gets the recorded one.
    const [again] = await s.record(
      [{ kind: 'patient', original: 'PID1\\HOSP', pseudonym: 'ANONBBBB', dateOffsetDays: -9 }],
      'pipeline p, job 2',
    );
    expect(again).toMatchObject({ pseudonym: 'ANONAAAA', dateOffsetDays: -400, createdBy: 'pipeline p, job 1' });
    await s.record([{ kind: 'study', original: '1.2.3', pseudonym: '2.25.99' }], 'pipeline p, job 1');
    expect((await s.find('ANONAAAA')).map((r) => r.original)).toEqual(['PID1\\HOSP']);
    expect((await s.find('PID1\\HOSP', 'patient')).map((r) => r.pseudonym)).toEqual(['ANONAAAA']);
    expect(await s.find('2.25.99')).toMatchObject([{ kind: 'study', original: '1.2.3' }]);
    expect(await s.find('1.2.3', 'series')).toEqual([]);
    await s.record([{ kind: 'patient', original: 'PID2\\', pseudonym: 'ANONCCCC', dateOffsetDays: -500 }], 'pipeline p, job 3');
    expect((await s.find('PID2')).map((r) => r.pseudonym)).toEqual(['ANONCCCC']);
  });
});
