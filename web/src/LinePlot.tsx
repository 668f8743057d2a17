import { plotSpecs, type PlotSpec, type Row } from './plot-spec.ts';

/** Table outputs as SVG line plots (see plot-spec.ts for which lines). */
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const W = 560;
const H = 260;
const M = { left: 56, right: 12, top: 12, bottom: 36 };

function niceTicks(min: number, max: number, count = 5): number[] {
  if (min === max) return [min];
  const step0 = (max - min) / count;
  const mag = 10 ** Math.floor(Math.log10(step0));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= step0)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(min / step) * step; t <= max + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

/** Every plot a table output gives. */
export function TablePlots({ name, rows }: { name: string; rows: Row[] }) {
  return (
    <>
      {plotSpecs(name, rows).map((spec) => (
        <LinePlot key={spec.title} table={name} spec={spec} />
      ))}
    </>
  );
}

export function LinePlot({ table, spec }: { table: string; spec: PlotSpec }) {
  const xs = spec.lines.flatMap((l) => l.points.map((p) => p[0]));
  const ys = spec.lines.flatMap((l) => l.points.map((p) => p[1]));
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  const [yMin, yMax] = [Math.min(0, ...ys), Math.max(0, ...ys)];
  const sx = (v: number) => M.left + ((v - xMin) / (xMax - xMin || 1)) * (W - M.left - M.right);
  const sy = (v: number) => H - M.bottom - ((v - yMin) / (yMax - yMin || 1)) * (H - M.top - M.bottom);
  return (
    <figure class="plot" data-testid="plot" data-table={table}>
      <figcaption>{spec.title}</figcaption>
      <svg viewBox={`0 0 ${W} ${H}`} width={W} height={H} role="img" aria-label={`${spec.title}: ${spec.lines.map((l) => l.label).join(', ')} against ${spec.x}`}>
        {niceTicks(yMin, yMax).map((t) => (
          <g key={`y${t}`}>
            <line x1={M.left} x2={W - M.right} y1={sy(t)} y2={sy(t)} class="grid" />
            <text x={M.left - 6} y={sy(t) + 4} text-anchor="end">
              {t}
            </text>
          </g>
        ))}
        {niceTicks(xMin, xMax).map((t) => (
          <text key={`x${t}`} x={sx(t)} y={H - M.bottom + 16} text-anchor="middle">
            {t}
          </text>
        ))}
        <text x={(M.left + W - M.right) / 2} y={H - 4} text-anchor="middle" class="axis-label">
          {spec.x}
        </text>
        {spec.lines.map((l, i) => (
          <polyline key={l.label} fill="none" stroke={COLOURS[i % COLOURS.length]} stroke-width={2} points={l.points.map(([px, py]) => `${sx(px).toFixed(1)},${sy(py).toFixed(1)}`).join(' ')} />
        ))}
      </svg>
      <ul class="legend">
        {spec.lines.map((l, i) => (
          <li key={l.label}>
            <span class="swatch" style={{ background: COLOURS[i % COLOURS.length] }} />
            {l.label}
          </li>
        ))}
      </ul>
    </figure>
  );
}
