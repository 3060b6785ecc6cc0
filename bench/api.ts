/**
 * Operations cost with many real servers: a Prometheus scrape of /metrics and a runtime
 * weight change, for `fulcrum run` and for HAProxy (its built-in prometheus-exporter and
 * `set weight` on its runtime socket) holding the same servers, in the same run.
 *
 * Fulcrum's weight change is saved to the state file (fsync) before it applies, and goes
 * through the reconciler; HAProxy's is in memory only — the ratio includes that difference.
 *
 * Run: `npm run bench:api` (root installs haproxy if missing).
 * Env: BENCH_SERVERS (1000), BENCH_SCRAPES (50), BENCH_CHANGES (200).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { apiRequest, type ApiTarget } from '../src/api/client.js';
import { startDaemon } from '../src/testing/daemon.js';
import { freePort } from '../src/testing/net.js';
import { ensureCommand } from '../src/testing/peers.js';

const SERVERS = Number(process.env['BENCH_SERVERS'] ?? 1000);
const SCRAPES = Number(process.env['BENCH_SCRAPES'] ?? 50);
const CHANGES = Number(process.env['BENCH_CHANGES'] ?? 200);
export const PER_SERVICE = 100;
const SERVICES = Math.ceil(SERVERS / PER_SERVICE);

export function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

export const server = (svc: number, i: number): { address: string; port: number } => ({ address: `127.0.${10 + svc}.${1 + (i % 250)}`, port: 8000 + Math.floor(i / 250) });

async function timed(n: number, fn: (i: number) => Promise<number>): Promise<{ ms: number[]; bytes: number }> {
  const ms: number[] = [];
  let bytes = 0;
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    bytes = await fn(i);
    ms.push(performance.now() - t);
  }
  return { ms, bytes };
}

export function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** One command on HAProxy's runtime socket. */
export function haproxyCommand(sock: string, cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let out = '';
    s.on('connect', () => s.end(`${cmd}\n`));
    s.on('data', (c: Buffer) => { out += c.toString(); });
    s.on('end', () => resolve(out));
    s.on('error', reject);
  });
}

/** keepalived.conf for Fulcrum: one wrr PROXY virtual server per port, PER_SERVICE real servers each. */
export function fulcrumConfig(vports: readonly number[]): string {
  return vports.map((vp, s) => `virtual_server 127.0.0.1 ${vp} {\n  lb_algo wrr\n  lb_kind PROXY\n${Array.from({ length: PER_SERVICE }, (_, i) => {
    const r = server(s, i);
    return `  real_server ${r.address} ${r.port} { weight 1 }\n`;
  }).join('')}}\n`).join('');
}

/** The same servers for HAProxy, with its prometheus-exporter on `statsPort` and an admin socket. */
export function haproxyConfig(vports: readonly number[], sock: string, statsPort: number): string {
  return [
    'global', `  stats socket ${sock} level admin`, '  maxconn 4000',
    'defaults', '  mode tcp', '  timeout connect 1s', '  timeout client 10s', '  timeout server 10s',
    'frontend prom', '  mode http', `  bind 127.0.0.1:${statsPort}`, '  http-request use-service prometheus-exporter if { path /metrics }',
    ...vports.flatMap((vp, s) => [
      `listen vs${s}`, `  bind 127.0.0.1:${vp}`, '  balance roundrobin',
      ...Array.from({ length: PER_SERVICE }, (_, i) => {
        const r = server(s, i);
        return `  server rs${i} ${r.address}:${r.port} weight 1`;
      }),
    ]),
  ].join('\n');
}

