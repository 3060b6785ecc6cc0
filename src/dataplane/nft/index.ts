/**
 * dataplane/nft — LVS-NAT, -DR and -TUN in the kernel through nftables: slot tables from
 * the scheduling engine (slots.ts), the element model (model.ts), the ruleset text
 * (ruleset.ts), reading the kernel back (read.ts) and the plane itself (plane.ts).
 */
export { NftDataPlane, type NftDataPlaneOptions } from './plane.js';
export {
  balanceSlots, destinationHashSlots, failoverSlots, maglevSlots, roundRobinSlots, slotShape, slotTable, sourceHashSlots,
  HASH_SLOTS, MH_SLOTS, RR_SLOTS, type MemberLoad, type SlotMember,
} from './slots.js';
export { buildModel, backendMark, serviceMark, hex, TABLE_NAME, type KernelModel, type PlaneService, type PlaneServer } from './model.js';
export { tableCommands, demandChain, demandChainCommands, elementDelta, ingressCommands, maskText, objectKind, staticSets, DEFAULT_LIMITS, type RulesetLimits } from './ruleset.js';
export { modelElements, parseConntrack, parseSets, readSet, type ElementRecord, type KernelConn } from './read.js';
