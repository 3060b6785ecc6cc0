/**
 * Health-check throughput: N real servers checked every second from one process (TCP_CHECK,
 * TCP_CHECK with fulcrum_half_open, and HTTP_GET against nginx on loopback), measuring the checks per second achieved, how
 * late probes start (drift), event-loop delay, CPU per check and memory — and HAProxy's
 * CPU per check for the same servers and interval, as the peer (keepalived's checker
 * cannot start on a kernel without IPVS).
 *
 * Run: `npm run bench:health` (root installs nginx-light and haproxy if missing).
 * Env: BENCH_SERVERS (2000), BENCH_SECONDS (20).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { CheckRunner, systemClock, type Checker, type CheckReport } from '../src/health/index.js';
import { TcpChecker } from '../src/health/checkers/tcp.js';
import { HttpChecker } from '../src/health/checkers/http.js';
import { ensureCommand, nginxCommand } from '../src/testing/peers.js';

const SERVERS = Number(process.env['BENCH_SERVERS'] ?? 2000);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 20);
const PORTS = 20;
const BASE_PORT = 18_000;

function targets(): { address: string; port: number }[] {
  const out: { address: string; port: number }[] = [];
  for (let i = 0; i < SERVERS; i++) out.push({ address: `127.0.${1 + Math.floor(i / (PORTS * 250))}.${1 + (Math.floor(i / PORTS) % 250)}`, port: BASE_PORT + (i % PORTS) });
  return out;
}

function startNginx(dir: string): ChildProcess {
  const listens = Array.from({ length: PORTS }, (_, i) => `listen ${BASE_PORT + i} backlog=4096;`).join(' ');
  const nginx = nginxCommand(dir, { connections: 8192, errorLevel: 'crit', http: `server { ${listens} location = /health { return 200 "ok\\n"; } }` });
  return spawn('taskset', ['-c', String(os.cpus().length > 1 ? 1 : 0), nginx.command, ...nginx.args], { stdio: 'ignore' });
}

/** User and system CPU of a process, ms (clock ticks of 10 ms). */
function cpuMs(pid: number): { user: number; system: number } {
  const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
  return { user: Number(f[11]) * 10, system: Number(f[12]) * 10 };
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

const timing = { delayLoopMs: 1000, warmupMs: 1000, connectTimeoutMs: 2000, retry: 1, delayBeforeRetryMs: 1000, alpha: false, rise: 1 };
const httpCfg = {
  type: 'HTTP_GET' as const, conn: {}, timing: { delayLoop: 1, warmup: 1, connectTimeout: 2, retry: 1, delayBeforeRetry: 1, alpha: false, logAllFailures: false, rise: 1 },
  urls: [{ path: '/health', statusCodes: [[200, 299]] as [number, number][], regexNoMatch: false }], httpProtocol: '1.0' as const,
  fastRecovery: false, enableSni: false, tlsCompliant: false,
};

/** The phases: keepalived's TCP_CHECK, the same with `fulcrum_half_open` (HAProxy's way), HTTP_GET. */
type Kind = 'TCP_CHECK' | 'TCP_CHECK half-open' | 'HTTP_GET';

async function runFulcrum(kind: Kind): Promise<Record<string, number>> {
  const reports: CheckReport[] = [];
  let counting = false;
  const runners = targets().map((t) => {
    const target = { family: 'inet' as const, address: t.address, port: t.port };
    const c: Checker = kind === 'HTTP_GET' ? new HttpChecker(target, httpCfg) : new TcpChecker(target, { halfOpen: kind === 'TCP_CHECK half-open' });
    return new CheckRunner(c, timing, systemClock, (r) => { if (counting) reports.push(r); });
  });
  const h = monitorEventLoopDelay({ resolution: 10 });
  for (const r of runners) r.start();
  await new Promise((r) => setTimeout(r, 3000)); // warmup spreads the first probes over 1 s
  h.enable();
  counting = true;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  counting = false;
  const el = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  h.disable();
  for (const r of runners) r.stop();
  const ok = reports.filter((r) => r.result.ok).length;
  const late = reports.map((r) => r.lateMs);
  return {
    checksPerSec: reports.length / el,
    okShare: reports.length ? ok / reports.length : 0,
    lateP50: pct(late, 50), lateP99: pct(late, 99), lateMax: Math.max(0, ...late),
    // The histogram samples every `resolution` (10 ms) and records the whole interval: subtract it.
    loopDelayP50: Math.max(0, h.percentile(50) / 1e6 - 10), loopDelayP99: Math.max(0, h.percentile(99) / 1e6 - 10), loopDelayMax: Math.max(0, h.max / 1e6 - 10),
    cpuUsPerCheck: ((cpu.user + cpu.system) / reports.length),
    userUsPerCheck: cpu.user / reports.length,
    systemUsPerCheck: cpu.system / reports.length,
    cpuPct: ((cpu.user + cpu.system) / 1000 / (el * 1000)) * 100,
    rssMiB: process.memoryUsage().rss / 1048576,
  };
}

async function runHaproxy(dir: string, kind: Kind): Promise<Record<string, number>> {
  const haproxy = ensureCommand('haproxy', 'haproxy');
  const servers = targets().map((t, i) => `  server s${i} ${t.address}:${t.port} check inter 1s fall 2 rise 1`).join('\n');
  const http = kind === 'HTTP_GET' ? '  option httpchk GET /health\n  http-check expect status 200\n' : '';
  // A listener is required for HAProxy to start; nothing connects to it.
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), `global\n  maxconn 8000\ndefaults\n  mode tcp\n  timeout connect 2s\n  timeout client 10s\n  timeout server 10s\n  timeout check 2s\nlisten l\n  bind 127.0.0.1:17999\n${http}${servers}\n`);
  const p = spawn('taskset', ['-c', '0', haproxy, '-db', '-f', path.join(dir, 'haproxy.cfg')], { stdio: 'ignore' });
  try {
    await new Promise((r) => setTimeout(r, 3000));
    // taskset execs haproxy, and -db keeps it in the foreground without forking: same pid.
    const pid = p.pid ?? 0;
    const c0 = cpuMs(pid);
    await new Promise((r) => setTimeout(r, SECONDS * 1000));
    const c1 = cpuMs(pid);
    const used = c1.user + c1.system - c0.user - c0.system;
    const checks = SERVERS * SECONDS;
    // HAProxy runs one check per server per `inter`: the same rate as Fulcrum's delay_loop 1.
    return {
      checksPerSec: SERVERS, cpuUsPerCheck: (used * 1000) / checks, cpuPct: (used / (SECONDS * 1000)) * 100,
      userUsPerCheck: ((c1.user - c0.user) * 1000) / checks, systemUsPerCheck: ((c1.system - c0.system) * 1000) / checks,
    };
  } finally {
    p.kill('SIGKILL');
  }
}

