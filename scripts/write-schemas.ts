// Writes the published JSON Schemas from their one source in code (npm run schemas).
import fs from 'node:fs';
import path from 'node:path';
import { configSchema } from '../core/config/schema.ts';
import { pipelineSchema } from '../core/pipeline/schema.ts';

const root = path.resolve(import.meta.dirname, '..');
for (const [file, schema] of [
  ['config.schema.json', configSchema],
  ['pipeline.schema.json', pipelineSchema],
] as const) {
  fs.writeFileSync(path.join(root, 'schemas', file), `${JSON.stringify(schema, null, 2)}\n`);
  console.log(`wrote schemas/${file}`);
}
