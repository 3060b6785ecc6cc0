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

/** Change `d`'s counts; the total after. Shared cells add atomically (see Dest.cells). */
function addConns(d: Dest, active: number, inactive: number): number {
  if (d.cells) return d.cells.add(active, inactive);
  d.active += active;
  d.inactive += inactive;
  return d.active + d.inactive;
}

function setOverloaded(d: Dest, on: boolean): void {
  if (d.cells) d.cells.setOverloaded(on);
  else d.overloaded = on;
}

/** A new connection is bound to `d` (IPVS ip_vs_bind_dest): count it, maybe set OVERLOAD. */
export function bindConn(d: Dest, active: boolean): void {
  const total = addConns(d, active ? 1 : 0, active ? 0 : 1);
  if (d.uthreshold !== 0 && total >= d.uthreshold) setOverloaded(d, true);
}

/** A connection moved between established (active) and other states. */
export function setConnActive(d: Dest, wasActive: boolean, nowActive: boolean): void {
  if (wasActive === nowActive) return;
  if (nowActive) addConns(d, 1, -1);
  else addConns(d, -1, 1);
}

/**
 * A connection to `d` ended (IPVS ip_vs_unbind_dest). OVERLOAD clears below the lower
 * threshold; with no lower threshold, below 3/4 of the upper one; with neither, at once.
 */
export function unbindConn(d: Dest, wasActive: boolean): void {
  const total = addConns(d, wasActive ? -1 : 0, wasActive ? 0 : -1);
  if (d.lthreshold !== 0) {
    if (total < d.lthreshold) setOverloaded(d, false);
  } else if (d.uthreshold !== 0) {
    if (total * 4 < d.uthreshold * 3) setOverloaded(d, false);
  } else {
    setOverloaded(d, false);
  }
}

/** Eligible for a new flow at all: present, weighted, not over its threshold. */
export function eligible(d: Dest): boolean {
  return d.available && d.weight > 0 && !d.overloaded;
}
