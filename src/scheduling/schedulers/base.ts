/**
 * Base of the schedulers that keep no table of their own: they only need the current
 * destination list, so `update` just stores it.
 */
import type { AnySchedulerName, Dest, FlowKey, Scheduler } from '../types.js';

export abstract class ListScheduler implements Scheduler {
  abstract readonly name: AnySchedulerName;
  protected dests: readonly Dest[] = [];
  update(dests: readonly Dest[]): void {
    this.dests = dests;
  }
  abstract pick(flow: FlowKey, now: number): Dest | null;
}
