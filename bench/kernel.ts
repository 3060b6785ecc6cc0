/**
 * The kernel data planes' costs, in network namespaces (root):
 *
 * 1. Director CPU per request, LVS-DR through nftables and through XDP, against HAProxy
 *    (mode tcp) on the same topology: a client running wrk, a director, two real servers
 *    running nginx. A DR director's work is softirq time no process owns, so every path is
 *    measured the same way: the machine's CPU time (/proc/stat: user+system+irq+softirq)
 *    per request through the director, minus the same figure for wrk talking to one real
 *    server directly. The paths alternate, ROUNDS times; medians are reported.
 * 2. Packets per second: trafgen (netsniff-ng) in the client sends 64-byte UDP datagrams of
 *    1,024 flows to the VIP at full speed; the real servers drop them in their prerouting
 *    hook and count them. Director cost per packet = machine CPU per delivered packet
 *    through the director minus the same sent straight to a real server; packets per second
 *    per core = 1 / that cost. XDP and nftables alternate, ROUNDS times; medians. The XDP
 *    program's own time per packet comes from the kernel (kernel.bpf_stats_enabled:
 *    run_time_ns / run_cnt of xdp_root and the balancer it tail-calls).
 * 3. Control plane at scale: one plan with 10,000 DR services (2 real servers each, wrr) —
 *    the time to load it into the kernel; then re-weighting one real server of one service
 *    at that size (the median of 20). Runs inside a namespace through libnftables (FFI).
 *
 * Run: `npm run bench:kernel`. Env: BENCH_SECONDS (5 per load run), BENCH_ROUNDS (3),
 * BENCH_PACKETS (2,000,000 per pps run), BENCH_SERVICES (10000).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, isRoot, type Lab } from '../src/testing/netns.js';
import { ensureCommand } from '../src/testing/peers.js';
import { listening, realserver, startDirector } from '../src/testing/lvs-lab.js';
import { ensureXdpProgram, fullChecksums, passOnSwitchPort } from '../src/testing/xdp-lab.js';
import { NftDataPlane } from '../src/dataplane/nft/index.js';
import { serverSpec, serviceSpec } from '../src/dataplane/compliance.js';
import { commandKernelHost, libNft } from '../src/sys/index.js';
import type { PlanOp } from '../src/dataplane/index.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 3);
const PACKETS = Number(process.env['BENCH_PACKETS'] ?? 2_000_000);
const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 10_000);
const VIP = '10.69.0.100';

function cpuTicks(): number {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
}
const HZ = 100;

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};

interface Run { readonly requests: number; readonly rps: number; readonly cpuUsPerReq: number }

function wrk(lab: Lab, url: string): Run {
  const before = cpuTicks();
  const out = lab.exec('c', 'wrk', ['-t', '1', '-c', '32', '-d', `${SECONDS}s`, url], (SECONDS + 20) * 1000);
  const ticks = cpuTicks() - before;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  return { requests, rps: requests / SECONDS, cpuUsPerReq: ((ticks / HZ) * 1e6) / Math.max(1, requests) };
}

const DR_SERVICES = (xdp: boolean): string => `${xdp ? 'global_defs {\n  fulcrum_dataplane xdp\n}\n' : ''}virtual_server ${VIP} 80 {\n  lb_algo rr\n  lb_kind DR\n  real_server 10.69.0.11 80 {\n  }\n  real_server 10.69.0.12 80 {\n  }\n}\nvirtual_server ${VIP} 9 {\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n  real_server 10.69.0.11 9 {\n  }\n  real_server 10.69.0.12 9 {\n  }\n}\n`;

/** Packets the real servers' eth0 received so far. */
function delivered(lab: Lab): number {
  let n = 0;
  for (const h of ['r1', 'r2']) {
    const j = JSON.parse(lab.exec(h, 'ip', ['-s', '-j', 'link', 'show', 'dev', 'eth0'])) as { stats64?: { rx?: { packets?: number } } }[];
    n += j[0]?.stats64?.rx?.packets ?? 0;
  }
  return n;
}

