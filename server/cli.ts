#!/usr/bin/env -S node --max-semi-space-size=4 --optimize-for-size
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig, type ConfigOverrides, type ResolvedConfig } from '../core/config/load.ts';
import { isDfError } from '../core/errors.ts';
import { cancelJob, forceComplete, listJobs, printTable, rerunBody, rerunJob, showJob } from './cli/jobs.ts';
import { findApi } from './cli/api-client.ts';
import { reportEnd, runCommand, startAndFollow } from './cli/run.ts';
import { createToken, listTokens, revokeToken } from './cli/token.ts';
import { ensureWebBuilt } from './http/web.ts';
import { validateFiles } from './cli/validate.ts';
import { printNodes } from './cli/nodes.ts';
import { lookupPseudonyms } from './cli/pseudonyms.ts';
import { printOutbox, retryOutbox } from './cli/outbox.ts';
import { importCommand, printSummary } from './cli/import.ts';
import { replicateFromNode, transferCommand } from './cli/databases.ts';

/** One entry per command: its synopsis lines and what it does, for `dicomflow <command> --help`. */
const COMMANDS: Record<string, { synopsis: string[]; about: string }> = {
  serve: {
    synopsis: ['serve [--config FILE] [--data DIR] [--port N] [--http-port N] [--aet TITLE]'],
    about:
      'runs the DICOM SCP (default port 11112, AE title DICOMFLOW) and the HTTP API (default 8080) with data under ./data unless the configuration says otherwise.',
  },
  validate: {
    synopsis: ['validate [--config FILE] FILE...'],
    about: 'checks configuration and pipeline files; errors name file, line, column and JSON pointer.',
  },
  jobs: {
    synopsis: [
      'jobs [--config FILE | --data DIR] [--json] [--status S] [--pipeline P] [--trigger instance|series|study|manual|rerun] [--patient TEXT] [--study UID] [--since TIME] [--until TIME] [--limit N]',
    ],
    about: "lists jobs, newest first; --patient matches a Patient ID or Patient's Name containing TEXT, --since/--until take ISO times.",
  },
  job: {
    synopsis: ['job ID [--config FILE | --data DIR] [--all] [--json]'],
    about:
      'shows one job in summary: inputs per series, steps with timings, files listed, derived instances counted, warnings; --all adds every log line and output, --json all of it as JSON.',
  },
  rerun: {
    synopsis: ['rerun ID [--config FILE | --data DIR] [--user NAME] [--pipeline-version original|current] [--wait]'],
    about:
      'queues a new job over the same inputs, linked to the one it repeats, running the pipeline version the original ran (default) or the pipeline as loaded now (--pipeline-version current).',
  },
  cancel: { synopsis: ['cancel ID [--config FILE | --data DIR]'], about: 'cancels a queued or running job.' },
  run: {
    synopsis: ['run PIPELINE (--study UID | --series UID) [--db NAME] [--wait] [--config FILE | --data DIR]'],
    about: 'runs a pipeline on a stored study or series (needs the running server).',
  },
  token: {
    synopsis: ['token create --user NAME [--description TEXT]', 'token list [--user NAME] [--json]', 'token revoke ID'],
    about: 'API tokens: create prints only the token on standard output (shown this once), list and revoke manage them.',
  },
  'force-complete': {
    synopsis: ['force-complete (--series UID | --study UID) [--config FILE | --data DIR]'],
    about: 'fires a pending series or study trigger now instead of waiting for stableSeconds.',
  },
  import: {
    synopsis: ['import PATH [--db NAME] [--user NAME] [--config FILE | --data DIR]'],
    about:
      'imports a folder, file or disc (the files its DICOMDIR lists when it has one); exits with 3 if some files were refused (the others are imported).',
  },
  move: {
    synopsis: ['move --from DB --to DB (STUDY_UID | --series UID | --patient ID) [--user NAME] [--config FILE]'],
    about:
      'moves a study, series or patient between databases, sharing the original bytes; audited. --user defaults to your login name when that is a user of the configuration.',
  },
  copy: {
    synopsis: ['copy --from DB --to DB (STUDY_UID | --series UID | --patient ID) [--user NAME] [--config FILE]'],
    about:
      'copies a study, series or patient between databases, sharing the original bytes; audited. --user defaults to your login name when that is a user of the configuration.',
  },
  replicate: {
    synopsis: [
      'replicate --from DB --to DB (--study UID | --patient ID | --all) [--user NAME] [--config FILE]',
      'replicate --from-node AE --to DB (--study UID | --series UID [--study UID] | --patient ID | --all) [--user NAME] [--config FILE]',
    ],
    about: 'copies from another database, or from a node of remoteNodes with C-FIND + C-GET.',
  },
  outbox: {
    synopsis: ['outbox [--config FILE | --data DIR] [--json]', 'outbox retry DESTINATION (--all | ID...) [--config FILE | --data DIR]'],
    about: 'the routing outbox per destination; retry queues dead letters again.',
  },
  nodes: { synopsis: ['nodes [--config FILE | --data DIR] [--json]'], about: 'the nodes on this index, their load, the queue.' },
  pseudonyms: {
    synopsis: ['pseudonyms VALUE --user ADMIN [--kind patient|study|series] [--json] [--config FILE | --data DIR]'],
    about:
      're-identifies: looks a pseudonym, an original Patient ID ("ID\\ISSUER" when it has an issuer) or a UID up in the deidentify step\'s pseudonym table, either way round; needs an admin, and every lookup is audited.',
  },
};

