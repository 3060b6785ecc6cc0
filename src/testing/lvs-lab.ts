/**
 * LVS labs for the kernel data plane's end-to-end tests: a client, a director and real
 * servers on one bridge (network namespaces from netns.ts), real servers answering HTTP
 * with their name and the client address they saw, and `fulcrum run` on the director.
 */
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { repoRoot } from './index.js';
import assert from 'node:assert/strict';
import { type Lab, testLab, until } from './netns.js';
import { ensureCommand } from './peers.js';
import { startFulcrum, type Proc } from './vrrp-lab.js';
import { objectKind } from '../dataplane/nft/ruleset.js';

/** Every package the kernel tests use, installed once (root, CI). */
export function ensureKernelTools(): void {
  ensureCommand('nft', 'nftables');
  ensureCommand('tcpdump', 'tcpdump');
  ensureCommand('curl', 'curl');
  ensureCommand('arping', 'arping');
}

type TestContext = { after(fn: () => Promise<void>): void };

/** Add `address` to `host`'s eth0: a /32 or /128, or with `prefix`. IPv6 without DAD. */
export function addAddress(lab: Lab, host: string, address: string, prefix?: number): void {
  const v6 = address.includes(':');
  const len = prefix ?? (v6 ? 128 : 32);
  // An IPv6 /128 (a VIP) deprecated, as VRRP adds it (src/sys/netlink.ts): never a source.
  lab.exec(host, 'ip', [...(v6 ? ['-6'] : []), 'addr', 'add', `${address}/${len}`, 'dev', 'eth0', ...(v6 ? ['nodad'] : []), ...(v6 && len === 128 ? ['preferred_lft', '0'] : [])]);
}

/**
 * An LVS-DR lab on one segment: client c (.1), director d (.2), real servers r1…rN (.11…)
 * on `${net}.0/24` and `${v6}::/64`; the VIP on d's eth0 (unless `directorVip` is false:
 * VRRP will put it there), and each real server prepared by `fulcrum realserver start`.
 */
export function drLab(t: TestContext, prefix: string, o: { net: string; v6: string; vip: string; servers?: number; directorVip?: boolean }): Lab {
  ensureKernelTools();
  const lab = testLab(t, prefix);
  const servers = Array.from({ length: o.servers ?? 2 }, (_, i) => [`r${i + 1}`, 11 + i] as const);
  for (const [name, n] of [['c', 1], ['d', 2], ...servers] as const) {
    lab.host(name, `${o.net}.${n}`);
    addAddress(lab, name, `${o.v6}::${n}`, 64);
  }
  if (o.directorVip !== false) addAddress(lab, 'd', o.vip);
  for (const [name] of servers) {
    const r = realserver(lab, name, ['start', '--vip', o.vip]);
    assert.equal(r.code, 0, r.out);
  }
  return lab;
}

/**
 * An LVS-NAT lab: client c on `${net}.1.0/24` and `${v6}:1::/64`, real servers r1, r2 on
 * `${net}.0.0/24` and `${v6}::/64`, the director d on both with the VIP and forwarding on.
 * With `viaDirector` the real servers route back through d; without, they cannot reach the
 * client (full NAT).
 */