async function main(): Promise<void> {
  // The checkers run on core 0, as HAProxy does below (and nginx on core 1): pinned the same
  // way, so neither shares nginx's core and their CPU per check is comparable.
  if (os.cpus().length > 1 && process.env['BENCH_HEALTH_PINNED'] !== '1') {
    const r = spawnSync('taskset', ['-c', '0', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
      stdio: 'inherit', env: { ...process.env, BENCH_HEALTH_PINNED: '1' },
    });
    if (r.error) throw r.error;
    process.exitCode = r.status ?? 1;
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-health-'));
  const nginx = startNginx(dir);
  try {
    await new Promise((r) => setTimeout(r, 1000));
    console.log(`# health checks: ${SERVERS} real servers, delay_loop 1 s, ${SECONDS} s measured; nginx on core 1, the checkers (Fulcrum's, then HAProxy's) on core 0`);
    // HAProxy's layer-4 check is the same in both TCP phases (it is half-open already: TCP_QUICKACK
    // off, then SO_LINGER 0 at the close); it runs again in each so every ratio is a pair.
    for (const kind of ['TCP_CHECK', 'TCP_CHECK half-open', 'HTTP_GET'] as const) {
      const f = await runFulcrum(kind);
      const h = await runHaproxy(dir, kind);
      console.log(`${kind} fulcrum: ${f['checksPerSec']?.toFixed(0)} checks/s, ok ${((f['okShare'] ?? 0) * 100).toFixed(1)}%, start lateness p50/p99/max ${f['lateP50']?.toFixed(1)}/${f['lateP99']?.toFixed(1)}/${f['lateMax']?.toFixed(1)} ms, ` +
        `event-loop delay p50/p99/max ${f['loopDelayP50']?.toFixed(1)}/${f['loopDelayP99']?.toFixed(1)}/${f['loopDelayMax']?.toFixed(1)} ms, CPU ${f['cpuPct']?.toFixed(0)}% (${f['cpuUsPerCheck']?.toFixed(0)} µs/check: user ${f['userUsPerCheck']?.toFixed(0)}, system ${f['systemUsPerCheck']?.toFixed(0)}), RSS ${f['rssMiB']?.toFixed(0)} MiB`);
      console.log(`${kind} haproxy: ${h['checksPerSec']} checks/s, CPU ${h['cpuPct']?.toFixed(0)}% (${h['cpuUsPerCheck']?.toFixed(0)} µs/check: user ${h['userUsPerCheck']?.toFixed(0)}, system ${h['systemUsPerCheck']?.toFixed(0)})`);
      console.log(`${kind} ratio fulcrum/haproxy CPU per check: ${((f['cpuUsPerCheck'] ?? 0) / (h['cpuUsPerCheck'] ?? 1)).toFixed(2)}×`);
    }
  } finally {
    // SIGTERM: nginx's master stops its workers (SIGKILL would leave them orphaned).
    nginx.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(r, 3000); nginx.once('exit', () => { clearTimeout(t); r(undefined); }); });
    if (nginx.exitCode === null && nginx.signalCode === null) nginx.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

void main();
