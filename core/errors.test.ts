import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { errorCodes, dfError } from './errors.ts';
import { errorDocs } from '../scripts/write-error-docs.ts';

describe('error codes', () => {
  it('are all documented in docs/errors.md (run `npm run docs:errors`)', () => {
    const doc = fs.readFileSync(path.resolve(import.meta.dirname, '../docs/errors.md'), 'utf8');
    for (const code of Object.keys(errorCodes)) expect(doc).toContain(`\`${code}\``);
    expect(doc).toBe(errorDocs());
  });

  it('carry the code in the message and keep the cause', () => {
    const cause = new Error('EIO');
    const e = dfError('DF_ERR_STORE_WRITE', 'disk said no', { cause });
    expect(e.message).toBe('DF_ERR_STORE_WRITE: disk said no');
    expect(e.code).toBe('DF_ERR_STORE_WRITE');
    expect(e.cause).toBe(cause);
  });
});
