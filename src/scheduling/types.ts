/**
 * The scheduling boundary. A `Scheduler` picks a destination (real server) for a new flow
 * from the service's destinations, with IPVS's semantics. Destinations are mutable records
 * owned by the caller (the data plane or the simulator); schedulers read them and keep only
 * their own derived tables, rebuilt in `update()` when the set or a weight changes.
 *
 * `pick` is the hot path: it must not allocate (checked by bench/scheduling).
 */
import type { Family, SchedFlag, SchedulerName } from '../model/types.js';

/** A destination's live state. Field names follow IPVS (`ip_vs_dest`). */
export interface Dest {
  /** `addr:port`, the model's realServerKey. */
  readonly key: string;
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  /** 32-bit fold of the address (IPv4 in host order; IPv6 words XORed), for hashing. */
  readonly addrFold: number;
  /** The effective weight; 0 = quiescent (no new flows, existing ones continue). */
  weight: number;
  /** Established connections. */
  active: number;
  /** Connections in other states (closing, UDP, …). */
  inactive: number;
  /** Upper connection threshold (ipvsadm -x); 0 = none. */
  uthreshold: number;
  /** Lower connection threshold (ipvsadm -y); 0 = none. */
  lthreshold: number;
  /** IP_VS_DEST_F_OVERLOAD: over the upper threshold, not yet back under the lower. */
  overloaded: boolean;
  /** IP_VS_DEST_F_AVAILABLE: false once removed from the service. */
  available: boolean;
  /** Latest server-agent load: -1 unavailable, 0..100, or NaN when unknown. */
  agentLoad: number;
  /**
   * Where the connection counts live when several event loops schedule onto the same
   * destination (the data-plane workers): every change goes through these cells, atomically,
   * and `active`/`inactive`/`overloaded` read them. Absent: plain fields, one loop.
   */
  readonly cells?: ConnCells | undefined;
}

/** Shared connection counts of one destination (see Dest.cells). */
export interface ConnCells {
  /** Add to active and inactive; returns the total (active + inactive) after. */
  add(active: number, inactive: number): number;
  setOverloaded(on: boolean): void;
}

/**
 * Weights another thread publishes (the control plane, to the data-plane workers): a
 * scheduler compares the generation before each choice and, when it moved, takes the
 * published weight of each of its destinations — a weight change reaches every worker's
 * next choice without a message to wake it.
 */
export interface SharedWeights {
  /** Odd while the writer is publishing (take nothing then), else a new number per change. */
  generation(): number;
  /** The published weight of `d`, or undefined when none is published for it. */
  weightOf(d: Dest): number | undefined;
}

/**
 * A scheduler's rotating position (rr's last pick, wrr's index and current weight) kept
 * where every worker sees it, so round robin is exact over all of them. `exclusive` runs
 * `fn` with the position to itself (a short critical section: no I/O inside).
 */
export interface SharedPosition {
  exclusive<T>(fn: (cells: Int32Array, at: number) => T): T;
  /** An atomically incremented counter (rr). */
  next(): number;
}

/**
 * What a scheduler may look at in a new flow. Addresses are pre-folded by the caller (once
 * per flow) so schedulers hash integers. `daddr` is the flow's destination address (the
 * VIP, or the real destination for transparent-cache services, which lblc/lblcr key on).
 */
export interface FlowKey {
  saddrFold: number;
  sport: number;
  daddrFold: number;
  dport: number;
}

export type AnySchedulerName = SchedulerName | 'agent';

export interface SchedulerOptions {
  readonly flags?: readonly SchedFlag[];
  /** Random source in [0, 1) for twos; injected so tests are deterministic. */
  readonly random?: () => number;
  /** lblc/lblcr: seconds an unused locality entry lives (IPVS default 24 h). */
  readonly lblcExpiration?: number;
  /** mh: lookup table size, a prime; default the smallest of IPVS's primes ≥ 100·N. */
  readonly mhTableSize?: number;
  /** rr/wrr: the position shared with the other workers (default: this scheduler's own). */
  readonly position?: SharedPosition | undefined;
}

export interface Scheduler {
  readonly name: AnySchedulerName;
  /** The destination list or a weight changed (IPVS `update_service`). */
  update(dests: readonly Dest[]): void;
  /** A destination for a new flow, or null when none is available. `now` in seconds. */
  pick(flow: FlowKey, now: number): Dest | null;
}
