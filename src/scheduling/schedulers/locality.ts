/**
 * Locality-based schedulers, keyed by the flow's destination address (for clusters of
 * transparent caches, where that address varies):
 *  - lblc  (ip_vs_lblc.c):  one server per destination address; reassigned (by wlc) when
 *    it is unavailable or overloaded.
 *  - lblcr (ip_vs_lblcr.c): a set of servers per destination address; the least loaded
 *    member serves; an overloaded choice adds a new member (by wlc); once the set has not
 *    changed for `expiration`, its most loaded member is dropped.
 * IPVS's overload rule: a server is overloaded when its active connections exceed its weight
 * and some server has less than half its weight in active connections.
 * Entries unused for `expiration` seconds (default 24 h) are forgotten.
 */
import { eligible, overhead } from '../dest.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';
import { weightedLeast } from './least.js';

export const LBLC_EXPIRATION = 24 * 60 * 60;

export function isOverloaded(d: Dest, dests: readonly Dest[]): boolean {
  if (d.active > d.weight) {
    for (const o of dests) if (o.active * 2 < o.weight) return true;
  }
  return false;
}

interface LbEntry {
  dest: Dest;
  lastuse: number;
}

/** Entries are swept at most once per `SWEEP_EVERY` picks, so a pick is O(1) amortized. */
const SWEEP_EVERY = 4096;

/**
 * Forget locality entries unused for longer than `expiration`. forEach rather than for…of
 * destructuring: no per-entry allocation on the pick path.
 */
function sweepUnused(table: Map<number, { lastuse: number }>, now: number, expiration: number): void {
  table.forEach((e, k) => {
    if (now - e.lastuse > expiration) table.delete(k);
  });
}

export class LocalityBased implements Scheduler {
  readonly name = 'lblc';
  private dests: readonly Dest[] = [];
  private readonly table = new Map<number, LbEntry>();
  private picks = 0;
  constructor(private readonly expiration = LBLC_EXPIRATION) {}

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    // Entries pointing at removed destinations are dropped (IPVS flushes on dest removal).
    for (const [k, e] of this.table) if (!dests.includes(e.dest)) this.table.delete(k);
  }

  pick(flow: FlowKey, now: number): Dest | null {
    if (++this.picks % SWEEP_EVERY === 0) sweepUnused(this.table, now, this.expiration);
    const en = this.table.get(flow.daddrFold);
    if (en) {
      en.lastuse = now;
      const d = en.dest;
      if (eligible(d) && !isOverloaded(d, this.dests)) return d;
    }
    const d = weightedLeast(this.dests, overhead);
    if (!d) return null;
    if (en) en.dest = d;
    else this.table.set(flow.daddrFold, { dest: d, lastuse: now });
    return d;
  }

  /** For tests and the simulator: how many locality entries exist. */
  get size(): number {
    return this.table.size;
  }
}

interface SetEntry {
  readonly set: Dest[];
  lastmod: number;
  lastuse: number;
}

/** Least loaded (overhead/weight) member of a set; weight-0 members never serve. */
function setMin(set: readonly Dest[]): Dest | null {
  return weightedLeast(set, overhead);
}

/** Most loaded member (IPVS ip_vs_dest_set_max). */
function setMax(set: readonly Dest[]): Dest | null {
  let most: Dest | null = null;
  let moh = 0;
  for (const d of set) {
    if (d.weight <= 0) continue;
    const doh = overhead(d);
    if (most === null || moh * d.weight < doh * most.weight) {
      most = d;
      moh = doh;
    }
  }
  return most;
}

export class LocalityBasedReplicated implements Scheduler {
  readonly name = 'lblcr';
  private dests: readonly Dest[] = [];
  private readonly table = new Map<number, SetEntry>();
  private picks = 0;
  constructor(private readonly expiration = LBLC_EXPIRATION) {}

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    for (const [k, e] of this.table) {
      for (let i = e.set.length - 1; i >= 0; i--) if (!dests.includes(e.set[i] as Dest)) e.set.splice(i, 1);
      if (e.set.length === 0) this.table.delete(k);
    }
  }

  pick(flow: FlowKey, now: number): Dest | null {
    if (++this.picks % SWEEP_EVERY === 0) sweepUnused(this.table, now, this.expiration);
    const en = this.table.get(flow.daddrFold);
    if (en) {
      en.lastuse = now;
      const dest = setMin(en.set);
      if (en.set.length > 1 && now - en.lastmod > this.expiration) {
        const m = setMax(en.set);
        if (m) {
          en.set.splice(en.set.indexOf(m), 1);
          en.lastmod = now;
        }
      }
      if (dest && !isOverloaded(dest, this.dests)) return dest;
      const d = weightedLeast(this.dests, overhead);
      if (!d) return null;
      if (!en.set.includes(d)) {
        en.set.push(d);
        en.lastmod = now;
      }
      return d;
    }
    const d = weightedLeast(this.dests, overhead);
    if (!d) return null;
    this.table.set(flow.daddrFold, { set: [d], lastmod: now, lastuse: now });
    return d;
  }

  /** For tests and the simulator: the server set for a destination address. */
  members(daddrFold: number): readonly Dest[] {
    return this.table.get(daddrFold)?.set ?? [];
  }
}
