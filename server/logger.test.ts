import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { serverLogger } from './logger.ts';

function collector(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, done) {
      text += String(chunk);
      done();
    },
  });
  return { stream, text: () => text };
}

describe('server logger', () => {
  it('writes JSON lines by default, for log shippers', () => {
    const out = collector();
    serverLogger({ level: 'info', format: 'json' }, out.stream).info({ sopInstanceUid: '1.2.3' }, 'stored');
    expect(JSON.parse(out.text())).toMatchObject({ level: 30, msg: 'stored', sopInstanceUid: '1.2.3' });
  });

  it('writes one readable line an entry with log.format "pretty", and honours the level', () => {
    const out = collector();
    const log = serverLogger({ level: 'warn', format: 'pretty' }, out.stream);
    log.info('not shown');
    log.warn({ code: 'DF_ERR_STORE_FULL' }, 'storage is full');
    const lines = out.text().trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] WARN: storage is full \{"code":"DF_ERR_STORE_FULL"\}$/);
  });
});