export function natLab(t: TestContext, prefix: string, o: { net: string; v6: string; vip: string; viaDirector?: boolean }): Lab {
  ensureKernelTools();
  const lab = testLab(t, prefix);
  lab.host('c', `${o.net}.1.1`);
  addAddress(lab, 'c', `${o.v6}:1::1`, 64);
  lab.host('d', `${o.net}.0.2`);
  addAddress(lab, 'd', `${o.net}.1.2`, 24);
  addAddress(lab, 'd', `${o.v6}::2`, 64);
  addAddress(lab, 'd', `${o.v6}:1::2`, 64);
  addAddress(lab, 'd', o.vip);
  lab.exec('d', 'sysctl', ['-qw', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);
  for (const [name, n] of [['r1', 11], ['r2', 12]] as const) {
    lab.host(name, `${o.net}.0.${n}`);
    addAddress(lab, name, `${o.v6}::${n}`, 64);
    if (o.viaDirector !== false) {
      lab.exec(name, 'ip', ['route', 'add', 'default', 'via', `${o.net}.0.2`]);
      lab.exec(name, 'ip', ['-6', 'route', 'add', 'default', 'via', `${o.v6}::2`]);
    }
  }
  return lab;
}

/** HTTP servers (httpServer) on each of `hosts` and `ports`, listening before this resolves. */
export async function serveHttp(lab: Lab, ports: readonly number[], hosts: readonly string[] = ['r1', 'r2']): Promise<void> {
  for (const h of hosts) for (const p of ports) httpServer(lab, h, p);
  for (const h of hosts) for (const p of ports) await listening(lab, h, p);
}

/** An HTTP server in `host` on `port` answering "<name> <client address>". */
export function httpServer(lab: Lab, host: string, port: number, name = host): Proc['child'] {
  const js = `require('http').createServer((q,s)=>{s.setHeader('connection', q.headers['connection']==='close'?'close':'keep-alive');s.end(${JSON.stringify(name)}+' '+q.socket.remoteAddress.replace(/^::ffff:/,'')+'\\n')}).listen(${port},'::')`;
  return lab.spawn(host, process.execPath, ['-e', js]);
}

/**
 * A UDP server in `host` bound to `address`:`port` answering every datagram with
 * "<name> <client address>". A DR real server binds the VIP, so its replies leave from it.
 */
export function udpServer(lab: Lab, host: string, address: string, port: number, name = host): Proc['child'] {
  const js = `const s=require('dgram').createSocket(${JSON.stringify(address.includes(':') ? 'udp6' : 'udp4')});s.on('message',(m,r)=>s.send(${JSON.stringify(name)}+' '+r.address,r.port,r.address));s.bind(${port},${JSON.stringify(address)})`;
  return lab.spawn(host, process.execPath, ['-e', js]);
}

/**
 * `count` UDP questions from `host` to `address`:`port`, each from a new socket (a new flow),
 * waiting up to `timeoutMs` for each answer: the answers, "timeout" for none.
 */
export function udpAsk(lab: Lab, host: string, address: string, port: number, count: number, timeoutMs = 1000): string[] {
  const js = `const d=require('dgram');const out=[];(async()=>{for(let i=0;i<${count};i++){out.push(await new Promise((res)=>{const s=d.createSocket(${JSON.stringify(address.includes(':') ? 'udp6' : 'udp4')});const t=setTimeout(()=>{s.close();res('timeout')},${timeoutMs});s.on('message',(m)=>{clearTimeout(t);s.close();res(m.toString())});s.send('q',${port},${JSON.stringify(address)})}))}console.log(JSON.stringify(out))})()`;
  return JSON.parse(lab.exec(host, process.execPath, ['-e', js], count * timeoutMs + 5000)) as string[];
}

/** A tcpdump on `host`'s eth0 with `filter`, started (listening) before it resolves; `stop()` gives its lines. */
export async function capture(lab: Lab, host: string, filter: string): Promise<{ stop(): Promise<string[]> }> {
  const dump = lab.spawn(host, 'tcpdump', ['-i', 'eth0', '-n', '-l', '-q', filter]);
  const seen: string[] = [];
  let ready = false;
  dump.stdout?.on('data', (b: Buffer) => seen.push(...b.toString().split('\n').filter(Boolean)));
  dump.stderr?.on('data', (b: Buffer) => { if (b.toString().includes('listening on')) ready = true; });
  await until(() => ready, 10_000, `tcpdump listening on ${host}`);
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 300));
      dump.kill('SIGINT');
      return seen;
    },
  };
}

/** A capture's packets to `vip`:`port` (requests) and from it (replies), as tcpdump -q prints them. */
export function byDirection(lines: readonly string[], vip: string, port: number): { requests: string[]; replies: string[] } {
  return { requests: lines.filter((l) => l.includes(`> ${vip}.${port}:`)), replies: lines.filter((l) => l.includes(`${vip}.${port} >`)) };
}

/** Wait until `host` listens on TCP `port`. */
export async function listening(lab: Lab, host: string, port: number): Promise<void> {
  await until(() => {
    try {
      return lab.exec(host, 'ss', ['-Htln', `sport = :${port}`]).trim() !== '';
    } catch {
      return false;
    }
  }, 5000, `${host} listening on ${port}`, 20);
}

/** One HTTP GET from `host` with curl: the body, or null on failure. */
export function curl(lab: Lab, host: string, url: string, timeoutS = 2): string | null {
  try {
    return lab.exec(host, 'curl', ['-s', '-f', '-g', '-m', String(timeoutS), url], (timeoutS + 2) * 1000).trim();
  } catch {
    return null;
  }
}

/**
 * curl `url` from `host` until `servers` different real servers have answered, and at least
 * `atLeast` answers came back (failures are retried); every answer, in order.
 */
export async function answersFromAll(lab: Lab, host: string, url: string, servers: number, atLeast = servers): Promise<string[]> {
  const out: string[] = [];
  await until(() => {
    const a = curl(lab, host, url);
    if (a !== null) out.push(a);
    return out.length >= atLeast && new Set(out.map((x) => x.split(' ')[0])).size === servers;
  }, 20_000, `answers from ${servers} real servers`, 50);
  return out;
}

/** `fulcrum adm …` against a director's API socket. */
export function adm(socket: string, args: readonly string[]): string {
  return execFileSync(process.execPath, [path.join(repoRoot(), 'bin', 'fulcrum.js'), 'adm', '--socket', socket, ...args], { encoding: 'utf8', timeout: 10_000 });
}

