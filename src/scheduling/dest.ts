/**
 * Destinations and the connection accounting schedulers read (IPVS's activeconns /
 * inactconns and the threshold overload flag). Every update is O(1).
 */
import type { RealServer } from '../model/types.js';
import { realServerKey } from '../model/keys.js';
import { addrFold } from './hash.js';
import type { Dest } from './types.js';

export function makeDest(rs: Pick<RealServer, 'family' | 'address' | 'port' | 'weight' | 'uthreshold' | 'lthreshold'>): Dest {
  return {
    key: realServerKey(rs), family: rs.family, address: rs.address, port: rs.port, addrFold: addrFold(rs.address),
    weight: rs.weight, active: 0, inactive: 0, uthreshold: rs.uthreshold, lthreshold: rs.lthreshold,
    overloaded: false, available: true, agentLoad: Number.NaN,
  };
}

/** IPVS's least-connection overhead: active·256 + inactive. */
export function overhead(d: Dest): number {
  return d.active * 256 + d.inactive;
}

/** A new connection is bound to `d` (IPVS ip_vs_bind_dest): count it, maybe set OVERLOAD. */
export function bindConn(d: Dest, active: boolean): void {
  if (active) d.active++;
  else d.inactive++;
  if (d.uthreshold !== 0 && d.active + d.inactive >= d.uthreshold) d.overloaded = true;
}

/** A connection moved between established (active) and other states. */
export function setConnActive(d: Dest, wasActive: boolean, nowActive: boolean): void {
  if (wasActive === nowActive) return;
  if (nowActive) {
    d.inactive--;
    d.active++;
  } else {
    d.active--;
    d.inactive++;
  }
}

/**
 * A connection to `d` ended (IPVS ip_vs_unbind_dest). OVERLOAD clears below the lower
 * threshold; with no lower threshold, below 3/4 of the upper one; with neither, at once.
 */
export function unbindConn(d: Dest, wasActive: boolean): void {
  if (wasActive) d.active--;
  else d.inactive--;
  const total = d.active + d.inactive;
  if (d.lthreshold !== 0) {
    if (total < d.lthreshold) d.overloaded = false;
  } else if (d.uthreshold !== 0) {
    if (total * 4 < d.uthreshold * 3) d.overloaded = false;
  } else {
    d.overloaded = false;
  }
}

/** Eligible for a new flow at all: present, weighted, not over its threshold. */
export function eligible(d: Dest): boolean {
  return d.available && d.weight > 0 && !d.overloaded;
}
