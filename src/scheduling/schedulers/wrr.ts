/**
 * wrr — weighted round robin (ip_vs_wrr.c): the current weight `cw` steps down by the gcd
 * of the weights each time the list wraps; a destination is picked when its weight ≥ cw.
 * Weights 4:3:2 give A A B A B C A B C — interleaved, not in blocks.
 */
import { weightStats } from '../hash.js';
import type { Dest, FlowKey, Scheduler, SharedPosition } from '../types.js';

/** Where a shared position keeps wrr's index and current weight (cells at `at`, `at + 1`). */
const I = 0;
const CW = 1;

/**
 * With a shared position (workers), `i` and `cw` live in shared cells and each pick runs
 * under the position's lock: every worker steps the one sequence, so the split is exact in
 * aggregate. An update keeps the position (clamped to the new list) instead of returning to
 * the list head: each worker applies the update, and the position must not jump back once
 * per worker.
 */
export class WeightedRoundRobin implements Scheduler {
  readonly name = 'wrr';
  private dests: readonly Dest[] = [];
  private i = -1;
  private cw = 0;
  private mw = 0;
  private di = 1;

  constructor(private readonly position?: SharedPosition) {}

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    const { gcd: g, max: m } = weightStats(dests.map((d) => d.weight));
    // As ip_vs_wrr_dest_changed: back to the list head; mw = max − (gcd − 1); cw kept
    // when still valid, else restarted (or aligned to the new gcd).
    this.di = g || 1;
    this.mw = m - (this.di - 1);
    if (this.position) {
      this.position.exclusive((c, at) => {
        if (c[at + I] as number >= dests.length) c[at + I] = -1;
        c[at + CW] = this.clampCw(c[at + CW] as number);
      });
      return;
    }
    this.i = -1;
    this.cw = this.clampCw(this.cw);
  }

  /** cw kept when still valid, else restarted (or aligned to the new gcd). Idempotent. */
  private clampCw(cw: number): number {
    if (cw > this.mw || cw === 0) return this.mw;
    if (this.di > 1) return Math.floor(cw / this.di) * this.di + 1;
    return cw;
  }

  pick(_flow: FlowKey, _now: number): Dest | null {
    if (!this.position) return this.step();
    return this.position.exclusive((c, at) => {
      this.i = c[at + I] as number;
      this.cw = c[at + CW] as number;
      const d = this.step();
      c[at + I] = this.i;
      c[at + CW] = this.cw;
      return d;
    });
  }

  private step(): Dest | null {
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
