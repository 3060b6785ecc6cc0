/**
 * Identity keys. Two objects with the same key are "the same" across a reload or between
 * keepalived.conf and ipvsadm rules; everything else about them is attributes that may change.
 */
import { formatHostPort } from './address.js';
import { ObjectMemo } from './memo.js';
import type { Protocol, RealServer, ServiceEndpoint, VirtualServer } from './types.js';

/** `tcp 10.0.0.1:80`, `tcp [2001:db8::1]:443`, `fwmark 8 inet`, `group web tcp`. */
export function endpointKey(endpoint: ServiceEndpoint, protocol: Protocol): string {
  switch (endpoint.kind) {
    case 'address':
      return `${protocol} ${formatHostPort(endpoint.address, endpoint.port)}`;
    case 'fwmark':
      // IPVS keys fwmark services by mark and family only; the protocol is not part of it.
      return `fwmark ${endpoint.mark} ${endpoint.family}`;
    case 'group':
      return `group ${endpoint.name} ${protocol}`;
  }
}

export function serviceKey(vs: Pick<VirtualServer, 'endpoint' | 'protocol'>): string {
  return endpointKey(vs.endpoint, vs.protocol);
}

/** `10.0.0.1:80` / `[2001:db8::2]:80`. */
export function realServerKey(rs: Pick<RealServer, 'address' | 'port'>): string {
  return formatHostPort(rs.address, rs.port);
}

/** The keys of a service's real servers, kept on the (immutable) service object; never to be changed. */
const serverKeys = new ObjectMemo<VirtualServer, ReadonlySet<string>>('fulcrum.keys.servers');

export function serverKeysOf(vs: VirtualServer): ReadonlySet<string> {
  let keys = serverKeys.get(vs);
  if (keys === undefined) serverKeys.set(vs, (keys = new Set(vs.realServers.map(realServerKey))));
  return keys;
}
