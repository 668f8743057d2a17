import { DASHARRAY, markerPath, seriesStyle } from '../../plugins/shared/plot/series-style.ts';
import { plotSpecs, type PlotSpec, type Row } from './plot-spec.ts';

/** Table outputs as SVG line plots (see plot-spec.ts for which lines, axes and units). */
const W = 600;
const H = 280;
const M = { left: 64, right: 12, top: 12, bottom: 42 };

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

/** A legend sample: the curve's line pattern with its marker in the middle. */
function Sample({ index }: { index: number }) {
  const { color, marker, line } = seriesStyle(index);
  return (
    <svg class="sample" width={30} height={12} aria-hidden="true">
      <line x1={1} x2={29} y1={6} y2={6} stroke={color} stroke-width={2} stroke-dasharray={DASHARRAY[line]} />
      <path d={markerPath(marker, 15, 6, 0.9)} fill={color} />
    </svg>
  );
}

export function LinePlot({ table, spec }: { table: string; spec: PlotSpec }) {
  const xs = spec.lines.flatMap((l) => l.points.map((p) => p[0]));
  const ys = spec.lines.flatMap((l) => l.points.map((p) => p[1]));
  const [xMin, xMax] = [spec.xFromZero ? Math.min(0, ...xs) : Math.min(...xs), Math.max(...xs)];
  const [yMin, yMax] = [Math.min(0, ...ys), Math.max(0, ...ys)];
  const sx = (v: number) => M.left + ((v - xMin) / (xMax - xMin || 1)) * (W - M.left - M.right);
  const sy = (v: number) => H - M.bottom - ((v - yMin) / (yMax - yMin || 1)) * (H - M.top - M.bottom);
  // Markers only where they stay apart: a long series is told apart by colour and line alone.
  const markers = spec.lines.every((l) => l.points.length <= 60);
  return (
    <figure class="plot" data-testid="plot" data-table={table}>
      <figcaption>{spec.title}</figcaption>
      <svg
        viewBox={`0 0 ${W} ${H}`}
        width={W}
        height={H}
        role="img"
        aria-label={`${spec.title}: ${spec.yLabel} of ${spec.lines.map((l) => l.label).join(', ')} against ${spec.xLabel}`}
      >
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
        <text x={(M.left + W - M.right) / 2} y={H - 6} text-anchor="middle" class="axis-label">
          {spec.xLabel}
        </text>
        <text transform={`translate(14 ${(M.top + H - M.bottom) / 2}) rotate(-90)`} text-anchor="middle" class="axis-label">
          {spec.yLabel}
        </text>
        {spec.lines.map((l, i) => {
          const { color, marker, line } = seriesStyle(i);
          return (
            <g key={l.label} data-line={l.label}>
              <polyline
                fill="none"
                stroke={color}
                stroke-width={2}
                stroke-dasharray={DASHARRAY[line]}
                points={l.points.map(([px, py]) => `${sx(px).toFixed(1)},${sy(py).toFixed(1)}`).join(' ')}
              />
              {markers && <path fill={color} d={l.points.map(([px, py]) => markerPath(marker, sx(px), sy(py), 0.8)).join('')} />}
            </g>
          );
        })}
      </svg>
      <ul class="legend">
        {spec.lines.map((l, i) => (
          <li key={l.label}>
            <Sample index={i} />
            {l.label}
          </li>
        ))}
      </ul>
    </figure>
  );
}
