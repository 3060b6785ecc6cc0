/**
 * twos — weighted random power of two choices (ip_vs_twos.c): draw two destinations with
 * probability proportional to weight, keep the one with the lower overhead/weight.
 */
import { eligible, overhead } from '../dest.js';
import type { Dest, FlowKey } from '../types.js';
import { ListScheduler } from './base.js';

export class TwoChoices extends ListScheduler {
  readonly name = 'twos';
  /**
   * xorshift32 state, seeded once from the injected source. Kept in a typed array: a uint32
   * does not fit a small integer, and a plain field would box a new number per draw.
   */
  private readonly state = new Uint32Array(1);
  constructor(random: () => number) {
    super();
    this.state[0] = (Math.floor(random() * 4294967296) | 1) >>> 0;
  }

  /** Uniform integer in [0, bound). */
  private draw(bound: number): number {
    let x = this.state[0] as number;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state[0] = x;
    return (this.state[0] as number) % bound;
  }
  pick(_flow: FlowKey, _now: number): Dest | null {
    let total = 0;
    for (const d of this.dests) if (eligible(d)) total += d.weight;
    if (total === 0) return null;
    let r1 = this.draw(total);
    let r2 = this.draw(total);
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
