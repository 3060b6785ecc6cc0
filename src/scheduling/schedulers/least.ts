/**
 * The least-connection family, compared without division as IPVS does
 * (`loh · w(d) > doh · w(least)` ⇒ d is less loaded):
 *  - lc  (ip_vs_lc.c):  least overhead = active·256 + inactive; weight only gates (> 0).
 *  - wlc (ip_vs_wlc.c): least overhead / weight.
 *  - sed (ip_vs_sed.c): least (active + 1) / weight — shortest expected delay.
 *  - nq  (ip_vs_nq.c):  an idle server (no active connections) first, else as sed.
 * Ties go to the earlier destination in the list.
 */
import { eligible, overhead } from '../dest.js';
import type { Dest, FlowKey } from '../types.js';
import { ListScheduler } from './base.js';

export class LeastConnection extends ListScheduler {
  readonly name = 'lc';
  pick(_flow: FlowKey, _now: number): Dest | null {
    let least: Dest | null = null;
    let loh = 0;
    for (const d of this.dests) {
      if (!eligible(d)) continue;
      const doh = overhead(d);
      if (least === null || doh < loh) {
        least = d;
        loh = doh;
      }
    }
    return least;
  }
}

/** Weighted least of `cost(d)` among eligible destinations; shared by wlc, sed, lblc(r). */
export function weightedLeast(dests: readonly Dest[], cost: (d: Dest) => number): Dest | null {
  let least: Dest | null = null;
  let loh = 0;
  for (const d of dests) {
    if (!eligible(d)) continue;
    const doh = cost(d);
    if (least === null || loh * d.weight > doh * least.weight) {
      least = d;
      loh = doh;
    }
  }
  return least;
}

const sedCost = (d: Dest): number => d.active + 1;

export class WeightedLeastConnection extends ListScheduler {
  readonly name = 'wlc';
  pick(_flow: FlowKey, _now: number): Dest | null {
    return weightedLeast(this.dests, overhead);
  }
}

export class ShortestExpectedDelay extends ListScheduler {
  readonly name = 'sed';
  pick(_flow: FlowKey, _now: number): Dest | null {
    return weightedLeast(this.dests, sedCost);
  }
}

export class NeverQueue extends ListScheduler {
  readonly name = 'nq';
  pick(_flow: FlowKey, _now: number): Dest | null {
    for (const d of this.dests) if (eligible(d) && d.active === 0) return d;
    return weightedLeast(this.dests, sedCost);
  }
}
