import { writeFile } from 'node:fs/promises';
import { lineChartPng, lineChartSvg } from '../shared/plot/line-chart.ts';

/**
 * The six motion parameters over time, with the shared line chart: translations (mm) above,
 * rotations (degrees) below, one line per axis at each frame's midpoint (s, or min past 10 min),
 * stacked into one SVG.
 * The PNG is sharp's rendering of the same SVG.
 */
export interface MotionPoint {
  midSec: number;
  translationMm: [number, number, number];
  rotationDeg: [number, number, number];
}

const WIDTH = 900;
const PANEL_HEIGHT = 380;
const AXES = ['x (L)', 'y (P)', 'z (S)'];

export function motionPlotSvg(points: readonly MotionPoint[], title: string): string {
  // Minutes once the series is longer than 10 min (a dynamic FDG scan), seconds below.
  const inMinutes = Math.max(0, ...points.map((p) => p.midSec)) > 600;
  const x = points.map((p) => (inMinutes ? p.midSec / 60 : p.midSec));
  const panel = (label: string, values: (p: MotionPoint) => number[], panelTitle?: string): string =>
    lineChartSvg({
      ...(panelTitle === undefined ? {} : { title: panelTitle }),
      xLabel: inMinutes ? 'Frame midpoint (min)' : 'Frame midpoint (s)',
      yLabel: label,
      width: WIDTH,
      height: PANEL_HEIGHT,
      xFromZero: true,
      legend: 'right',
      series: AXES.map((name, axis) => ({ name, x, y: points.map((p) => values(p)[axis]) })),
    });
  const top = panel('Translation (mm)', (p) => p.translationMm, title);
  const bottom = panel('Rotation (°)', (p) => p.rotationDeg);
  // Nested <svg> elements are placed by their x/y: the second panel goes below the first. Ids
  // are document-wide, so the second panel's clip path gets its own.
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${2 * PANEL_HEIGHT}" viewBox="0 0 ${WIDTH} ${2 * PANEL_HEIGHT}">`,
    top.replace('<svg ', '<svg x="0" y="0" '),
    bottom
      .replace('<svg ', `<svg x="0" y="${PANEL_HEIGHT}" `)
      .replace(/id="([^"]+)"/g, 'id="rotation-$1"')
      .replace(/url\(#([^)]+)\)/g, 'url(#rotation-$1)'),
    '</svg>',
  ].join('\n');
}

export async function writeMotionPlot(points: readonly MotionPoint[], title: string, svgPath: string, pngPath: string): Promise<void> {
  const svg = motionPlotSvg(points, title);
  await writeFile(svgPath, svg);
  await writeFile(pngPath, await lineChartPng(svg));
}
