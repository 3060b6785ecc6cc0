/**
 * The kernel data plane's costs, in network namespaces (root):
 *
 * 1. Director CPU per request, LVS-DR against HAProxy (mode tcp) on the same topology: a
 *    client running wrk, a director, two real servers running nginx. The director's own
 *    work in DR mode is softirq time no process owns, so both are measured the same way:
 *    the machine's CPU time (/proc/stat: user+system+irq+softirq) per request through the
 *    director, minus the same figure for wrk talking to one real server directly. The
 *    difference is what putting the director in the path costs.
 * 2. Control plane at scale: one plan with 10,000 DR services (2 real servers each, wrr) —
 *    the time to load it into the kernel; then re-weighting one real server of one service
 *    at that size (the median of 20). Runs inside a namespace through libnftables (FFI).
 *
 * Run: `npm run bench:kernel`. Env: BENCH_SECONDS (5 per load run), BENCH_SERVICES (10000).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLab, isRoot } from '../src/testing/netns.js';
import { ensureCommand } from '../src/testing/peers.js';
import { listening, realserver, startDirector } from '../src/testing/lvs-lab.js';
import { NftDataPlane } from '../src/dataplane/nft/index.js';
import { serverSpec, serviceSpec } from '../src/dataplane/compliance.js';
import { commandKernelHost, libNft } from '../src/sys/index.js';
import type { PlanOp } from '../src/dataplane/index.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 5);
const SERVICES = Number(process.env['BENCH_SERVICES'] ?? 10_000);
const VIP = '10.69.0.100';

function cpuTicks(): number {
  const f = (fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0);
}
const HZ = 100;

interface Run { readonly requests: number; readonly rps: number; readonly cpuUsPerReq: number }

function wrk(lab: ReturnType<typeof createLab>, url: string): Run {
  const before = cpuTicks();
  const out = lab.exec('c', 'wrk', ['-t', '1', '-c', '32', '-d', `${SECONDS}s`, url], (SECONDS + 20) * 1000);
  const ticks = cpuTicks() - before;
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  return { requests, rps: requests / SECONDS, cpuUsPerReq: ((ticks / HZ) * 1e6) / Math.max(1, requests) };
}

async function perRequest(): Promise<void> {
  for (const [bin, pkg] of [['wrk', 'wrk'], ['nginx', 'nginx-light'], ['haproxy', 'haproxy'], ['nft', 'nftables']] as const) ensureCommand(bin, pkg);
  const lab = createLab('fbk');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-kernel-'));
  try {
    lab.host('c', '10.69.0.1');
    lab.host('d', '10.69.0.2');
    lab.exec('d', 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
    for (const [name, addr] of [['r1', '10.69.0.11'], ['r2', '10.69.0.12']] as const) {
      lab.host(name, addr);
      realserver(lab, name, ['start', '--vip', VIP, '--state-dir', path.join(dir, name)]);
      const conf = path.join(dir, `${name}.nginx.conf`);
      fs.writeFileSync(conf, `worker_processes 1; pid ${dir}/${name}.pid; error_log stderr crit; events { worker_connections 1024; }\nhttp { access_log off; server { listen 80; location / { return 200 "${name}\\n"; } } }\n`);
      lab.spawn(name, 'nginx', ['-c', conf, '-g', 'daemon off;']);
    }
    await new Promise((r) => setTimeout(r, 500));
    const direct = wrk(lab, 'http://10.69.0.11/');
    const haproxyConf = path.join(dir, 'haproxy.cfg');
    fs.writeFileSync(haproxyConf, `global\n  maxconn 4000\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\nfrontend f\n  bind 10.69.0.2:8080\n  default_backend b\nbackend b\n  balance roundrobin\n  server r1 10.69.0.11:80\n  server r2 10.69.0.12:80\n`);
    const hap = lab.spawn('d', 'haproxy', ['-f', haproxyConf, '-db']);
    await listening(lab, 'd', 8080);
    const viaHaproxy = wrk(lab, 'http://10.69.0.2:8080/');
    hap.kill('SIGKILL');
    const d = await startDirector(lab, 'd', dir, `virtual_server ${VIP} 80 {\n  lb_algo rr\n  lb_kind DR\n  real_server 10.69.0.11 80 {\n  }\n  real_server 10.69.0.12 80 {\n  }\n}\n`);
    const viaDr = wrk(lab, `http://${VIP}/`);
    d.child.kill('SIGTERM');
    const extra = (r: Run): number => r.cpuUsPerReq - direct.cpuUsPerReq;
    console.log(`direct to one real server: ${direct.rps.toFixed(0)} req/s, ${direct.cpuUsPerReq.toFixed(1)} µs CPU/request (machine)`);
    console.log(`HAProxy 2.6 mode tcp:      ${viaHaproxy.rps.toFixed(0)} req/s, ${viaHaproxy.cpuUsPerReq.toFixed(1)} µs → director cost ${extra(viaHaproxy).toFixed(1)} µs/request`);
    console.log(`Fulcrum DR (nftables):     ${viaDr.rps.toFixed(0)} req/s, ${viaDr.cpuUsPerReq.toFixed(1)} µs → director cost ${extra(viaDr).toFixed(1)} µs/request`);
    console.log(`ratio DR / HAProxy director CPU per request: ${(extra(viaDr) / extra(viaHaproxy)).toFixed(2)}×`);
  } finally {
    await lab.close();
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
  console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${os.release()}, node ${process.version}; wrk -t1 -c32 ${SECONDS}s per run`);
  await perRequest();
  await scale();
}
