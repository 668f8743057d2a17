#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { loadConfig } from '../core/config/load.ts';
import { isDfError } from '../core/errors.ts';
import { startServer } from './app.ts';

const USAGE = `dicomflow — DICOM arrival turned into processing

Usage:
  dicomflow serve [--config FILE] [--data DIR] [--port N] [--http-port N] [--aet TITLE]
  dicomflow validate FILE...      check configuration files against the published schema
  dicomflow --help

serve runs the DICOM SCP (default port 11112, AE title DICOMFLOW) and the HTTP API (default 8080)
with data under ./data unless the configuration says otherwise.`;

function intOption(value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new Error(`DF_ERR_USAGE: --${name} must be a port number, got "${value}"`);
  return n;
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string', short: 'c' },
      data: { type: 'string' },
      port: { type: 'string' },
      'http-port': { type: 'string' },
      aet: { type: 'string' },
    },
    strict: true,
  });
  const config = loadConfig(values.config, {
    dataDir: values.data,
    port: intOption(values.port, 'port'),
    httpPort: intOption(values['http-port'], 'http-port'),
    aeTitle: values.aet,
  });
  const server = await startServer(config);
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    server.log.info({ signal }, 'shutting down');
    server.close().then(
      () => process.exit(0),
      (err) => {
        server.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

function validate(files: string[]): number {
  if (files.length === 0) throw new Error('DF_ERR_USAGE: validate needs at least one file');
  let failed = 0;
  for (const file of files) {
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

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'validate':
      process.exitCode = validate(rest);
      return;
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return;
    default:
      console.error(`DF_ERR_USAGE: unknown command "${command}"\n\n${USAGE}`);
      process.exitCode = 2;
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(isDfError(err) ? err.message : (err as Error).message ?? err);
  process.exitCode = (err as Error).message?.startsWith('DF_ERR_USAGE') ? 2 : 1;
});
