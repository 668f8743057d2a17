import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { dfError } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

export type ResolvedConfig = Config & { dataDir: string; pipelinesDir: string; configFile?: string };

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(configSchema);

export function describeAjvErrors(errors: ErrorObject[] | null | undefined): string[] {
  return (errors ?? []).map((e) => {
    const at = e.instancePath === '' ? '/' : e.instancePath;
    const extra = e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '';
    return `${at}: ${e.message ?? e.keyword}${extra}`;
  });
}

/** Overrides from the command line, applied after the file and before validation. */
export interface ConfigOverrides {
  dataDir?: string;
  port?: number;
  httpPort?: number;
  aeTitle?: string;
}

/**
 * Reads, overrides, defaults and validates the configuration. Relative paths in a file resolve
 * against the file's directory; those given on the command line against the working directory.
 */
export function loadConfig(file: string | undefined, overrides: ConfigOverrides = {}, cwd = process.cwd()): ResolvedConfig {
  let raw: Record<string, any> = {};
  let baseDir = cwd;
  if (file !== undefined) {
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch (err) {
      throw dfError('DF_ERR_CONFIG_READ', `cannot read configuration ${file}: ${(err as Error).message}`, { cause: err });
    }
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw dfError('DF_ERR_CONFIG_INVALID', `${file}: the configuration must be a JSON object`);
    }
    baseDir = path.dirname(path.resolve(cwd, file));
  }
  raw.dimse ??= {};
  raw.http ??= {};
  if (overrides.port !== undefined) raw.dimse.port = overrides.port;
  if (overrides.aeTitle !== undefined) raw.dimse.aeTitle = overrides.aeTitle;
  if (overrides.httpPort !== undefined) raw.http.port = overrides.httpPort;
  if (!validate(raw)) {
    const where = file ?? 'configuration';
    throw dfError('DF_ERR_CONFIG_INVALID', `${where}:\n  ${describeAjvErrors(validate.errors).join('\n  ')}`, {
      details: { errors: validate.errors },
    });
  }
  const config = raw as Config;
  const dataDir =
    overrides.dataDir !== undefined ? path.resolve(cwd, overrides.dataDir) : path.resolve(baseDir, config.dataDir);
  checkSemantics(config, file ?? 'configuration');
  return {
    ...config,
    dataDir,
    pipelinesDir: path.resolve(baseDir, config.pipelinesDir),
    plugins: { ...config.plugins, directories: config.plugins.directories.map((d) => path.resolve(baseDir, d)) },
    watchFolders: config.watchFolders.map((w) => ({ ...w, path: path.resolve(baseDir, w.path) })),
    dicomdirStores: config.dicomdirStores.map((d) => ({ ...d, root: path.resolve(baseDir, d.root) })),
    configFile: file === undefined ? undefined : path.resolve(cwd, file),
  };
}

function checkSemantics(config: Config, where: string): void {
  const problems: string[] = [];
  const names = new Set<string>();
  config.databases.forEach((db, i) => {
    if (names.has(db.name)) problems.push(`/databases/${i}/name: duplicate database name "${db.name}"`);
    names.add(db.name);
  });
  config.watchFolders.forEach((w, i) => {
    if (w.database !== undefined && !names.has(w.database)) problems.push(`/watchFolders/${i}/database: unknown database "${w.database}"`);
  });
  if (!names.has(config.defaultDatabase)) {
    problems.push(`/defaultDatabase: "${config.defaultDatabase}" is not one of the databases (${[...names].join(', ')})`);
  }
  const aes = new Map<string, string>();
  const claim = (title: string | undefined, where: string) => {
    if (title === undefined) return;
    if (aes.has(title)) problems.push(`${where}: "${title}" is already used by ${aes.get(title)}`);
    else aes.set(title, where);
  };
  config.databases.forEach((db, i) => claim(db.aeTitle, `/databases/${i}/aeTitle`));
  config.dicomdirStores.forEach((d, i) => claim(d.aeTitle, `/dicomdirStores/${i}/aeTitle`));
  if (problems.length > 0) throw dfError('DF_ERR_CONFIG_INVALID', `${where}:\n  ${problems.join('\n  ')}`);
}
