/** rr — round robin (ip_vs_rr.c): next destination after the last pick that is eligible. */
import { eligible } from '../dest.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';

export class RoundRobin implements Scheduler {
  readonly name = 'rr';
  private dests: readonly Dest[] = [];
  private last = -1;

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    if (this.last >= dests.length) this.last = -1;
  }

  pick(_flow: FlowKey, _now: number): Dest | null {
    const n = this.dests.length;
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
