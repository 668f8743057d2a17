#!/usr/bin/env -S node --max-semi-space-size=4
import os from 'node:os';
import { parseArgs } from 'node:util';
import { loadConfig, type ConfigOverrides } from '../core/config/load.ts';
import { isDfError } from '../core/errors.ts';
import { startServer } from './app.ts';
import { cancelJob, forceComplete, listJobs, rerunJob, showJob } from './cli/jobs.ts';
import { validateFiles } from './cli/validate.ts';
import { importCommand, printSummary } from './cli/import.ts';
import { replicateFromNode, transferCommand } from './cli/databases.ts';

const USAGE = `dicomflow — DICOM arrival turned into processing

Usage:
  dicomflow serve [--config FILE] [--data DIR] [--port N] [--http-port N] [--aet TITLE]
  dicomflow validate [--config FILE] FILE...   check configuration and pipeline files
  dicomflow jobs [--config FILE | --data DIR] [--json] [--status S] [--pipeline P] [--limit N]
  dicomflow job ID [--config FILE | --data DIR] [--json]
  dicomflow rerun ID [--config FILE | --data DIR] [--user NAME]
  dicomflow cancel ID [--config FILE | --data DIR]
  dicomflow force-complete (--series UID | --study UID) [--config FILE | --data DIR]
  dicomflow import PATH [--db NAME] [--user NAME] [--config FILE | --data DIR]
  dicomflow move --from DB --to DB (STUDY_UID | --series UID | --patient ID) [--user NAME] [--config FILE]
  dicomflow copy --from DB --to DB (STUDY_UID | --series UID | --patient ID) [--user NAME] [--config FILE]
  dicomflow replicate --from DB --to DB (--study UID | --patient ID | --all) [--user NAME] [--config FILE]
  dicomflow replicate --from-node AE --to DB (--study UID | --series UID [--study UID] | --patient ID | --all) [--user NAME] [--config FILE]
  dicomflow --help

serve runs the DICOM SCP (default port 11112, AE title DICOMFLOW) and the HTTP API (default 8080)
with data under ./data unless the configuration says otherwise. The job commands work on the
data directory whether or not the server runs; a running server picks up reruns and imports
within a second. import exits with 3 if some files were refused (the others are imported).`;

const common = {
  config: { type: 'string', short: 'c' },
  data: { type: 'string' },
} as const;

function usageError(message: string): Error {
  return Object.assign(new Error(`DF_ERR_USAGE: ${message}`), { usage: true });
}

function intOption(value: string | undefined, name: string, max = 65535): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > max) throw usageError(`--${name} must be an integer from 0 to ${max}, got "${value}"`);
  return n;
}

function configFrom(values: { config?: string; data?: string }, overrides: ConfigOverrides = {}) {
  return loadConfig(values.config, { dataDir: values.data, ...overrides });
}

