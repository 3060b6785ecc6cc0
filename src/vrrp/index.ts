/**
 * vrrp — VRRP v2 (RFC 3768) and v3 (RFC 5798), interoperable with keepalived.
 *
 * - codec.ts: bytes ↔ advertisements, checksums, the checks a received packet must pass
 *   (every rejection has a stable DropReason).
 * - fsm.ts: one instance's state machine, pure and clock-driven (`step`).
 * - track.ts: vrrp_script hysteresis and what tracked scripts/interfaces do to priority.
 * - node.ts: VrrpNode runs the instances over an injected HostNetwork and Clock:
 *   sockets, timers, addresses, gratuitous ARP, sync groups, notify scripts, and the
 *   held-address hook the daemon gives the director.
 */
export {
  checkAdvert, compareAddresses, decodeAdvert, decodeIpv4, DropReason, encodeAdvert, internetChecksum, VRRP_PROTOCOL, VRRP_TTL,
  type AdvertExpectation, type Drop, type EncodeInput, type Envelope, type VrrpAdvert,
} from './codec.js';
export {
  initialState, masterDownMs, PRIORITY_OWNER, skewMs, step,
  type FsmConfig, type FsmEffect, type FsmEvent, type FsmState, type StepResult, type TransitionReason, type VrrpStateName,
} from './fsm.js';
export { foldScript, initialStanding, trackVerdict, type ScriptStanding, type TrackInput, type TrackVerdict } from './track.js';
export { addressKey, VRRP_CHANNEL, vrrpAddresses, VrrpNode, type InstanceStatus, type VrrpEvent, type VrrpNodeOptions } from './node.js';
export { LocalVrrpRunner, NO_VRRP, type VrrpRunner, type VrrpTransaction } from './runner.js';
