/**
 * The Announcer boundary: what Fulcrum needs from a BGP speaker, and nothing more —
 * configure the speaker and its neighbours, originate and withdraw host routes, and read
 * back what it originates and how its sessions are. GoBGP (src/sys/gobgp.ts) implements
 * it; FakeAnnouncer (fake.ts) runs the same compliance suite (compliance.ts), so another
 * speaker (ExaBGP, BIRD, FRR) can be added behind it later.
 */
import type { BgpNeighbor, Family } from '../model/types.js';

/** A route Fulcrum originates: a VIP as a host route (or a group's CIDR block). */
export interface BgpRoute {
  /** `10.99.99.99/32`, `2001:db8::1/128`: the key of a route. */
  readonly prefix: string;
  readonly family: Family;
  readonly address: string;
  readonly prefixLength: number;
  /** Unset: next-hop self (the speaker's own address on each session). */
  readonly nextHop?: string | undefined;
  /** RFC 1997 communities (ASN << 16 | N), sorted. */
  readonly communities: readonly number[];
  readonly med?: number | undefined;
}

/** A neighbour as the speaker needs it: fulcrum_bgp's, without where it was written. */
export type SpeakerNeighbor = Pick<BgpNeighbor, 'address' | 'remoteAs' | 'holdTime' | 'password' | 'port'>;

/** The speaker's own configuration: identity and sessions. */
export interface SpeakerConfig {
  readonly localAs: number;
  readonly routerId: string;
  /** 179, or -1: only connect out. */
  readonly listenPort: number;
  readonly neighbors: readonly SpeakerNeighbor[];
}

export type SessionState = 'idle' | 'connect' | 'active' | 'opensent' | 'openconfirm' | 'established' | 'unknown';

export interface BgpSession {
  readonly neighbor: string;
  readonly remoteAs: number;
  readonly state: SessionState;
  /** ms since the epoch the session came up (established), else null. */
  readonly upSince: number | null;
  /** Prefixes the neighbour sent us (accepted). */
  readonly received: number;
}

export interface Announcer {
  /** Human name for logs and status ('gobgpd 3.10.0 (pid 123)', 'fake'). */
  readonly name: string;
  /**
   * Bring the speaker to `cfg` (start it if needed; neighbours added, changed, removed by
   * keyed diff; a new AS or router id restarts its BGP instance). Idempotent.
   */
  configure(cfg: SpeakerConfig): Promise<void>;
  /** The routes the speaker originates now: the one source of truth the reconciler diffs against. */
  routes(): Promise<BgpRoute[]>;
  /** Originate `route` (replacing one with the same prefix). */
  announce(route: BgpRoute): Promise<void>;
  /** Stop originating `prefix` (absent: nothing to do). */
  withdraw(prefix: string): Promise<void>;
  sessions(): Promise<BgpSession[]>;
  /** Withdraw everything and stop (a speaker Fulcrum started is stopped; an operator's is left running). */
  close(): Promise<void>;
}

/** Stable codes of BGP failures (src/bgp and the speakers). */
export const BgpErrorCode = {
  /** The speaker's executable is not installed. */
  MISSING: 'E_BGP_MISSING',
  /** The speaker is not reachable or exited. */
  SPEAKER: 'E_BGP_SPEAKER',
  /** The speaker refused a request (a path, a neighbour, its configuration). */
  REFUSED: 'E_BGP_REFUSED',
} as const;
export type BgpErrorCode = (typeof BgpErrorCode)[keyof typeof BgpErrorCode];
