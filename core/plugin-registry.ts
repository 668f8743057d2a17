import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';
import { Ajv, type ValidateFunction } from 'ajv';
import semver from 'semver';
import { dfError } from './errors.ts';
import type { PluginDefinition, PluginKind } from './plugin.ts';
import type { ResolvedConfig } from './config/load.ts';

export const ENGINE_VERSION = '0.1.0';
const BUILT_IN_PLUGINS = path.resolve(import.meta.dirname, '../plugins');
const KINDS: ReadonlySet<PluginKind> = new Set(['instances', 'files', 'tables']);

export interface RegisteredPlugin {
  plugin: PluginDefinition<any>;
  /** Where a worker imports it from. */
  moduleUrl: string;
  validateOptions: ValidateFunction;
}

/**
 * The plugins the engine knows, checked when registered (fastify-plugin style): name and
 * version, known input/output kinds, an engine range that matches, no duplicate name@version.
 * Several major versions of a step live side by side; "store" means the newest, "store@1" the
 * newest 1.x, so old pipelines keep working after a breaking change.
 */
export class PluginRegistry {
  private readonly byName = new Map<string, RegisteredPlugin[]>();
  private readonly ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });

  register(plugin: PluginDefinition<any>, moduleUrl: string): void {
    const where = `plugin ${JSON.stringify(plugin?.name)} (${moduleUrl})`;
    const problems: string[] = [];
    if (typeof plugin?.name !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(plugin.name))
      problems.push('name must be lower-case letters, digits and dashes');
    if (!semver.valid(plugin?.version)) problems.push(`version "${plugin?.version}" is not semver`);
    if (typeof plugin?.run !== 'function') problems.push('run must be a function');
    if (plugin?.runsIn !== 'main' && plugin?.runsIn !== 'worker') problems.push('runsIn must be "main" or "worker"');
    if (plugin?.usesPool !== undefined && typeof plugin.usesPool !== 'boolean') problems.push('usesPool must be a boolean');
    for (const k of [...(plugin?.consumes ?? []), ...(plugin?.produces ?? [])]) {
      if (!KINDS.has(k)) problems.push(`unknown input/output kind "${k}"`);
    }
    if (plugin?.engine && !semver.satisfies(ENGINE_VERSION, plugin.engine)) {
      problems.push(`needs dicomflow ${plugin.engine}, this is ${ENGINE_VERSION}`);
    }
    const versions = this.byName.get(plugin?.name) ?? [];
    if (versions.some((r) => r.plugin.version === plugin?.version)) problems.push(`${plugin.name}@${plugin.version} is already registered`);
    let validateOptions: ValidateFunction | undefined;
    try {
      validateOptions = this.ajv.compile(plugin?.options ?? {});
    } catch (err) {
      problems.push(`options schema does not compile: ${(err as Error).message}`);
    }
    if (problems.length > 0) throw dfError('DF_ERR_PLUGIN_INVALID', `${where}: ${problems.join('; ')}`);
    versions.push({ plugin, moduleUrl, validateOptions: validateOptions! });
    versions.sort((a, b) => semver.rcompare(a.plugin.version, b.plugin.version));
    this.byName.set(plugin.name, versions);
  }

  /** "name" or "name@range" → the newest matching version. */
  resolve(reference: string): RegisteredPlugin | undefined {
    const [name, range] = reference.split('@');
    const versions = this.byName.get(name) ?? [];
    return range === undefined ? versions[0] : versions.find((r) => semver.satisfies(r.plugin.version, range));
  }

  names(): string[] {
    return [...this.byName.keys()].sort();
  }

  list(): RegisteredPlugin[] {
    return [...this.byName.values()].flat();
  }

  /** Each folder of dir with an index.ts (or index.js) whose default export is a plugin. */
  async loadDirectory(dir: string): Promise<void> {
    if (!fs.existsSync(dir)) return;
    for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      if (!entry.isDirectory()) continue;
      const file = ['index.ts', 'index.js'].map((f) => path.join(dir, entry.name, f)).find((f) => fs.existsSync(f));
      if (file) await this.loadModule(pathToFileURL(file).href);
    }
  }

  /** An npm package (resolved from the working directory) whose default export is a plugin or a list of them. */
  async loadPackage(name: string, fromDir = process.cwd()): Promise<void> {
    const resolved = createRequire(path.join(fromDir, 'noop.js')).resolve(name);
    await this.loadModule(pathToFileURL(resolved).href);
  }

  async loadModule(url: string): Promise<void> {
    const mod = await import(url);
    const exported = mod.default ?? mod.plugin;
    for (const p of Array.isArray(exported) ? exported : [exported]) this.register(p, url);
  }
}

/**
 * The plugins a configuration uses: the built-in ones, then plugins.directories, then
 * plugins.packages (resolved from the configuration file's folder).
 */
export async function configuredPlugins(config: Pick<ResolvedConfig, 'plugins' | 'configFile'>): Promise<PluginRegistry> {
  const plugins = new PluginRegistry();
  await plugins.loadDirectory(BUILT_IN_PLUGINS);
  for (const dir of config.plugins.directories) await plugins.loadDirectory(dir);
  for (const pkg of config.plugins.packages)
    await plugins.loadPackage(pkg, config.configFile ? path.dirname(config.configFile) : process.cwd());
  return plugins;
}
