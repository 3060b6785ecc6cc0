/**
 * A fake Scheduler for tests of code that uses one (data planes, the director): it returns
 * destinations by key from a script, in order, and records every flow it was asked about.
 */
import type { Dest, FlowKey, Scheduler } from './types.js';

export class FakeScheduler implements Scheduler {
  readonly name = 'rr';
  readonly asked: FlowKey[] = [];
  private dests: readonly Dest[] = [];
  private i = 0;
  constructor(private readonly script: readonly (string | null)[]) {}
  update(dests: readonly Dest[]): void {
    this.dests = dests;
  }
  pick(flow: FlowKey, _now: number): Dest | null {
    this.asked.push({ ...flow });
    const key = this.script[this.i++ % Math.max(1, this.script.length)];
    if (key === null || key === undefined) return null;
    const d = this.dests.find((x) => x.key === key && x.available && x.weight > 0 && !x.overloaded);
    return d ?? null;
  }
}
