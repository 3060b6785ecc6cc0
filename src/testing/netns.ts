/**
 * Network-namespace labs for kernel-level tests: a switch namespace with a bridge, and
 * hosts (one namespace each) whose eth0 is a veth into the bridge. Every name starts with
 * a test-unique prefix; `close()` kills every process in the lab's namespaces and deletes
 * them, and runs even when a test fails (register it with `t.after`). Needs root.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

export interface LabHost {
  /** Namespace name. */
  readonly ns: string;
  readonly name: string;
  readonly ipv4: string;
  readonly mac: string;
  /** The switch port (in the switch namespace) this host plugs into. */
  readonly port: string;
}

export interface Lab {
  readonly prefix: string;
  readonly hosts: Map<string, LabHost>;
  /** Add a host on the bridge with `ipv4`/24 on eth0 (IPv6 link-local without DAD). */
  host(name: string, ipv4: string): LabHost;
  /** Run a command in a host's namespace and return its standard output. */
  exec(host: string, cmd: string, args: readonly string[], timeoutMs?: number): string;
  /** Start a long-running process in a host's namespace (killed by close()). */
  spawn(host: string, cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess;
  /** Kill every process in a host's namespace with SIGKILL (a crash). */
  crash(host: string): void;
  /** Cut or restore a host's link (its switch port goes down: the host sees carrier loss). */
  link(host: string, up: boolean): void;
  /** Unplug a host from the bridge or plug it back (its link stays up: a partition). */
  plug(host: string, plugged: boolean): void;
  /** IPv4 addresses on a host's eth0. */
  addresses(host: string): string[];
  /** Make `host` resolve `ip` (a TCP connect attempt to port 9; refused is fine). */
  touch(host: string, ip: string): void;
  /** The MAC address a host's neighbour table has for `ip`, or null. */
  neighbour(host: string, ip: string): string | null;
  close(): Promise<void>;
}

function ip(args: readonly string[], timeout = 10_000): string {
  return execFileSync('ip', args, { encoding: 'utf8', timeout, stdio: ['ignore', 'pipe', 'pipe'] });
}

export function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Create a lab: `prefix` must be short (namespace names get `-name`) and unique to the
 * test. Leftovers of an interrupted earlier run with the same prefix are removed first.
 */
export function createLab(prefix: string): Lab {
  removeStaleLabs(prefix);
  const sw = `${prefix}-sw`;
  const children: ChildProcess[] = [];
  const hosts = new Map<string, LabHost>();
  const made: string[] = [];
  const nsOf = (h: string): string => {
    const x = hosts.get(h);
    if (!x) throw new Error(`no host ${h} in lab ${prefix}`);
    return x.ns;
  };
  ip(['netns', 'add', sw]);
  made.push(sw);
  ip(['-n', sw, 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0']);
  ip(['-n', sw, 'link', 'set', 'br0', 'up']);
  ip(['-n', sw, 'link', 'set', 'lo', 'up']);
  const pids = (ns: string): number[] => {
    try {
      return ip(['netns', 'pids', ns]).split('\n').filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const lab: Lab = {
    prefix,
    hosts,
    host(name, ipv4) {
      const ns = `${prefix}-${name}`;
      const port = `p${hosts.size}`;
      ip(['netns', 'add', ns]);
      made.push(ns);
      execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0']);
      ip(['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', port, 'netns', sw]);
      ip(['-n', sw, 'link', 'set', port, 'master', 'br0']);
      ip(['-n', sw, 'link', 'set', port, 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      ip(['-n', ns, 'addr', 'add', `${ipv4}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      // Multicast without IP_MULTICAST_IF (a plain raw socket) needs a route.
      ip(['-n', ns, 'route', 'add', '224.0.0.0/4', 'dev', 'eth0']);
      const mac = ip(['-n', ns, '-br', 'link', 'show', 'eth0']).trim().split(/\s+/)[2] ?? '';
      const h = { ns, name, ipv4, mac, port };
      hosts.set(name, h);
      return h;
    },
    exec(host, cmd, args, timeoutMs = 10_000) {
      return execFileSync('ip', ['netns', 'exec', nsOf(host), cmd, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
    },
    spawn(host, cmd, args, env) {
      const c = spawn('ip', ['netns', 'exec', nsOf(host), cmd, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
      children.push(c);
      return c;
    },
    crash(host) {
      // Stop everything first, then kill: a child told of its parent's death (keepalived's
      // VRRP process) must not get to say goodbye.
      const all = pids(nsOf(host));
      for (const sig of ['SIGSTOP', 'SIGKILL'] as const) {
        for (const pid of all) {
          try {
            process.kill(pid, sig);
          } catch {
            // already gone
          }
        }
      }
    },
    link(host, up) {
      const h = hosts.get(host);
      if (!h) throw new Error(`no host ${host}`);
      ip(['-n', sw, 'link', 'set', h.port, up ? 'up' : 'down']);
    },
    plug(host, plugged) {
      const h = hosts.get(host);
      if (!h) throw new Error(`no host ${host}`);
      ip(['-n', sw, 'link', 'set', h.port, ...(plugged ? ['master', 'br0'] : ['nomaster'])]);
    },
    addresses(host) {
      return ip(['-n', nsOf(host), '-4', '-o', 'addr', 'show', 'dev', 'eth0']).split('\n').filter(Boolean)
        .map((l) => /inet (\S+)\//.exec(l)?.[1] ?? '').filter(Boolean);
    },
    touch(host, addr) {
      const js = `const s=require('net').connect(9,${JSON.stringify(addr)});s.on('error',()=>process.exit(0));s.on('connect',()=>process.exit(0));setTimeout(()=>process.exit(0),500)`;
      execFileSync('ip', ['netns', 'exec', nsOf(host), process.execPath, '-e', js], { timeout: 5000, stdio: 'ignore' });
    },
    neighbour(host, addr) {
      const out = ip(['-n', nsOf(host), 'neigh', 'show', addr, 'dev', 'eth0']).trim();
      return /lladdr (\S+)/.exec(out)?.[1] ?? null;
    },
    async close() {
      for (const ns of made) for (const pid of pids(ns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
      await sleep(50);
      for (const ns of [...made].reverse()) {
        try {
          ip(['netns', 'del', ns]);
        } catch {
          // gone already
        }
      }
    },
  };
  return lab;
}

/** A lab for one test, closed when the test ends, pass or fail. */
export function testLab(t: { after(fn: () => Promise<void>): void }, prefix: string): Lab {
  const lab = createLab(prefix);
  t.after(() => lab.close());
  return lab;
}

/** Remove leftovers of an earlier, interrupted run that used `prefix`. */
function removeStaleLabs(prefix: string): void {
  let list = '';
  try {
    list = ip(['netns', 'list']);
  } catch {
    return;
  }
  for (const line of list.split('\n')) {
    const ns = line.split(' ')[0] ?? '';
    if (!ns.startsWith(`${prefix}-`)) continue;
    for (const pid of ip(['netns', 'pids', ns]).split('\n').filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        // gone
      }
    }
    try {
      ip(['netns', 'del', ns]);
    } catch {
      // gone
    }
  }
}

/** Wait until `pred` holds, polling every `everyMs`, for at most `timeoutMs`. */
export async function until(pred: () => boolean, timeoutMs: number, what: string, everyMs = 10): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < Math.ceil(timeoutMs / everyMs) + 1; i++) {
    if (pred()) return performance.now() - start;
    await sleep(everyMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
