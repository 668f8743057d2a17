import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SERVER_NODE_FLAGS } from './node-flags.ts';

const repo = path.resolve(import.meta.dirname, '..');
const read = (file: string) => fs.readFileSync(path.join(repo, file), 'utf8');

describe('the server V8 flags', () => {
  it('are the same wherever the server starts: npm start, the CLI shebang, the systemd unit and the deployment guide', () => {
    const starts = {
      'package.json start': JSON.parse(read('package.json')).scripts.start as string,
      'server/cli.ts shebang': read('server/cli.ts').split('\n')[0],
      'docs/dicomflow.service ExecStart': read('docs/dicomflow.service')
        .split('\n')
        .find((l) => l.startsWith('ExecStart='))!,
      'docs/deployment.md ExecStart': read('docs/deployment.md')
        .split('\n')
        .find((l) => l.startsWith('ExecStart='))!,
    };
    for (const [where, line] of Object.entries(starts)) {
      const node = line.split(' ').findIndex((word) => /(^|\/)node$/.test(word));
      expect(node, where).toBeGreaterThanOrEqual(0);
      // The flags come right after node, before the script.
      expect(line.split(' ').slice(node + 1, node + 1 + SERVER_NODE_FLAGS.length), where).toEqual(SERVER_NODE_FLAGS);
    }
  });
});
