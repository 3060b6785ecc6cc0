/**
 * rr — round robin (ip_vs_rr.c): next destination after the last pick that is eligible.
 * With a shared position (workers), the next index comes from one atomic counter, so the
 * rotation is exact over every worker together.
 */
import { eligible } from '../dest.js';
import type { Dest, FlowKey, Scheduler, SharedPosition } from '../types.js';

export class RoundRobin implements Scheduler {
  readonly name = 'rr';
  private dests: readonly Dest[] = [];
  private last = -1;

  constructor(private readonly position?: SharedPosition) {}

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    if (this.last >= dests.length) this.last = -1;
  }

  pick(_flow: FlowKey, _now: number): Dest | null {
    const n = this.dests.length;
    if (this.position) {
      if (n === 0) return null;
      const start = this.position.next() % n;
      for (let k = 0; k < n; k++) {
        const d = this.dests[(start + k) % n] as Dest;
        if (eligible(d)) return d;
      }
      return null;
    }
    for (let k = 1; k <= n; k++) {
      const i = (this.last + k) % n;
      const d = this.dests[i] as Dest;
      if (eligible(d)) {
        this.last = i;
        return d;
      }
    }
    return null;
  }
}
