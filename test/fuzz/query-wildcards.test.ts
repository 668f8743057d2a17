// C-FIND wildcard matching against hostile patterns (found by issue 8's review of the query
// path): `a*a*…*b` once compiled to a backtracking RegExp and held the event loop for seconds per
// stored row. The matcher must stay fast and mean what the RegExp meant.
import { describe, expect, it } from 'vitest';
import { compileCondition, matches } from '../../core/query/match.ts';
import { Random } from './random.ts';

/** The old semantics, for comparison on small inputs. */
function regexMatches(pattern: string, value: string): boolean {
  const body = pattern
    .replace(/[\\^$.|+()[\]{}/]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${body}$`, 'us').test(value);
}

describe('wildcard matching', () => {
  it('answers a pathological pattern against long values (a backtracking matcher would never return)', () => {
    // 30 stars against 10,000 characters: exponential for a backtracking RegExp, so a matcher that
    // backtracks hangs this test until its timeout; no clock is read.
    for (const [keyword, vr] of [
      ['PatientID', 'LO'],
      ['PatientName', 'PN'],
      ['StudyDescription', 'LO'],
    ] as const) {
      const condition = compileCondition(keyword, vr, `${'a*'.repeat(30)}b`);
      expect(matches(condition, 'a'.repeat(10_000)), keyword).toBe(false);
      expect(matches(condition, `${'a'.repeat(10_000)}b`), keyword).toBe(true);
    }
  });

  it('means what the RegExp meant, on 5000 random patterns and values', () => {
    const r = new Random(8);
    const alphabet = ['a', 'b', '*', '?', '.', 'é', '😀'];
    for (let n = 0; n < 5000; n++) {
      const pattern = Array.from({ length: r.int(1, 8) }, () => r.pick(alphabet)).join('');
      const value = Array.from({ length: r.int(0, 10) }, () => r.pick(['a', 'b', '.', 'é', '😀'])).join('');
      if (!/[*?]/.test(pattern)) continue;
      expect(matches(compileCondition('PatientID', 'LO', pattern), value), `${pattern} ~ ${value}`).toBe(regexMatches(pattern, value));
    }
  });
});
