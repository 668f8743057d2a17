import { sopClassUidFromNameOrUid } from '../dicom/sop-classes.ts';
import type { Condition, StringTest } from '../pipeline/schema.ts';

/** What a condition can look at: one arrival. */
export interface ConditionSubject {
  attributes: Record<string, string>;
  sopClassUid: string;
  callingAeTitle?: string;
  calledAeTitle?: string;
  source: string;
}

/**
 * Compiled once when a pipeline loads (regexes built, SOP class names resolved), then applied
 * to every arrival: pure, no I/O.
 */
export type CompiledCondition = (subject: ConditionSubject) => boolean;

export function compileCondition(condition: Condition | undefined): CompiledCondition {
  if (!condition) return () => true;
  const checks: CompiledCondition[] = [];
  for (const [keyword, test] of Object.entries(condition.attributes ?? {})) {
    const t = compileTest(test);
    checks.push((s) => t(s.attributes[keyword]));
  }
  if (condition.sopClass) {
    const t = compileTest(resolveSopClasses(condition.sopClass));
    checks.push((s) => t(s.sopClassUid));
  }
  if (condition.callingAeTitle) {
    const t = compileTest(condition.callingAeTitle);
    checks.push((s) => t(s.callingAeTitle));
  }
  if (condition.calledAeTitle) {
    const t = compileTest(condition.calledAeTitle);
    checks.push((s) => t(s.calledAeTitle));
  }
  if (condition.source) {
    const t = compileTest(condition.source);
    checks.push((s) => t(s.source));
  }
  if (condition.any) {
    const alternatives = condition.any.map(compileCondition);
    checks.push((s) => alternatives.some((a) => a(s)));
  }
  if (condition.not) {
    const negated = compileCondition(condition.not);
    checks.push((s) => !negated(s));
  }
  return (s) => checks.every((c) => c(s));
}

/** SOP class tests may name classes by keyword; compare UIDs. */
function resolveSopClasses(test: StringTest): StringTest {
  const uid = (v: string) => sopClassUidFromNameOrUid(v) ?? v;
  return {
    ...test,
    ...(test.equals !== undefined ? { equals: uid(test.equals) } : {}),
    ...(test.oneOf !== undefined ? { oneOf: test.oneOf.map(uid) } : {}),
    ...(test.includes !== undefined ? { includes: uid(test.includes) } : {}),
  };
}

export function compileTest(test: StringTest): (value: string | undefined) => boolean {
  const parts: ((v: string | undefined) => boolean)[] = [];
  if (test.exists !== undefined) parts.push((v) => (v !== undefined && v !== '') === test.exists);
  if (test.equals !== undefined) parts.push((v) => v === test.equals);
  if (test.oneOf !== undefined) {
    const set = new Set(test.oneOf);
    parts.push((v) => v !== undefined && set.has(v));
  }
  // biome-ignore lint/complexity/useOptionalChain: the test answers a boolean, never undefined
  if (test.includes !== undefined) parts.push((v) => v !== undefined && v.split('\\').includes(test.includes!));
  if (test.matches !== undefined) {
    const re = new RegExp(`^(?:${test.matches})$`, 'u');
    parts.push((v) => v !== undefined && re.test(v));
  }
  if (test.range !== undefined) {
    const { min, max } = test.range;
    parts.push((v) => {
      if (v === undefined || v.trim() === '') return false;
      const n = Number(v.split('\\')[0]);
      return Number.isFinite(n) && (min === undefined || n >= min) && (max === undefined || n <= max);
    });
  }
  const all = (v: string | undefined) => parts.every((p) => p(v));
  return test.not ? (v) => !all(v) : all;
}
