/**
 * What every proxy session shares: the clock, tunables, and the per-service state a
 * session accounts into. Kept separate so tcp.ts and udp.ts do not import the plane.
 */
import type { Dest } from '../../scheduling/types.js';
import type { ServiceScheduler } from '../../scheduling/service.js';
import type { RateEstimator } from '../stats.js';
import type { ReadBufferPool } from './buffers.js';
import type { ConnectionEntry, Counters, ListenAddress, ServerSpec, ServiceSpec } from '../types.js';

export interface ProxyTunables {
  /** Milliseconds to wait for a real server to accept before trying another. */
  readonly connectTimeoutMs: number;
  /** Servers tried per connection before giving up (the first choice included). */
  readonly connectAttempts: number;
  /** Stream high-water mark per socket and direction, bytes. */
  readonly highWaterMark: number;
  /** Datagrams queued per UDP session while its upstream socket connects. */
  readonly udpPendingLimit: number;
  /**
   * UDP sessions (each one connected socket) the plane holds at most, over all services. A
   * datagram that would open one more is dropped and counted; existing sessions go on.
   * Spoofed sources cannot exhaust the process's file descriptors.
   */
  readonly udpSessionLimit: number;
  /**
   * Listen with SO_REUSEPORT: one socket per data-plane worker on the same address, the
   * kernel spreading connections over them (`fulcrum run --workers N`).
   */
  readonly reusePort: boolean;
  /**
   * What relays TCP: 'epoll' — plain system calls on one epoll set per event loop
   * (sys/reactor.ts; Linux), or 'node' — Node's `net` sockets (`fulcrum run --relay node`).
   */
  readonly relay: 'epoll' | 'node';
  /**
   * The epoll relay splices a direction that carries bulk (a read filled the 64 KiB buffer)
   * through a pipe, socket to socket without copying into user space; false copies every
   * byte (`fulcrum run --no-splice`, as HAProxy's `nosplice`).
   */
  readonly splice: boolean;
  /**
   * The share of the process's descriptor limit (RLIMIT_NOFILE, soft) this plane's pipes may
   * hold (two descriptors each): past it a bulk direction is copied instead of spliced, so
   * pipes never take the descriptors new connections need (as HAProxy's maxpipes). A
   * quarter in one loop; the workers' plane gives each of N workers a quarter / N.
   */
  readonly pipeShare: number;
}

export const DEFAULT_TUNABLES: ProxyTunables = {
  connectTimeoutMs: 3000,
  connectAttempts: 3,
  highWaterMark: 64 * 1024,
  udpPendingLimit: 64,
  udpSessionLimit: 16384,
  reusePort: false,
  relay: 'epoll',
  splice: true,
  pipeShare: 0.25,
};

/** The plane-wide UDP session budget (see ProxyTunables.udpSessionLimit). */
export interface UdpBudget {
  used: number;
  /** New sessions refused because the budget was spent. */
  refused: number;
}

/** A real server's counters; outlives its removal while its connections finish. */
export interface ServerState {
  spec: ServerSpec;
  readonly counters: Counters;
  readonly est: RateEstimator;
}

/** One proxied connection (TCP) or session (UDP). */
export interface Session {
  /** Close now: TCP connections are destroyed, UDP sessions dropped. */
  abort(): void;
  /** End the session if it has been idle past its timeout (`now` in seconds). */
  expire(now: number): void;
  entry(now: number): ConnectionEntry;
}

/** The service-side state sessions account into. */
export interface ServiceRuntime {
  spec: ServiceSpec;
  readonly sched: ServiceScheduler;
  readonly counters: Counters;
  readonly sessions: Set<Session>;
  readonly tunables: ProxyTunables;
  readonly buffers: ReadBufferPool;
  readonly udpBudget: UdpBudget;
  /** Monotonic seconds. */
  now(): number;
  /** A monotonic seconds value refreshed once a second: cheap enough to store per chunk. */
  coarseNow(): number;
  serverState(d: Dest): ServerState;
  /** A connection had to give up on a server or found none (observability only). */
  report(event: ProxyEvent): void;
}

export type ProxyEvent =
  | { readonly type: 'connect-failed'; readonly service: string; readonly server: string; readonly error: string; readonly retrying: boolean }
  | { readonly type: 'no-server'; readonly service: string; readonly client: ListenAddress };

/** A relayed TCP connection's state, as ipvsadm -c names them. */
export type TcpState = 'SYN_SENT' | 'ESTABLISHED' | 'FIN_WAIT' | 'CLOSE_WAIT' | 'CLOSED';

/** A state's timeout (seconds) and when its clock started (seconds). */
export interface IdleLimit {
  readonly since: number;
  readonly timeout: number;
}

/**
 * The timeout of a TCP session's current state (seconds) and when its clock started; null
 * when closed (ipvsadm --set semantics: tcp for established, tcpfin once half-closed, the
 * connect timeout while connecting). Both TCP relays (net.Socket and epoll) use it;
 * `connectStarted` is `svc.now()` at the current attempt, `lastActive` `svc.coarseNow()`
 * when data last moved.
 */
export function tcpIdleLimit(state: TcpState, svc: ServiceRuntime, connectStarted: number, lastActive: number): IdleLimit | null {
  const to = svc.spec.timeouts;
  switch (state) {
    case 'SYN_SENT': return { since: connectStarted, timeout: svc.tunables.connectTimeoutMs / 1000 };
    case 'ESTABLISHED': return { since: lastActive, timeout: to.tcp };
    case 'FIN_WAIT':
    case 'CLOSE_WAIT': return { since: lastActive, timeout: to.tcpfin };
    case 'CLOSED': return null;
  }
}

/** A TCP session's connection-table entry (`ipvsadm -L -c`): seconds left in its state. */
export function tcpEntry(
  state: TcpState, limit: IdleLimit | null, now: number,
  vaddr: ListenAddress, caddr: string, cport: number, dest: Dest | null,
): ConnectionEntry {
  return {
    protocol: 'tcp',
    client: { family: vaddr.family, address: caddr, port: cport },
    virtual: vaddr,
    server: dest?.key ?? '',
    state,
    expires: limit === null ? 0 : Math.max(0, Math.round(limit.timeout - (now - limit.since))),
  };
}
