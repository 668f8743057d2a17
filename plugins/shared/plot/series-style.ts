/**
 * The look of the n-th curve of a plot, shared by the charts steps write (line-chart.ts) and the
 * web page's plots, so a curve looks the same in both. Colour cycles fastest through seven
 * colour-blind-safe colours (Okabe–Ito without its yellow, too pale on white); after each seven
 * the marker and the line pattern change together, so two curves never share all three and two
 * of the same colour differ in both marker and line (up to 7 × 4 = 28 curves).
 */

export type Marker = 'circle' | 'square' | 'triangle' | 'diamond';
export type LinePattern = 'solid' | 'dashed' | 'dotted' | 'dash-dot';

export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000'] as const;
const MARKERS: Marker[] = ['circle', 'square', 'triangle', 'diamond'];
const PATTERNS: LinePattern[] = ['solid', 'dashed', 'dotted', 'dash-dot'];
/** SVG stroke-dasharray of each pattern, for a 2 px line. */
export const DASHARRAY: Record<LinePattern, string | undefined> = { solid: undefined, dashed: '7 4', dotted: '2 3', 'dash-dot': '9 3 2 3' };

export function seriesStyle(index: number): { color: string; marker: Marker; line: LinePattern } {
  const group = Math.floor(index / PALETTE.length);
  return { color: PALETTE[index % PALETTE.length], marker: MARKERS[group % MARKERS.length], line: PATTERNS[group % PATTERNS.length] };
}

/** An SVG marker shape centred on (x, y), as path data (so one element type draws all four). */
export function markerPath(kind: Marker, x: number, y: number, size = 1): string {
  const f = (n: number) => n.toFixed(2);
  const r = 3.5 * size;
  switch (kind) {
    case 'square':
      return `M${f(x - r)} ${f(y - r)}h${f(2 * r)}v${f(2 * r)}h${f(-2 * r)}Z`;
    case 'triangle':
      return `M${f(x)} ${f(y - 1.3 * r)}L${f(x - 1.15 * r)} ${f(y + 0.85 * r)}L${f(x + 1.15 * r)} ${f(y + 0.85 * r)}Z`;
    case 'diamond':
      return `M${f(x)} ${f(y - 1.4 * r)}L${f(x - 1.25 * r)} ${f(y)}L${f(x)} ${f(y + 1.4 * r)}L${f(x + 1.25 * r)} ${f(y)}Z`;
    default:
      return `M${f(x - r)} ${f(y)}a${f(r)} ${f(r)} 0 1 0 ${f(2 * r)} 0a${f(r)} ${f(r)} 0 1 0 ${f(-2 * r)} 0Z`;
  }
}
