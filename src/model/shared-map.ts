/**
 * A real servers' map that table copies share until one of them writes it (copy on write):
 * IpvsTableIndex (what ipvsadm commands are checked against) and SpecTable (what a data
 * plane holds) copy only the service a change touches, not every real server.
 */
export interface SharedServers<V> {
  servers: ReadonlyMap<string, V>;
  /** `servers` once this holder may write it; null while another holder may share it. */
  own: Map<string, V> | null;
}

/** The holder's map to write, copied first if it may be shared. */
export function ownServers<V>(h: SharedServers<V>): Map<string, V> {
  if (h.own === null) {
    h.own = new Map(h.servers);
    h.servers = h.own;
  }
  return h.own;
}
