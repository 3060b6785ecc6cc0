/**
 * Proxy benchmark: Fulcrum's userspace proxy against HAProxy (`mode tcp`) in the same run,
 * in front of the same real servers (one nginx, two ports), with the same pinning: the
 * proxy under test on core 0, nginx and the load generator (wrk) on core 1.
 *
 * Measured per proxy: keep-alive requests/s, new connections/s (Connection: close), bulk
 * MB/s on a 1 MiB body, p50/p99 latency, and proxy CPU-seconds per request (utime+stime of
 * every thread, from /proc, over the run). Runs alternate Fulcrum/HAProxy per scenario.
 * Each scenario twice: on one core (Fulcrum --workers 1 against HAProxy nbthread 1), and
 * with 2 workers against nbthread 2, everything sharing both cores (a 2-core machine cannot
 * give the proxy 2 cores of its own).
 *
 * Run: npm run bench:proxy   (BENCH_SECONDS=N to change the run length, default 10; BENCH_REPS=N,
 * default 3; BENCH_ONLY=new to run only the scenarios whose name contains it; BENCH_NO_PUMP=1 to
 * also run Fulcrum without its native pump)
 * Needs haproxy, nginx and wrk (installed with apt-get when missing and running as root).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureCommand, nginxCommand } from '../src/testing/peers.js';
import { freePort } from '../src/testing/net.js';

const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
/** Each scenario runs this many times, proxies alternating; the median run is reported. */
const REPS = Number(process.env['BENCH_REPS'] ?? 3);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** haproxy, nginx and wrk: installed with apt-get when missing (as root), else a clear error. */
function ensureTools(): void {
  for (const [cmd, pkg] of [['haproxy', 'haproxy'], ['nginx', 'nginx-light'], ['wrk', 'wrk']] as const) ensureCommand(cmd, pkg);
}

