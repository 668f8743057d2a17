import { describe, expect, it } from 'vitest';
import { MultipartReader, type MultipartEvent } from './multipart.ts';

const boundary = 'b0undary-XYZ';

/** Parts as a client would send them, with bodies that hold near-delimiters. */
function body(parts: Buffer[], options: { leadingCrlf?: boolean } = {}): Buffer {
  const chunks: Buffer[] = options.leadingCrlf ? [Buffer.from('\r\n')] : [];
  for (const p of parts) chunks.push(Buffer.from(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`), p, Buffer.from('\r\n'));
  chunks.push(Buffer.from(`--${boundary}--`));
  return Buffer.concat(chunks);
}

function read(whole: Buffer, chunkSizes: () => number): { parts: Buffer[]; types: string[] } {
  const reader = new MultipartReader(boundary);
  const parts: Buffer[] = [];
  const types: string[] = [];
  let current: Buffer[] | undefined;
  const apply = (events: MultipartEvent[]) => {
    for (const e of events) {
      if (e.kind === 'part') {
        current = [];
        types.push(e.headers['content-type']);
      } else if (e.kind === 'data') current!.push(Buffer.from(e.bytes));
      else parts.push(Buffer.concat(current!));
    }
  };
  for (let at = 0; at < whole.length; ) {
    const n = Math.max(1, chunkSizes());
    apply(reader.push(whole.subarray(at, at + n)));
    at += n;
  }
  reader.end();
  return { parts, types };
}

describe('MultipartReader', () => {
  const tricky = [
    Buffer.from(`payload with \r\n--${boundary.slice(0, 6)} and \r\n--b0undary-XY almost a delimiter\r\n`),
    Buffer.alloc(0),
    Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 7919) % 256)),
  ];

  it('gives back every part byte for byte however the body is cut into chunks', () => {
    const whole = body(tricky);
    let seed = 1;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    for (const sizes of [
      () => whole.length,
      () => 1,
      () => 13,
      () => 17,
      () => 1 + Math.floor(random() * 64),
      () => 1 + Math.floor(random() * 4096),
    ]) {
      const { parts, types } = read(whole, sizes);
      expect(parts.map((p) => p.toString('hex'))).toEqual(tricky.map((p) => p.toString('hex')));
      expect(types).toEqual(['application/dicom', 'application/dicom', 'application/dicom']);
    }
  });

  it('takes a body that opens with a CRLF before the first delimiter (dicomweb-client does)', () => {
    expect(read(body(tricky, { leadingCrlf: true }), () => 29).parts).toHaveLength(3);
  });

  it('refuses a body cut short before its closing delimiter', () => {
    const whole = body(tricky);
    expect(() => read(whole.subarray(0, whole.length - 40), () => 100)).toThrow(/closing delimiter/);
  });
});
