/**
 * Table outputs drawn as lines. Two shapes are understood:
 * - wide, one row per time point (motion parameters: frame → txMm…rzDeg; curves: timeSeconds →
 *   one column per region): one plot per unit suffix (Mm, Deg, KbqPerMl), a line per column;
 * - long, one row per region and time point (VOI statistics: voi, midS, mean…): a line per
 *   region of its mean (or first numeric column).
 * The x column is the first named like time or mid-time, else frame, else the first numeric one.
 */
export type Row = Record<string, unknown>;
export interface PlotSpec {
  title: string;
  x: string;
  lines: { label: string; points: [number, number][] }[];
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const unitOf = (column: string) => /([A-Z][a-z]*(?:Per[A-Z][a-z]*)?)$/.exec(column)?.[1] ?? '';
// Bookkeeping columns, not measurements.
const NOT_MEASURED = /^(frame|index|start\w*|end\w*|voxels|label)$/i;

export function plotSpecs(name: string, rows: Row[]): PlotSpec[] {
  if (rows.length < 2) return [];
  const columns = Object.keys(rows[0]);
  const numeric = columns.filter((k) => rows.every((r) => isNumber(r[k])));
  const x = numeric.find((k) => /time|^mid/i.test(k)) ?? numeric.find((k) => /frame/i.test(k)) ?? numeric[0];
  if (x === undefined) return [];
  const strings = columns.filter((k) => rows.every((r) => typeof r[k] === 'string'));
  const distinct = (k: string) => new Set(rows.map((r) => r[k])).size;
  const category =
    strings.find((k) => /voi|region|roi|organ/i.test(k)) ?? strings.find((k) => distinct(k) >= 2 && distinct(k) <= 50 && distinct(k) < rows.length);
  const measured = numeric.filter((k) => k !== x && !NOT_MEASURED.test(k) && !/time|^mid/i.test(k));
  if (category) {
    const y = measured.find((k) => k === 'mean') ?? measured[0];
    if (!y) return [];
    const groups = new Map<string, [number, number][]>();
    for (const r of rows) groups.set(String(r[category]), [...(groups.get(String(r[category])) ?? []), [r[x] as number, r[y] as number]]);
    return [{ title: `${name}: ${y} by ${category}`, x, lines: [...groups].map(([label, points]) => ({ label, points })) }];
  }
  const byUnit = new Map<string, string[]>();
  for (const k of measured) byUnit.set(unitOf(k), [...(byUnit.get(unitOf(k)) ?? []), k]);
  return [...byUnit].map(([unit, ys]) => ({
    title: byUnit.size > 1 && unit ? `${name} (${unit})` : name,
    x,
    lines: ys.map((y) => ({ label: y, points: rows.map((r) => [r[x] as number, r[y] as number] as [number, number]) })),
  }));
}
