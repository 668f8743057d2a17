import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PluginRegistry } from '../plugin-registry.ts';
import { compileCondition } from '../trigger/conditions.ts';
import { formatProblem, loadPipeline } from './load.ts';

const plugins = new PluginRegistry();
beforeAll(async () => {
  await plugins.loadDirectory(path.resolve(import.meta.dirname, '../../plugins'));
  await plugins.loadDirectory(path.resolve(import.meta.dirname, '../../test/fixtures/plugins'));
});
const env = { databases: ['Import', 'StudyA'] };

const subject = (
  attributes: Record<string, string>,
  extra: Partial<{ sopClassUid: string; callingAeTitle: string; calledAeTitle: string; source: string }> = {},
) => ({
  attributes,
  sopClassUid: '1.2.840.10008.5.1.4.1.1.128',
  callingAeTitle: 'PET01',
  calledAeTitle: 'DICOMFLOW',
  source: 'network',
  ...extra,
});

describe('trigger conditions', () => {
  it('combine attribute tests with AND, any (OR) and not', () => {
    const c = compileCondition({
      attributes: { Modality: { equals: 'PT' }, SeriesType: { matches: 'DYNAMIC.*' } },
      any: [{ callingAeTitle: { oneOf: ['PET01', 'PET02'] } }, { source: { equals: 'folder' } }],
      not: { attributes: { SeriesDescription: { matches: '.*(?i:scout).*' } } },
    });
    expect(c(subject({ Modality: 'PT', SeriesType: 'DYNAMIC\\IMAGE', SeriesDescription: 'Brain' }))).toBe(true);
    expect(c(subject({ Modality: 'CT', SeriesType: 'DYNAMIC\\IMAGE' }))).toBe(false);
    expect(c(subject({ Modality: 'PT', SeriesType: 'DYNAMIC' }, { callingAeTitle: 'OTHER' }))).toBe(false);
    expect(c(subject({ Modality: 'PT', SeriesType: 'DYNAMIC', SeriesDescription: 'SCOUT 1' }))).toBe(false);
  });

  it('knows SOP classes by keyword and by UID', () => {
    const byName = compileCondition({ sopClass: { oneOf: ['SecondaryCaptureImageStorage'] } });
    expect(byName(subject({}, { sopClassUid: '1.2.840.10008.5.1.4.1.1.7' }))).toBe(true);
    expect(byName(subject({}, { sopClassUid: '1.2.840.10008.5.1.4.1.1.2' }))).toBe(false);
    const byUid = compileCondition({ sopClass: { equals: '1.2.840.10008.5.1.4.1.1.2' } });
    expect(byUid(subject({}, { sopClassUid: '1.2.840.10008.5.1.4.1.1.2' }))).toBe(true);
  });

  it('tests exists, includes, numeric ranges and negation', () => {
    expect(compileCondition({ attributes: { PatientWeight: { range: { min: 40, max: 120 } } } })(subject({ PatientWeight: '72.5' }))).toBe(
      true,
    );
    expect(compileCondition({ attributes: { PatientWeight: { range: { min: 80 } } } })(subject({ PatientWeight: '72.5' }))).toBe(false);
    expect(compileCondition({ attributes: { PatientWeight: { range: { min: 0 } } } })(subject({}))).toBe(false);
    expect(
      compileCondition({ attributes: { ImageType: { includes: 'PRIMARY' } } })(subject({ ImageType: 'ORIGINAL\\PRIMARY\\AXIAL' })),
    ).toBe(true);
    expect(compileCondition({ attributes: { AccessionNumber: { exists: false } } })(subject({ AccessionNumber: '' }))).toBe(true);
    expect(compileCondition({ attributes: { Modality: { oneOf: ['CT', 'MR'], not: true } } })(subject({ Modality: 'PT' }))).toBe(true);
  });

  it('anchors regexes to the whole value and never evaluates code', () => {
    expect(compileCondition({ attributes: { Modality: { matches: 'P' } } })(subject({ Modality: 'PT' }))).toBe(false);
    expect(compileCondition({ attributes: { PatientName: { matches: '.*; rm -rf /.*' } } })(subject({ PatientName: 'x; rm -rf /' }))).toBe(
      true,
    );
  });
});

