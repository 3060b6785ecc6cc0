/**
 * The BGP/ECMP lab shared by test/bgp.test.ts and bench/bgp.ts: one segment with a router
 * (BIRD 2: `merge paths on`, L4 multipath hashing, one BGP session per director slot),
 * Fulcrum directors announcing the VIP (DR, mh with mh-port, `announce bgp`), two real
 * servers (line echo on 7000, HTTP on 80) and a client routed to the VIP via the router.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Lab } from './netns.js';
import { echoServer, ensureKernelTools, httpServer, listening, realserver } from './lvs-lab.js';
import { startFulcrum, type Proc } from './vrrp-lab.js';
import { ensureCommand } from './peers.js';

export const BGP_VIP = '10.99.0.100';
const NET = '10.64.0';
export const DIRECTORS = { d1: 2, d2: 3, d3: 4, d4: 5 } as const;
export type DirectorName = keyof typeof DIRECTORS;

function birdConfig(dir: string): string {
  return `log "${dir}/bird.log" all;
router id ${NET}.1;
protocol device { scan time 1; }
protocol direct { ipv4; interface "eth0"; }
protocol kernel {
  ipv4 { import none; export where source = RTS_BGP; };
  merge paths on;
  learn off;
  scan time 1;
}
${Object.entries(DIRECTORS).map(([d, n]) => `protocol bgp ${d} {
  local ${NET}.1 as 65000;
  neighbor ${NET}.${n} as 65001;
  hold time 3;
  connect retry time 1;
  error wait time 1, 2;
  ipv4 { import all; export none; };
}`).join('\n')}
`;
}

/** A director's configuration: `ports` services on the VIP, each announcing it. */
export function directorConfig(hostN: number, ports: readonly number[] = [7000, 80], bgpExtra = ''): string {
  const svc = (port: number): string => `virtual_server ${BGP_VIP} ${port} {
  delay_loop 1
  lb_algo mh
  mh-port
  lb_kind DR
  protocol TCP
  announce bgp community 65001:100
${['11', '12'].map((r) => `  real_server ${NET}.${r} ${port} {
    weight 1
    TCP_CHECK {
      connect_timeout 1
      retry 0
    }
  }`).join('\n')}
}
`;
  return `fulcrum_bgp {
  local_as 65001
  router_id ${NET}.${hostN}
  neighbor ${NET}.1 {
    remote_as 65000
    hold_time 3
  }
  shutdown_grace 2
${bgpExtra}}
${ports.map(svc).join('')}`;
}

/** The router's next hops for the VIP, sorted (empty when it has no route). */
export function nextHops(lab: Lab): string[] {
  const out = lab.exec('rt', 'ip', ['-4', 'route', 'show', `${BGP_VIP}/32`]);
  return [...out.matchAll(/(?:nexthop )?via (\d+\.\d+\.\d+\.\d+)/g)].map((m) => m[1] as string).sort();
}

export const hopsOf = (...ds: DirectorName[]): string[] => ds.map((d) => `${NET}.${DIRECTORS[d]}`).sort();

export interface BgpLab {
  readonly procs: Map<DirectorName, Proc & { socket: string }>;
  /** Start `fulcrum run` on a director; `bgpExtra` goes into its fulcrum_bgp block. */
  start(d: DirectorName, bgpExtra?: string): Proc & { socket: string };
  socket(d: DirectorName): string;
}

/** Hosts, real servers and BIRD on `lab`; directors are started with `start`. */
export async function bgpLab(lab: Lab, dir: string, ports: readonly number[] = [7000, 80]): Promise<BgpLab> {
  ensureKernelTools();
  const bird = ensureCommand('bird', 'bird2');
  ensureCommand('gobgpd', 'gobgpd');
  lab.host('rt', `${NET}.1`);
  for (const [d, n] of Object.entries(DIRECTORS)) lab.host(d, `${NET}.${n}`);
  for (const [r, n] of [['r1', 11], ['r2', 12]] as const) lab.host(r, `${NET}.${n}`);
  lab.host('c', `${NET}.100`);
  lab.exec('rt', 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.fib_multipath_hash_policy=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.eth0.send_redirects=0']);
  lab.exec('c', 'ip', ['route', 'add', `${BGP_VIP}/32`, 'via', `${NET}.1`]);
  for (const r of ['r1', 'r2']) {
    const out = realserver(lab, r, ['start', '--vip', BGP_VIP]);
    assert.equal(out.code, 0, out.out);
    echoServer(lab, r, 7000);
    httpServer(lab, r, 80);
  }
  for (const r of ['r1', 'r2']) {
    await listening(lab, r, 7000);
    await listening(lab, r, 80);
  }
  fs.writeFileSync(path.join(dir, 'bird.conf'), birdConfig(dir));
  lab.spawn('rt', bird, ['-f', '-c', path.join(dir, 'bird.conf'), '-s', path.join(dir, 'bird.ctl'), '-P', path.join(dir, 'bird.pid')]);
  const procs = new Map<DirectorName, Proc & { socket: string }>();
  return {
    procs,
    start(d, bgpExtra = '') {
      const p = startFulcrum(lab, d, dir, directorConfig(DIRECTORS[d], ports, bgpExtra));
      procs.set(d, p);
      return p;
    },
    socket(d) {
      const p = procs.get(d);
      if (!p) throw new Error(`director ${d} was not started`);
      return p.socket;
    },
  };
}