const USAGE = `dicomflow — DICOM arrival turned into processing

Usage:
${Object.values(COMMANDS)
  .flatMap((c) => c.synopsis)
  .map((line) => `  dicomflow ${line}`)
  .join('\n')}
  dicomflow <command> --help
  dicomflow --version

jobs, job, rerun, cancel and run talk to the server running on the data directory through its
HTTP API (--server URL and --token TOKEN, or DICOMFLOW_URL and DICOMFLOW_TOKEN, else
data/admin-token); with no server running, all but run work on the data directory directly.
--wait follows the job with a progress bar and exits 1 unless it succeeds.`;

function commandHelp(name: string): string {
  const c = COMMANDS[name];
  return `Usage:\n${c.synopsis.map((line) => `  dicomflow ${line}`).join('\n')}\n\n${name} ${c.about}`;
}

function packageVersion(): string {
  return (JSON.parse(fs.readFileSync(path.join(import.meta.dirname, '..', 'package.json'), 'utf8')) as { version: string }).version;
}

const common = {
  config: { type: 'string', short: 'c' },
  data: { type: 'string' },
} as const;

/** Where the commands that can use the running server's API find it. */
const apiOptions = {
  server: { type: 'string' },
  token: { type: 'string' },
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

/**
 * Who moves, copies or replicates: --user, else the login name, which must then be a user of the
 * configuration (rights decide; root is no exception), so the audit log names a real user.
 */
function actingUser(config: ResolvedConfig, given: string | undefined): string {
  if (given !== undefined) return given;
  const login = os.userInfo().username;
  if (!config.users.some((u) => u.name === login)) {
    throw usageError(
      `--user NAME is needed: your login name "${login}" is not a user of the configuration (users: ${config.users.map((u) => u.name).join(', ') || 'none'})`,
    );
  }
  return login;
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
  // A clone where `npm ci` ran without scripts has no built page yet: build it once here.
  const web = await ensureWebBuilt();
  // Loaded here, not at the top: the other commands need none of the server and start faster.
  const { startServer } = await import('./app.ts');
  const server = await startServer(config);
  if (web.built) server.log.info('built the web page');
  if (web.error) server.log.warn({ err: web.error }, 'the web page is not built (npm run build:web); the API runs without it');
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
  // Before parsing: `dicomflow jobs --help` must not depend on the command's own options.
  if (command !== undefined && Object.hasOwn(COMMANDS, command) && (rest.includes('--help') || rest.includes('-h'))) {
    console.log(commandHelp(command));
    return;
  }
  switch (command) {
    case '--version':
    case '-V':
    case 'version':
      console.log(packageVersion());
      return;
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
        options: {
          ...common,
          ...apiOptions,
          json: { type: 'boolean' },
          status: { type: 'string' },
          pipeline: { type: 'string' },
          trigger: { type: 'string' },
          patient: { type: 'string' },
          study: { type: 'string' },
          since: { type: 'string' },
          until: { type: 'string' },
          limit: { type: 'string' },
        },
        strict: true,
      });
      await listJobs(configFrom(values), { ...values, json: values.json === true, limit: intOption(values.limit, 'limit', 100000) });
      return;
    }
    case 'job': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, ...apiOptions, json: { type: 'boolean' }, all: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) throw usageError('job needs one job id');
      await showJob(configFrom(values), positionals[0], { json: values.json === true, all: values.all === true }, values);
      return;
    }
    case 'rerun': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, ...apiOptions, user: { type: 'string' }, wait: { type: 'boolean' }, 'pipeline-version': { type: 'string' } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) throw usageError('rerun needs one job id');
      const pipelineVersion = values['pipeline-version'];
      if (pipelineVersion !== undefined && pipelineVersion !== 'original' && pipelineVersion !== 'current')
        throw usageError('--pipeline-version is "original" or "current"');
      const config = configFrom(values);
      const api = values.wait ? findApi(config, values) : undefined;
      // The new job's id on stdout (scripts read it); which version it runs on stderr.
      const says = (queued: { jobId: string; pipelineVersion: string }) => {
        console.error(`rerun of ${positionals[0]} runs pipeline version ${queued.pipelineVersion} (${pipelineVersion ?? 'original'})`);
        return queued.jobId;
      };
      if (api) {
        const start = async () =>
          says(
            await api.post<{ jobId: string; pipelineVersion: string }>(
              `/api/jobs/${encodeURIComponent(positionals[0])}/rerun`,
              rerunBody(values.user, pipelineVersion),
            ),
          );
        reportEnd(await startAndFollow(api, start, (id) => console.log(id)));
        return;
      }
      console.log(
        says(await rerunJob(config, positionals[0], { user: values.user, defaultUser: os.userInfo().username, pipelineVersion }, values)),
      );
      return;
    }
    case 'cancel': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, ...apiOptions },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) throw usageError('cancel needs one job id');
      const cancelled = await cancelJob(configFrom(values), positionals[0], values);
      console.log(cancelled ? `job ${positionals[0]} cancelled` : `job ${positionals[0]} had already ended`);
      return;
    }
    case 'force-complete': {
      const { values } = parseArgs({
        args: rest,
        options: { ...common, series: { type: 'string' }, study: { type: 'string' } },
        strict: true,
      });
      if ((values.series === undefined) === (values.study === undefined))
        throw usageError('force-complete needs exactly one of --series UID or --study UID');
      const level = values.series !== undefined ? 'series' : 'study';
      const n = await forceComplete(configFrom(values), level, (values.series ?? values.study)!);
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
        if (!values.to || chosen.length !== 1)
          throw usageError('replicate --from-node needs --to DB and one of --study UID, --series UID, --patient ID, --all');
        const config = configFrom(values);
        const result = await replicateFromNode(config, {
          node: values['from-node'],
          to: values.to,
          level:
            values.series !== undefined
              ? 'series'
              : values.study !== undefined
                ? 'study'
                : values.patient !== undefined
                  ? 'patient'
                  : 'all',
          uid: values.series ?? values.study ?? values.patient,
          studyUid: values.series !== undefined ? values.study : undefined,
          user: actingUser(config, values.user),
        });
        console.log(
          `replicate from ${values['from-node']}: ${result.completed} received, ${result.failed} failed, ${result.warnings} warnings (final status 0x${result.status.toString(16).padStart(4, '0')})`,
        );
        if (result.failed > 0 || (result.status !== 0 && result.status !== 0xb000)) process.exitCode = 1;
        return;
      }
      if (!values.from || !values.to) throw usageError(`${command} needs --from DB and --to DB`);
      const study = values.study ?? positionals[0];
      const chosen = [study, values.series, values.patient, values.all ? 'all' : undefined].filter((v) => v !== undefined);
      if (chosen.length !== 1 || positionals.length > 1)
        throw usageError(
          `${command} needs exactly one of STUDY_UID, --series UID, --patient ID${command === 'replicate' ? ', --all' : ''}`,
        );
      const level = values.all ? 'database' : values.series ? 'series' : values.patient ? 'patient' : 'study';
      const config = configFrom(values);
      const result = await transferCommand(config, {
        mode: command,
        from: values.from,
        to: values.to,
        level,
        uid: values.series ?? values.patient ?? study,
        user: actingUser(config, values.user),
      });
      console.log(
        `${command}: ${result.instances} instance(s) from ${values.from} to ${values.to}: ${result.filed} filed, ${result.duplicates} already there`,
      );
      return;
    }
    case 'outbox': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, json: { type: 'boolean' }, all: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length === 0) {
        if (values.all) throw usageError('--all goes with outbox retry DESTINATION');
        await printOutbox(configFrom(values), values.json === true);
        return;
      }
      const [sub, destination, ...ids] = positionals;
      if (sub !== 'retry' || destination === undefined) throw usageError('outbox takes no argument, or retry DESTINATION (--all | ID...)');
      if ((values.all === true) === ids.length > 0) throw usageError('outbox retry needs --all or entry ids (not both)');
      const n = await retryOutbox(configFrom(values), destination, values.all ? 'all' : ids);
      console.log(`${n} dead letter(s) for ${destination} queued again${n > 0 ? '; a running server sends them within a second' : ''}`);
      if (n === 0 && ids.length > 0) process.exitCode = 1;
      return;
    }
    case 'nodes': {
      const { values } = parseArgs({ args: rest, options: { ...common, json: { type: 'boolean' } }, strict: true });
      await printNodes(configFrom(values), values.json === true);
      return;
    }
    case 'pseudonyms': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, user: { type: 'string' }, kind: { type: 'string' }, json: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1)
        throw usageError('pseudonyms needs one value: a pseudonym, an original Patient ID ("ID\\ISSUER" when it has an issuer) or a UID');
      if (!values.user) throw usageError('pseudonyms needs --user NAME of an admin (the lookup is audited under it)');
      if (values.kind !== undefined && !['patient', 'study', 'series'].includes(values.kind))
        throw usageError(`--kind must be patient, study or series, got "${values.kind}"`);
      const rows = await lookupPseudonyms(configFrom(values), positionals[0], values.user, values.kind);
      if (values.json) console.log(JSON.stringify(rows, null, 2));
      else {
        printTable(
          ['kind', 'original', 'pseudonym', 'name', 'date offset', 'created', 'by'],
          rows.map((r) => [
            r.kind,
            r.original,
            r.pseudonym,
            r.originalName ?? '',
            r.dateOffsetDays === undefined ? '' : `${r.dateOffsetDays} d`,
            r.createdAt,
            r.createdBy ?? '',
          ]),
        );
        if (rows.length === 0) process.exitCode = 1;
      }
      return;
    }
    case 'run': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: {
          ...common,
          ...apiOptions,
          study: { type: 'string' },
          series: { type: 'string' },
          db: { type: 'string' },
          wait: { type: 'boolean' },
        },
        allowPositionals: true,
        strict: true,
      });
      if (positionals.length !== 1) throw usageError('run needs one pipeline name');
      if ((values.study === undefined) === (values.series === undefined))
        throw usageError('run needs exactly one of --study UID or --series UID');
      await runCommand(configFrom(values), { ...values, pipeline: positionals[0], database: values.db, wait: values.wait === true });
      return;
    }
    case 'token': {
      const { values, positionals } = parseArgs({
        args: rest,
        options: { ...common, user: { type: 'string' }, description: { type: 'string' }, json: { type: 'boolean' } },
        allowPositionals: true,
        strict: true,
      });
      const [sub, ...args] = positionals;
      if (sub === 'create' && args.length === 0) {
        if (!values.user) throw usageError('token create needs --user NAME');
        const { token, record } = await createToken(configFrom(values), values.user, values.description);
        console.error(`token ${record.id} for ${record.user}; it is shown this once, keep it safe:`);
        console.log(token);
        return;
      }
      if (sub === 'list' && args.length === 0) {
        const list = await listTokens(configFrom(values), values.user);
        if (values.json) console.log(JSON.stringify(list, null, 2));
        else
          for (const t of list)
            console.log(
              `${t.id}  ${t.user}  created ${t.createdAt}  last used ${t.lastUsedAt ?? 'never'}${t.description ? `  ${t.description}` : ''}`,
            );
        return;
      }
      if (sub === 'revoke' && args.length === 1) {
        await revokeToken(configFrom(values), args[0]);
        console.log(`token ${args[0]} revoked`);
        return;
      }
      throw usageError('token create --user NAME [--description TEXT] | token list [--user NAME] [--json] | token revoke ID');
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
