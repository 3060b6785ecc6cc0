/**
 * What the XDP plane needs of the host besides libbpf: devices (index and MAC), the route to
 * an address (device, gateway, source), the neighbour table (the real servers' MACs, which
 * the program writes into frames itself), a way to make the kernel resolve a neighbour, and
 * a bpf filesystem to pin maps in. `commandXdpHost` answers with `ip -j`; `FakeXdpHost`
 * from tables a test sets.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { SysError, SysErrorCode } from './errors.js';

const run = promisify(execFile);

export interface LinkInfo {
  readonly ifindex: number;
  readonly mac: string;
}

export interface RouteInfo {
  readonly device: string;
  /** The next hop when the address is not on a connected network. */
  readonly gateway: string | null;
  /** The source address the kernel would use. */
  readonly source: string | null;
}

export interface XdpHost {
  link(device: string): Promise<LinkInfo | null>;
  route(address: string): Promise<RouteInfo | null>;
  /** The device that holds `address`, or null. */
  addressDevice(address: string): Promise<string | null>;
  /** Usable neighbour entries: `address@device` → MAC. */
  neighbours(): Promise<Map<string, string>>;
  /** Make the kernel resolve `address` on `device` (ARP / neighbour solicitation). */
  solicit(address: string, device: string): Promise<void>;
  /** A directory on a bpf filesystem for pinned maps (mounting bpffs at /sys/fs/bpf if needed). */
  pinDirectory(requested: string | null): Promise<string>;
}

const BPF_FS_MAGIC = 0xcafe4a11;
const USABLE = new Set(['REACHABLE', 'STALE', 'DELAY', 'PROBE', 'PERMANENT', 'NOARP']);

function onBpffs(path: string): boolean {
  try {
    return fs.statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

export function commandXdpHost(): XdpHost {
  const ipJson = async (args: string[]): Promise<unknown> => JSON.parse((await run('ip', ['-j', ...args])).stdout || '[]') as unknown;
  return {
    async link(device) {
      try {
        const r = (await ipJson(['link', 'show', 'dev', device])) as { ifindex?: number; address?: string }[];
        const l = r[0];
        return l?.ifindex !== undefined ? { ifindex: l.ifindex, mac: l.address ?? '00:00:00:00:00:00' } : null;
      } catch {
        return null;
      }
    },
    async route(address) {
      try {
        const r = (await ipJson(['route', 'get', address])) as { dev?: string; gateway?: string; prefsrc?: string }[];
        const x = r[0];
        return x?.dev ? { device: x.dev, gateway: x.gateway ?? null, source: x.prefsrc ?? null } : null;
      } catch {
        return null;
      }
    },
    async addressDevice(address) {
      const links = (await ipJson(['addr', 'show'])) as { ifname: string; addr_info?: { local?: string }[] }[];
      return links.find((l) => l.addr_info?.some((a) => a.local === address))?.ifname ?? null;
    },
    async neighbours() {
      const out = new Map<string, string>();
      const r = (await ipJson(['neigh', 'show'])) as { dst?: string; dev?: string; lladdr?: string; state?: string[] }[];
      for (const n of r) {
        if (!n.dst || !n.dev || !n.lladdr) continue;
        if (!(n.state ?? []).some((s) => USABLE.has(s))) continue;
        out.set(`${n.dst}@${n.dev}`, n.lladdr);
      }
      return out;
    },
    async solicit(address, device) {
      try {
        await run('ip', ['neigh', 'replace', address, 'dev', device, 'use']);
      } catch (err: unknown) {
        const msg = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
        throw new SysError(SysErrorCode.FAILED, `ip neigh replace ${address} dev ${device} use: ${msg}`);
      }
    },
    async pinDirectory(requested) {
      const dir = requested ?? '/sys/fs/bpf/fulcrum';
      const root = requested === null ? '/sys/fs/bpf' : null;
      if (root !== null && !onBpffs(root)) {
        try {
          fs.mkdirSync(root, { recursive: true });
          await run('mount', ['-t', 'bpf', 'bpf', root]);
        } catch (err: unknown) {
          const msg = (err as { stderr?: string }).stderr?.trim() || (err as Error).message;
          throw new SysError(SysErrorCode.FAILED, `no bpf filesystem at ${root} and mounting one failed: ${msg}`);
        }
      }
      fs.mkdirSync(dir, { recursive: true });
      if (!onBpffs(dir)) throw new SysError(SysErrorCode.FAILED, `${dir} is not on a bpf filesystem (mount -t bpf bpf DIR)`);
      return dir;
    },
  };
}

/** A host for tests: links, routes, addresses and neighbours from tables. */
export class FakeXdpHost implements XdpHost {
  readonly links = new Map<string, LinkInfo>();
  readonly routes = new Map<string, RouteInfo>();
  readonly addresses = new Map<string, string>();
  readonly neighbourTable = new Map<string, string>();
  readonly solicited: string[] = [];

  link(device: string): Promise<LinkInfo | null> {
    return Promise.resolve(this.links.get(device) ?? null);
  }

  route(address: string): Promise<RouteInfo | null> {
    return Promise.resolve(this.routes.get(address) ?? this.routes.get('default') ?? null);
  }

  addressDevice(address: string): Promise<string | null> {
    return Promise.resolve(this.addresses.get(address) ?? null);
  }

  neighbours(): Promise<Map<string, string>> {
    return Promise.resolve(new Map(this.neighbourTable));
  }

  solicit(address: string, device: string): Promise<void> {
    this.solicited.push(`${address}@${device}`);
    return Promise.resolve();
  }

  pinDirectory(requested: string | null): Promise<string> {
    return Promise.resolve(requested ?? '/sys/fs/bpf/fulcrum');
  }
}
