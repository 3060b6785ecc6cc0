/**
 * The health-check boundary: a `Checker` runs one probe of one real server and reports
 * what it saw. It never throws and always settles by its deadline; timing, retries and
 * hysteresis belong to the runner (runner.ts), not to checkers.
 */
import type { Family } from '../model/types.js';

/** Stable codes for why a probe failed (matched by tests, logs and the dashboard). */
export const ProbeErrorCode = {
  /** The connection was refused (RST, or ICMP port unreachable for UDP). */
  REFUSED: 'E_PROBE_REFUSED',
  /** No answer within connect_timeout. */
  TIMEOUT: 'E_PROBE_TIMEOUT',
  /** A network error other than refused/timeout (unreachable, reset, TLS failure). */
  NETWORK: 'E_PROBE_NETWORK',
  /** The peer answered, but not what the checker requires (status, digest, DNS answer…). */
  MISMATCH: 'E_PROBE_MISMATCH',
  /** The peer sent something that is not the protocol (malformed reply, oversized head). */
  PROTOCOL: 'E_PROBE_PROTOCOL',
  /** A script exited non-zero, was killed, or could not be started. */
  SCRIPT: 'E_PROBE_SCRIPT',
  /** Missing privilege (e.g. CAP_NET_RAW for PING_CHECK). */
  PERMISSION: 'E_PROBE_PERMISSION',
  /** The checker could not run at all (bad local setting, unreadable file). */
  LOCAL: 'E_PROBE_LOCAL',
} as const;
export type ProbeErrorCode = (typeof ProbeErrorCode)[keyof typeof ProbeErrorCode];

/** What one probe saw — the evidence published with every transition. */
export interface ProbeResult {
  readonly ok: boolean;
  /** Milliseconds from start to verdict. */
  readonly latencyMs: number;
  /** Why it failed (absent when ok). */
  readonly code?: ProbeErrorCode | undefined;
  /** One line a person can act on: "status 503 not in 200-299", "connect ECONNREFUSED". */
  readonly detail?: string | undefined;
  /** HTTP status, DNS rcode, or a script's exit code. */
  readonly status?: number | undefined;
  /** A dynamic weight this probe asks for (MISC_CHECK misc_dynamic, FILE_CHECK dynamic). */
  readonly weight?: number | undefined;
}

/** Where a probe goes: the real server's address, after connect_ip/connect_port overrides. */
export interface ProbeTarget {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  /** Local address to bind (bindto) and port (bind_port). */
  readonly bindAddress?: string | undefined;
  readonly bindPort?: number | undefined;
}

export interface ProbeContext {
  /** Aborted when the probe must give up (deadline passed, checker stopped). */
  readonly signal: AbortSignal;
  /** Milliseconds the probe may take in all (connect_timeout). */
  readonly timeoutMs: number;
  /**
   * The same abort as `signal`, without an EventTarget: the runner's probes give one, and a
   * checker that only needs to hear the abort uses it instead of `signal` (which the runner
   * then never builds — an AbortController costs 5–9 µs of CPU on Node 20).
   */
  readonly hook?: AbortHook | undefined;
}

/** Hearing a probe's abort: what the stream helpers need of an AbortSignal, and no more. */
export interface AbortHook {
  readonly aborted: boolean;
  /** Call `fn` once when the probe aborts (not if it already has); returns what unregisters it. */
  onAbort(fn: () => void): () => void;
}

/** Either kind of abort a probe may be given. */
export type Abortable = AbortSignal | AbortHook;

/** An AbortHook over whichever a caller has: the hook itself, or listeners on the signal. */
export function abortHook(a: Abortable): AbortHook {
  if (!('addEventListener' in a)) return a;
  return {
    get aborted() { return a.aborted; },
    onAbort(fn) {
      a.addEventListener('abort', fn, { once: true });
      return () => a.removeEventListener('abort', fn);
    },
  };
}

/** What a checker should listen to: the runner's hook when there is one, else the signal. */
export function probeAbort(ctx: ProbeContext): Abortable {
  return ctx.hook ?? ctx.signal;
}

/** One kind of health check bound to one real server. */
export interface Checker {
  /** keepalived's block name (TCP_CHECK, HTTP_GET, …) or AGENT. */
  readonly type: string;
  /** Run one probe. Resolves (never rejects) by ctx.timeoutMs (+ a little for cleanup). */
  check(ctx: ProbeContext): Promise<ProbeResult>;
  /** Release anything held between probes (sockets). Idempotent. */
  close(): void;
}

/** A time source and timers, injected so the runner can be tested with a fake clock. */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Call `fn` after `ms` milliseconds; returns a handle for `cancel`. */
  setTimer(fn: () => void, ms: number): unknown;
  cancel(handle: unknown): void;
  /** Uniform random in [0, 1) — warmup jitter. */
  random(): number;
}

/** Measure a probe: build a result with latency from `start`. */
export function verdict(start: number, now: number, r: Omit<ProbeResult, 'latencyMs'>): ProbeResult {
  return { ...r, latencyMs: Math.max(0, now - start) };
}

/** Map a Node network error to a probe failure code and a short message. */
export function networkFailure(err: unknown): { code: ProbeErrorCode; detail: string } {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (code === 'ECONNREFUSED') return { code: ProbeErrorCode.REFUSED, detail: 'connection refused' };
  if (code === 'ETIMEDOUT' || code === 'ABORT_ERR') return { code: ProbeErrorCode.TIMEOUT, detail: 'timed out' };
  if (code === 'EACCES' || code === 'EPERM') return { code: ProbeErrorCode.PERMISSION, detail: message };
  return { code: ProbeErrorCode.NETWORK, detail: code ? `${code}: ${message}` : message };
}