async function fulcrum(vports: number[]): Promise<Record<string, number>> {
  const conf = fulcrumConfig(vports);
  const apiPort = await freePort();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-api-'));
  const tokenFile = path.join(dir, 'token');
  fs.writeFileSync(tokenFile, 'bench-token-0123456789abcdef\n');
  const d = await startDaemon(conf, { args: ['--api-listen', `127.0.0.1:${apiPort}`, '--api-token-file', tokenFile] });
  try {
    const unix: ApiTarget = { socketPath: path.join(d.dir, 'fulcrum.sock') };
    await d.waitLog((l) => l.event === 'api', 10_000, 'the API');
    // /metrics over TCP needs the token (as a Prometheus would send it).
    const tcp: ApiTarget = { url: `http://127.0.0.1:${apiPort}`, token: 'bench-token-0123456789abcdef' };
    const scrapeOnce = async (): Promise<number> => {
      const r = await apiRequest(tcp, 'GET', '/metrics');
      if (r.status !== 200) throw new Error(`/metrics answered ${r.status}: ${r.text.slice(0, 200)}`);
      return r.text.length;
    };
    await scrapeOnce();
    const scrape = await timed(SCRAPES, scrapeOnce);
    const key = encodeURIComponent(`tcp 127.0.0.1:${vports[0] ?? 0}`);
    const first = server(0, 0);
    const change = await timed(CHANGES, async (i) => {
      const r = await apiRequest(unix, 'PATCH', `/v1/services/${key}/servers/${first.address}:${first.port}`, { weight: 1 + (i % 5) });
      if (r.status !== 200) throw new Error(r.text);
      return 0;
    });
    return {
      scrapeP50: pct(scrape.ms, 50), scrapeP99: pct(scrape.ms, 99), scrapeBytes: scrape.bytes,
      changeP50: pct(change.ms, 50), changeP99: pct(change.ms, 99), rssMiB: rssOf(d.proc.pid ?? 0),
    };
  } finally {
    await d.cleanup();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function haproxy(vports: number[]): Promise<Record<string, number>> {
  const bin = ensureCommand('haproxy', 'haproxy');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-haproxy-'));
  const sock = path.join(dir, 'admin.sock');
  const statsPort = await freePort();
  const cfg = haproxyConfig(vports, sock, statsPort);
  fs.writeFileSync(path.join(dir, 'haproxy.cfg'), `${cfg}\n`);
  const child = spawn(bin, ['-f', path.join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    for (let i = 0; i < 200 && !fs.existsSync(sock); i++) await new Promise((r) => setTimeout(r, 25));
    const tcp: ApiTarget = { url: `http://127.0.0.1:${statsPort}` };
    for (let i = 0; ; i++) {
      try {
        await apiRequest(tcp, 'GET', '/metrics');
        break;
      } catch (err: unknown) {
        if (i > 200 || child.exitCode !== null) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    const scrape = await timed(SCRAPES, async () => (await apiRequest(tcp, 'GET', '/metrics')).text.length);
    const change = await timed(CHANGES, async (i) => {
      const out = await haproxyCommand(sock, `set weight vs0/rs0 ${1 + (i % 5)}`);
      if (out.trim() !== '') throw new Error(out);
      return 0;
    });
    return {
      scrapeP50: pct(scrape.ms, 50), scrapeP99: pct(scrape.ms, 99), scrapeBytes: scrape.bytes,
      changeP50: pct(change.ms, 50), changeP99: pct(change.ms, 99), rssMiB: rssOf(child.pid ?? 0),
    };
  } finally {
    child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const vports: number[] = [];
  for (let i = 0; i < SERVICES; i++) vports.push(await freePort());
  console.log(`bench:api — ${SERVICES} services × ${PER_SERVICE} real servers = ${SERVICES * PER_SERVICE}; ${SCRAPES} scrapes, ${CHANGES} weight changes; ${os.cpus().length} cores, node ${process.version}`);
  const f = await fulcrum(vports);
  const h = await haproxy(vports);
  const row = (name: string, r: Record<string, number>): string =>
    `${name.padEnd(8)} scrape p50 ${r['scrapeP50']?.toFixed(1)} ms p99 ${r['scrapeP99']?.toFixed(1)} ms, ${((r['scrapeBytes'] ?? 0) / 1024).toFixed(0)} KiB; weight change p50 ${r['changeP50']?.toFixed(2)} ms p99 ${r['changeP99']?.toFixed(2)} ms; RSS ${r['rssMiB']?.toFixed(0)} MiB`;
  console.log(row('fulcrum', f));
  console.log(row('haproxy', h));
  const ratio = (k: string): string => ((f[k] ?? 0) / (h[k] ?? 1)).toFixed(2);
  console.log(`ratio fulcrum/haproxy: scrape p50 ${ratio('scrapeP50')}×, p99 ${ratio('scrapeP99')}×; weight change p50 ${ratio('changeP50')}×, p99 ${ratio('changeP99')}×; RSS ${ratio('rssMiB')}×`);
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