describe('pipeline loading', () => {
  it('loads a valid pipeline with defaults from the schema and step options checked', () => {
    const text = JSON.stringify({ name: 'p', trigger: { on: 'series' }, steps: [{ plugin: 'store', options: { database: 'StudyA' } }] });
    const { pipeline, problems } = loadPipeline(text, 'p.json', plugins, env);
    expect(problems).toEqual([]);
    expect(pipeline!.definition.trigger).toMatchObject({
      on: 'series',
      stableSeconds: 30,
      lateArrivals: 'whole',
      includePipelineOutput: false,
    });
    expect(pipeline!.definition.retry).toEqual({ maxAttempts: 3, backoffSeconds: 10 });
    expect(pipeline!.steps[0]).toMatchObject({ id: 'store', timeoutSeconds: 600 });
  });

  it('reports every problem with file, line, column and JSON pointer', () => {
    const text = `{
  "name": "bad name!",
  "trigger": { "on": "sometimes", "stableSeconds": -1 },
  "steps": [
    { "plugin": "store", "options": { "database": "Nowhere" } },
    { "plugin": "no-such-step" },
    { "plugin": "run-program", "options": { "args": "not-an-array" } }
  ],
  "colour": "blue"
}`;
    const { pipeline, problems } = loadPipeline(text, 'bad.json', plugins, env);
    expect(pipeline).toBeUndefined();
    const lines = problems.map(formatProblem);
    expect(lines).toContain('bad.json:2:3: /name: must match pattern "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"');
    expect(lines.some((l) => l.startsWith('bad.json:3:16: /trigger/on: must be one of "instance", "series", "study"'))).toBe(true);
    expect(lines.some((l) => l.startsWith('bad.json:3:35: /trigger/stableSeconds:'))).toBe(true);
    expect(lines).toContain('bad.json:9:3: /colour: unknown property "colour"');
  });

  it('checks step options against each plugin’s own schema, and semantics', () => {
    const text = `{
  "name": "p",
  "trigger": { "on": "instance", "when": { "attributes": { "Modalty": { "equals": "PT" } }, "sopClass": { "equals": "NoSuchStorage" },
    "callingAeTitle": { "equals": "A_CALLING_AE_TITLE_TOO_LONG" } } },
  "steps": [
    { "plugin": "store", "options": { "database": "Nowhere" } },
    { "plugin": "no-such-step" },
    { "plugin": "run-program", "options": { "args": "not-an-array" } },
    { "plugin": "filter", "options": { "when": { "attributes": { "Modality": { "matches": "(" } } } } }
  ]
}`;
    const { problems } = loadPipeline(text, 'sem.json', plugins, env);
    const byPointer = Object.fromEntries(problems.map((p) => [p.pointer, p]));
    expect(byPointer['/trigger/when/attributes/Modalty'].message).toMatch(/not a DICOM attribute keyword/);
    expect(byPointer['/trigger/when/sopClass'].message).toMatch(/neither a SOP Class keyword nor a UID/);
    expect(byPointer['/trigger/when/callingAeTitle'].message).toMatch(/longer than 16/);
    expect(byPointer['/steps/0/options/database']).toMatchObject({ line: 6, message: expect.stringMatching(/unknown database "Nowhere"/) });
    expect(byPointer['/steps/1/plugin']).toMatchObject({ line: 7, message: expect.stringMatching(/unknown plugin "no-such-step"/) });
    expect(problems.some((p) => p.pointer === '/steps/2/options' && /required property "program"/.test(p.message))).toBe(true);
    expect(byPointer['/steps/2/options/args'].message).toMatch(/must be array/);
    expect(byPointer['/steps/3/options/when'].message).toMatch(/invalid condition: Invalid regular expression/);
  });

  it('a disabled pipeline naming a database the configuration lacks loads with a warning; enabled, it is refused', () => {
    const definition = {
      name: 'p',
      enabled: false,
      trigger: { on: 'instance' },
      steps: [{ plugin: 'store', options: { database: 'Nowhere' } }],
    };
    const disabled = loadPipeline(JSON.stringify(definition, null, 2), 'd.json', plugins, env);
    expect(disabled.pipeline?.definition.enabled).toBe(false);
    expect(disabled.problems).toEqual([]);
    expect(disabled.warnings.map((w) => `${w.pointer}: ${w.message}`)).toEqual([
      expect.stringMatching(/^\/steps\/0\/options\/database: unknown database "Nowhere"/),
    ]);
    const enabled = loadPipeline(JSON.stringify({ ...definition, enabled: true }, null, 2), 'e.json', plugins, env);
    expect(enabled.pipeline).toBeUndefined();
    expect(enabled.problems.map((p) => p.pointer)).toEqual(['/steps/0/options/database']);
  });

  it('refuses a chain whose step consumes what no earlier step produces', () => {
    const bad = JSON.stringify({ name: 'p', trigger: { on: 'instance' }, steps: [{ plugin: 'test-reads-tables' }] }, null, 2);
    const { problems } = loadPipeline(bad, 'chain.json', plugins, env);
    expect(problems.map((p) => `${p.pointer}: ${p.message}`)).toEqual([
      '/steps/0/plugin: test-reads-tables consumes tables, which no earlier step produces',
    ]);
    const good = JSON.stringify({
      name: 'p',
      trigger: { on: 'instance' },
      steps: [{ plugin: 'test-burns-cpu' }, { plugin: 'test-reads-tables' }],
    });
    expect(loadPipeline(good, 'chain.json', plugins, env).problems).toEqual([]);
  });

  it('reports JSON syntax errors with their line', () => {
    const { problems } = loadPipeline('{\n  "name": "x",\n  "steps": [\n}', 's.json', plugins, env);
    expect(problems[0]).toMatchObject({ file: 's.json', line: 4 });
    expect(problems[0].message).toMatch(/JSON syntax/);
  });
});
