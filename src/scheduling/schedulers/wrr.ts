/**
 * wrr — weighted round robin (ip_vs_wrr.c): the current weight `cw` steps down by the gcd
 * of the weights each time the list wraps; a destination is picked when its weight ≥ cw.
 * Weights 4:3:2 give A A B A B C A B C — interleaved, not in blocks.
 */
import { weightStats } from '../hash.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';

export class WeightedRoundRobin implements Scheduler {
  readonly name = 'wrr';
  private dests: readonly Dest[] = [];
  private i = -1;
  private cw = 0;
  private mw = 0;
  private di = 1;

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    const { gcd: g, max: m } = weightStats(dests.map((d) => d.weight));
    // As ip_vs_wrr_dest_changed: back to the list head; mw = max − (gcd − 1); cw kept
    // when still valid, else restarted (or aligned to the new gcd).
    this.di = g || 1;
    this.mw = m - (this.di - 1);
    this.i = -1;
    if (this.cw > this.mw || this.cw === 0) this.cw = this.mw;
    else if (this.di > 1) this.cw = Math.floor(this.cw / this.di) * this.di + 1;
  }

  pick(_flow: FlowKey, _now: number): Dest | null {
    const n = this.dests.length;
    if (this.mw === 0 || n === 0) return null;
    // At most one full sweep per weight level, plus one: then nothing is eligible.
    const levels = Math.ceil(this.mw / this.di) + 1;
    for (let step = 0; step < n * levels; step++) {
      this.i++;
      if (this.i >= n) {
        this.i = 0;
        this.cw -= this.di;
        if (this.cw <= 0) this.cw = this.mw;
      }
      const d = this.dests[this.i] as Dest;
      if (d.available && !d.overloaded && d.weight > 0 && d.weight >= this.cw) return d;
    }
    return null;
  }
}
