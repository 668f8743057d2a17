import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../test/helpers/temp.ts';
import { loadConfig } from './load.ts';
import { configSchema } from './schema.ts';

const tmp = () => tempDir('df-config-');

describe('configuration', () => {
  it('has the documented defaults without a file', () => {
    const c = loadConfig(undefined, {}, '/srv/x');
    expect(c.dimse.aeTitle).toBe('DICOMFLOW');
    expect(c.dimse.port).toBe(11112);
    expect(c.http.port).toBe(8080);
    expect(c.dataDir).toBe('/srv/x/data');
    const known = [{ remoteNodes: true }, { loopback: true }];
    expect(c.databases).toEqual([{ name: 'Import', dicomAccess: { store: [{ anyone: true }], query: known, retrieve: known } }]);
    expect(c.storage.duplicatePolicy).toBe('keep-first');
  });

  it('applies command-line overrides, relative to the working directory', () => {
    const c = loadConfig(undefined, { dataDir: 'd', port: 104, httpPort: 0, aeTitle: 'PMOD' }, '/w');
    expect([c.dataDir, c.dimse.port, c.http.port, c.dimse.aeTitle]).toEqual(['/w/d', 104, 0, 'PMOD']);
  });

  it('resolves dataDir in a file against the file', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'c.json'), JSON.stringify({ dataDir: 'store' }));
    expect(loadConfig(path.join(dir, 'c.json')).dataDir).toBe(path.join(dir, 'store'));
  });

  it('names every problem with its JSON pointer', () => {
    const dir = tmp();
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(file, JSON.stringify({ dimse: { aeTitle: 'A_TITLE_FAR_TOO_LONG', port: 70000, colour: 1 }, databases: [] }));
    let message = '';
    try {
      loadConfig(file);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/^DF_ERR_CONFIG_INVALID/);
    expect(message).toContain('/dimse/aeTitle: must NOT have more than 16 characters');
    expect(message).toContain('/dimse/port: must be <= 65535');
    expect(message).toContain('/dimse: must NOT have additional properties (colour)');
    expect(message).toContain('/databases: must NOT have fewer than 1 items');
  });

  it('finds semantic problems: unknown default database, duplicate AE titles', () => {
    const dir = tmp();
    const file = path.join(dir, 'c.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        defaultDatabase: 'X',
        databases: [
          { name: 'A', aeTitle: 'S' },
          { name: 'B', aeTitle: 'S' },
        ],
      }),
    );
    expect(() => loadConfig(file)).toThrow(/defaultDatabase: "X" is not one of the databases[\s\S]*\/databases\/1\/aeTitle/);
  });

  it('reports unreadable JSON clearly', () => {
    const dir = tmp();
    fs.writeFileSync(path.join(dir, 'c.json'), '{ nope');
    expect(() => loadConfig(path.join(dir, 'c.json'))).toThrow(/DF_ERR_CONFIG_READ/);
  });

  it('publishes exactly the schema in code (run `npm run schemas` after changing it)', () => {
    const published = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../schemas/config.schema.json'), 'utf8'));
    expect(published).toEqual(JSON.parse(JSON.stringify(configSchema)));
  });
});
