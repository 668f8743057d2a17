import pino, { type Logger } from 'pino';
import pretty from 'pino-pretty';
import type { ResolvedConfig } from '../core/config/load.ts';

/**
 * The server's logger as `log` in the configuration asks: pino's JSON lines (what journald,
 * Loki or Elasticsearch ingest), or pino-pretty's readable lines for a terminal. Pretty printing
 * runs synchronously in this process: a transport thread would drop the last lines of a crash.
 */
export function serverLogger(log: ResolvedConfig['log'], destination: NodeJS.WritableStream = process.stdout): Logger {
  if (log.format === 'pretty') {
    const colorize = (destination as { isTTY?: boolean }).isTTY === true;
    return pino(
      { level: log.level },
      pretty({ sync: true, destination, colorize, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' }),
    );
  }
  return pino({ level: log.level }, destination);
}
