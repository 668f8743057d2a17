// The node heartbeat against an index that stops answering (a frozen PostgreSQL): the beat
// under way is waited for, not joined by more; once the index answers, beats resume.
import { afterEach, describe, expect, it } from 'vitest';
import type { NodeRecord, SqlNodes } from '../core/store/sql/sql-nodes.ts';
import { recordingLog } from '../test/helpers/recording-log.ts';
import { until } from '../test/helpers/wait.ts';
import { ClusterNode } from './cluster-node.ts';

/** A node table whose heartbeats hang until released, as statements do on a frozen server. */
function stallingNodes() {
  const beats: { resolve: () => void; reject: (err: Error) => void }[] = [];
  const state = { stalled: true };
  const nodes = {
    started: async () => {},
    stopped: async () => {},
    heartbeat: () => new Promise<void>((resolve, reject) => (state.stalled ? beats.push({ resolve, reject }) : resolve())),
    list: async (): Promise<NodeRecord[]> => [],
  };
  return { nodes: nodes as unknown as SqlNodes, beats, state };
}

const running: ClusterNode[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((n) => n.stop()));
});

describe('the node heartbeat', () => {
  it('sends no second beat while the first waits for the index, logs the stall once, and resumes', async () => {
    const { nodes, beats, state } = stallingNodes();
    const { log, lines } = recordingLog();
    const node = new ClusterNode({ nodes, name: 'n1', backend: 'postgres', location: 'test', report: () => ({}), log, intervalMs: 20 });
    running.push(node);
    await node.start();
    await until('a beat skipped while the first waits', () => lines.some((l) => l.msg.includes('skipped until it answers')));
    // Several intervals passed (a beat was skipped), and still one statement waits.
    expect(beats).toHaveLength(1);
    expect(lines.filter((l) => l.msg.includes('skipped until it answers'))).toHaveLength(1);

    beats[0].resolve();
    await until('the heartbeat written again', () => lines.some((l) => l.msg.includes('written again')));
    await until('beats resumed', () => beats.length >= 2);

    // A failed beat is logged, and the next one is sent all the same.
    beats[1].reject(new Error('connection terminated'));
    await until('the failure logged', () => lines.some((l) => l.level === 'error' && l.msg === 'the node heartbeat failed'));
    await until('the next beat after a failure', () => beats.length >= 3);
    state.stalled = false;
    for (const b of beats.slice(2)) b.resolve();
  });
});