async function serve(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: { ...common, port: { type: 'string' }, 'http-port': { type: 'string' }, aet: { type: 'string' } },
    strict: true,
  });
  const config = configFrom(values, {
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
  // A rejection nobody handled is a bug to fix, not a reason to drop every association.
  process.on('unhandledRejection', (reason) => server.log.error({ err: reason }, 'unhandled rejection'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serve(rest);
    case 'validate': {
      const { values, positionals } = parseArgs({ args: rest, options: { config: common.config }, allowPositionals: true, strict: true });
      if (positionals.length === 0) throw usageError('validate needs at least one file');
      process.exitCode = await validateFiles(positionals, values.config);
      return;
    }
    case 'jobs': {
      const { values } = parseArgs({
        args: rest,
        options: { ...common, json: { type: 'boolean' }, status: { type: 'string' }, pipeline: { type: 'string' }, limit: { type: 'string' } },
        strict: true,
      });
      listJobs(configFrom(values), { json: values.json === true, status: values.status, pipeline: values.pipeline, limit: intOption(values.limit, 'limit', 100000) });
      return;
    }
    case 'job': {
      const { values, positionals } = parseArgs({ args: rest, options: { ...common, json: { type: 'boolean' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw usageError('job needs one job id');
      showJob(configFrom(values), positionals[0], values.json === true);
      return;
    }
    case 'rerun': {
      const { values, positionals } = parseArgs({ args: rest, options: { ...common, user: { type: 'string' } }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw usageError('rerun needs one job id');
      const id = rerunJob(configFrom(values), positionals[0], values.user ?? os.userInfo().username);
      console.log(id);
      return;
    }
    case 'cancel': {
      const { values, positionals } = parseArgs({ args: rest, options: { ...common }, allowPositionals: true, strict: true });
      if (positionals.length !== 1) throw usageError('cancel needs one job id');
      const cancelled = cancelJob(configFrom(values), positionals[0]);
      console.log(cancelled ? `job ${positionals[0]} cancelled` : `job ${positionals[0]} had already ended`);
      return;
    }
    case 'force-complete': {
      const { values } = parseArgs({ args: rest, options: { ...common, series: { type: 'string' }, study: { type: 'string' } }, strict: true });
      if ((values.series === undefined) === (values.study === undefined)) throw usageError('force-complete needs exactly one of --series UID or --study UID');
      const level = values.series !== undefined ? 'series' : 'study';
      const n = forceComplete(configFrom(values), level, (values.series ?? values.study)!);
      console.log(n > 0 ? `${level} marked complete: its job is queued within a second` : `no pending ${level} trigger for that UID`);
      return;
    }
    case 'import': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, db: { type: 'string' }, user: { type: 'string' } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) throw usageError('import needs one folder or file');
      const summary = await importCommand(configFrom(values), positionals[0], values.db, values.user ?? os.userInfo().username);
      printSummary(summary);
      if (summary.refused.length > 0) process.exitCode = 3;
      return;
    }
    case 'move':
    case 'copy':
    case 'replicate': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: {
          ...common,
          from: { type: 'string' },
          to: { type: 'string' },
          study: { type: 'string' },
          series: { type: 'string' },
          patient: { type: 'string' },
          all: { type: 'boolean' },
          user: { type: 'string' },
          'from-node': { type: 'string' },
        },
        allowPositionals: true,
        strict: true,
      });
      if (command === 'replicate' && values['from-node']) {
        const chosen = [values.series ?? values.study, values.patient, values.all ? 'all' : undefined].filter((v) => v !== undefined);
        if (!values.to || chosen.length !== 1) throw usageError('replicate --from-node needs --to DB and one of --study UID, --series UID, --patient ID, --all');
        const result = await replicateFromNode(configFrom(values), {
          node: values['from-node'],
          to: values.to,
          level: values.series !== undefined ? 'series' : values.study !== undefined ? 'study' : values.patient !== undefined ? 'patient' : 'all',
          uid: values.series ?? values.study ?? values.patient,
          studyUid: values.series !== undefined ? values.study : undefined,
          user: values.user ?? os.userInfo().username,
        });
        console.log(`replicate from ${values['from-node']}: ${result.completed} received, ${result.failed} failed, ${result.warnings} warnings (final status 0x${result.status.toString(16).padStart(4, '0')})`);
        if (result.failed > 0 || (result.status !== 0 && result.status !== 0xb000)) process.exitCode = 1;
        return;
      }
      if (!values.from || !values.to) throw usageError(`${command} needs --from DB and --to DB`);
      const study = values.study ?? positionals[0];
      const chosen = [study, values.series, values.patient, values.all ? 'all' : undefined].filter((v) => v !== undefined);
      if (chosen.length !== 1 || positionals.length > 1) throw usageError(`${command} needs exactly one of STUDY_UID, --series UID, --patient ID${command === 'replicate' ? ', --all' : ''}`);
      const level = values.all ? 'database' : values.series ? 'series' : values.patient ? 'patient' : 'study';
      const result = transferCommand(configFrom(values), {
        mode: command,
        from: values.from,
        to: values.to,
        level,
        uid: values.series ?? values.patient ?? study,
        user: values.user ?? os.userInfo().username,
      });
      console.log(`${command}: ${result.instances} instance(s) from ${values.from} to ${values.to}: ${result.filed} filed, ${result.duplicates} already there`);
      return;
    }
    case undefined:
    case '--help':
    case '-h':
    case 'help':
      console.log(USAGE);
      return;
    default:
      throw usageError(`unknown command "${command}"\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(isDfError(err) ? err.message : ((err as Error).message ?? String(err)));
  const usage = (err as { usage?: boolean }).usage === true || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS');
  process.exitCode = usage ? 2 : 1;
});
