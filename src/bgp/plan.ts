/**
 * Which routes to announce, and the deltas that get a speaker there (pure).
 *
 * A VIP is announced while at least one of its sources is up:
 *  - a virtual_server with `announce bgp`: it has quorum and the data plane holds it (a
 *    service the plane refused, or that VRRP gates out, cannot forward: withdrawn);
 *  - a vrrp_instance with `announce bgp`: it is MASTER.
 * Several services on one VIP (port 80 and 443) share one route: it stays while any of
 * them is up — every director computes the same, so a port that is down everywhere is
 * down whichever director the router picks.
 */
import type { ServiceState } from '../director/index.js';
import * as D from '../model/defaults.js';
import { formatHostPort, maxPrefix } from '../model/address.js';
import type { Announce, BgpConfig, Family, FulcrumConfig } from '../model/types.js';
import type { BgpRoute, SpeakerConfig } from './types.js';

export interface RouteDecision {
  readonly route: BgpRoute;
  readonly announce: boolean;
  /** Why, as an operator reads it: `tcp 10.99.99.99:80 has quorum`, `VI_1 is BACKUP`. */
  readonly reason: string;
}

export interface AnnounceInputs {
  readonly services: readonly ServiceState[];
  /** A VRRP instance's state (MASTER, BACKUP, FAULT, …), null when it is not running. */
  readonly instanceState: (name: string) => string | null;
  /** fulcrum_bgp's track_interface entries that are down now: every route is withdrawn. */
  readonly downInterfaces?: readonly string[] | undefined;
}

export function routeOf(family: Family, address: string, prefixLength: number, a: Announce): BgpRoute {
  return {
    prefix: `${address}/${prefixLength}`, family, address, prefixLength,
    ...(a.nextHop !== undefined ? { nextHop: a.nextHop } : {}),
    communities: [...new Set(a.communities)].sort((x, y) => x - y),
    ...(a.med !== undefined ? { med: a.med } : {}),
  };
}

/** Every route the configuration can announce, with whether it should be announced now and why. */
export function decideRoutes(config: FulcrumConfig, input: AnnounceInputs): Map<string, RouteDecision> {
  const acc = new Map<string, { route: BgpRoute; up: string[]; down: string[] }>();
  const note = (route: BgpRoute, up: boolean, why: string): void => {
    let e = acc.get(route.prefix);
    if (!e) {
      e = { route, up: [], down: [] };
      acc.set(route.prefix, e);
    }
    (up ? e.up : e.down).push(why);
  };
  for (const s of input.services) {
    const a = s.vs.announce;
    if (!a) continue;
    const name = s.key;
    const up = s.quorumUp && s.served && s.held;
    const why = up ? `${name} has quorum`
      : !s.quorumUp ? `${name} has no quorum`
        : !s.served ? `${name} is not served here (its VRRP instance is not MASTER)`
          : `the data plane does not hold ${name}`;
    const seen = new Set<string>();
    for (const l of s.listen) {
      if (seen.has(l.address)) continue;
      seen.add(l.address);
      note(routeOf(l.family, l.address, maxPrefix(l.family), a), up, why);
    }
  }
  for (const inst of config.vrrpInstances) {
    const a = inst.announce;
    if (!a) continue;
    const state = input.instanceState(inst.name);
    const up = state === 'MASTER';
    for (const vip of inst.virtualIpAddresses) {
      note(routeOf(vip.family, vip.address, maxPrefix(vip.family), a), up, `${inst.name} is ${state ?? 'not running'}`);
    }
  }
  const down = input.downInterfaces ?? [];
  const out = new Map<string, RouteDecision>();
  for (const [prefix, e] of acc) {
    if (down.length > 0) {
      out.set(prefix, { route: e.route, announce: false, reason: `${down.map((d) => `interface ${d}`).join(', ')} down (track_interface)` });
      continue;
    }
    const announce = e.up.length > 0;
    out.set(prefix, { route: e.route, announce, reason: (announce ? e.up : e.down).join('; ') });
  }
  return out;
}

export interface RouteDelta {
  readonly announce: readonly BgpRoute[];
  readonly withdraw: readonly string[];
}

/** Keyed diff of what the speaker originates against what should be announced. */
export function diffRoutes(held: readonly BgpRoute[], want: ReadonlyMap<string, RouteDecision>): RouteDelta {
  const have = new Map(held.map((r) => [r.prefix, r]));
  const announce: BgpRoute[] = [];
  const withdraw: string[] = [];
  for (const [prefix, d] of want) {
    if (!d.announce) continue;
    const h = have.get(prefix);
    if (!h || !sameRoute(h, d.route)) announce.push(d.route);
  }
  for (const prefix of have.keys()) if (want.get(prefix)?.announce !== true) withdraw.push(prefix);
  return { announce, withdraw };
}

export function sameRoute(a: BgpRoute, b: BgpRoute): boolean {
  return a.prefix === b.prefix && (a.nextHop ?? null) === (b.nextHop ?? null) && (a.med ?? null) === (b.med ?? null)
    && a.communities.length === b.communities.length && a.communities.every((c, i) => c === b.communities[i]);
}

export function speakerConfigOf(b: BgpConfig): SpeakerConfig {
  return {
    localAs: b.localAs, routerId: b.routerId, listenPort: b.listenPort,
    neighbors: b.neighbors.map((n) => ({ address: n.address, remoteAs: n.remoteAs, holdTime: n.holdTime, password: n.password, port: n.port })),
  };
}

/** `ASN:N`, or the well-known name of a community. */
export function formatCommunity(c: number): string {
  for (const [name, val] of Object.entries(D.BGP_WELL_KNOWN_COMMUNITIES)) if (val === c) return name;
  return `${Math.floor(c / 65536)}:${c % 65536}`;
}

/** `neighbor 10.0.1.1` / `neighbor [2001:db8::1]:1179` for messages. */
export function neighborName(n: { readonly address: string; readonly port: number }): string {
  return n.port === 179 ? n.address : formatHostPort(n.address, n.port);
}
