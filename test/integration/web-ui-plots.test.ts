import { describe, expect, it } from 'vitest';
import { plotSpecs } from '../../web/src/plot-spec.ts';

/** Which lines, axes and units the web page draws for the tables the built-in steps emit. */
describe('plots of table outputs', () => {
  it('motion parameters: time on x when the table has it, translations in mm and rotations in ° in a plot each, no field names', () => {
    const rows = [1, 2, 3].map((frame) => ({
      frame,
      startSec: (frame - 1) * 30,
      midSec: (frame - 1) * 30 + 15,
      registered: true,
      converged: true,
      txMm: frame * 0.1,
      tyMm: 0,
      tzMm: -0.2,
      rxDeg: 0.5,
      ryDeg: 0,
      rzDeg: frame * 0.05,
    }));
    const specs = plotSpecs('motion', rows);
    expect(specs.map((s) => [s.title, s.xLabel, s.yLabel, s.lines.map((l) => l.label)])).toEqual([
      ['motion: translation', 'Frame mid-time (s)', 'Translation (mm)', ['x', 'y', 'z']],
      ['motion: rotation', 'Frame mid-time (s)', 'Rotation (°)', ['about x', 'about y', 'about z']],
    ]);
    expect(specs[0].lines[0].points).toEqual([
      [15, 0.1],
      [45, 0.2],
      [75, 0.30000000000000004],
    ]);
    const shown = JSON.stringify(specs.map(({ title, xLabel, yLabel, lines }) => [title, xLabel, yLabel, lines.map((l) => l.label)]));
    expect(shown).not.toMatch(/Mm|Deg|txMm|midSec/);
    // Without a time column, the frame number.
    const framesOnly = plotSpecs(
      'motion',
      rows.map(({ frame, txMm, rzDeg }) => ({ frame, txMm, rzDeg })),
    );
    expect(framesOnly.map((s) => s.xLabel)).toEqual(['Frame', 'Frame']);
  });

  it('VOI statistics in long form: one time-activity curve per VOI in kBq/ml against mid-frame time in min, and SUVbw', () => {
    const rows = ['striatum', 'cerebellum'].flatMap((voi, v) =>
      [0, 1, 2, 3, 4, 5].map((frame) => ({
        voi,
        source: 'labels',
        label: null,
        frame,
        startS: frame * 120,
        endS: frame * 120 + 120,
        midS: frame * 120 + 60,
        voxels: 100,
        volumeMl: 1.2,
        mean: (v + 1) * frame * 1000,
        sd: 0.1,
        suvbwMean: (v + 1) * frame * 0.5,
        unit: 'BQML',
      })),
    );
    const [activity, suv, ...more] = plotSpecs('voi-stats', rows);
    expect(more).toEqual([]);
    expect(activity).toMatchObject({
      title: 'voi-stats: mean activity concentration by voi',
      x: 'midS',
      xLabel: 'Frame mid-time (min)',
      yLabel: 'Mean activity concentration (kBq/ml)',
    });
    expect(activity.lines.map((l) => l.label)).toEqual(['striatum', 'cerebellum']);
    expect(activity.lines[1].points.slice(0, 3)).toEqual([
      [1, 0],
      [3, 2],
      [5, 4],
    ]);
    expect(suv).toMatchObject({ yLabel: 'Mean SUVbw (g/ml)' });
    expect(suv.lines[0].points[2]).toEqual([5, 1]);
    // No SUV when a row lacks it; stored units named as such without a unit column.
    const plain = plotSpecs(
      'voi-stats',
      rows.map(({ unit: _unit, ...r }) => ({ ...r, suvbwMean: null })),
    );
    expect(plain.map((s) => s.yLabel)).toEqual(['Mean (stored units)']);
  });

  it('a wide time-activity table: one plot, a line per region named in words; nothing for tables without two numbers', () => {
    const rows = [0, 30, 60].map((timeSeconds) => ({
      timeSeconds,
      wholeBrainKbqPerMl: timeSeconds / 10,
      cerebellumKbqPerMl: timeSeconds / 20,
    }));
    const [spec, ...more] = plotSpecs('tac', rows);
    expect(more).toEqual([]);
    expect([spec.xLabel, spec.yLabel, spec.lines.map((l) => l.label)]).toEqual([
      'Time (s)',
      'Activity concentration (kBq/ml)',
      ['whole brain', 'cerebellum'],
    ]);
    expect(
      plotSpecs('routed', [
        { destination: 'PACS', sopInstanceUid: '1.2' },
        { destination: 'PACS', sopInstanceUid: '1.3' },
      ]),
    ).toEqual([]);
    expect(plotSpecs('one', [{ t: 1, v: 2 }])).toEqual([]);
    // A per-object tally (deidentify's table) has no time or frame axis: not a curve.
    expect(
      plotSpecs('deidentified', [
        { sopInstanceUid: '1.2', removed: 12, replaced: 3, scrubbed: 0 },
        { sopInstanceUid: '1.3', removed: 11, replaced: 3, scrubbed: 1 },
      ]),
    ).toEqual([]);
  });
});