async function waitPort(port: number, ms = 10000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); r(true); });
      s.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > end) throw new Error(`port ${port} did not open`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function cpuSeconds(pid: number): number {
  // utime + stime of the process and its threads, clock ticks → seconds.
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function treeCpu(pids: readonly number[]): number {
  return pids.reduce((a, p) => a + cpuSeconds(p), 0);
}

interface WrkResult { rps: number; mbps: number; p50ms: number; p99ms: number; requests: number }

function toMs(v: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'us' ? n / 1000 : m[2] === 's' ? n * 1000 : n;
}

function toMB(v: string): number {
  const m = /^([\d.]+)([KMG]?B)$/.exec(v.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  return m[2] === 'GB' ? n * 1024 : m[2] === 'KB' ? n / 1024 : m[2] === 'B' ? n / 1024 / 1024 : n;
}

function wrk(url: string, conns: number, extra: string[], cpus: string, seconds = SECONDS): WrkResult {
  const out = execFileSync('taskset', ['-c', cpus, 'wrk', '-t1', `-c${conns}`, `-d${seconds}s`, '--latency', ...extra, url], { encoding: 'utf8' });
  const num = (re: RegExp): string => re.exec(out)?.[1] ?? 'NaN';
  return {
    rps: Number(num(/Requests\/sec:\s+([\d.]+)/)),
    mbps: toMB(num(/Transfer\/sec:\s+([\d.]+[KMG]?B)/)),
    p50ms: toMs(num(/\s50%\s+([\d.]+\w+)/)),
    p99ms: toMs(num(/\s99%\s+([\d.]+\w+)/)),
    requests: Number(num(/(\d+) requests in/)),
  };
}

interface Proxy { name: string; port: number; pids(): number[]; stop(): Promise<void> }

function childPids(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).trim().split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function stopChild(p: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (p.exitCode !== null || p.signalCode !== null) return resolve();
    p.once('exit', () => resolve());
    p.kill('SIGTERM');
    setTimeout(() => p.kill('SIGKILL'), 5000).unref();
  });
}

async function startFulcrum(dir: string, backends: number[], cpus: string, workers: number, relay: 'epoll' | 'node' = 'epoll', splice = true, pump = true): Promise<Proxy> {
  const port = await freePort();
  const conf = path.join(dir, `fulcrum-${port}.conf`);
  fs.writeFileSync(conf, `virtual_server 127.0.0.1 ${port} {\n lb_algo rr\n lb_kind PROXY\n${backends.map((b) => ` real_server 127.0.0.1 ${b} {\n }\n`).join('')}}\n`);
  const p = spawn('taskset', ['-c', cpus, process.execPath, path.join(ROOT, 'bin', 'fulcrum.js'), 'run', '-f', conf, '--log-level', 'warn', '--drain-timeout', '0', '--workers', String(workers), '--relay', relay, ...(splice ? [] : ['--no-splice'])], { stdio: ['ignore', 'ignore', 'inherit'], env: pump ? process.env : { ...process.env, FULCRUM_NATIVE_PUMP: 'off' } });
  await waitPort(port);
  const pid = p.pid ?? 0;
  return { name: `${workers > 1 ? `Fulcrum ×${workers}` : 'Fulcrum'}${relay === 'node' ? ' (relay node)' : ''}${splice ? '' : ' (--no-splice)'}${pump ? '' : ' (no native pump)'}`, port, pids: () => [pid, ...childPids(pid)], stop: () => stopChild(p) };
}

async function startHaproxy(dir: string, backends: number[], cpus: string, threads: number, splice = false): Promise<Proxy> {
  const port = await freePort();
  const cfg = path.join(dir, `haproxy-${port}.cfg`);
  fs.writeFileSync(cfg, `global
  nbthread ${threads}
  maxconn 9000${splice ? '\n  maxpipes 512' : ''}
defaults
  mode tcp${splice ? '\n  option splice-auto' : ''}
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
${backends.map((b, i) => `  server rs${i} 127.0.0.1:${b}`).join('\n')}
`);
  const p = spawn('taskset', ['-c', cpus, 'haproxy', '-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitPort(port);
  const pid = p.pid ?? 0;
  return { name: `${threads > 1 ? `HAProxy ×${threads}` : 'HAProxy'}${splice ? ' (splice-auto)' : ''}`, port, pids: () => [pid, ...childPids(pid)], stop: () => stopChild(p) };
}

async function startNginx(dir: string, cpus: string): Promise<{ ports: number[]; stop(): Promise<void> }> {
  const ports = [await freePort(), await freePort()];
  const www = path.join(dir, 'www');
  fs.mkdirSync(www, { recursive: true });
  fs.writeFileSync(path.join(www, 'small'), 'hello from nginx\n');
  fs.writeFileSync(path.join(www, '1m'), Buffer.alloc(1024 * 1024, 0x78));
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(www, 0o755);
  const nginx = nginxCommand(dir, {
    connections: 20000, errorLevel: 'warn',
    http: `keepalive_requests 1000000; sendfile on;\n  ${ports.map((p) => `server { listen 127.0.0.1:${p} backlog=4096; root ${www}; location = / { try_files /small =404; } }`).join('\n  ')}`,
  });
  const p = spawn('taskset', ['-c', cpus, nginx.command, ...nginx.args], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (const port of ports) await waitPort(port);
  return { ports, stop: () => stopChild(p) };
}

interface Row { scenario: string; proxy: string; value: number; unit: string; cpuPerReq: number; p50: number; p99: number }

type Run = (port: number, seconds?: number) => WrkResult;

async function measure(proxies: (() => Promise<Proxy>)[], scenario: string, run: Run, pick: (r: WrkResult) => number, unit: string): Promise<Row[]> {
  const runs = new Map<string, Row[]>();
  for (let rep = 0; rep < REPS; rep++) {
    for (const start of proxies) {
      const px = await start();
      try {
        run(px.port, 3); // warm-up: JIT, connection pools
        const pids = px.pids();
        const c0 = treeCpu(pids);
        const r = run(px.port);
        const cpu = treeCpu(pids) - c0;
        const row = { scenario, proxy: px.name, value: pick(r), unit, cpuPerReq: r.requests > 0 ? cpu / r.requests : NaN, p50: r.p50ms, p99: r.p99ms };
        runs.set(px.name, [...(runs.get(px.name) ?? []), row]);
        process.stderr.write(`${scenario} ${px.name} #${rep + 1}: ${pick(r).toFixed(1)} ${unit}, p50 ${r.p50ms} ms, p99 ${r.p99ms} ms, ${(cpu / r.requests * 1e6).toFixed(1)} µs CPU/request\n`);
      } finally {
        await px.stop();
      }
    }
  }
  // The median run by throughput, per proxy.
  return [...runs.values()].map((rs) => [...rs].sort((a, b) => a.value - b.value)[Math.floor(rs.length / 2)]!);
}

async function main(): Promise<void> {
  ensureTools();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-'));
  const nginx = await startNginx(dir, '1');
  const rows: Row[] = [];
  try {
    const b = nginx.ports;
    // One core: the proxy on core 0, nginx and wrk on core 1.
    // Fulcrum's default relay (epoll) and Node's sockets (--relay node), for the difference.
    const one = [(): Promise<Proxy> => startFulcrum(dir, b, '0', 1), (): Promise<Proxy> => startHaproxy(dir, b, '0', 1), (): Promise<Proxy> => startFulcrum(dir, b, '0', 1, 'node')];
    // Two workers against two threads: everything shares both cores (a 2-core machine cannot
    // give the proxy two cores of its own), the same for both proxies.
    const two = [(): Promise<Proxy> => startFulcrum(dir, b, '0,1', 2), (): Promise<Proxy> => startHaproxy(dir, b, '0,1', 2)];
    // BENCH_NO_PUMP=1: also Fulcrum with its system calls made one by one through koffi
    // (FULCRUM_NATIVE_PUMP=off), for the native pump's difference.
    if (process.env['BENCH_NO_PUMP'] === '1') {
      one.push((): Promise<Proxy> => startFulcrum(dir, b, '0', 1, 'epoll', true, false));
      two.push((): Promise<Proxy> => startFulcrum(dir, b, '0,1', 2, 'epoll', true, false));
    }
    // Bulk also with copying instead of splicing (Fulcrum --no-splice), and against HAProxy
    // splicing too (option splice-auto; its default copies, like the HAProxy rows above).
    const spliceVariants = (cpus: string, n: number): (() => Promise<Proxy>)[] => [
      (): Promise<Proxy> => startFulcrum(dir, b, cpus, n, 'epoll', false), (): Promise<Proxy> => startHaproxy(dir, b, cpus, n, true),
    ];
    const scenarios: [string, (cpus: string) => Run, (r: WrkResult) => number, string][] = [
      ['keep-alive requests/s', (cpus) => (port, sec) => wrk(`http://127.0.0.1:${port}/`, 50, [], cpus, sec), (r) => r.rps, 'req/s'],
      ['new connections/s', (cpus) => (port, sec) => wrk(`http://127.0.0.1:${port}/`, 50, ['-H', 'Connection: close'], cpus, sec), (r) => r.rps, 'conn/s'],
      ['bulk 1 MiB', (cpus) => (port, sec) => wrk(`http://127.0.0.1:${port}/1m`, 8, [], cpus, sec), (r) => r.mbps, 'MB/s'],
    ];
    // BENCH_ONLY=new (a substring of the scenario names) runs only the matching scenarios.
    const only = process.env['BENCH_ONLY'];
    const chosen = scenarios.filter(([name]) => only === undefined || name.includes(only));
    const bulk = (name: string): boolean => name.startsWith('bulk');
    for (const [name, run, pick, unit] of chosen) rows.push(...await measure([...one, ...bulk(name) ? spliceVariants('0', 1) : []], `${name} (1 core)`, run('1'), pick, unit));
    for (const [name, run, pick, unit] of chosen) rows.push(...await measure([...two, ...bulk(name) ? spliceVariants('0,1', 2) : []], `${name} (2 workers / 2 threads)`, run('0,1'), pick, unit));
  } finally {
    await nginx.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const byScenario = new Map<string, Row[]>();
  for (const r of rows) byScenario.set(r.scenario, [...(byScenario.get(r.scenario) ?? []), r]);
  console.log(`\nProxy benchmark — ${os.cpus()[0]?.model ?? 'cpu'} ×${os.cpus().length}, Node ${process.version}, ${new Date().toISOString().slice(0, 10)}, ${SECONDS} s per run, median of ${REPS}\n`);
  console.log('| scenario | proxy | result | p50 | p99 | CPU µs/request | Fulcrum/HAProxy: result, CPU/request, p99 |');
  console.log('| --- | --- | --- | --- | --- | --- | --- |');
  for (const [scenario, rs] of byScenario) {
    const hap = rs.find((r) => r.proxy.startsWith('HAProxy'));
    for (const r of rs) {
      const ratio = hap && r.proxy.startsWith('Fulcrum')
        ? `${(r.value / hap.value).toFixed(2)}×, ${(r.cpuPerReq / hap.cpuPerReq).toFixed(2)}×, ${(r.p99 / hap.p99).toFixed(2)}×` : '';
      console.log(`| ${scenario} | ${r.proxy} | ${r.value.toFixed(1)} ${r.unit} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${(r.cpuPerReq * 1e6).toFixed(1)} | ${ratio} |`);
    }
  }
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exitCode = 1;
});
