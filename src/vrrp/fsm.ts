/**
 * One VRRP instance's state machine (pure, clock passed in): RFC 5798 §6 (and RFC 3768 §6
 * for v2 timing), plus keepalived's FAULT state for tracked failures, preempt_delay and
 * sync-group moves. `step(state, event, now) → { state, effects }`; the caller runs the
 * effects and calls `step(…, { type: 'timer' }, t)` once `state.timerAt` is reached.
 *
 * Transitions (what the RFC's §6.4 pseudo-code says, as a table):
 *
 *   state   event                                   → state   effects
 *   init    startup, priority 255 (owner)             master  advert, become master
 *   init    startup                                   backup  (master-down timer)
 *   init    startup while faulty                      fault   become fault
 *   backup  timer (master down)                       master  advert, become master
 *   backup  advert priority 0                         backup  master-down := skew
 *   backup  advert ≥ ours, or preempt off/delayed     backup  learn interval, restart timer
 *   backup  advert < ours, preempting                 backup  ignored (timer runs out)
 *   master  timer (advert)                            master  advert
 *   master  advert priority 0                         master  advert now
 *   master  advert > ours, or = and src > our address backup  learn interval, timer
 *   master  advert < ours (or = and src < ours)       master  advert now (keepalived's
 *                                                              "forcing a new election")
 *   master  shutdown                                  init    advert priority 0
 *   any     fault                                     fault   (master: advert priority 0)
 *   fault   fault cleared                             backup  (master-down timer)
 *   any     sync master/backup (sync group)           that state, as if by the timer /
 *                                                     by a higher advert
 */
import { compareAddresses } from './codec.js';

export type VrrpStateName = 'INIT' | 'BACKUP' | 'MASTER' | 'FAULT';

export interface FsmConfig {
  readonly version: 2 | 3;
  /** Our advert interval, centiseconds. */
  readonly intervalCs: number;
  readonly nopreempt: boolean;
  /** Milliseconds. */
  readonly preemptDelayMs: number;
  /** Our primary address on the link (the tie-break on equal priority). */
  readonly address: string;
}

export interface FsmState {
  readonly name: VrrpStateName;
  /** Effective priority (base ± tracking); 255 = address owner. */
  readonly priority: number;
  /** v3: the interval the master advertises (centiseconds); v2: ours. */
  readonly masterIntervalCs: number;
  /** When the running timer (advert in MASTER, master-down in BACKUP) fires; null = none. */
  readonly timerAt: number | null;
  /** Until when lower-priority adverts are still obeyed (preempt_delay), or null. */
  readonly preemptAt: number | null;
  /** A tracked failure holds the instance in FAULT. */
  readonly faulty: boolean;
  /** The address of the master we last heard (or ourselves). */
  readonly masterAddress: string | null;
  readonly masterPriority: number | null;
}

export type TransitionReason =
  | 'startup' | 'owner' | 'master-down' | 'priority-0' | 'higher-priority' | 'equal-priority-higher-address'
  | 'fault' | 'fault-cleared' | 'shutdown' | 'sync-group';

export type FsmEvent =
  | { readonly type: 'startup' }
  | { readonly type: 'timer' }
  | { readonly type: 'advert'; readonly priority: number; readonly intervalCs: number; readonly src: string }
  | { readonly type: 'priority'; readonly priority: number }
  | { readonly type: 'fault'; readonly faulty: boolean }
  | { readonly type: 'sync'; readonly to: 'MASTER' | 'BACKUP' }
  | { readonly type: 'shutdown' };

export type FsmEffect =
  | { readonly kind: 'advert'; readonly priority: number }
  | { readonly kind: 'transition'; readonly from: VrrpStateName; readonly to: VrrpStateName; readonly reason: TransitionReason };

export interface StepResult {
  readonly state: FsmState;
  readonly effects: readonly FsmEffect[];
}

/** The owner priority: always master, never preempted. */
export const PRIORITY_OWNER = 255;

export function initialState(priority: number, faulty = false): FsmState {
  return { name: 'INIT', priority, masterIntervalCs: 0, timerAt: null, preemptAt: null, faulty, masterAddress: null, masterPriority: null };
}

/** Skew_Time in ms: RFC 5798 ((256 − p) · Master_Adver_Interval / 256); RFC 3768 (256 − p)/256 s. */
export function skewMs(c: FsmConfig, priority: number, masterIntervalCs: number): number {
  const base = c.version === 3 ? masterIntervalCs * 10 : 1000;
  return ((256 - priority) * base) / 256;
}

/** Master_Down_Interval in ms: 3 · Master_Adver_Interval + Skew_Time. */
export function masterDownMs(c: FsmConfig, priority: number, masterIntervalCs: number): number {
  return 3 * masterIntervalCs * 10 + skewMs(c, priority, masterIntervalCs);
}

