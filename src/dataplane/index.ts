/**
 * dataplane — the DataPlane boundary (types.ts), the keyed spec table every plane validates
 * ops with, IPVS's counters and rate estimator, a fake, the shared compliance suite, and
 * the userspace proxy plane (proxy/).
 */
export * from './types.js';
export { opServiceKey, SpecTable, type TableEntry } from './table.js';
export { RateEstimator, newCounters, addCounters, countIn, countOut, ZERO_RATES, ESTIMATOR_INTERVAL } from './stats.js';
export { FakeDataPlane } from './fake.js';
export { ProxyDataPlane, PROXY_CHANNEL, type ProxyDataPlaneOptions } from './proxy/plane.js';
export { DEFAULT_TUNABLES, type ProxyTunables, type ProxyEvent } from './proxy/context.js';
export { proxyHeader, parseProxyHeader, unmapAddress, type ParsedProxyHeader } from './proxy/proxy-protocol.js';
export { RoutingDataPlane, type PlaneSlot } from './routing.js';
export { WorkersDataPlane, type WorkersDataPlaneOptions } from './workers/plane.js';
