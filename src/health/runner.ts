/**
 * The check runner: owns the timing of one checker on one real server, and decides when
 * the checker's state changes. The decision is a pure step function (`stepCheck`); the
 * `CheckRunner` class only runs probes and sets timers through an injected Clock.
 *
 * keepalived's rules (check_*.c, keepalived.conf(5)):
 * - The first probe waits a random delay in [0, warmup] so thousands of checks spread out.
 * - A probe must finish within connect_timeout.
 * - On success the next probe is delay_loop later.
 * - On a failure of an up checker, it retries `retry` times, delay_before_retry apart.
 *   Only when the retries also fail is the checker down (fall = retry + 1). Then the next
 *   probe is delay_loop later.
 * - A checker starts up, or down with `alpha` until its first success.
 * Fulcrum adds `rise` (default 1, keepalived's behaviour): consecutive successes a down
 * checker needs before it is up again, so a flapping server stays out.
 */
import { FailureCode, reportFailure } from '../errors/index.js';
import type { CheckerTiming } from '../model/types.js';
import type { AbortHook, Checker, Clock, ProbeContext, ProbeResult } from './types.js';
import { ProbeErrorCode } from './types.js';

/** Timing in milliseconds, resolved from keepalived's seconds. */
export interface RunnerTiming {
  readonly delayLoopMs: number;
  readonly warmupMs: number;
  readonly connectTimeoutMs: number;
  readonly retry: number;
  readonly delayBeforeRetryMs: number;
  readonly alpha: boolean;
  readonly rise: number;
}

export function runnerTiming(t: CheckerTiming): RunnerTiming {
  return {
    delayLoopMs: t.delayLoop * 1000,
    warmupMs: t.warmup * 1000,
    connectTimeoutMs: t.connectTimeout * 1000,
    retry: t.retry,
    delayBeforeRetryMs: t.delayBeforeRetry * 1000,
    alpha: t.alpha,
    rise: Math.max(1, t.rise),
  };
}

export interface CheckState {
  readonly up: boolean;
  /** Failures in the current streak of an up checker (retries used + 1). */
  readonly failures: number;
  /** Successes in the current streak of a down checker. */
  readonly successes: number;
}

export function initialCheckState(timing: Pick<RunnerTiming, 'alpha'>): CheckState {
  return { up: !timing.alpha, failures: 0, successes: 0 };
}

export interface CheckStep {
  readonly state: CheckState;
  /** Set when the checker's state changed with this probe. */
  readonly transition: 'up' | 'down' | null;
  /** Milliseconds until the next probe. */
  readonly nextMs: number;
  /** This failure is absorbed by a retry (the checker stays up for now). */
  readonly retrying: boolean;
}

/** The pure rule: a probe's outcome → the next state, a transition, and when to probe again. */
export function stepCheck(s: CheckState, ok: boolean, t: RunnerTiming): CheckStep {
  if (ok) {
    if (s.up) return { state: { up: true, failures: 0, successes: 0 }, transition: null, nextMs: t.delayLoopMs, retrying: false };
    const successes = s.successes + 1;
    if (successes >= t.rise) return { state: { up: true, failures: 0, successes: 0 }, transition: 'up', nextMs: t.delayLoopMs, retrying: false };
    return { state: { up: false, failures: 0, successes }, transition: null, nextMs: t.delayLoopMs, retrying: false };
  }
  if (!s.up) return { state: { up: false, failures: 0, successes: 0 }, transition: null, nextMs: t.delayLoopMs, retrying: false };
  const failures = s.failures + 1;
  if (failures > t.retry) return { state: { up: false, failures: 0, successes: 0 }, transition: 'down', nextMs: t.delayLoopMs, retrying: false };
  return { state: { up: true, failures, successes: 0 }, transition: null, nextMs: t.delayBeforeRetryMs, retrying: true };
}

export interface CheckReport {
  readonly result: ProbeResult;
  readonly state: CheckState;
  readonly transition: 'up' | 'down' | null;
  readonly retrying: boolean;
  /** How late the probe started relative to when it was due (event-loop lag), ms. */
  readonly lateMs: number;
}

const nothing = (): void => undefined;

/**
 * One probe's abort, handed to the checker as its ProbeContext. TCP_CHECK, HTTP_GET,
 * SSL_GET and SMTP_CHECK listen through `hook` (a list of callbacks); the AbortSignal is
 * built only when a checker reads `signal` (MISC_CHECK's script, DNS, UDP, PING): on Node 20
 * an AbortController costs 5–9 µs of CPU, a tenth of a TCP_CHECK's (docs/benchmarks.md).
 */
export class ProbeAbort implements ProbeContext, AbortHook {
  private ac: AbortController | null = null;
  private fns: (() => void)[] | null = null;
  private done = false;

