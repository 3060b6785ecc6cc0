/**
 * `fulcrum realserver`: what a Linux real server needs for LVS-DR and LVS-TUN, as pure
 * plans over facts the host reports (sys/realserver-host.ts gathers and applies them).
 *
 * DR (the LVS realserver script, IBM Dispatcher's "loopback alias"): the VIP on `lo` as
 * a host address (/32, /128), so the server accepts packets addressed to it; and, for IPv4,
 * ARP suppression — `arp_ignore=1` (answer only for addresses on the receiving interface)
 * and `arp_announce=2` (never use the VIP as an ARP source) on `all` and on the interface —
 * so the server never answers ARP for the VIP, which must resolve to the director alone.
 * IPv6 needs no sysctl: Linux answers neighbour solicitations only for addresses on the
 * receiving interface.
 * TUN adds the tunnel device the director sends through (ipip where the kernel has it, else
 * VXLAN with the MAC the director pins) with reverse-path filtering off on it and on `all`
 * (the client's packets arrive on the tunnel, their replies leave by the normal route).
 *
 * Every value changed is recorded before it is changed, so `stop` restores exactly what was
 * there; `status` checks the result, including IBM Dispatcher's two classic faults: the
 * server answering ARP for the VIP, and a stray route that sends traffic for the VIP away.
 */
export type RealServerMode = 'dr' | 'tun';

export interface RealServerFacts {
  readonly vip: string;
  readonly family: 'inet' | 'inet6';
  /** The interface facing the director (eth0). */
  readonly iface: string;
  /** sysctl name → current value. */
  readonly sysctls: ReadonlyMap<string, string>;
  /** Does `lo` hold the VIP as a host address? */
  readonly vipOnLo: boolean;
  /** Interfaces other than lo holding the VIP. */
  readonly vipElsewhere: readonly string[];
  /** Routes to the VIP outside the local table (`ip route show table all to VIP`, non-local). */
  readonly strayRoutes: readonly string[];
  /** The tunnel device, when TUN: exists and up? */
  readonly tunnel: { readonly name: string; readonly exists: boolean; readonly up: boolean } | null;
}

/** What `start` recorded, so `stop` undoes exactly that. */
export interface RealServerState {
  readonly vip: string;
  readonly mode: RealServerMode;
  readonly iface: string;
  readonly addedVip: boolean;
  readonly tunnel: string | null;
  /** sysctl name → the value before start (only those start changed). */
  readonly sysctls: Record<string, string>;
}

export type Step =
  | { readonly do: 'sysctl'; readonly name: string; readonly value: string }
  | { readonly do: 'add-vip' }
  | { readonly do: 'del-vip' }
  | { readonly do: 'add-tunnel'; readonly name: string }
  | { readonly do: 'del-tunnel'; readonly name: string };

/** The sysctls a mode needs: name → value. */
export function wantedSysctls(mode: RealServerMode, family: 'inet' | 'inet6', iface: string, tunnel: string | null): Map<string, string> {
  const m = new Map<string, string>();
  if (family === 'inet') {
    for (const dev of ['all', iface]) {
      m.set(`net.ipv4.conf.${dev}.arp_ignore`, '1');
      m.set(`net.ipv4.conf.${dev}.arp_announce`, '2');
    }
  }
  if (mode === 'tun' && tunnel !== null && family === 'inet') {
    m.set('net.ipv4.conf.all.rp_filter', '0');
    m.set(`net.ipv4.conf.${tunnel}.rp_filter`, '0');
  }
  return m;
}

/** start: the steps and the record of what they change. Idempotent on a configured host. */
export function planStart(f: RealServerFacts, mode: RealServerMode, tunnel: string | null): { steps: Step[]; state: RealServerState } {
  const steps: Step[] = [];
  const before: Record<string, string> = {};
  if (mode === 'tun' && tunnel !== null && !f.tunnel?.exists) steps.push({ do: 'add-tunnel', name: tunnel });
  for (const [name, value] of wantedSysctls(mode, f.family, f.iface, tunnel)) {
    const cur = f.sysctls.get(name);
    if (cur === value) continue;
    if (cur !== undefined) before[name] = cur;
    steps.push({ do: 'sysctl', name, value });
  }
  if (!f.vipOnLo) steps.push({ do: 'add-vip' });
  return {
    steps,
    state: { vip: f.vip, mode, iface: f.iface, addedVip: !f.vipOnLo, tunnel: mode === 'tun' && tunnel !== null && !f.tunnel?.exists ? tunnel : null, sysctls: before },
  };
}

/** stop: undo what start recorded, in reverse. */
export function planStop(s: RealServerState): Step[] {
  const steps: Step[] = [];
  if (s.addedVip) steps.push({ do: 'del-vip' });
  for (const [name, value] of Object.entries(s.sysctls).reverse()) {
    // The tunnel's own sysctls go with the device.
    if (s.tunnel !== null && name.includes(`.${s.tunnel}.`)) continue;
    steps.push({ do: 'sysctl', name, value });
  }
  if (s.tunnel !== null) steps.push({ do: 'del-tunnel', name: s.tunnel });
  return steps;
}

export interface Check {
  readonly ok: boolean;
  readonly what: string;
  readonly detail: string;
}

/** Effective ARP setting: the kernel uses the larger of `all` and the interface. */
function effective(f: RealServerFacts, key: string): number {
  return Math.max(Number(f.sysctls.get(`net.ipv4.conf.all.${key}`) ?? 0), Number(f.sysctls.get(`net.ipv4.conf.${f.iface}.${key}`) ?? 0));
}

/** status: each check with what was found. */
export function checkStatus(f: RealServerFacts, mode: RealServerMode): Check[] {
  const host = f.family === 'inet' ? '/32' : '/128';
  const out: Check[] = [
    { ok: f.vipOnLo, what: `VIP ${f.vip}${host} on lo`, detail: f.vipOnLo ? 'present' : 'missing: packets for the VIP would be dropped' },
    { ok: f.vipElsewhere.length === 0, what: 'VIP on no other interface', detail: f.vipElsewhere.length === 0 ? 'none' : `also on ${f.vipElsewhere.join(', ')}: this server would answer ARP for it` },
    { ok: f.strayRoutes.length === 0, what: 'no stray route for the VIP', detail: f.strayRoutes.length === 0 ? 'none' : f.strayRoutes.join('; ') },
  ];
  if (f.family === 'inet') {
    const ignore = effective(f, 'arp_ignore');
    const announce = effective(f, 'arp_announce');
    out.push(
      { ok: ignore >= 1 && ignore <= 2, what: `ARP for the VIP unanswered on ${f.iface} (arp_ignore)`, detail: `effective arp_ignore ${ignore} (need 1)` },
      { ok: announce === 2, what: `VIP never used as ARP source on ${f.iface} (arp_announce)`, detail: `effective arp_announce ${announce} (need 2)` },
    );
  }
  if (mode === 'tun') {
    const t = f.tunnel;
    out.push({ ok: t !== null && t.exists && t.up, what: `tunnel device ${t?.name ?? ''} up`, detail: t === null ? 'none' : !t.exists ? 'missing' : t.up ? 'up' : 'down' });
    if (f.family === 'inet' && t !== null) {
      const rp = Math.max(Number(f.sysctls.get('net.ipv4.conf.all.rp_filter') ?? 0), Number(f.sysctls.get(`net.ipv4.conf.${t.name}.rp_filter`) ?? 0));
      out.push({ ok: rp === 0, what: `reverse-path filter off on ${t.name}`, detail: `effective rp_filter ${rp} (need 0)` });
    }
  }
  return out;
}
