/**
 * Table outputs drawn as lines, with axes a reader understands: time on x (s, or min past five
 * minutes) when the table has a time column, quantities with their units on y, and curves named
 * in words, never by their field names. Two shapes are understood:
 * - wide, one row per time point (motion parameters: frame, midSec → txMm…rzDeg; curves:
 *   timeSeconds → one column per region): one plot per unit suffix (Mm, Deg, KbqPerMl…), a line
 *   per column;
 * - long, one row per region and time point (VOI statistics: voi, midS, mean, unit…): a curve per
 *   region of its mean (in the table's `unit`), and of its SUVbw mean when there is one.
 * Column names carry their unit as a camel-case suffix (startSec, txMm, rzDeg, wholeBrainKbqPerMl).
 * The x column is a time (mid-time first, then time, start, end), else the frame number.
 */
export type Row = Record<string, unknown>;
export interface PlotSpec {
  title: string;
  /** The table column on x, and the axis title with its unit. */
  x: string;
  xLabel: string;
  /** Time axes start at 0 (the series start). */
  xFromZero: boolean;
  yLabel: string;
  lines: { label: string; points: [number, number][] }[];
}

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

// Unit suffix → [quantity, unit shown, factor to it].
const UNITS: Record<string, [string, string, number]> = {
  Mm: ['Translation', 'mm', 1],
  Deg: ['Rotation', '°', 1],
  Rad: ['Rotation', '°', 180 / Math.PI],
  KbqPerMl: ['Activity concentration', 'kBq/ml', 1],
  KBqPerMl: ['Activity concentration', 'kBq/ml', 1],
  BqPerMl: ['Activity concentration', 'kBq/ml', 1 / 1000],
  Suv: ['SUV', 'g/ml', 1],
  Ml: ['Volume', 'ml', 1],
};
// Time suffixes → seconds per unit.
const TIME_UNITS: Record<string, number> = { S: 1, Sec: 1, Secs: 1, Seconds: 1, Ms: 0.001, Min: 60, Minutes: 60 };
// DICOM Units (0054,1001) of a VOI table's `unit` column → [unit shown, factor].
const ACTIVITY_UNITS: Record<string, [string, number]> = {
  BQML: ['kBq/ml', 1 / 1000],
  CNTS: ['counts', 1],
  GML: ['g/ml', 1],
  PROPCNTS: ['proportional counts', 1],
  NONE: ['no unit', 1],
  PERCENT: ['%', 1],
};
// Motion parameters' stems, in words.
const STEMS: Record<string, string> = { tx: 'x', ty: 'y', tz: 'z', rx: 'about x', ry: 'about y', rz: 'about z' };
// Bookkeeping columns, not measurements.
const NOT_MEASURED = /^(frame|index|voxels|label|registered|converged)$/i;

/** 'wholeBrainKbqPerMl' → { stem: 'wholeBrain', suffix: 'KbqPerMl' }; the suffix is empty when no unit is known. */
function splitUnit(column: string): { stem: string; suffix: string } {
  for (const suffix of [...Object.keys(UNITS), ...Object.keys(TIME_UNITS)].sort((a, b) => b.length - a.length)) {
    if (column.length > suffix.length && column.endsWith(suffix) && /[a-z0-9]$/.test(column.slice(0, -suffix.length)))
      return { stem: column.slice(0, -suffix.length), suffix };
  }
  return { stem: column, suffix: '' };
}

/** camelCase in words: 'wholeBrain' → 'whole brain'. */
function words(stem: string): string {
  return (
    STEMS[stem] ??
    stem
      .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
      .replace(/_/g, ' ')
      .toLowerCase()
  );
}

interface TimeColumn {
  column: string;
  seconds: number;
  rank: number;
  mid: boolean;
}

function timeColumn(column: string): TimeColumn | undefined {
  const { stem, suffix } = splitUnit(column);
  if (!(suffix in TIME_UNITS) || !/^(mid|start|end|duration|time|frame)*(time)?$/i.test(stem)) return undefined;
  const s = stem.toLowerCase();
  const rank = s.includes('mid') ? 0 : s.includes('start') ? 2 : s.includes('end') ? 3 : s.includes('duration') ? 9 : 1;
  return { column, seconds: TIME_UNITS[suffix], rank, mid: s.includes('mid') };
}

/** The x axis: a time column in s or min, else the frame number, else the first numeric column. */
type XAxis = { column: string; label: string; fromZero: boolean; value: (r: Row) => number };

