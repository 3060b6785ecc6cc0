/**
 * scheduling — the decision core: every IPVS scheduler behind one `Scheduler` interface,
 * Fulcrum's agent policy and agent weight feedback, Maglev tables, persistence templates,
 * and the connection accounting schedulers read. Pure and deterministic (random sources and
 * clocks are injected); used by the userspace proxy directly and by the kernel plane's
 * controller.
 */
export type { AnySchedulerName, Dest, FlowKey, Scheduler, SchedulerOptions } from './types.js';
export { bindConn, eligible, makeDest, overhead, setConnActive, unbindConn } from './dest.js';
export { addrFold, mulberry32 } from './hash.js';
export { buildMaglevTable, maglevSize, memberId, MH_PRIMES, type MaglevMember } from './maglev.js';
export { PersistenceTable, type PersistenceOptions } from './persistence.js';
export { AgentWeightFeedback, DEFAULT_FEEDBACK, type FeedbackOptions } from './feedback.js';
export { isOverloaded, LBLC_EXPIRATION } from './schedulers/locality.js';
export { FakeScheduler } from './fake.js';
export { persistenceScope, ServiceScheduler, type ServiceSchedulerOptions } from './service.js';

export { ALL_SCHEDULERS, createScheduler } from './factory.js';
export { simulateChange, simulateRun, withServers, type SimChange, type SimOptions, type SimRun, type SimServerRow } from './simulate.js';
