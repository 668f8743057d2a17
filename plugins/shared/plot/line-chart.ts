import sharp from 'sharp';
import { DASHARRAY, markerPath, seriesStyle, type LinePattern, type Marker } from './series-style.ts';

/**
 * A small SVG line chart (axes with "nice" ticks, labels with units, legend, optional markers),
 * shared by the steps that plot curves: time-activity curves, motion parameters. PNG is the
 * same SVG rendered by sharp (librsvg), so both files always show the same picture.
 *
 *   const svg = lineChartSvg({ title: 'TAC', xLabel: 'Time (min)', yLabel: 'Activity (kBq/ml)',
 *     series: [{ name: 'striatum', x: mid, y: mean }] });
 *   await fs.writeFile('tac.png', await lineChartPng(svg));
 */

export interface LineSeries {
  name: string;
  x: ArrayLike<number>;
  /** null, undefined or non-finite values leave a gap in the line. */
  y: ArrayLike<number | null | undefined>;
  /**
   * Any SVG colour. Default by position (series-style.ts): seven colour-blind-safe colours,
   * then again with another marker and line pattern, so up to 28 curves each look different.
   */
  color?: string;
  /** Default: by position when the chart's `markers` is 'circle' (the default), else none. */
  marker?: Marker | 'none';
  /** Default: by position (solid for the first seven). `dashed: true` is 'dashed'. */
  line?: LinePattern;
  dashed?: boolean;
}

export { seriesStyle, type LinePattern, type Marker } from './series-style.ts';

export interface LineChartOptions {
  series: LineSeries[];
  /** Axis titles: put the unit in them, e.g. "Time (min)". */
  xLabel: string;
  yLabel: string;
  title?: string;
  /** Pixels; default 800 × 500. */
  width?: number;
  height?: number;
  /** Draw a marker at each point ('circle', the default: each series' own shape, see seriesStyle), or none. Per series with LineSeries.marker. */
  markers?: 'circle' | 'none';
  /** Fixed axis ranges; default from the data (y includes 0 when `yFromZero`, the default). */
  xRange?: [number, number];
  yRange?: [number, number];
  yFromZero?: boolean;
  /** Include 0 on the x axis (time curves); default false. */
  xFromZero?: boolean;
  /** Legend position; default top-right inside the plot for 2–8 series, right of it for more (the chart grows taller to fit it). */
  legend?: 'inside' | 'right' | 'none';
}

const FONT = 'DejaVu Sans, Arial, Helvetica, sans-serif';

function styleOf(
  s: LineSeries,
  index: number,
  markers: 'circle' | 'none' | undefined,
): { color: string; marker: Marker | 'none'; dash: string | undefined } {
  const auto = seriesStyle(index);
  const line = s.line ?? (s.dashed ? 'dashed' : auto.line);
  return { color: s.color ?? auto.color, marker: s.marker ?? (markers === 'none' ? 'none' : auto.marker), dash: DASHARRAY[line] };
}
/** Ticks at a round step (1, 2 or 5 × 10ⁿ), about `count` intervals, from at or below min to at or above max. */
export function niceTicks(min: number, max: number, count = 6): number[] {
  if (!(max > min)) {
    const pad = Math.abs(min) > 0 ? Math.abs(min) * 0.1 : 1;
    return niceTicks(min - pad, max + pad, count);
  }
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((f) => f * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  // Integer multiples of the step, so ticks do not accumulate rounding (0.30000000000000004).
  const first = Math.floor(min / step + 1e-9);
  for (let n = first; n * step < max + step * (1 - 1e-9); n++) ticks.push(Number((n * step).toPrecision(12)));
  return ticks;
}

function formatTick(value: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  if (Math.abs(value) >= 1e6 || (Math.abs(value) > 0 && Math.abs(value) < 1e-4)) return value.toExponential(1);
  return value.toFixed(Math.min(decimals, 6));
}

const escapeXml = (s: string) =>
  s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);

function extent(values: number[], fallback: [number, number]): [number, number] {
  const finite = values.filter(Number.isFinite);
  return finite.length === 0 ? fallback : [Math.min(...finite), Math.max(...finite)];
}

