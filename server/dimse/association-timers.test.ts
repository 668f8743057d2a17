import { describe, expect, it } from 'vitest';
import { nextDeadline, type TimedState } from './association-timers.ts';
import { commandProblem, fitToMaxPdu } from './pdu-framer.ts';
import { CommandField, NO_DATA_SET } from './upper-layer.ts';

const timeouts = { artimMs: 30_000, idleMs: 60_000, dimseMs: 20_000 };
const open: TimedState = {
  phase: 'open',
  phaseSince: 1000,
  lastReceivedAt: 5000,
  lastActivityAt: 7000,
  messageInProgress: false,
  requestsOwed: 0,
  awaitingPeer: false,
};

describe('which timer runs (PS3.8 9.1.5)', () => {
  it('ARTIM counts from the start of the state, not the last byte: a trickled request ends all the same', () => {
    expect(nextDeadline({ ...open, phase: 'awaiting-request', lastReceivedAt: 29_000 }, timeouts)).toEqual({ kind: 'artim', at: 31_000 });
    expect(nextDeadline({ ...open, phase: 'closing' }, timeouts)).toEqual({ kind: 'artim', at: 31_000 });
  });

  it('a message in progress, or a request of ours awaiting the peer, runs the DIMSE timer from the last bytes received', () => {
    expect(nextDeadline({ ...open, messageInProgress: true, requestsOwed: 1 }, timeouts)).toEqual({ kind: 'dimse', at: 25_000 });
    expect(nextDeadline({ ...open, awaitingPeer: true, requestsOwed: 1 }, timeouts)).toEqual({ kind: 'dimse', at: 25_000 });
  });

  it('nothing runs while the server owes an answer; with nothing in progress the idle timer counts from the last bytes either way', () => {
    expect(nextDeadline({ ...open, requestsOwed: 2 }, timeouts)).toBeUndefined();
    expect(nextDeadline(open, timeouts)).toEqual({ kind: 'idle', at: 67_000 });
  });
});

describe('P-DATA-TF within the peer maximum PDU length', () => {
  function pdata(control: number, value: Buffer): Buffer {
    const head = Buffer.alloc(12);
    head[0] = 0x04;
    head.writeUInt32BE(6 + value.length, 2);
    head.writeUInt32BE(2 + value.length, 6);
    head[10] = 5;
    head[11] = control;
    return Buffer.concat([head, value]);
  }

  it('cuts a PDV too long into fragments of the same kind, the last-fragment bit on the final one only', () => {
    const value = Buffer.from(Array.from({ length: 250 }, (_, i) => i));
    const pieces = fitToMaxPdu(pdata(0x03, value), 106);
    expect(pieces.map((p) => p.readUInt32BE(2))).toEqual([106, 106, 56]);
    expect(pieces.map((p) => p[11])).toEqual([0x01, 0x01, 0x03]);
    expect(Buffer.concat(pieces.map((p) => p.subarray(12)))).toEqual(value);
  });

  it('leaves alone what fits, other PDUs, and any length when the peer sets no limit', () => {
    const small = pdata(0x02, Buffer.alloc(10));
    expect(fitToMaxPdu(small, 4096)).toEqual([small]);
    expect(fitToMaxPdu(pdata(0x02, Buffer.alloc(10_000)), 0)).toHaveLength(1);
    const release = Buffer.from([0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0]);
    expect(fitToMaxPdu(release, 8)).toEqual([release]);
  });
});

describe('a usable command set (PS3.7 9.3)', () => {
  it('needs a known command field, a data set type and a message id (or the one it answers)', () => {
    expect(commandProblem({ CommandField: CommandField.CEchoRq, MessageID: 1, CommandDataSetType: NO_DATA_SET })).toBeUndefined();
    expect(
      commandProblem({ CommandField: CommandField.CEchoRsp, MessageIDBeingRespondedTo: 1, CommandDataSetType: NO_DATA_SET }),
    ).toBeUndefined();
    expect(commandProblem({ CommandField: 0x0130, MessageID: 1, CommandDataSetType: 0 })).toBeUndefined(); // N-ACTION: answered 0211
    expect(commandProblem({ MessageID: 1, CommandDataSetType: NO_DATA_SET })).toMatch(/Command Field/);
    expect(commandProblem({ CommandField: 0x1234, MessageID: 1, CommandDataSetType: NO_DATA_SET })).toMatch(/unknown command field 0x1234/);
    expect(commandProblem({ CommandField: CommandField.CEchoRq, MessageID: 1 })).toMatch(/Data Set Type/);
    expect(commandProblem({ CommandField: CommandField.CEchoRq, CommandDataSetType: NO_DATA_SET })).toMatch(/Message ID/);
    expect(commandProblem({ CommandField: CommandField.CCancelRq, CommandDataSetType: NO_DATA_SET })).toMatch(/Responded To/);
  });
});
