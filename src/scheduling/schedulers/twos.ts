/**
 * twos — weighted random power of two choices (ip_vs_twos.c): draw two destinations with
 * probability proportional to weight, keep the one with the lower overhead/weight.
 */
import { eligible, overhead } from '../dest.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';

export class TwoChoices implements Scheduler {
  readonly name = 'twos';
  private dests: readonly Dest[] = [];
  constructor(private readonly random: () => number) {}
  update(dests: readonly Dest[]): void {
    this.dests = dests;
  }
  pick(_flow: FlowKey, _now: number): Dest | null {
    let total = 0;
    for (const d of this.dests) if (eligible(d)) total += d.weight;
    if (total === 0) return null;
    let r1 = Math.floor(this.random() * total);
    let r2 = Math.floor(this.random() * total);
    let c1: Dest | null = null;
    let c2: Dest | null = null;
    for (const d of this.dests) {
      if (!eligible(d)) continue;
      r1 -= d.weight;
      r2 -= d.weight;
      if (r1 < 0 && c1 === null) c1 = d;
      if (r2 < 0 && c2 === null) c2 = d;
      if (c1 !== null && c2 !== null) break;
    }
    if (c1 === null) return c2;
    if (c2 !== null && c2.weight * overhead(c1) > c1.weight * overhead(c2)) return c2;
    return c1;
  }
}