export function step(c: FsmConfig, s: FsmState, e: FsmEvent, now: number): StepResult {
  const out: FsmEffect[] = [];
  const move = (to: VrrpStateName, reason: TransitionReason, patch: Partial<FsmState>): StepResult => {
    out.push({ kind: 'transition', from: s.name, to, reason });
    return { state: { ...s, ...patch, name: to }, effects: out };
  };
  const stay = (patch: Partial<FsmState> = {}): StepResult => ({ state: { ...s, ...patch }, effects: out });
  const becomeMaster = (reason: TransitionReason): StepResult => {
    out.push({ kind: 'advert', priority: s.priority });
    return move('MASTER', reason, { timerAt: now + c.intervalCs * 10, preemptAt: null, masterAddress: c.address, masterPriority: s.priority, masterIntervalCs: c.intervalCs });
  };
  const backupTimer = (intervalCs: number): number => now + masterDownMs(c, s.priority, intervalCs);
  const toBackup = (reason: TransitionReason, patch: Partial<FsmState> = {}): StepResult => {
    const iv = patch.masterIntervalCs ?? c.intervalCs;
    // preempt_delay: after (re)entering BACKUP, lower-priority masters are obeyed for a while.
    return move('BACKUP', reason, { masterIntervalCs: iv, timerAt: backupTimer(iv), preemptAt: c.preemptDelayMs > 0 ? now + c.preemptDelayMs : null, ...patch });
  };
  const toFault = (): StepResult => {
    if (s.name === 'MASTER') out.push({ kind: 'advert', priority: 0 });
    return move('FAULT', 'fault', { timerAt: null, masterAddress: null, masterPriority: null });
  };

  switch (e.type) {
    case 'startup': {
      if (s.name !== 'INIT') return stay();
      if (s.faulty) return toFault();
      if (s.priority === PRIORITY_OWNER) return becomeMaster('owner');
      return toBackup('startup');
    }
    case 'shutdown': {
      if (s.name === 'INIT') return stay();
      if (s.name === 'MASTER') out.push({ kind: 'advert', priority: 0 });
      return move('INIT', 'shutdown', { timerAt: null, masterAddress: null, masterPriority: null });
    }
    case 'fault': {
      if (e.faulty === s.faulty) return stay();
      if (e.faulty) {
        s = { ...s, faulty: true };
        return s.name === 'INIT' || s.name === 'FAULT' ? stay() : toFault();
      }
      s = { ...s, faulty: false };
      if (s.name !== 'FAULT') return stay();
      if (s.priority === PRIORITY_OWNER) return becomeMaster('owner');
      return toBackup('fault-cleared');
    }
    case 'priority': {
      if (e.priority === s.priority) return stay();
      // A master announces its new priority with the next advert; a backup uses it for
      // its skew and its next preemption decision.
      return stay({ priority: e.priority });
    }
    case 'timer': {
      if (s.timerAt === null || now < s.timerAt) return stay();
      if (s.name === 'MASTER') {
        out.push({ kind: 'advert', priority: s.priority });
        return stay({ timerAt: now + c.intervalCs * 10 });
      }
      if (s.name === 'BACKUP') return becomeMaster('master-down');
      return stay({ timerAt: null });
    }
    case 'sync': {
      if (s.name === 'INIT' || s.name === 'FAULT' || s.name === e.to) return stay();
      if (e.to === 'MASTER') return becomeMaster('sync-group');
      return toBackup('sync-group', { masterIntervalCs: s.masterIntervalCs || c.intervalCs });
    }
    case 'advert': {
      if (s.name === 'BACKUP') {
        if (e.priority === 0) return stay({ timerAt: now + skewMs(c, s.priority, s.masterIntervalCs) });
        const iv = c.version === 3 ? e.intervalCs : c.intervalCs;
        let preemptAt = s.preemptAt;
        // §6.4.2: a backup obeys equal priority whatever the address (the tie-break is
        // between two masters only).
        const lower = e.priority < s.priority;
        if (lower && !c.nopreempt && c.preemptDelayMs > 0 && preemptAt === null) preemptAt = now + c.preemptDelayMs;
        const obey = !lower || c.nopreempt || (preemptAt !== null && now < preemptAt);
        if (!obey) return stay({ preemptAt });
        return stay({ masterIntervalCs: iv, timerAt: now + masterDownMs(c, s.priority, iv), preemptAt, masterAddress: e.src, masterPriority: e.priority });
      }
      if (s.name === 'MASTER') {
        if (e.priority === 0) {
          out.push({ kind: 'advert', priority: s.priority });
          return stay({ timerAt: now + c.intervalCs * 10 });
        }
        if (s.priority === PRIORITY_OWNER && e.priority < PRIORITY_OWNER) {
          out.push({ kind: 'advert', priority: s.priority });
          return stay({ timerAt: now + c.intervalCs * 10 });
        }
        const cmp = compareAddresses(e.src, c.address);
        if (e.priority > s.priority || (e.priority === s.priority && cmp > 0)) {
          const iv = c.version === 3 ? e.intervalCs : c.intervalCs;
          return move('BACKUP', e.priority > s.priority ? 'higher-priority' : 'equal-priority-higher-address', {
            masterIntervalCs: iv, timerAt: now + masterDownMs(c, s.priority, iv), preemptAt: null, masterAddress: e.src, masterPriority: e.priority,
          });
        }
        if (cmp === 0) return stay(); // our own advert looped back
        out.push({ kind: 'advert', priority: s.priority });
        return stay({ timerAt: now + c.intervalCs * 10 });
      }
      return stay();
    }
  }
}
