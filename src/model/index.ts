/**
 * model — the shared vocabulary of Fulcrum.
 *
 * Types for virtual services, real servers, checkers, VRRP instances and the whole
 * configuration; identity keys (what makes two services "the same" across a reload);
 * address helpers; and the documented defaults. Pure: no I/O.
 */
export type {
  AgentProbe, Checker, CheckerConnection, CheckerTiming, CheckerType, DnsCheck, Family, FileCheck,
  ForwardingMethod, FulcrumConfig, GlobalDefs, GroupMember, HttpCheck, HttpUrl, LvsTimeouts, MiscCheck,
  NotifyScripts, Persistence, PingCheck, Protocol, RealServer, SchedFlag, SchedulerName, ScriptSpec,
  ServiceEndpoint, SmtpCheck, SorryServer, TcpCheck, TrackedInterface, TrackedScript, TrackFile,
  TunnelSpec, TunnelType, UdpCheck, UnicastPeer, VirtualIp, VirtualServer, VirtualServerGroup,
  VrrpInstance, VrrpScript, VrrpSyncGroup,
} from './types.js';
export { FORWARDING_METHODS, instanceAddresses, IPVS_SCHEDULERS, isSchedulerName } from './types.js';
export { endpointKey, realServerKey, serviceKey } from './keys.js';
export { ownServers, type SharedServers } from './shared-map.js';
export { ServerMap } from './server-map.js';
export {
  cidrBounds, compareAddresses, formatHostPort, maskAddress, maxPrefix, netmaskToPrefix, parseIp, prefixToNetmask,
} from './address.js';
export type { ParsedIp } from './address.js';
export * as defaults from './defaults.js';
