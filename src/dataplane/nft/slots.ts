/**
 * Slot tables: how a scheduler becomes data the kernel can look up. The kernel picks a slot
 * per new connection — `numgen inc mod N` (round robin through the table), `jhash … mod N`
 * (hashing) — and the slot's element names the real server. What goes into the slots is
 * decided here, in TypeScript, by the same rules as IPVS (pure; no kernel, no clock):
 *
 *  - rr / wrr: the first N picks of IPVS's weighted round robin (ip_vs_wrr.c), so the
 *    kernel walks the servers in IPVS's interleaved order and weights are slot counts.
 *    Exact when the weight cycle (Σw / gcd) divides N, else within one slot per server.
 *  - sh / dh: IPVS's bucket assignment (ip_vs_sh_reassign, ip_vs_dh_reassign) over N buckets.
 *  - mh: the weighted Maglev table of the scheduling engine (scheduling/maglev.ts), M prime.
 *  - fo: every slot to the available server with the highest weight (ip_vs_fo.c).
 *  - lblc / lblcr: dh's table (locality by destination; IPVS's overload spill is not done).
 *  - lc wlc sed nq ovf twos agent: no per-connection state can be consulted in the
 *    kernel, so a controller (`balanceSlots`) re-deals the slots about once a second from
 *    connection counts — see its comment for how close that is to IPVS.
 */
import { addrFold, buildMaglevTable, makeDest, memberId } from '../../scheduling/index.js';
import { WeightedRoundRobin } from '../../scheduling/schedulers/wrr.js';
import type { AnySchedulerName } from '../../scheduling/types.js';

/** Slots per service for the round-robin family (the `numgen … mod` constant). */
export const RR_SLOTS = 32;
/** IPVS's sh/dh table size (1 << IP_VS_SH_TAB_BITS). */
export const HASH_SLOTS = 256;
/** Maglev table size: IPVS mh's smallest prime; large enough for 2–3 servers at 100·N. */
export const MH_SLOTS = 251;

/** One real server as the slot builders see it; `ref` is what a slot holds (a backend mark). */
export interface SlotMember {
  readonly ref: number;
  readonly address: string;
  readonly port: number;
  readonly weight: number;
}

/** How the kernel chooses a slot for a service. */
export type SlotHash = 'rr' | 'sh' | 'shp' | 'dh' | 'mh' | 'mhp';

/** The kernel hash chain and slot count a scheduler uses. */
export function slotShape(scheduler: AnySchedulerName, flags: readonly string[]): { hash: SlotHash; size: number; dynamic: boolean } {
  switch (scheduler) {
    case 'sh':
      return { hash: flags.includes('flag-2') ? 'shp' : 'sh', size: HASH_SLOTS, dynamic: false };
    case 'dh':
      return { hash: 'dh', size: HASH_SLOTS, dynamic: false };
    case 'lblc':
    case 'lblcr':
      // Locality by destination: dh's table (IPVS's overload spill is not done in the kernel).
      return { hash: 'dh', size: HASH_SLOTS, dynamic: false };
    case 'mh':
      return { hash: flags.includes('flag-2') ? 'mhp' : 'mh', size: MH_SLOTS, dynamic: false };
    case 'rr':
    case 'wrr':
    case 'fo':
      return { hash: 'rr', size: RR_SLOTS, dynamic: false };
    default:
      return { hash: 'rr', size: RR_SLOTS, dynamic: true };
  }
}

const live = (m: readonly SlotMember[]): SlotMember[] => m.filter((x) => x.weight > 0);

/** IPVS wrr's pick order, N picks long (rr: weights taken as 1). Empty when no weight. */
export function roundRobinSlots(members: readonly SlotMember[], n: number, weighted: boolean): number[] {
  const ms = live(members);
  if (ms.length === 0) return [];
  const wrr = new WeightedRoundRobin();
  const dests = ms.map((m) => ({ ...makeDest({ family: m.address.includes(':') ? 'inet6' : 'inet', address: m.address, port: m.port, weight: weighted ? m.weight : 1, uthreshold: 0, lthreshold: 0 }), ref: m.ref }));
  wrr.update(dests);
  const out: number[] = [];
  const flow = { saddrFold: 0, sport: 0, daddrFold: 0, dport: 0 };
  for (let i = 0; i < n; i++) {
    const d = wrr.pick(flow, 0) as ((typeof dests)[number] | null);
    if (!d) return [];
    out.push(d.ref);
  }
  return out;
}

/** ip_vs_sh_reassign: each server (weight w) takes w consecutive buckets in turn. */
export function sourceHashSlots(members: readonly SlotMember[], n: number): number[] {
  const ms = live(members);
  if (ms.length === 0) return [];
  const out: number[] = [];
  let p = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    const m = ms[p] as SlotMember;
    out.push(m.ref);
    if (++count >= m.weight) {
      p = (p + 1) % ms.length;
      count = 0;
    }
  }
  return out;
}

/** ip_vs_dh_reassign: buckets dealt round-robin over the servers, weights ignored. */
export function destinationHashSlots(members: readonly SlotMember[], n: number): number[] {
  const ms = live(members);
  if (ms.length === 0) return [];
  return Array.from({ length: n }, (_, i) => (ms[i % ms.length] as SlotMember).ref);
}

