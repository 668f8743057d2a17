// Issue 8, hostile input: configuration and pipeline files built to hurt (deep nesting, huge
// files, wrong types, prototype-pollution keys) give a clear error with a JSON pointer, from
// `dicomflow validate` and from a running server's pipeline folder, and the server keeps going.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { rawAssociate, VERIFICATION_SOP_CLASS, IMPLICIT_VR_LITTLE_ENDIAN } from '../helpers/raw-scu.ts';
import { startTestServer, tempDir } from '../helpers/server.ts';

const run = promisify(execFile);
const repo = path.resolve(import.meta.dirname, '../..');
const node = path.join(repo, 'node_modules/.bin/node');
const cli = path.join(repo, 'server/cli.ts');
const closers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of closers) await c();
});

const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const pipeline = (extra: string) =>
  `{"name":"hostile","trigger":{"on":"instance"},"steps":[{"plugin":"store","options":{"database":"Import"}}]${extra}}`;

const hostilePipelines: Record<string, { text: string; expect: RegExp }> = {
  'deep.json': {
    text: `{"name":"deep","trigger":{"on":"instance"},"steps":[{"plugin":"store","options":{"database":"Import","x":${deep(200_000)}}}]}`,
    expect: /:1:\d+: \/steps\/0\/options\/x(\/0)+: nested more than 64 levels deep/,
  },
  'huge.json': {
    text: pipeline(`,"description":"${'a'.repeat(8 << 20)}"`),
    expect: /:1:1: \/: the file has \d+ characters, more than the 1048576 a pipeline may have/,
  },
  'many-steps.json': {
    text: `{"name":"many","trigger":{"on":"instance"},"steps":[${Array(200_000).fill('1').join(',')}]}`,
    expect: /\/: 200000 problems; the first 50 follow[\s\S]*\/steps\/0: must be object/,
  },
  'types.json': {
    text: '{"name":5,"trigger":[],"steps":"x","enabled":"yes"}',
    expect: /\/name: must be string[\s\S]*\/trigger: must be object[\s\S]*\/steps: must be array/,
  },
  'proto.json': {
    text: '{"__proto__":{"polluted":true},"name":"proto","trigger":{"on":"instance","when":{"__proto__":{"polluted":true}}},"steps":[{"plugin":"store","options":{"database":"Import"}}]}',
    expect: /\/__proto__: unknown property "__proto__"[\s\S]*\/trigger\/when\/__proto__: unknown property "__proto__"/,
  },
  'proto-options.json': {
    text: '{"name":"proto-options","trigger":{"on":"instance"},"steps":[{"plugin":"store","options":{"database":"Import","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}}]}',
    expect: /\/steps\/0\/options(\/__proto__|\/constructor|: must NOT have additional properties)/,
  },
};

const hostileConfigs: Record<string, { text: string; expect: RegExp }> = {
  'deep.json': {
    text: `{"dimse":{"allowedCallers":${deep(200_000)}}}`,
    expect: /DF_ERR_CONFIG_INVALID[\s\S]*\/dimse\/allowedCallers\/0: must be object/,
  },
  'huge.json': {
    text: `{"description":"${'a'.repeat(4 << 20)}"}`,
    expect: /DF_ERR_CONFIG_READ[\s\S]*more than the 1048576 a configuration may have/,
  },
  'many.json': {
    text: `{"databases":[${Array(400_000).fill('1').join(',')}]}`,
    expect: /\/databases\/0: must be object[\s\S]*… and 399950 more problems/,
  },
  'types.json': {
    text: '{"dimse":{"port":"11112","maxPduLength":-1},"storage":[],"users":{"a":1}}',
    expect:
      /\/dimse\/port: must be integer[\s\S]*\/dimse\/maxPduLength: must be >= 4096[\s\S]*\/storage: must be object[\s\S]*\/users: must be array/,
  },
  'proto.json': {
    text: '{"__proto__":{"polluted":true},"dimse":{"__proto__":{"polluted":true}},"users":[{"name":"a","role":"admin","databases":{"__proto__":"write"}}]}',
    expect: /\/: must NOT have additional properties \(__proto__\)[\s\S]*\/dimse: must NOT have additional properties \(__proto__\)/,
  },
};

async function validate(file: string): Promise<{ code: number; output: string }> {
  const r = await run(node, [cli, 'validate', file], { maxBuffer: 64 << 20 }).then(
    (ok) => ({ code: 0, output: ok.stdout + ok.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, output: e.stdout + e.stderr }),
  );
  return r;
}

describe('hostile pipeline files', () => {
  it('dicomflow validate names each problem with its JSON pointer (a hang ends at the test timeout)', async () => {
    const dir = tempDir('df-hostile-pipelines-');
    for (const [name, { text, expect: pattern }] of Object.entries(hostilePipelines)) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      const { code, output } = await validate(file);
      expect(code, `${name}: ${output.slice(0, 300)}`).toBe(1);
      expect(output, name).toMatch(/DF_ERR_PIPELINE_INVALID/);
      expect(output, name).toMatch(pattern);
      expect(output.split('\n').length, name).toBeLessThan(60);
    }
  }, 120_000);

  it('in a running server’s pipeline folder: refused with pointers, nothing polluted, the server still answers', async () => {
    const dir = tempDir('df-hostile-pipelines-');
    for (const [name, { text }] of Object.entries(hostilePipelines)) fs.writeFileSync(path.join(dir, name), text);
    const s = await startTestServer({ pipelinesDir: dir });
    closers.push(() => s.close());
    const problems = s.pipelines.problems();
    for (const name of Object.keys(hostilePipelines)) {
      expect(
        problems.some((p) => p.file.endsWith(name) && typeof p.pointer === 'string'),
        name,
      ).toBe(true);
    }
    expect(s.pipelines.all().map((p) => p.definition.name)).toEqual(['store-received']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((Object.prototype as Record<string, unknown>).polluted).toBeUndefined();
    const assoc = await rawAssociate({
      port: s.dicomPort,
      calledAe: 'DICOMFLOW',
      contexts: [{ id: 1, abstractSyntax: VERIFICATION_SOP_CLASS, transferSyntaxes: [IMPLICIT_VR_LITTLE_ENDIAN] }],
    });
    expect((await assoc.sendEcho()).status).toBe(0);
    await assoc.release();
  }, 60_000);
});

describe('hostile configuration files', () => {
  it('dicomflow validate and serve refuse each with a clear error and its JSON pointer', async () => {
    const dir = tempDir('df-hostile-config-');
    for (const [name, { text, expect: pattern }] of Object.entries(hostileConfigs)) {
      const file = path.join(dir, name);
      fs.writeFileSync(file, text);
      const { code, output } = await validate(file);
      expect(code, `${name}: ${output.slice(0, 300)}`).not.toBe(0);
      expect(output, name).toMatch(pattern);
      expect(output.split('\n').length, name).toBeLessThan(60);
    }
    const serve = await run(node, [cli, 'serve', '--config', path.join(dir, 'proto.json')]).catch(
      (e: { code: number; stderr: string; stdout: string }) => e,
    );
    expect((serve as { code: number }).code).not.toBe(0);
    expect((serve as { stderr: string }).stderr + (serve as { stdout: string }).stdout).toMatch(
      /DF_ERR_CONFIG_INVALID[\s\S]*\/: must NOT have additional properties \(__proto__\)/,
    );
  }, 120_000);
});
