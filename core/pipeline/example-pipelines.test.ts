// The example pipelines in pipelines/ (loaded by `npm start`) stay valid as plugins change.
import fs from 'node:fs';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { PluginRegistry } from '../plugin-registry.ts';
import { formatProblem, loadPipeline } from './load.ts';

const repo = path.resolve(import.meta.dirname, '../..');
const dir = path.join(repo, 'pipelines');
const files = fs
  .readdirSync(dir)
  .filter((f) => f.endsWith('.json'))
  .sort();
const plugins = new PluginRegistry();

beforeAll(async () => {
  await plugins.loadDirectory(path.join(repo, 'plugins'));
});

describe('example pipelines', () => {
  it.each(files)(
    '%s loads with the default configuration, and without warnings once its printer, PACS and research node are configured',
    (file) => {
      const text = fs.readFileSync(path.join(dir, file), 'utf8');
      const plain = loadPipeline(text, file, plugins, { databases: ['Import'] });
      expect(plain.problems.map(formatProblem)).toEqual([]);
      // The examples that need configuring are shipped disabled.
      if (plain.warnings.length > 0) expect(plain.pipeline!.definition.enabled).toBe(false);
      const configured = loadPipeline(text, file, plugins, {
        databases: ['Import'],
        printers: ['reports'],
        remoteNodes: ['PACS', 'RESEARCH'],
      });
      expect([...configured.problems, ...configured.warnings].map(formatProblem)).toEqual([]);
    },
  );
});
