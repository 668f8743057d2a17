// `npm run bench -- <name> [options]`: runs bench/<name>.ts. Every file directly in bench/ except
// this one is a bench exporting `description` and `main(args)`; shared code lives in bench/support/.
import fs from 'node:fs';
import path from 'node:path';
import { installCleanupHandlers } from './support/cleanup.ts';

interface Bench {
  description: string;
  main(args: string[]): Promise<number>;
}

const benchDir = import.meta.dirname;

function benchNames(): string[] {
  return fs
    .readdirSync(benchDir)
    .filter((file) => file.endsWith('.ts') && !file.endsWith('.test.ts') && file !== 'run.ts')
    .map((file) => file.slice(0, -'.ts'.length))
    .sort();
}

async function load(name: string): Promise<Bench> {
  return (await import(path.join(benchDir, `${name}.ts`))) as Bench;
}

async function usage(): Promise<string> {
  const lines = ['Usage: npm run bench -- <name> [options]   (options: npm run bench -- <name> --help)', '', 'Benches:'];
  for (const name of benchNames()) lines.push(`  ${name.padEnd(12)} ${(await load(name)).description}`);
  lines.push('', 'See bench/README.md for what each one measures and how to read its output.');
  return lines.join('\n');
}

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    console.log(await usage());
    return 0;
  }
  if (!benchNames().includes(name)) {
    console.error(`unknown bench "${name}"\n\n${await usage()}`);
    return 2;
  }
  installCleanupHandlers();
  return (await load(name)).main(args);
}

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : error);
    process.exitCode = 1;
  },
);
