import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { safePathSegment } from './index.ts';

describe('safePathSegment', () => {
  it('keeps a value inside its directory and out of option position', () => {
    const cases: [string, string][] = [
      ['../../etc', '______etc'],
      ['..', '__'],
      ['.', '_'],
      ['-rf', '_rf'],
      ['--output=/etc/passwd', '_-output=_etc_passwd'],
      ['MR/T1 ..', 'MR_T1 __'],
      ['a\0b', 'a_b'],
      ['bell\u0007esc\u001bdel\u007fnel\u0085', 'bell_esc_del_nel_'],
      ['MÜLLER^HANS', 'MÜLLER^HANS'],
      ['1.2.840.10008', '1.2.840.10008'],
      ['CT01\\CT02', 'CT01\\CT02'],
      ['', ''],
    ];
    for (const [value, expected] of cases) expect(safePathSegment(value), JSON.stringify(value)).toBe(expected);
  });

  it('never resolves outside the directory it is joined to', () => {
    const root = '/srv/out';
    const hostile = ['../..', '../../../etc/passwd', '/etc', '..\0/x', '.../...', '-', '\n..\n', '..\\..'];
    for (const value of hostile) {
      const segment = safePathSegment(value);
      const joined = path.resolve(root, segment);
      expect(path.dirname(joined), JSON.stringify(value)).toBe(root);
      expect(segment.startsWith('-')).toBe(false);
      expect(/[\0-\x1f\x7f/]/.test(segment)).toBe(false);
    }
  });
});
