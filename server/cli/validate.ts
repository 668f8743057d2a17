import fs from 'node:fs';
import { loadConfig } from '../../core/config/load.ts';
import { formatProblem, loadPipeline } from '../../core/pipeline/load.ts';
import { configuredPlugins } from '../../core/plugin-registry.ts';

/**
 * `dicomflow validate FILE…`: configuration files and pipeline files (told apart by content:
 * a pipeline has "steps"). Pipelines are checked against the plugins and databases of
 * --config when given, else the built-in plugins and the default configuration.
 */
export async function validateFiles(files: string[], configFile?: string): Promise<number> {
  const config = loadConfig(configFile);
  const plugins = await configuredPlugins(config);
  const env = {
    databases: config.databases.map((d) => d.name),
    remoteNodes: config.remoteNodes.map((n) => n.aeTitle),
    printers: config.printers.map((p) => p.name),
  };
  let failed = 0;
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      console.error(`${file}: cannot read: ${(err as Error).message}`);
      failed++;
      continue;
    }
    if (/"steps"\s*:/.test(text)) {
      const { pipeline, problems, warnings } = loadPipeline(text, file, plugins, env);
      for (const w of warnings) console.error(`warning: ${formatProblem(w)} (the pipeline is disabled; enabling it needs this configured)`);
      if (pipeline)
        console.log(
          `${file}: valid pipeline "${pipeline.definition.name}" (${pipeline.steps.length} step(s), trigger ${pipeline.definition.trigger.on}${pipeline.definition.enabled ? '' : ', disabled'})`,
        );
      else {
        failed++;
        for (const p of problems) console.error(`DF_ERR_PIPELINE_INVALID: ${formatProblem(p)}`);
      }
      continue;
    }
    try {
      loadConfig(file);
      console.log(`${file}: valid configuration`);
    } catch (err) {
      failed++;
      console.error((err as Error).message);
    }
  }
  return failed === 0 ? 0 : 1;
}
