/**
 * What the kernel data plane needs of the host besides nftables: which device reaches an
 * address, which device holds one, tunnel devices for LVS-TUN, the conntrack table (NAT
 * connection counts) and whether IP forwarding is on. `commandKernelHost` answers with
 * `ip -j` and /proc, optionally inside a network namespace (tests drive a namespace's
 * kernel from outside it); `FakeKernelHost` answers from tables a test sets.
 */
import { missingNetCapabilities } from './host.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import { promisify } from 'node:util';
import type { Family } from '../model/types.js';
import { SysError, SysErrorCode } from './errors.js';

const run = promisify(execFile);

/** ipip is what LVS real servers expect; vxlan where the kernel has no ipip (this one). */
export type TunnelKind = 'ipip' | 'vxlan';

export interface KernelHost {
  /** The device the route to `address` leaves through, or null when there is none. */
  routeDevice(address: string): Promise<string | null>;
  /** The device that holds `address`, or null. */
  addressDevice(address: string): Promise<string | null>;
  /**
   * A tunnel device to the real server `remote` (created when missing): ipip when the kernel
   * has it, else VXLAN with the real server's tunnel MAC pinned (tunnelMac).
   */
  ensureTunnel(remote: string, family: Family): Promise<{ device: string; kind: TunnelKind }>;
  removeTunnel(device: string): Promise<void>;
  /** /proc/net/nf_conntrack as text ('' when conntrack is not loaded). */
  conntrack(): Promise<string>;
  /** net.ipv4.ip_forward / net.ipv6.conf.all.forwarding. */
  forwarding(family: Family): Promise<boolean>;
}

/** FNV-1a of a text: a stable 32-bit name for an address. */
function fnv1a(text: string): number {
  let h = 2166136261;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0;
  return h;
}

/** The UDP port of Fulcrum's VXLAN tunnels (IANA's 4789). */
export const TUNNEL_PORT = 4789;

/**
 * The VXLAN network identifier of the tunnel to a real server, derived from its address:
 * Linux allows one VXLAN device per (VNI, port), so each real server's tunnel has its own,
 * and the real server computes the same one from its own address.
 */
export function tunnelVni(address: string): number {
  return (fnv1a(address) & 0xffffff) || 1;
}

/**
 * The MAC a real server's VXLAN tunnel device carries, derived from its address so the
 * director can pin a neighbour entry without ARP through the tunnel (which the real server
 * must not answer for the VIP): 02:46 followed by the IPv4 address, or the last 4 bytes of
 * an IPv6 one.
 */
export function tunnelMac(address: string): string {
  let bytes: number[];
  if (address.includes(':')) {
    const groups = address.split('::');
    const tail = (groups[groups.length - 1] ?? '').split(':').filter(Boolean).map((g) => parseInt(g, 16));
    const last = tail.slice(-2);
    while (last.length < 2) last.unshift(0);
    bytes = last.flatMap((g) => [(g >> 8) & 255, g & 255]);
  } else {
    bytes = address.split('.').map(Number);
  }
  return ['02', '46', ...bytes.map((b) => b.toString(16).padStart(2, '0'))].join(':');
}

/** The director's tunnel device name for a real server (≤ 15 characters). */
export function tunnelDevice(remote: string): string {
  return `fltun${fnv1a(remote).toString(16).padStart(8, '0')}`;
}