function xAxis(numeric: string[], rows: Row[]): XAxis | undefined {
  const times = numeric
    .flatMap((k) => timeColumn(k) ?? [])
    .filter((t) => t.rank < 9)
    .sort((a, b) => a.rank - b.rank);
  const time = times[0];
  if (time) {
    const maxSeconds = Math.max(...rows.map((r) => (r[time.column] as number) * time.seconds));
    const [unit, per] = maxSeconds > 300 ? ['min', 60] : ['s', 1];
    return {
      column: time.column,
      label: `${time.mid ? 'Frame mid-time' : 'Time'} (${unit})`,
      fromZero: true,
      value: (r) => ((r[time.column] as number) * time.seconds) / per,
    };
  }
  const frame = numeric.find((k) => /^frame(number)?$/i.test(k));
  if (frame) return { column: frame, label: 'Frame', fromZero: false, value: (r) => r[frame] as number };
  // Without time or frames the rows are not a curve (a per-object tally such as deidentify's
  // counts of removed and replaced elements): the table is listed, not plotted.
  return undefined;
}

export function plotSpecs(name: string, rows: Row[]): PlotSpec[] {
  if (rows.length < 2) return [];
  const columns = Object.keys(rows[0]);
  const numeric = columns.filter((k) => rows.every((r) => isNumber(r[k])));
  const x = xAxis(numeric, rows);
  if (x === undefined) return [];
  const strings = columns.filter((k) => rows.every((r) => typeof r[k] === 'string'));
  const distinct = (k: string) => new Set(rows.map((r) => r[k])).size;
  const category =
    strings.find((k) => /voi|region|roi|organ/i.test(k)) ??
    strings.find((k) => k !== 'unit' && distinct(k) >= 2 && distinct(k) <= 50 && distinct(k) < rows.length);
  const measured = numeric.filter((k) => k !== x.column && !NOT_MEASURED.test(k) && timeColumn(k) === undefined);
  if (category) return longSpecs(name, rows, x, category, measured);
  const byUnit = new Map<string, string[]>();
  for (const k of measured) {
    const { suffix } = splitUnit(k);
    byUnit.set(suffix, [...(byUnit.get(suffix) ?? []), k]);
  }
  return [...byUnit].map(([suffix, ys]) => {
    const [quantity, unit, factor] = UNITS[suffix] ?? ['Value', '', 1];
    return {
      title: byUnit.size > 1 ? `${name}: ${quantity.toLowerCase()}` : name,
      x: x.column,
      xLabel: x.label,
      xFromZero: x.fromZero,
      yLabel: unit ? `${quantity} (${unit})` : quantity,
      lines: ys.map((y) => ({
        label: words(splitUnit(y).stem),
        points: rows.map((r) => [x.value(r), (r[y] as number) * factor] as [number, number]),
      })),
    };
  });
}

/** One curve per region: its mean in the table's unit, and its SUVbw mean when every row has one. */
function longSpecs(name: string, rows: Row[], x: XAxis, category: string, measured: string[]): PlotSpec[] {
  const curves = (y: string, factor: number) => {
    const groups = new Map<string, [number, number][]>();
    for (const r of rows)
      groups.set(String(r[category]), [...(groups.get(String(r[category])) ?? []), [x.value(r), (r[y] as number) * factor]]);
    return [...groups].map(([label, points]) => ({ label, points }));
  };
  const specs: PlotSpec[] = [];
  const y = measured.find((k) => k === 'mean') ?? measured.find((k) => !/^suv/i.test(k));
  if (y !== undefined) {
    const unit = typeof rows[0].unit === 'string' ? rows[0].unit : undefined;
    const [shown, factor] = unit === undefined ? ['stored units', 1] : (ACTIVITY_UNITS[unit.toUpperCase()] ?? [unit, 1]);
    const quantity = y === 'mean' ? (shown === 'kBq/ml' ? 'Mean activity concentration' : 'Mean') : words(splitUnit(y).stem);
    specs.push({
      title: `${name}: ${quantity.toLowerCase()} by ${category}`,
      x: x.column,
      xLabel: x.label,
      xFromZero: x.fromZero,
      yLabel: `${quantity} (${shown})`,
      lines: curves(y, factor),
    });
  }
  if (measured.includes('suvbwMean'))
    specs.push({
      title: `${name}: mean SUVbw by ${category}`,
      x: x.column,
      xLabel: x.label,
      xFromZero: x.fromZero,
      yLabel: 'Mean SUVbw (g/ml)',
      lines: curves('suvbwMean', 1),
    });
  return specs;
}