/** trafgen: PACKETS 64-byte UDP datagrams of 1,024 flows to `ip`/`mac` port 9; machine CPU µs per delivered packet. */
function blast(lab: Lab, ip: string, mac: string): { pps: number; cpuUsPerPkt: number; delivered: number } {
  const c = lab.hosts.get('c');
  const conf = `{ eth(da=${mac}, sa=${c?.mac ?? ''}), ipv4(sa=10.69.0.1, da=${ip}, ttl=64), udp(sp=dinc(10000, 11023), dp=9, csum=0), fill(0x00, 18) }`;
  const before = delivered(lab);
  const t0 = process.hrtime.bigint();
  const ticks0 = cpuTicks();
  lab.exec('c', 'trafgen', ['-o', 'eth0', '--cpus', '1', '-n', String(PACKETS), conf], 300_000);
  const ticks = cpuTicks() - ticks0;
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const got = delivered(lab) - before;
  return { pps: got / secs, cpuUsPerPkt: ((ticks / HZ) * 1e6) / Math.max(1, got), delivered: got };
}

/** run_time_ns and run_cnt of the loaded XDP programs (kernel.bpf_stats_enabled=1), summed by name. */
function programStats(): Map<string, { ns: number; runs: number }> {
  const out = new Map<string, { ns: number; runs: number }>();
  const progs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as { name?: string; run_time_ns?: number; run_cnt?: number }[];
  for (const p of progs) {
    if (p.name !== 'xdp_balancer' && p.name !== 'xdp_root') continue;
    const o = out.get(p.name) ?? { ns: 0, runs: 0 };
    out.set(p.name, { ns: o.ns + (p.run_time_ns ?? 0), runs: o.runs + (p.run_cnt ?? 0) });
  }
  return out;
}