  constructor(readonly timeoutMs: number) {}

  get aborted(): boolean {
    return this.done;
  }

  get hook(): AbortHook {
    return this;
  }

  get signal(): AbortSignal {
    if (this.ac === null) {
      this.ac = new AbortController();
      if (this.done) this.ac.abort();
    }
    return this.ac.signal;
  }

  onAbort(fn: () => void): () => void {
    if (this.done) return nothing;
    (this.fns ??= []).push(fn);
    return () => {
      const fns = this.fns;
      const i = fns === null ? -1 : fns.indexOf(fn);
      if (i >= 0) fns?.splice(i, 1);
    };
  }

  /** Abort: every callback once (one that throws is reported and the rest still run), then the signal. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    const fns = this.fns;
    this.fns = null;
    if (fns !== null) {
      for (const fn of fns) {
        try {
          fn();
        } catch (err: unknown) {
          reportFailure('health', FailureCode.TASK, err, { during: 'probe abort' });
        }
      }
    }
    this.ac?.abort();
  }
}

/** Extra time a probe gets past connect_timeout to clean up before the runner gives up on it. */
const GRACE_MS = 1000;

/**
 * Runs one checker on its schedule. `onReport` sees every probe; transitions are in the
 * report. Stopping cancels the timer and aborts a probe in flight.
 */
export class CheckRunner {
  private st: CheckState;
  private timer: unknown = null;
  /** Aborts the probe in flight. */
  private inflight: (() => void) | null = null;
  private stopped = false;
  private due = 0;
  /** Probes completed. */
  checks = 0;
  last: ProbeResult | null = null;

  constructor(
    readonly checker: Checker,
    readonly timing: RunnerTiming,
    private readonly clock: Clock,
    private readonly onReport: (r: CheckReport) => void,
    initial?: CheckState,
  ) {
    this.st = initial ?? initialCheckState(timing);
  }

  get state(): CheckState {
    return this.st;
  }

  get running(): boolean {
    return !this.stopped;
  }

  /** Schedule the first probe after a random warmup delay in [0, warmup]. */
  start(): void {
    this.schedule(Math.floor(this.clock.random() * this.timing.warmupMs));
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer !== null) this.clock.cancel(this.timer);
    this.timer = null;
    this.inflight?.();
    this.checker.close();
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.due = this.clock.now() + ms;
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      // A probe that throws past its own guards is reported, and the checker keeps its
      // schedule: a check loop never stops for good.
      this.probe().catch((err: unknown) => {
        this.inflight = null;
        reportFailure('health', FailureCode.TASK, err, { checker: this.checker.constructor.name });
        if (this.timer === null) this.schedule(this.timing.delayLoopMs);
      });
    }, ms);
  }

  private async probe(): Promise<void> {
    if (this.stopped) return;
    const start = this.clock.now();
    const lateMs = Math.max(0, start - this.due);
    const timeoutMs = this.timing.connectTimeoutMs;
    const ctx = new ProbeAbort(timeoutMs);
    let giveUp: (() => void) | null = null;
    let guard: unknown = null;
    // Abort (the deadline, or stop) and give the checker GRACE_MS to finish. Called
    // directly rather than through an 'abort' listener: an EventTarget listener added and
    // removed per probe was a measurable part of a check's CPU (docs/benchmarks.md).
    const abort = (): void => {
      if (guard !== null) return;
      guard = this.clock.setTimer(() => giveUp?.(), GRACE_MS);
      ctx.abort();
    };
    this.inflight = abort;
    const deadline = this.clock.setTimer(abort, timeoutMs);
    const local = (err: unknown): ProbeResult => (
      { ok: false, latencyMs: this.clock.now() - start, code: ProbeErrorCode.LOCAL, detail: err instanceof Error ? err.message : String(err) });
    // The checker's answer or, past the grace, the runner's own: one promise (a race of two
    // cost a third promise and its reactions, per probe).
    const result = await new Promise<ProbeResult>((resolve) => {
      // A checker that ignores its abort still cannot hold the runner past the grace.
      giveUp = () => resolve({ ok: false, latencyMs: this.clock.now() - start, code: ProbeErrorCode.TIMEOUT, detail: 'checker did not finish' });
      try {
        this.checker.check(ctx).then(resolve, (err: unknown) => resolve(local(err)));
      } catch (err: unknown) {
        resolve(local(err));
      }
    });
    if (guard !== null) this.clock.cancel(guard);
    this.clock.cancel(deadline);
    this.inflight = null;
    if (this.stopped) return;
    const step = stepCheck(this.st, result.ok, this.timing);
    this.st = step.state;
    this.checks++;
    this.last = result;
    this.onReport({ result, state: step.state, transition: step.transition, retrying: step.retrying, lateMs });
    this.schedule(step.nextMs);
  }
}
