/**
 * fo  (ip_vs_fo.c):  the eligible destination with the highest weight (first on ties).
 * ovf (ip_vs_ovf.c): the highest-weight destination whose active connections do not exceed
 *                    its weight — the weight is a connection cap; overflow goes to the next.
 */
import { eligible } from '../dest.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';

export class WeightedFailover implements Scheduler {
  readonly name = 'fo';
  private dests: readonly Dest[] = [];
  update(dests: readonly Dest[]): void {
    this.dests = dests;
  }
  pick(_flow: FlowKey, _now: number): Dest | null {
    let h: Dest | null = null;
    for (const d of this.dests) if (eligible(d) && (h === null || d.weight > h.weight)) h = d;
    return h;
  }
}

export class Overflow implements Scheduler {
  readonly name = 'ovf';
  private dests: readonly Dest[] = [];
  update(dests: readonly Dest[]): void {
    this.dests = dests;
  }
  pick(_flow: FlowKey, _now: number): Dest | null {
    let h: Dest | null = null;
    for (const d of this.dests) {
      if (!eligible(d) || d.active > d.weight) continue;
      if (h === null || d.weight > h.weight) h = d;
    }
    return h;
  }
}