/** `fulcrum realserver …` in a host's namespace. */
export function realserver(lab: Lab, host: string, args: readonly string[]): { code: number; out: string } {
  try {
    return { code: 0, out: lab.exec(host, process.execPath, [path.join(repoRoot(), 'bin', 'fulcrum.js'), 'realserver', ...args], 15_000) };
  } catch (err: unknown) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    return { code: e.status ?? 1, out: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}

/** Start `fulcrum run` on the director with `config`; resolves once it logs `started`. */
export async function startDirector(lab: Lab, host: string, dir: string, config: string, extra: readonly string[] = []): Promise<Proc & { socket: string }> {
  const p = startFulcrum(lab, host, dir, config, extra);
  await p.waitLine((l) => l.includes('"started"') || l.includes('not started'), 20_000);
  if (p.lines.some((l) => l.includes('not started'))) throw new Error(`director did not start:\n${p.lines.join('\n')}`);
  return p;
}

/** The elements of a map/set of the director's `fulcrum` table, as nft prints them. */
export function nftElements(lab: Lab, host: string, kind: 'inet' | 'netdev', set: string): string {
  try {
    return lab.exec(host, 'nft', ['list', objectKind(kind, set), kind, 'fulcrum', set]);
  } catch {
    return '';
  }
}

/** A line echo server: each line comes back prefixed with the server's name. */
export function echoServer(lab: Lab, host: string, port: number): void {
  lab.spawn(host, process.execPath, ['-e', `require('net').createServer((s)=>{let b='';s.on('data',(d)=>{b+=d;let i;while((i=b.indexOf('\\n'))>=0){s.write(${JSON.stringify(host)}+' '+b.slice(0,i)+'\\n');b=b.slice(i+1)}});s.on('error',()=>{})}).listen(${port},'::')`]);
}

/**
 * `n` connections to vip:port; once all are up it prints "connected", then each sends a
 * line every `gapMs` for `seconds`. A connection is broken when it errors, closes, answers
 * from another server, or leaves a line unanswered for 3 s. Prints one JSON line at the end.
 */
export function longLived(vip: string, port: number, n: number, gapMs: number, seconds: number): string {
  return `
const net = require('net');
const conns = [];
let up = 0;
for (let i = 0; i < ${n}; i++) {
  const c = { s: net.connect(${port}, ${JSON.stringify(vip)}), server: null, broken: null, buf: '', sent: 0, got: 0, lastAnswer: Date.now() };
  c.s.on('connect', () => { if (++up === ${n}) { console.log('connected'); setTimeout(finish, ${seconds * 1000}); } });
  c.s.on('data', (d) => {
    c.buf += d; let k;
    while ((k = c.buf.indexOf('\\n')) >= 0) {
      const name = c.buf.slice(0, k).split(' ')[0]; c.buf = c.buf.slice(k + 1);
      if (c.server === null) c.server = name; else if (name !== c.server && !c.broken) c.broken = 'moved to ' + name;
      c.got++; c.lastAnswer = Date.now();
    }
  });
  c.s.on('error', (e) => { if (!c.broken) c.broken = e.message; });
  c.s.on('close', () => { if (!c.broken && !done) c.broken = 'closed'; });
  conns.push(c);
}
let done = false;
const started = Date.now();
const t = setInterval(() => {
  if (up < ${n}) { if (Date.now() - started > 10000) { console.log(JSON.stringify({ error: 'only ' + up + ' connected' })); process.exit(1); } return; }
  for (const c of conns) {
    if (c.broken) continue;
    if (c.sent > c.got && Date.now() - c.lastAnswer > 3000) { c.broken = 'no answer for 3 s'; continue; }
    c.s.write('line ' + (c.sent++) + '\\n');
  }
}, ${gapMs});
function finish() {
  done = true; clearInterval(t);
  for (const c of conns) if (!c.broken && Date.now() - c.lastAnswer > 1000) c.broken = 'stalled: no answer in the last second';
  const by = {}; for (const c of conns) by[c.server] = (by[c.server] || 0) + 1;
  console.log(JSON.stringify({ n: conns.length, broken: conns.filter((c) => c.broken).length, reasons: conns.filter((c) => c.broken).map((c) => c.broken).slice(0, 5), by, lines: conns.reduce((a, c) => a + c.got, 0) }));
  for (const c of conns) c.s.destroy();
}
`;
}

/**
 * The membership churn the DR tests run under a request loop, through `fulcrum adm`, 700 ms
 * apart: servers[0] to weight 5, servers[1] drained (weight 0), servers[2] removed and added
 * back at weight 2. Addresses are `addr:port`; `-g` (DR) throughout.
 */
export async function drChurn(socket: string, service: string, servers: readonly [string, string, string]): Promise<void> {
  const [a, b, c] = servers;
  const steps: string[][] = [
    ['-e', '-t', service, '-r', a, '-g', '-w', '5'],
    ['-e', '-t', service, '-r', b, '-g', '-w', '0'],
    ['-d', '-t', service, '-r', c],
    ['-a', '-t', service, '-r', c, '-g', '-w', '2'],
  ];
  for (const step of steps) {
    await new Promise((r) => setTimeout(r, 700));
    adm(socket, step);
  }
}
