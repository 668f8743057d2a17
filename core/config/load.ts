import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { dfError } from '../errors.ts';
import { configSchema, type Config } from './schema.ts';

export type ResolvedConfig = Config & { dataDir: string; pipelinesDir: string; configFile?: string };

const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: true, allowUnionTypes: true });
const validate = ajv.compile(configSchema);

// A hostile file can hold a million wrong items: the first problems say what is wrong.
const MAX_DESCRIBED_ERRORS = 50;
const MAX_CONFIG_BYTES = 1 << 20;

export function describeAjvErrors(errors: ErrorObject[] | null | undefined): string[] {
  const all = errors ?? [];
  const more = all.length > MAX_DESCRIBED_ERRORS ? [`… and ${all.length - MAX_DESCRIBED_ERRORS} more problems`] : [];
  return all
    .slice(0, MAX_DESCRIBED_ERRORS)
    .map((e) => {
      const at = e.instancePath === '' ? '/' : e.instancePath;
      const extra = e.keyword === 'additionalProperties' ? ` (${String(e.params.additionalProperty)})` : '';
      return `${at}: ${e.message ?? e.keyword}${extra}`;
    })
    .concat(more);
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
      const text = readFileSync(file, 'utf8');
      if (text.length > MAX_CONFIG_BYTES)
        throw new Error(`the file has ${text.length} characters, more than the ${MAX_CONFIG_BYTES} a configuration may have`);
      raw = JSON.parse(text);
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
  const dataDir = overrides.dataDir !== undefined ? path.resolve(cwd, overrides.dataDir) : path.resolve(baseDir, config.dataDir);
  checkSemantics(config, file ?? 'configuration');
  return {
    ...config,
    dataDir,
    pipelinesDir: path.resolve(baseDir, config.pipelinesDir),
    plugins: { ...config.plugins, directories: config.plugins.directories.map((d) => path.resolve(baseDir, d)) },
    watchFolders: config.watchFolders.map((w) => ({ ...w, path: path.resolve(baseDir, w.path) })),
    dicomdirStores: config.dicomdirStores.map((d) => ({ ...d, root: path.resolve(baseDir, d.root) })),
    ...resolveTlsFiles(config, baseDir),
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
  if (config.index.backend === 'postgres' && config.index.url === undefined) {
    problems.push('/index/url: backend "postgres" needs the server\'s URL, e.g. postgres://dicomflow@db.example.org/dicomflow');
  }
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

/** Certificate and key paths, like every path in the file, are relative to it. */
function resolveTlsFiles(config: Config, baseDir: string): Pick<Config, 'dimse' | 'http' | 'remoteNodes'> {
  const at = (file: string | undefined) => (file === undefined ? undefined : path.resolve(baseDir, file));
  const { dimse, http } = config;
  return {
    dimse: dimse.tls
      ? {
          ...dimse,
          tls: { ...dimse.tls, certFile: at(dimse.tls.certFile)!, keyFile: at(dimse.tls.keyFile)!, caFile: at(dimse.tls.caFile) },
        }
      : dimse,
    http: http.tls ? { ...http, tls: { certFile: at(http.tls.certFile)!, keyFile: at(http.tls.keyFile)! } } : http,
    remoteNodes: config.remoteNodes.map((n) => ({
      ...n,
      tlsCaFile: at(n.tlsCaFile),
      tlsCertFile: at(n.tlsCertFile),
      tlsKeyFile: at(n.tlsKeyFile),
    })),
  };
}
