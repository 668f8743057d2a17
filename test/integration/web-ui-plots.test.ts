import { describe, expect, it } from 'vitest';
import { plotSpecs } from '../../web/src/plot-spec.ts';

/** Which lines the web page draws for the tables the built-in steps emit. */
describe('plots of table outputs', () => {
  it('motion parameters: frame on x, translations and rotations in a plot per unit', () => {
    const rows = [1, 2, 3].map((frame) => ({ frame, registered: true, converged: true, txMm: frame * 0.1, tyMm: 0, tzMm: -0.2, rxDeg: 0.5, ryDeg: 0, rzDeg: frame * 0.05 }));
    const specs = plotSpecs('motion', rows);
    expect(specs.map((s) => [s.title, s.x, s.lines.map((l) => l.label)])).toEqual([
      ['motion (Mm)', 'frame', ['txMm', 'tyMm', 'tzMm']],
      ['motion (Deg)', 'frame', ['rxDeg', 'ryDeg', 'rzDeg']],
    ]);
    expect(specs[0].lines[0].points).toEqual([[1, 0.1], [2, 0.2], [3, 0.30000000000000004]]);
  });

  it('VOI statistics in long form: one time-activity curve per VOI, mean against mid-frame time', () => {
    const rows = ['striatum', 'cerebellum'].flatMap((voi, v) =>
      [0, 1, 2].map((frame) => ({ voi, source: 'labels', label: null, frame, startS: frame * 60, endS: frame * 60 + 60, midS: frame * 60 + 30, voxels: 100, volumeMl: 1.2, mean: (v + 1) * frame, sd: 0.1, suvbwMean: null })),
    );
    const [spec, ...more] = plotSpecs('voi-stats', rows);
    expect(more).toEqual([]);
    expect(spec).toMatchObject({ title: 'voi-stats: mean by voi', x: 'midS' });
    expect(spec.lines).toEqual([
      { label: 'striatum', points: [[30, 0], [90, 1], [150, 2]] },
      { label: 'cerebellum', points: [[30, 0], [90, 2], [150, 4]] },
    ]);
  });

  it('a wide time-activity table: one plot, a line per region; nothing for tables without two numbers', () => {
    const rows = [0, 30, 60].map((timeSeconds) => ({ timeSeconds, wholeBrainKbqPerMl: timeSeconds / 10, cerebellumKbqPerMl: timeSeconds / 20 }));
    expect(plotSpecs('tac', rows).map((s) => s.lines.map((l) => l.label))).toEqual([['wholeBrainKbqPerMl', 'cerebellumKbqPerMl']]);
    expect(plotSpecs('routed', [{ destination: 'PACS', sopInstanceUid: '1.2' }, { destination: 'PACS', sopInstanceUid: '1.3' }])).toEqual([]);
    expect(plotSpecs('one', [{ t: 1, v: 2 }])).toEqual([]);
  });
});