export function commandKernelHost(o: { netns?: string | undefined; tunnel?: TunnelKind | 'auto' } = {}): KernelHost {
  const ipArgs = (args: string[]): string[] => (o.netns ? ['-n', o.netns, ...args] : args);
  const ipJson = async (args: string[]): Promise<unknown> => JSON.parse((await run('ip', ipArgs(['-j', ...args]))).stdout || '[]') as unknown;
  const ipDo = async (args: string[]): Promise<void> => {
    try {
      await run('ip', ipArgs(args));
    } catch (err: unknown) {
      const msg = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
      // Classified by what this process may do, not by ip's wording.
      throw new SysError(missingNetCapabilities().includes('CAP_NET_ADMIN') ? SysErrorCode.PERMISSION : SysErrorCode.FAILED, `ip ${args.join(' ')}: ${msg}`);
    }
  };
  // A file that does not exist reads as '' (conntrack not loaded); any other failure rejects.
  const readProc = async (path: string): Promise<string> => {
    if (o.netns) {
      // `cat` in the namespace: exit 0 with the text, or a test for existence decides.
      try {
        return (await run('ip', ['netns', 'exec', o.netns, 'cat', path], { maxBuffer: 1 << 28 })).stdout;
      } catch (err: unknown) {
        const exists = await run('ip', ['netns', 'exec', o.netns, 'test', '-e', path]).then(() => true, () => false);
        if (!exists) return '';
        throw new SysError(SysErrorCode.FAILED, `reading ${path} in ${o.netns}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    try {
      return await fs.readFile(path, 'utf8');
    } catch (err: unknown) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
      throw new SysError(SysErrorCode.FAILED, `reading ${path}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  let kind: TunnelKind | null = o.tunnel === 'ipip' || o.tunnel === 'vxlan' ? o.tunnel : null;
  return {
    async routeDevice(address) {
      try {
        const r = (await ipJson(['route', 'get', address])) as { dev?: string }[];
        return r[0]?.dev ?? null;
      } catch {
        return null;
      }
    },
    async addressDevice(address) {
      if (!o.netns) {
        for (const [name, addrs] of Object.entries(os.networkInterfaces())) {
          if (addrs?.some((a) => a.address === address)) return name;
        }
        return null;
      }
      const links = (await ipJson(['addr', 'show'])) as { ifname: string; addr_info?: { local?: string }[] }[];
      return links.find((l) => l.addr_info?.some((a) => a.local === address))?.ifname ?? null;
    },
    async ensureTunnel(remote, family) {
      const device = tunnelDevice(remote);
      const existing = (await ipJson(['link', 'show'])) as { ifname: string }[];
      if (existing.some((l) => l.ifname === device)) return { device, kind: kind ?? 'vxlan' };
      if (kind === null || kind === 'ipip') {
        try {
          await ipDo(['link', 'add', device, 'type', family === 'inet' ? 'ipip' : 'ip6tnl', 'remote', remote]);
          kind = 'ipip';
        } catch (err: unknown) {
          if (kind === 'ipip' || (err instanceof SysError && err.code === SysErrorCode.PERMISSION)) throw err;
          kind = 'vxlan';
        }
      }
      if (kind === 'vxlan') {
        await ipDo(['link', 'add', device, 'type', 'vxlan', 'id', String(tunnelVni(remote)), 'remote', remote, 'dstport', String(TUNNEL_PORT)]);
        await ipDo(['neigh', 'replace', remote, 'lladdr', tunnelMac(remote), 'dev', device, 'nud', 'permanent']);
      }
      await ipDo(['link', 'set', device, 'up']);
      return { device, kind: kind ?? 'vxlan' };
    },
    async removeTunnel(device) {
      await ipDo(['link', 'del', device]);
    },
    conntrack: () => readProc('/proc/net/nf_conntrack'),
    async forwarding(family) {
      const t = await readProc(family === 'inet' ? '/proc/sys/net/ipv4/ip_forward' : '/proc/sys/net/ipv6/conf/all/forwarding');
      return t.trim() === '1';
    },
  };
}

/** A host for tests: routes and addresses from tables; tunnels recorded. */
export class FakeKernelHost implements KernelHost {
  readonly routes = new Map<string, string>();
  readonly addresses = new Map<string, string>();
  readonly tunnels = new Set<string>();
  conntrackText = '';
  /** Make conntrack() reject with this (a failed read). */
  conntrackFailure: Error | null = null;
  /** Make a call fail: return an error for the call's name and argument (null: it succeeds). */
  fail: ((call: 'routeDevice' | 'addressDevice' | 'ensureTunnel' | 'removeTunnel', arg: string) => Error | null) | null = null;
  forwardingOn = true;

  routeDevice(address: string): Promise<string | null> {
    const err = this.fail?.('routeDevice', address);
    if (err) return Promise.reject(err);
    return Promise.resolve(this.routes.get(address) ?? this.routes.get('default') ?? null);
  }

  addressDevice(address: string): Promise<string | null> {
    const err = this.fail?.('addressDevice', address);
    if (err) return Promise.reject(err);
    return Promise.resolve(this.addresses.get(address) ?? null);
  }

  ensureTunnel(remote: string): Promise<{ device: string; kind: TunnelKind }> {
    const err = this.fail?.('ensureTunnel', remote);
    if (err) return Promise.reject(err);
    const device = tunnelDevice(remote);
    this.tunnels.add(device);
    return Promise.resolve({ device, kind: 'vxlan' });
  }

  removeTunnel(device: string): Promise<void> {
    const err = this.fail?.('removeTunnel', device);
    if (err) return Promise.reject(err);
    this.tunnels.delete(device);
    return Promise.resolve();
  }

  conntrack(): Promise<string> {
    if (this.conntrackFailure) return Promise.reject(this.conntrackFailure);
    return Promise.resolve(this.conntrackText);
  }

  forwarding(): Promise<boolean> {
    return Promise.resolve(this.forwardingOn);
  }
}
