// Regenerates docs/errors.md from core/errors.ts (npm run docs:errors); a test keeps them equal.
import fs from 'node:fs';
import path from 'node:path';
import { errorCodes } from '../core/errors.ts';

export function errorDocs(): string {
  const rows = Object.entries(errorCodes).map(([code, text]) => `| \`${code}\` | ${text} |`);
  return `# Error codes\n\nEvery error a user can meet carries one of these stable codes (in logs, CLI output, HTTP\n\`{ code, message }\` bodies and DIMSE error comments). A retired code is never reused.\n\n| code | meaning and what to do |\n| --- | --- |\n${rows.join('\n')}\n`;
}

if (process.argv[1] === import.meta.filename) {
  fs.writeFileSync(path.resolve(import.meta.dirname, '../docs/errors.md'), errorDocs());
  console.log('wrote docs/errors.md');
}
