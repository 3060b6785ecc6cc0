/** The scheduler factory: a Scheduler by its ipvsadm name (or `agent`). */
import type { SchedFlag } from '../model/types.js';
import { AgentLoad } from './schedulers/agent.js';
import { Overflow, WeightedFailover } from './schedulers/failover.js';
import { DestinationHashing, SourceHashing } from './schedulers/hashing.js';
import { LeastConnection, NeverQueue, ShortestExpectedDelay, WeightedLeastConnection } from './schedulers/least.js';
import { LocalityBased, LocalityBasedReplicated } from './schedulers/locality.js';
import { MaglevHashing } from './schedulers/mh.js';
import { RoundRobin } from './schedulers/rr.js';
import { TwoChoices } from './schedulers/twos.js';
import { WeightedRoundRobin } from './schedulers/wrr.js';
import type { AnySchedulerName, Scheduler, SchedulerOptions } from './types.js';

export const ALL_SCHEDULERS: readonly AnySchedulerName[] = [
  'rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos', 'agent',
];

/** A scheduler by its ipvsadm name (or `agent`), with its flags. */
export function createScheduler(name: AnySchedulerName, opts: SchedulerOptions = {}): Scheduler {
  const flags: readonly SchedFlag[] = opts.flags ?? [];
  switch (name) {
    case 'rr': return new RoundRobin(opts.position);
    case 'wrr': return new WeightedRoundRobin(opts.position);
    case 'lc': return new LeastConnection();
    case 'wlc': return new WeightedLeastConnection();
    case 'sed': return new ShortestExpectedDelay();
    case 'nq': return new NeverQueue();
    case 'lblc': return new LocalityBased(opts.lblcExpiration);
    case 'lblcr': return new LocalityBasedReplicated(opts.lblcExpiration);
    case 'dh': return new DestinationHashing();
    case 'sh': return new SourceHashing(flags);
    case 'mh': return new MaglevHashing(flags, opts.mhTableSize);
    case 'fo': return new WeightedFailover();
    case 'ovf': return new Overflow();
    case 'twos': return new TwoChoices(opts.random ?? Math.random);
    case 'agent': return new AgentLoad();
  }
}
