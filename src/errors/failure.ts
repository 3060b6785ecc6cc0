/**
 * Internal failures: what went wrong inside Fulcrum (not in the operator's input) — a kernel
 * read or transaction, a listener's accept, a script that could not run, a background task
 * that rejected. Each is published once on `fulcrum:failure` with the component it happened
 * in and a stable code; the logging edge writes it (rate-limited per component and code),
 * the status board counts it, /metrics exports the counts
 * (`fulcrum_internal_failures_total{component,code}`).
 *
 * `supervise` is the one way to start background work whose promise nobody awaits: a
 * rejection becomes a reported failure instead of an unhandled rejection (which would end
 * the process) or a silently dropped promise.
 */
import { channel } from 'node:diagnostics_channel';

/** diagnostics_channel name for InternalFailure messages. */
export const FAILURE_CHANNEL = 'fulcrum:failure';
const ch = channel(FAILURE_CHANNEL);

/** Stable codes of internal failures. Never rename one: dashboards and alerts match on them. */
export const FailureCode = {
  /** A background task rejected (the task's name is the component). */
  TASK: 'E_TASK',
  /** Reading nftables back (a list) failed: nothing was concluded from it. */
  NFT_READ: 'E_NFT_READ',
  /** An nftables transaction was refused or could not be sent. */
  NFT_TRANSACTION: 'E_NFT_TRANSACTION',
  /** The XDP plane could not read its maps or resolve a real server's neighbour. */
  XDP: 'E_XDP',
  /** Reading the conntrack table failed. */
  CONNTRACK_READ: 'E_CONNTRACK_READ',
  /** A listening socket reported an error after it was listening (accept: EMFILE, ENFILE, …). */
  ACCEPT: 'E_ACCEPT',
  /** The process ran out of file descriptors somewhere. */
  FD_EXHAUSTED: 'E_FD_EXHAUSTED',
  /** An operator script (notify, track, misc check) could not be started. */
  SCRIPT: 'E_SCRIPT',
  /** A UDP session was refused because the session cap was reached. */
  UDP_SESSION_LIMIT: 'E_UDP_SESSION_LIMIT',
  /** A data-plane worker died or threw. */
  WORKER: 'E_WORKER',
  /** The runtime state file could not be written. */
  STATE_SAVE: 'E_STATE_SAVE',
  /** A VRRP action (address, advert, socket) failed. */
  VRRP: 'E_VRRP',
  /** The control API refused a client for a resource limit. */
  API_LIMIT: 'E_API_LIMIT',
  /** Connection sync: a datagram could not be sent (the flows go again next round). */
  SYNC_SEND: 'E_SYNC_SEND',
  /** Connection sync: synchronised flows could not be installed in the data plane. */
  SYNC_INSTALL: 'E_SYNC_INSTALL',
  /** Connection sync: the multicast sockets could not be opened. */
  SYNC_SOCKET: 'E_SYNC_SOCKET',
  /** The service manager (systemd's NOTIFY_SOCKET) could not be told the daemon's state. */
  SD_NOTIFY: 'E_SD_NOTIFY',
  /** Log lines were dropped: whatever reads the daemon's log output fell too far behind. */
  LOG_DROPPED: 'E_LOG_DROPPED',
} as const;

export interface InternalFailure {
  /** Where: 'nftables', 'proxy', 'vrrp', 'api', 'director', a task's name, … */
  readonly component: string;
  /** One of FailureCode (or a module's own E_* code). */
  readonly code: string;
  readonly message: string;
  /** Structured context for the log line (service, server, errno, …). */
  readonly detail?: Readonly<Record<string, string | number | boolean>> | undefined;
}

/** `err`'s stable code when it has one (FulcrumError, SysError, Node's errno errors), else undefined. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const c = (err as { code?: unknown }).code;
  return typeof c === 'string' ? c : undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Publish one internal failure. Never throws. */
export function reportFailure(component: string, code: string, err: unknown, detail?: InternalFailure['detail']): void {
  const f: InternalFailure = { component, code, message: errorMessage(err), ...(detail ? { detail } : {}) };
  if (ch.hasSubscribers) ch.publish(f);
}

/**
 * Run background work nobody awaits. A rejection is reported under `component` with the
 * error's own code when it is a known one, else E_TASK. Returns nothing on purpose: the
 * caller cannot forget to handle what it is not given.
 */
export function supervise(component: string, task: Promise<unknown> | (() => Promise<unknown>)): void {
  let p: Promise<unknown>;
  try {
    p = typeof task === 'function' ? task() : task;
  } catch (err: unknown) {
    reportFailure(component, errorCode(err) ?? FailureCode.TASK, err);
    return;
  }
  p.catch((err: unknown) => reportFailure(component, errorCode(err) ?? FailureCode.TASK, err));
}

/** Counts of failures by `component code`, kept by whoever subscribes (the status board). */
export class FailureCounts {
  private readonly counts = new Map<string, { component: string; code: string; count: number; last: string; at: number }>();

  add(f: InternalFailure, at: number): void {
    const k = `${f.component} ${f.code}`;
    const e = this.counts.get(k);
    if (e) {
      e.count++;
      e.last = f.message;
      e.at = at;
    } else this.counts.set(k, { component: f.component, code: f.code, count: 1, last: f.message, at });
  }

  list(): { component: string; code: string; count: number; last: string; at: number }[] {
    return [...this.counts.values()].map((e) => ({ ...e }));
  }

  total(): number {
    let n = 0;
    for (const e of this.counts.values()) n += e.count;
    return n;
  }
}
