import dcmjs from 'dcmjs';
import type { LoadedPipeline } from '../pipeline/load.ts';
import type { Condition } from '../pipeline/schema.ts';

const nameMap = dcmjs.data.DicomMetaDictionary.nameMap as Record<string, { tag: string; vr: string }>;

/** The attribute keywords a condition tests, through any/not. */
function keywordsOf(condition: Condition | undefined, into: Set<string>): void {
  if (!condition || typeof condition !== 'object') return;
  for (const keyword of Object.keys(condition.attributes ?? {})) into.add(keyword);
  condition.any?.forEach((c) => keywordsOf(c, into));
  keywordsOf(condition.not, into);
}

/** Tag → keyword and VR of every attribute the pipelines' conditions test. */
export function conditionAttributes(pipelines: LoadedPipeline[]): Map<number, { keyword: string; vr: string }> {
  const keywords = new Set<string>();
  for (const p of pipelines) {
    keywordsOf(p.definition.trigger.when, keywords);
    for (const step of p.steps) keywordsOf((step.options as { when?: Condition }).when, keywords);
  }
  const out = new Map<number, { keyword: string; vr: string }>();
  for (const keyword of keywords) {
    const entry = nameMap[keyword];
    const m = entry && /^\(([0-9A-F]{4}),([0-9A-F]{4})\)$/.exec(entry.tag);
    if (m) out.set(parseInt(m[1] + m[2], 16), { keyword, vr: entry.vr.split('|')[0] });
  }
  return out;
}
