import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { lineChartPng, lineChartSvg, niceTicks, seriesStyle } from './line-chart.ts';

describe('line chart', () => {
  it('puts ticks at round steps covering the data', () => {
    expect(niceTicks(0, 12)).toEqual([0, 2, 4, 6, 8, 10, 12]);
    expect(niceTicks(0.25, 3)).toEqual([0, 0.5, 1, 1.5, 2, 2.5, 3]);
    expect(niceTicks(-0.13, 0.31)).toEqual([-0.2, -0.1, 0, 0.1, 0.2, 0.3, 0.4]);
    expect(niceTicks(5, 5)).toEqual([4.4, 4.6, 4.8, 5, 5.2, 5.4, 5.6]); // a flat line gets ±10 %
  });

  it('draws each series with its legend entry, escapes text, breaks lines at gaps', () => {
    const svg = lineChartSvg({
      title: 'Motion <rigid>',
      xLabel: 'Time (min)',
      yLabel: 'Translation (mm)',
      series: [
        { name: 'tx & ty', x: [0, 1, 2, 3], y: [0, 1, null, 3] },
        { name: 'rz', x: [0, 1, 2, 3], y: [0, -1, -2, -3], dashed: true, marker: 'square' },
      ],
    });
    expect(svg).toContain('>Motion &lt;rigid&gt;</text>');
    expect(svg).toContain('>tx &amp; ty</text>');
    expect(svg).toContain('>Time (min)</text>');
    expect(svg).toContain('>Translation (mm)</text>');
    // Series 1 is broken by its null: two pieces, of which only the first has two points.
    expect(svg.match(/<polyline/g)!.length).toBe(2);
    expect(svg).toContain('stroke-dasharray="7 4"');
    expect(svg.match(/<path d="M/g)!.length).toBe(3 + 4 + 2); // series 1: three points, series 2: four, and a marker in each legend entry
  });

  it('gives up to 28 series each their own look (colour, marker, line), and a legend that fits', () => {
    const styles = Array.from({ length: 28 }, (_, i) => seriesStyle(i));
    expect(new Set(styles.map((s) => `${s.color} ${s.marker} ${s.line}`)).size).toBe(28);
    // Curves of the same colour differ in marker and in line pattern, not in one alone.
    for (const [i, a] of styles.entries())
      for (const b of styles.slice(i + 1))
        if (a.color === b.color) expect([a.marker === b.marker, a.line === b.line]).toEqual([false, false]);
    const series = Array.from({ length: 20 }, (_, i) => ({ name: `VOI ${i + 1}`, x: [0, 1, 2], y: [i, i + 1, i + 2] }));
    const svg = lineChartSvg({ xLabel: 'Time (min)', yLabel: 'Activity (kBq/ml)', title: 'TAC', series });
    expect(svg.match(/<polyline/g)!.length).toBe(20);
    expect(svg).toContain('stroke-dasharray="2 3"'); // series 15–20: dotted
    // The legend (right of the plot) has room for all 20 rows: the chart grew to hold them.
    const height = Number(/height="(\d+)"/.exec(svg)![1]);
    expect(height).toBeGreaterThanOrEqual(44 + 58 + 20 * 20 + 8);
  });

  it('renders the same picture as PNG at the SVG pixel size', async () => {
    const svg = lineChartSvg({ xLabel: 'x', yLabel: 'y', width: 640, height: 400, series: [{ name: 'a', x: [0, 1], y: [1, 2] }] });
    const png = await lineChartPng(svg);
    const meta = await sharp(png).metadata();
    expect([meta.format, meta.width, meta.height]).toEqual(['png', 640, 400]);
    expect((await sharp(await lineChartPng(svg, 144)).metadata()).width).toBe(1280);
  });
});
