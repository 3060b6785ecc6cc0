/**
 * The host side of `fulcrum realserver`: read the facts (addresses, routes, sysctls, the
 * tunnel device) and carry out steps, with `ip` and /proc/sys. The state file keeps what
 * `start` changed, for `stop`.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import type { RealServerFacts, RealServerMode, Step } from '../realserver/plan.js';
import { wantedSysctls } from '../realserver/plan.js';
import { tunnelMac, tunnelVni, TUNNEL_PORT } from './kernel-host.js';

const ip = (args: readonly string[]): string => execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
const ipJson = <T>(args: readonly string[]): T => JSON.parse(ip(['-j', ...args]) || '[]') as T;
const sysctlPath = (name: string): string => `/proc/sys/${name.replace(/\./g, '/')}`;

export function readSysctl(name: string): string | undefined {
  try {
    return fs.readFileSync(sysctlPath(name), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The interface facing the network: the one the default route (or the route to the VIP) uses. */
export function defaultInterface(): string | null {
  for (const args of [['route', 'show', 'default'], ['-6', 'route', 'show', 'default']]) {
    const r = ipJson<{ dev?: string }[]>(args);
    if (r[0]?.dev) return r[0].dev;
  }
  const links = ipJson<{ ifname: string; flags?: string[] }[]>(['link', 'show']);
  const up = links.filter((l) => l.ifname !== 'lo' && l.flags?.includes('UP'));
  return up.length === 1 ? (up[0] as { ifname: string }).ifname : null;
}

/** The real server's own address on `iface` (the VXLAN tunnel MAC is derived from it). */
export function interfaceAddress(iface: string, family: 'inet' | 'inet6'): string | null {
  const r = ipJson<{ addr_info?: { family: string; local: string; scope: string }[] }[]>(['addr', 'show', 'dev', iface]);
  return r[0]?.addr_info?.find((a) => a.family === family && a.scope === 'global')?.local ?? null;
}

export function gatherFacts(vip: string, family: 'inet' | 'inet6', iface: string, mode: RealServerMode, tunnel: string | null): RealServerFacts {
  const links = ipJson<{ ifname: string; flags?: string[]; addr_info?: { local: string; prefixlen: number }[] }[]>(['addr', 'show']);
  const host = family === 'inet' ? 32 : 128;
  const lo = links.find((l) => l.ifname === 'lo');
  const vipOnLo = lo?.addr_info?.some((a) => a.local === vip && a.prefixlen === host) ?? false;
  const vipElsewhere = links.filter((l) => l.ifname !== 'lo' && l.addr_info?.some((a) => a.local === vip)).map((l) => l.ifname);
  const routes = ipJson<{ type?: string; dst?: string; dev?: string; table?: string }[]>([...(family === 'inet6' ? ['-6'] : []), 'route', 'show', 'table', 'all', 'to', vip]);
  // `to VIP` selects routes for exactly VIP/32 (/128): the local table's entry is expected.
  const strayRoutes = routes.filter((r) => r.type !== 'local' && r.type !== 'broadcast').map((r) => `${r.dst ?? ''} dev ${r.dev ?? '?'} table ${r.table ?? 'main'}`);
  const sysctls = new Map<string, string>();
  for (const name of wantedSysctls(mode, family, iface, tunnel).keys()) {
    const v = readSysctl(name);
    if (v !== undefined) sysctls.set(name, v);
  }
  const t = tunnel === null ? null : links.find((l) => l.ifname === tunnel);
  return {
    vip, family, iface, sysctls, vipOnLo, vipElsewhere, strayRoutes,
    tunnel: tunnel === null ? null : { name: tunnel, exists: t !== undefined && t !== null, up: t?.flags?.includes('UP') ?? false },
  };
}

/** Carry out one step. `ownAddress` is the server's address on the director side (TUN). */
export function runStep(s: Step, o: { vip: string; family: 'inet' | 'inet6'; ownAddress: string | null }): void {
  const host = o.family === 'inet' ? 32 : 128;
  switch (s.do) {
    case 'sysctl':
      fs.writeFileSync(sysctlPath(s.name), s.value);
      return;
    case 'add-vip':
      ip(['addr', 'add', `${o.vip}/${host}`, 'dev', 'lo', ...(o.family === 'inet' ? ['label', 'lo:fulcrum'] : [])]);
      return;
    case 'del-vip':
      ip(['addr', 'del', `${o.vip}/${host}`, 'dev', 'lo']);
      return;
    case 'add-tunnel': {
      let made = false;
      try {
        ip(['link', 'add', s.name, 'type', o.family === 'inet' ? 'ipip' : 'ip6tnl', 'local', o.ownAddress ?? 'any']);
        made = true;
      } catch {
        // No ipip in this kernel: VXLAN, with the MAC the director pins for this server.
      }
      if (!made) {
        if (o.ownAddress === null) throw new Error('no address on the interface to derive the tunnel MAC from');
        ip(['link', 'add', s.name, 'type', 'vxlan', 'id', String(tunnelVni(o.ownAddress)), 'dstport', String(TUNNEL_PORT), 'local', o.ownAddress]);
        ip(['link', 'set', s.name, 'address', tunnelMac(o.ownAddress)]);
      }
      ip(['link', 'set', s.name, 'up']);
      return;
    }
    case 'del-tunnel':
      ip(['link', 'del', s.name]);
      return;
  }
}
