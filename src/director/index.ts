/**
 * director — turns configuration + observations into desired state (desired.ts, pure),
 * diffs it against what the data plane holds (plan.ts, pure), and applies the deltas
 * (director.ts). Policy: keepalived's alive/inhibit/alpha rules, quorum with hysteresis,
 * sorry server. Events go out on the `fulcrum:director` diagnostics channel.
 */
export { Director, DIRECTOR_CHANNEL, type DirectorEvent, type ReconcileResult, type ServiceState } from './director.js';
export {
  computeDesired, listenAddresses, nextQuorumState, observationKey, serverLiveness, serverSpecOf, serviceSpecOf, timeoutsOf,
  MAX_GROUP_ADDRESSES, type Desired, type DesiredInput, type DesiredService, type Observation, type Observations,
} from './desired.js';
export { diffTables, sameSpec, type TableView } from './plan.js';
