/**
 * The timers of an association as the acceptor runs them (PS3.8 9.1.5, Table 9-10), so that no
 * peer holds a connection slot for as long as it likes.
 *
 * - ARTIM: from the connection until A-ASSOCIATE-RQ has come, and from our A-ASSOCIATE-RJ,
 *   A-RELEASE-RP or A-ABORT until the peer closes. It counts from the state's start, not from
 *   the last byte: a peer that trickles a request a byte at a time is closed all the same.
 * - DIMSE: while a message from the peer is in progress (a PDU, a command or a data set begun and
 *   not ended), or while we wait for the peer's answer to a request of ours (C-GET's C-STOREs),
 *   the peer's next bytes must come within this time.
 * - Idle: an open association with nothing in progress either way (no message, no request we
 *   still owe an answer to) ends after this long without a PDU in either direction. While we
 *   work on a request (a C-MOVE sending for minutes) the peer waits on us; nothing runs then.
 */
export interface DimseTimeouts {
  artimMs: number;
  idleMs: number;
  dimseMs: number;
}

export type TimerKind = 'artim' | 'idle' | 'dimse';

export type AssociationPhase = 'awaiting-request' | 'negotiating' | 'open' | 'closing';

export interface TimedState {
  phase: AssociationPhase;
  /** When the phase began (ms since the epoch). */
  phaseSince: number;
  /** The peer's last bytes. */
  lastReceivedAt: number;
  /** The last bytes either way. */
  lastActivityAt: number;
  messageInProgress: boolean;
  /** Requests of the peer not yet given their final response. */
  requestsOwed: number;
  /** Requests of ours the peer has not answered yet. */
  awaitingPeer: boolean;
}

/** Which timer runs in this state and when it expires; undefined while none runs. */
export function nextDeadline(s: TimedState, t: DimseTimeouts): { kind: TimerKind; at: number } | undefined {
  switch (s.phase) {
    // 'negotiating': ARTIM stops at A-ASSOCIATE-RQ (AE-6), and the answer is immediate; kept
    // running there, it closes a connection whose request was never answered.
    case 'awaiting-request':
    case 'negotiating':
    case 'closing':
      return { kind: 'artim', at: s.phaseSince + t.artimMs };
    case 'open':
      if (s.messageInProgress || s.awaitingPeer) return { kind: 'dimse', at: s.lastReceivedAt + t.dimseMs };
      if (s.requestsOwed > 0) return undefined;
      return { kind: 'idle', at: s.lastActivityAt + t.idleMs };
  }
}

/**
 * One timer per association, re-armed only when its deadline comes closer: activity moves the
 * deadline later, and the timer, when it fires early, looks again. Traffic costs a comparison
 * per socket chunk, not a timer per PDU.
 */
export class AssociationTimers {
  private readonly timeouts: DimseTimeouts;
  private readonly state: () => TimedState;
  private readonly expired: (kind: TimerKind) => void;
  private timer: NodeJS.Timeout | undefined;
  private armedFor = Infinity;
  private stopped = false;

  constructor(timeouts: DimseTimeouts, state: () => TimedState, expired: (kind: TimerKind) => void) {
    this.timeouts = timeouts;
    this.state = state;
    this.expired = expired;
  }

  /** Call after anything that may bring the deadline closer (a state change, a message begun). */
  reschedule(now = Date.now()): void {
    if (this.stopped) return;
    const next = nextDeadline(this.state(), this.timeouts);
    if (!next || next.at >= this.armedFor) return;
    this.arm(next.at, now);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(at: number, now: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.armedFor = at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, at - now));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.armedFor = Infinity;
    if (this.stopped) return;
    const now = Date.now();
    const next = nextDeadline(this.state(), this.timeouts);
    if (!next) return;
    if (next.at > now) return this.arm(next.at, now);
    this.stop();
    this.expired(next.kind);
  }
}
