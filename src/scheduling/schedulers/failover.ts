/**
 * fo  (ip_vs_fo.c):  the eligible destination with the highest weight (first on ties).
 * ovf (ip_vs_ovf.c): the highest-weight destination whose active connections do not exceed
 *                    its weight — the weight is a connection cap; overflow goes to the next.
 */
import { eligible } from '../dest.js';
import type { Dest, FlowKey } from '../types.js';
import { ListScheduler } from './base.js';

export class WeightedFailover extends ListScheduler {
  readonly name = 'fo';
  pick(_flow: FlowKey, _now: number): Dest | null {
    let h: Dest | null = null;
    for (const d of this.dests) if (eligible(d) && (h === null || d.weight > h.weight)) h = d;
    return h;
  }
}

export class Overflow extends ListScheduler {
  readonly name = 'ovf';
  pick(_flow: FlowKey, _now: number): Dest | null {
    let h: Dest | null = null;
    for (const d of this.dests) {
      if (!eligible(d) || d.active > d.weight) continue;
      if (h === null || d.weight > h.weight) h = d;
    }
    return h;
  }
}
