import type { Logger } from 'pino';

/** A logger that keeps each line's level and message, for tests that look for what was logged. */
export function recordingLog(): { log: Logger; lines: { level: string; msg: string }[] } {
  const lines: { level: string; msg: string }[] = [];
  const at = (level: string) => (first: unknown, msg?: string) =>
    void lines.push({ level, msg: typeof first === 'string' ? first : (msg ?? '') });
  const log: Record<string, unknown> = {
    warn: at('warn'),
    info: at('info'),
    error: at('error'),
    debug: at('debug'),
    trace: at('trace'),
    fatal: at('fatal'),
  };
  log.child = () => log;
  return { log: log as unknown as Logger, lines };
}
