import fs from 'node:fs';
import path from 'node:path';
import type { Announcer } from '../events.ts';
import type { PluginRegistry } from '../plugin-registry.ts';
import { DEFAULT_PIPELINE_NAME, DEFAULT_PIPELINE_SOURCE, defaultPipelineText } from '../pipeline/default-pipeline.ts';
import { conditionAttributes } from './condition-attributes.ts';
import { loadPipeline, type LoadedPipeline, type PipelineEnvironment, type PipelineProblem } from '../pipeline/load.ts';

interface FileState {
  /** The pipeline in force for this file: the last valid version. */
  pipeline?: LoadedPipeline;
  problems: PipelineProblem[];
  /** What a disabled pipeline still needs configured (see loadPipeline). */
  warnings?: PipelineProblem[];
}

/**
 * The pipelines of a directory, one per *.json file, reloaded when files change. A file that
 * becomes invalid keeps its last valid version in force and reports its problems; a removed
 * file's pipeline is withdrawn. Announces PipelinesReloaded after each reload (on the bus it is given).
 */
export class PipelineSet {
  readonly dir: string;
  private readonly plugins: PluginRegistry;
  private readonly env: PipelineEnvironment;
  private readonly files = new Map<string, FileState>();
  private watcher: fs.FSWatcher | undefined;
  private poller: NodeJS.Timeout | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  private readonly withDefault: boolean;
  private readonly events: Announcer | undefined;
  private attributesOfConditions: ReadonlyMap<number, { keyword: string; vr: string }> = new Map();

  constructor(
    dir: string,
    plugins: PluginRegistry,
    env: PipelineEnvironment,
    options: { defaultPipeline: boolean; events?: Announcer } = { defaultPipeline: true },
  ) {
    this.dir = dir;
    this.plugins = plugins;
    this.env = env;
    this.withDefault = options.defaultPipeline;
    this.events = options.events;
  }

  reload(): { loaded: string[]; problems: PipelineProblem[] } {
    const present = new Set<string>();
    if (fs.existsSync(this.dir)) {
      for (const name of fs
        .readdirSync(this.dir)
        .filter((f) => f.endsWith('.json'))
        .sort()) {
        const file = path.join(this.dir, name);
        present.add(file);
        let text: string;
        try {
          text = fs.readFileSync(file, 'utf8');
        } catch (err) {
          const state = this.files.get(file) ?? { problems: [] };
          state.problems = [{ file, pointer: '', line: 1, column: 1, message: `cannot read: ${(err as Error).message}` }];
          this.files.set(file, state);
          continue;
        }
        const { pipeline, problems, warnings } = loadPipeline(text, file, this.plugins, this.env);
        const state = this.files.get(file) ?? { problems: [] };
        state.problems = problems;
        state.warnings = warnings;
        if (pipeline) state.pipeline = pipeline;
        this.files.set(file, state);
      }
    }
    for (const file of [...this.files.keys()]) if (!present.has(file)) this.files.delete(file);
    this.checkNameClashes();
    this.addDefault();
    this.attributesOfConditions = conditionAttributes(this.all());
    const result = { loaded: this.all().map((p) => p.definition.name), problems: this.problems() };
    this.events?.announce('PipelinesReloaded', result);
    return result;
  }

  private addDefault(): void {
    this.files.delete(DEFAULT_PIPELINE_SOURCE);
    if (!this.withDefault || this.all().some((p) => p.definition.name === DEFAULT_PIPELINE_NAME)) return;
    const { pipeline, problems } = loadPipeline(defaultPipelineText, DEFAULT_PIPELINE_SOURCE, this.plugins, this.env);
    this.files.set(DEFAULT_PIPELINE_SOURCE, { pipeline, problems });
  }

  /** Two files may not define the same pipeline name: the later file (by name) is not used. */
  private checkNameClashes(): void {
    const seen = new Map<string, string>();
    for (const [file, state] of this.files) {
      const name = state.pipeline?.definition.name;
      if (!name) continue;
      const first = seen.get(name);
      if (first) {
        state.problems.push({
          file,
          pointer: '/name',
          line: 1,
          column: 1,
          message: `pipeline name "${name}" is already defined in ${first}`,
        });
        state.pipeline = undefined;
      } else {
        seen.set(name, file);
      }
    }
  }

  /**
   * The attributes the loaded pipelines' conditions look at (trigger `when`, and any step option
   * named `when`, such as filter's), by tag: receive decodes these into each arrival beside the
   * indexed ones, so a condition on any top-level attribute works.
   */
  conditionAttributes(): ReadonlyMap<number, { keyword: string; vr: string }> {
    return this.attributesOfConditions;
  }

  all(): LoadedPipeline[] {
    return [...this.files.values()].flatMap((s) => (s.pipeline ? [s.pipeline] : []));
  }

  enabled(): LoadedPipeline[] {
    return this.all().filter((p) => p.definition.enabled);
  }

  get(name: string): LoadedPipeline | undefined {
    return this.all().find((p) => p.definition.name === name);
  }

  /**
   * A version jobs were queued with, as kept in the job store, resolved against the plugins
   * loaded now. It keeps its own hash (the job's), even should the schema's defaults have grown
   * since. Undefined with the problems when it no longer loads (a plugin it uses is gone).
   */
  loadVersion(version: { hash: string; pipeline: string; definition: string }): { pipeline?: LoadedPipeline; problems: PipelineProblem[] } {
    const { pipeline, problems } = loadPipeline(
      version.definition,
      `${version.pipeline} (version ${version.hash})`,
      this.plugins,
      this.env,
    );
    return { pipeline: pipeline && { ...pipeline, hash: version.hash, definitionJson: version.definition }, problems };
  }

  problems(): PipelineProblem[] {
    return [...this.files.values()].flatMap((s) => s.problems);
  }

  warnings(): PipelineProblem[] {
    return [...this.files.values()].flatMap((s) => s.warnings ?? []);
  }

  /**
   * Reload on changes in the directory (debounced: editors write files in several steps). With
   * `pollMs`, also look at the files' sizes and times that often: on a shared file system (NFS)
   * an edit made on another host raises no event here.
   */
  watch(onError: (err: Error) => void, options: { pollMs?: number } = {}): void {
    if (!fs.existsSync(this.dir)) return;
    const changed = () => {
      clearTimeout(this.reloadTimer);
      this.reloadTimer = setTimeout(() => {
        try {
          this.reload();
        } catch (err) {
          onError(err as Error);
        }
      }, 200);
    };
    this.watcher = fs.watch(this.dir, changed);
    this.watcher.on('error', onError);
    if (options.pollMs === undefined) return;
    let seen = this.signature();
    this.poller = setInterval(() => {
      const now = this.signature();
      if (now !== seen) changed();
      seen = now;
    }, options.pollMs);
    this.poller.unref();
  }

  private signature(): string {
    try {
      return fs
        .readdirSync(this.dir)
        .filter((f) => f.endsWith('.json'))
        .sort()
        .map((f) => {
          const st = fs.statSync(path.join(this.dir, f));
          return `${f}:${st.size}:${st.mtimeMs}`;
        })
        .join('|');
    } catch {
      return '';
    }
  }

  close(): void {
    clearTimeout(this.reloadTimer);
    clearInterval(this.poller);
    this.watcher?.close();
  }
}