/** The weighted Maglev table (size `n`, prime). */
export function maglevSlots(members: readonly SlotMember[], n: number): number[] {
  const ms = live(members);
  if (ms.length === 0) return [];
  const table = buildMaglevTable(ms.map((m) => ({ id: memberId(addrFold(m.address), m.port), weight: m.weight })), n);
  return Array.from(table, (i) => (ms[i] as SlotMember).ref);
}

/** ip_vs_fo: the highest weight wins every slot (the first such, in server order). */
export function failoverSlots(members: readonly SlotMember[], n: number): number[] {
  let best: SlotMember | null = null;
  for (const m of members) if (m.weight > 0 && (best === null || m.weight > best.weight)) best = m;
  return best ? new Array<number>(n).fill(best.ref) : [];
}

/** The load one server reported for the controller (connection counts, agent load). */
export interface MemberLoad {
  readonly ref: number;
  readonly active: number;
  readonly inactive: number;
  /** New connections scheduled to it during the last interval. */
  readonly recent: number;
  /** Server agent load 0..100 (agent scheduler), NaN when none. */
  readonly agentLoad: number;
}

/**
 * The controller for the least-connection family. IPVS decides each new connection with the
 * counts of that instant; the kernel here can only follow a table. Once per interval the
 * controller predicts how many connections the next interval brings (those scheduled in the
 * last one, at least one per slot) and deals them out one at a time, each to the server
 * the scheduler itself would pick at that point — counting what it already dealt as active
 * connections, exactly as IPVS would count them. The resulting counts become slot shares.
 * If arrivals match the prediction and no connection closes, every server ends the interval
 * where IPVS would have left it; within the interval the order is round robin over those
 * shares instead of strictly least-first. Connections that close during the interval are
 * seen at the next one.
 */
export function balanceSlots(
  scheduler: AnySchedulerName, members: readonly SlotMember[], load: ReadonlyMap<number, MemberLoad>, n: number,
): number[] {
  const ms = live(members);
  if (ms.length === 0) return [];
  const state = ms.map((m) => {
    const l = load.get(m.ref);
    return { m, active: l?.active ?? 0, inactive: l?.inactive ?? 0, agent: l?.agentLoad ?? Number.NaN, dealt: 0 };
  });
  const expected = Math.max(n, [...load.values()].reduce((s, l) => s + l.recent, 0));
  const cost = (s: (typeof state)[number]): number => {
    const w = s.m.weight;
    const overhead = s.active * 256 + s.inactive;
    switch (scheduler) {
      case 'lc':
        return overhead;
      case 'sed':
        return (s.active + 1) / w;
      case 'nq':
        // Never queue: an idle server first, then sed.
        return s.active === 0 ? -1 / w : (s.active + 1) / w;
      case 'ovf':
        // The heaviest server still under its weight in active connections (ip_vs_ovf.c).
        return s.active < w ? -w : Number.MAX_SAFE_INTEGER - w;
      case 'agent':
        return Number.isNaN(s.agent) ? overhead / w : (s.agent + 1) * (s.active + 1) / w;
      default:
        // wlc, twos: overhead / weight.
        return overhead / w;
    }
  };
  for (let k = 0; k < expected; k++) {
    let best = state[0] as (typeof state)[number];
    for (const s of state) if (cost(s) < cost(best)) best = s;
    best.active++;
    best.dealt++;
  }
  // Shares → slots, largest remainder, then interleaved like wrr over those counts.
  const shares = state.map((s) => ({ ref: s.m.ref, exact: (s.dealt * n) / expected }));
  const counts = shares.map((s) => Math.floor(s.exact));
  let left = n - counts.reduce((a, b) => a + b, 0);
  const order = shares.map((s, i) => ({ i, frac: s.exact - Math.floor(s.exact) })).sort((a, b) => b.frac - a.frac || a.i - b.i);
  for (const o of order) {
    if (left-- <= 0) break;
    counts[o.i] = (counts[o.i] ?? 0) + 1;
  }
  const weighted = ms.map((m, i) => ({ ...m, weight: counts[i] ?? 0 }));
  return roundRobinSlots(weighted, n, true);
}

/** The slot table for a service: `members` in server order, `load` for dynamic schedulers. */
export function slotTable(
  scheduler: AnySchedulerName, flags: readonly string[], members: readonly SlotMember[], load: ReadonlyMap<number, MemberLoad> | null,
): number[] {
  const shape = slotShape(scheduler, flags);
  switch (scheduler) {
    case 'rr':
      return roundRobinSlots(members, shape.size, false);
    case 'wrr':
      return roundRobinSlots(members, shape.size, true);
    case 'sh':
      return sourceHashSlots(members, shape.size);
    case 'dh':
      return destinationHashSlots(members, shape.size);
    case 'mh':
      return maglevSlots(members, shape.size);
    case 'fo':
      return failoverSlots(members, shape.size);
    case 'lblc':
    case 'lblcr':
      return destinationHashSlots(members, shape.size);
    default:
      return balanceSlots(scheduler, members, load ?? new Map(), shape.size);
  }
}