async function perRequest(): Promise<void> {
  for (const [bin, pkg] of [['wrk', 'wrk'], ['nginx', 'nginx-light'], ['haproxy', 'haproxy'], ['nft', 'nftables'], ['trafgen', 'netsniff-ng']] as const) ensureCommand(bin, pkg);
  ensureXdpProgram();
  const lab = createLab('fbk');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-kernel-'));
  const bpf = '/run/fbk-bpf';
  try {
    lab.host('c', '10.69.0.1');
    const d = lab.host('d', '10.69.0.2');
    lab.exec('d', 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
    passOnSwitchPort(lab, 'd');
    fullChecksums(lab, 'c');
    fs.mkdirSync(bpf, { recursive: true });
    execFileSync('mount', ['-t', 'bpf', 'bpf', bpf]);
    const servers: Record<string, string> = {};
    for (const [name, addr] of [['r1', '10.69.0.11'], ['r2', '10.69.0.12']] as const) {
      servers[name] = lab.host(name, addr).mac;
      realserver(lab, name, ['start', '--vip', VIP, '--state-dir', path.join(dir, name)]);
      // The datagrams of the packet-rate phase end here, counted by eth0, before any socket.
      lab.exec(name, 'nft', ['add table inet sink; add chain inet sink pre { type filter hook prerouting priority -300; }; add rule inet sink pre udp dport 9 drop']);
      const conf = path.join(dir, `${name}.nginx.conf`);
      fs.writeFileSync(conf, `worker_processes 1; pid ${dir}/${name}.pid; error_log stderr crit; events { worker_connections 1024; }\nhttp { access_log off; server { listen 80; location / { return 200 "${name}\\n"; } } }\n`);
      lab.spawn(name, 'nginx', ['-c', conf, '-g', 'daemon off;']);
    }
    await new Promise((r) => setTimeout(r, 500));
    const haproxyConf = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(haproxyConf, `global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind 10.69.0.2:8080\n  default_backend b\nbackend b\n  balance roundrobin\n  server r1 10.69.0.11:80\n  server r2 10.69.0.12:80\n`);
    const runs: Record<'direct' | 'haproxy' | 'nft' | 'xdp', Run[]> = { direct: [], haproxy: [], nft: [], xdp: [] };
    const pps: Record<'direct' | 'nft' | 'xdp', ReturnType<typeof blast>[]> = { direct: [], nft: [], xdp: [] };
    /** ns per packet the balancer program itself ran (root + tail-called balancer), per XDP pps run. */
    const programNs: number[] = [];
    execFileSync('sysctl', ['-qw', 'kernel.bpf_stats_enabled=1']);
    for (let round = 0; round < ROUNDS; round++) {
      runs.direct.push(wrk(lab, 'http://10.69.0.11/'));
      pps.direct.push(blast(lab, '10.69.0.11', servers['r1'] ?? ''));
      const hap = lab.spawn('d', 'haproxy', ['-f', haproxyConf, '-db']);
      await listening(lab, 'd', 8080);
      runs.haproxy.push(wrk(lab, 'http://10.69.0.2:8080/'));
      hap.kill('SIGKILL');
      for (const plane of round % 2 === 0 ? ['nft', 'xdp'] as const : ['xdp', 'nft'] as const) {
        const director = await startDirector(lab, 'd', dir, DR_SERVICES(plane === 'xdp'), ['--bpf-dir', `${bpf}/fulcrum`]);
        runs[plane].push(wrk(lab, `http://${VIP}/`));
        const before = programStats();
        pps[plane].push(blast(lab, VIP, d.mac));
        if (plane === 'xdp') {
          const after = programStats();
          const root = (after.get('xdp_root')?.runs ?? 0) - (before.get('xdp_root')?.runs ?? 0);
          const ns = ['xdp_root', 'xdp_balancer'].reduce((a, n) => a + (after.get(n)?.ns ?? 0) - (before.get(n)?.ns ?? 0), 0);
          programNs.push(ns / Math.max(1, root));
        }
        director.child.kill('SIGTERM');
        await new Promise<void>((r) => director.child.once('exit', () => r()));
      }
    }
    const direct = median(runs.direct.map((r) => r.cpuUsPerReq));
    const cost = (k: keyof typeof runs): number => median(runs[k].map((r) => r.cpuUsPerReq)) - direct;
    const rps = (k: keyof typeof runs): string => median(runs[k].map((r) => r.rps)).toFixed(0);
    const each = (k: keyof typeof runs): string => runs[k].map((r) => (r.cpuUsPerReq - direct).toFixed(1)).join(', ');
    console.log(`per request (wrk -t1 -c32 ${SECONDS}s, ${ROUNDS} alternating rounds, medians; director cost = machine CPU µs/request − direct's ${direct.toFixed(1)}):`);
    console.log(`  HAProxy 2.6 mode tcp:  ${rps('haproxy')} req/s, director cost ${cost('haproxy').toFixed(1)} µs/request (runs: ${each('haproxy')})`);
    console.log(`  Fulcrum DR nftables:   ${rps('nft')} req/s, director cost ${cost('nft').toFixed(1)} µs/request (runs: ${each('nft')})`);
    console.log(`  Fulcrum DR XDP:        ${rps('xdp')} req/s, director cost ${cost('xdp').toFixed(1)} µs/request (runs: ${each('xdp')})`);
    console.log(`  ratios: XDP/HAProxy ${(cost('xdp') / cost('haproxy')).toFixed(2)}×, XDP/nftables ${(cost('xdp') / cost('nft')).toFixed(2)}×, nftables/HAProxy ${(cost('nft') / cost('haproxy')).toFixed(2)}×`);
    const pDirect = median(pps.direct.map((r) => r.cpuUsPerPkt));
    const pCost = (k: 'nft' | 'xdp'): number => median(pps[k].map((r) => r.cpuUsPerPkt)) - pDirect;
    const pRate = (k: keyof typeof pps): string => (median(pps[k].map((r) => r.pps)) / 1000).toFixed(0);
    const lost = (k: keyof typeof pps): string => pps[k].map((r) => `${Math.max(0, 100 * (1 - r.delivered / PACKETS)).toFixed(1)}%`).join(', ');
    console.log(`packets (trafgen 64-byte UDP, 1,024 flows, ${PACKETS} per run, medians of ${ROUNDS}; cost = machine CPU µs per delivered packet − direct's ${pDirect.toFixed(3)}):`);
    console.log(`  direct: ${pRate('direct')} kpps delivered (not delivered: ${lost('direct')})`);
    for (const k of ['nft', 'xdp'] as const) {
      console.log(`  ${k === 'nft' ? 'nftables' : 'XDP     '}: ${pRate(k)} kpps delivered (not delivered: ${lost(k)}), director cost ${pCost(k).toFixed(3)} µs/packet → ${(1 / Math.max(1e-9, pCost(k))).toFixed(2)} Mpps per core (runs: ${pps[k].map((r) => (r.cpuUsPerPkt - pDirect).toFixed(3)).join(', ')})`);
    }
    console.log(`  the XDP program itself (kernel.bpf_stats_enabled run_time_ns / run_cnt): ${median(programNs).toFixed(0)} ns/packet → ${(1000 / Math.max(1, median(programNs))).toFixed(1)} Mpps per core for the program alone (runs: ${programNs.map((x) => x.toFixed(0)).join(', ')} ns)`);
    console.log(`  ratio XDP/nftables director cost per packet: ${(pCost('xdp') / pCost('nft')).toFixed(2)}×; XDP vs Katran's 5 Mpps/core (CoNEXT 2018, physical NIC): ${((1 / pCost('xdp')) / 5).toFixed(2)}×`);
  } finally {
    await lab.close();
    try { execFileSync('sysctl', ['-qw', 'kernel.bpf_stats_enabled=0']); } catch { /* no such sysctl */ }
    try { execFileSync('umount', [bpf], { stdio: 'ignore' }); fs.rmdirSync(bpf); } catch { /* not mounted */ }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Inside the namespace (re-executed there): load SERVICES services, then re-weight one. */
async function loadPhase(): Promise<void> {
  const plane = new NftDataPlane({ nft: libNft(), host: commandKernelHost(), pollMs: 3_600_000 });
  const ops: PlanOp[] = [];
  for (let i = 0; i < SERVICES; i++) {
    const vip = `10.${100 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}`;
    const s = serviceSpec(vip, 80, 'dr');
    ops.push({ op: 'add-service', service: s });
    ops.push({ op: 'add-server', service: s.key, server: serverSpec('10.70.0.11', 80, 3, 'dr') });
    ops.push({ op: 'add-server', service: s.key, server: serverSpec('10.70.0.12', 80, 1, 'dr') });
  }
  const t0 = process.hrtime.bigint();
  const r = await plane.apply({ ops });
  const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.failed.length > 0) throw new Error(`load failed: ${r.failed[0]?.message}`);
  const times: number[] = [];
  const key = ops[0]?.op === 'add-service' ? ops[0].service.key : '';
  for (let i = 0; i < 20; i++) {
    const t = process.hrtime.bigint();
    const w = await plane.apply({ ops: [{ op: 'weight', service: key, key: '10.70.0.11:80', weight: i % 2 === 0 ? 1 : 3 }] });
    if (w.failed.length > 0) throw new Error(w.failed[0]?.message);
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  const elements = Number(execFileSync('nft', ['list', 'map', 'netdev', 'fulcrum', 'slots'], { encoding: 'utf8', maxBuffer: 1 << 28 }).split(' : ').length - 1);
  console.log(`load ${SERVICES} DR services × 2 real servers (${elements} slot elements): ${(loadMs / 1000).toFixed(2)} s in one transaction; RSS ${(process.memoryUsage().rss / 2 ** 20).toFixed(0)} MiB`);
  console.log(`re-weight one real server at that size: p50 ${(times[10] ?? 0).toFixed(1)} ms, max ${(times[19] ?? 0).toFixed(1)} ms (libnftables, one transaction of slot deltas)`);
  await plane.close(0);
}

async function scale(): Promise<void> {
  const ns = 'fbk-load';
  try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }); } catch { /* none */ }
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1']);
    for (const dev of ['lo', 'eth0', 'eth1']) execFileSync('ip', ['-n', ns, 'link', 'set', dev, 'up']);
    execFileSync('ip', ['-n', ns, 'addr', 'add', '10.70.0.2/24', 'dev', 'eth0']);
    execFileSync('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '--load-phase'], { stdio: 'inherit', timeout: 600_000 });
  } finally {
    execFileSync('ip', ['netns', 'del', ns]);
  }
}

if (process.argv.includes('--load-phase')) {
  await loadPhase();
} else {
  if (!isRoot()) {
    console.error('bench:kernel needs root (network namespaces, nftables)');
    process.exit(1);
  }
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${os.release()}, node ${process.version}; ${new Date().toISOString()}`);
  await perRequest();
  await scale();
}
