// Writes the published JSON Schemas from their one source in code (npm run schemas).
import fs from 'node:fs';
import path from 'node:path';
import { configSchema } from '../core/config/schema.ts';

const root = path.resolve(import.meta.dirname, '..');
fs.writeFileSync(path.join(root, 'schemas/config.schema.json'), `${JSON.stringify(configSchema, null, 2)}\n`);
console.log('wrote schemas/config.schema.json');