/** The chart as an SVG document (UTF-8 text). */
export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 800;
  const legend = options.legend ?? (options.series.length > 8 ? 'right' : options.series.length > 1 ? 'inside' : 'none');
  const legendWidth = legend === 'right' ? 50 + 7.5 * Math.max(0, ...options.series.map((s) => s.name.length)) : 0;
  const margin = { left: 80, right: 24 + legendWidth, top: options.title ? 44 : 20, bottom: 58 };
  const rowH = 20;
  // Taller than asked when the legend needs it: every entry stays readable.
  const legendH = legend === 'none' ? 0 : options.series.length * rowH + 28;
  const height = Math.max(options.height ?? 500, margin.top + margin.bottom + legendH);
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom;

  const xs = options.series.flatMap((s) => Array.from(s.x));
  const ys = options.series.flatMap((s) => Array.from(s.y, (v) => (v === null || v === undefined ? NaN : v)));
  let [x0, x1] = options.xRange ?? extent(xs, [0, 1]);
  let [y0, y1] = options.yRange ?? extent(ys, [0, 1]);
  if (!options.yRange && (options.yFromZero ?? true)) [y0, y1] = [Math.min(0, y0), Math.max(0, y1)];
  if (!options.xRange && options.xFromZero) [x0, x1] = [Math.min(0, x0), Math.max(0, x1)];
  const xTicks = niceTicks(x0, x1);
  const yTicks = niceTicks(y0, y1);
  // Axes end on ticks unless the caller fixed the range.
  if (!options.xRange) [x0, x1] = [Math.min(x0, xTicks[0]), Math.max(x1, xTicks.at(-1)!)];
  if (!options.yRange) [y0, y1] = [Math.min(y0, yTicks[0]), Math.max(y1, yTicks.at(-1)!)];
  if (x1 === x0) x1 = x0 + 1;
  if (y1 === y0) y1 = y0 + 1;
  const px = (x: number) => margin.left + ((x - x0) / (x1 - x0)) * plotW;
  const py = (y: number) => margin.top + plotH - ((y - y0) / (y1 - y0)) * plotH;
  const f = (n: number) => n.toFixed(2);

  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}" font-size="13">`,
  );
  out.push(`<rect width="${width}" height="${height}" fill="#ffffff"/>`);
  if (options.title)
    out.push(
      `<text x="${f(margin.left + plotW / 2)}" y="26" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(options.title)}</text>`,
    );
  // Grid and ticks.
  const xStep = xTicks.length > 1 ? xTicks[1] - xTicks[0] : 1;
  const yStep = yTicks.length > 1 ? yTicks[1] - yTicks[0] : 1;
  for (const t of xTicks.filter((t) => t >= x0 && t <= x1)) {
    out.push(`<line x1="${f(px(t))}" y1="${margin.top}" x2="${f(px(t))}" y2="${margin.top + plotH}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${f(px(t))}" y="${margin.top + plotH + 18}" text-anchor="middle">${formatTick(t, xStep)}</text>`);
  }
  for (const t of yTicks.filter((t) => t >= y0 && t <= y1)) {
    out.push(`<line x1="${margin.left}" y1="${f(py(t))}" x2="${margin.left + plotW}" y2="${f(py(t))}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${margin.left - 8}" y="${f(py(t) + 4)}" text-anchor="end">${formatTick(t, yStep)}</text>`);
  }
  out.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333333"/>`);
  out.push(
    `<text x="${f(margin.left + plotW / 2)}" y="${height - 14}" text-anchor="middle" font-size="14">${escapeXml(options.xLabel)}</text>`,
  );
  out.push(
    `<text transform="translate(18 ${f(margin.top + plotH / 2)}) rotate(-90)" text-anchor="middle" font-size="14">${escapeXml(options.yLabel)}</text>`,
  );

  // Curves, clipped to the plot area.
  out.push(`<clipPath id="plot"><rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}"/></clipPath>`);
  out.push('<g clip-path="url(#plot)">');
  options.series.forEach((s, index) => {
    const { color, marker, dash } = styleOf(s, index, options.markers);
    const segments: string[][] = [[]];
    const points: [number, number][] = [];
    for (let p = 0; p < s.x.length; p++) {
      const y = s.y[p];
      if (y === null || y === undefined || !Number.isFinite(y) || !Number.isFinite(s.x[p])) {
        if (segments.at(-1)!.length > 0) segments.push([]);
        continue;
      }
      segments.at(-1)!.push(`${f(px(s.x[p]))},${f(py(y))}`);
      points.push([px(s.x[p]), py(y)]);
    }
    for (const segment of segments.filter((seg) => seg.length > 1)) {
      out.push(
        `<polyline points="${segment.join(' ')}" fill="none" stroke="${escapeXml(color)}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      );
    }
    if (marker !== 'none') for (const [x, y] of points) out.push(markerSvg(marker, x, y, color));
  });
  out.push('</g>');

  if (legend !== 'none' && options.series.length > 0) {
    const boxW = legend === 'right' ? legendWidth - 16 : 46 + 7.5 * Math.max(...options.series.map((s) => s.name.length));
    const lx = legend === 'right' ? width - legendWidth - 8 : margin.left + plotW - boxW - 10;
    const ly = margin.top + 10;
    out.push(
      `<rect x="${f(lx)}" y="${ly}" width="${f(boxW)}" height="${options.series.length * rowH + 8}" fill="#ffffff" fill-opacity="0.85" stroke="#999999"/>`,
    );
    options.series.forEach((s, index) => {
      const { color, marker, dash } = styleOf(s, index, options.markers);
      const y = ly + 14 + index * rowH;
      out.push(
        `<line x1="${f(lx + 6)}" y1="${y}" x2="${f(lx + 36)}" y2="${y}" stroke="${escapeXml(color)}" stroke-width="2"${dash ? ` stroke-dasharray="${dash}"` : ''}/>`,
      );
      if (marker !== 'none') out.push(markerSvg(marker, lx + 21, y, color));
      out.push(`<text x="${f(lx + 42)}" y="${y + 4}">${escapeXml(s.name)}</text>`);
    });
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function markerSvg(kind: Marker, x: number, y: number, color: string): string {
  return `<path d="${markerPath(kind, x, y)}" fill="${escapeXml(color)}"/>`;
}

/** Renders an SVG chart to PNG (sharp's librsvg); `density` 72 (dpi) keeps the SVG's pixel size, 144 doubles it. */
export async function lineChartPng(svg: string, density = 72): Promise<Buffer> {
  return sharp(Buffer.from(svg), { density }).png().toBuffer();
}
