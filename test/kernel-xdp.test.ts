/**
 * The XDP plane (`fulcrum_dataplane xdp`), LVS-DR end to end in network namespaces: the
 * nftables plane's DR tests, run against the XDP program on the director's veth in native
 * (driver) mode, and a program replacement under load. Root only (CI runs as root).
 * Run on the machine's Node only (node-lts.ts): the data path is the kernel's; the FFI on
 * other Node lines is test/bpf.test.ts, the daemon with this plane on them sync.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRoot, until, type Lab } from '../src/testing/netns.js';
import {
  addAddress, adm, answersFromAll, byDirection, capture, curl, drChurn, drLab, echoServer, listening, realserver, serveHttp, startDirector, udpAsk, udpServer,
} from '../src/testing/lvs-lab.js';
import { httpLoopScript } from '../src/testing/http-loop.js';
import { withTempDir } from '../src/testing/index.js';
import { ensureCommand } from '../src/testing/peers.js';
import { apiRequest } from '../src/api/client.js';
import { attachedProgram, ensureXdpProgram, fullChecksums, passOnSwitchPort, testBpfDir } from '../src/testing/xdp-lab.js';

const skip = isRoot() ? false : 'needs root (network namespaces, XDP)';
const VIP = '10.62.0.100';
const VIP6 = 'fd62::100';

type T = { after(fn: () => Promise<void>): void };

/** Client, director (XDP on eth0, its switch port able to take XDP_TX) and `servers` HTTP real servers. */
async function xdpLab(t: T, prefix: string, servers: number): Promise<{ lab: Lab; bpfDir: string }> {
  ensureXdpProgram();
  const lab = drLab(t, prefix, { net: '10.62.0', v6: 'fd62', vip: VIP, servers });
  passOnSwitchPort(lab, 'd');
  fullChecksums(lab, 'c');
  await serveHttp(lab, [80], Array.from({ length: servers }, (_, i) => `r${i + 1}`));
  return { lab, bpfDir: testBpfDir(t, prefix) };
}

function xdpConfig(servers: number, o: { algo?: string; extra?: string; vip?: string; global?: boolean } = {}): string {
  const vip = o.vip ?? VIP;
  const base = vip.includes(':') ? 'fd62::' : '10.62.0.';
  const rs = Array.from({ length: servers }, (_, i) => `  real_server ${base}${11 + i} 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n`).join('');
  const g = o.global === false ? '' : 'global_defs {\n  fulcrum_dataplane xdp\n}\n';
  const local = o.global === false ? '  fulcrum_dataplane xdp\n' : '';
  return `${g}virtual_server ${vip} 80 {\n  delay_loop 1\n  lb_algo ${o.algo ?? 'rr'}\n  lb_kind DR\n  protocol TCP\n${local}${o.extra ?? ''}${rs}}\n`;
}

/** Start the HTTP loop in the client; resolves to its result once it printed it. */
function requestLoop(lab: Lab, url: string, count: number, gapMs: number): () => Promise<{ ok: number; failed: number; by: Record<string, number>; kept: Record<string, number>; errors: string[] }> {
  const loop = lab.spawn('c', process.execPath, ['-e', httpLoopScript(url, count, gapMs)]);
  let out = '';
  loop.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
  return async () => {
    await until(() => out.includes('}'), 90_000, 'the loop to finish', 100);
    return JSON.parse(out) as { ok: number; failed: number; by: Record<string, number>; kept: Record<string, number>; errors: string[] };
  };
}

test('XDP DR: both real servers answer and see the client; no reply passes the director; the program forwards, not nftables', { skip, timeout: 180_000 }, (t) => withTempDir(async (dir) => {
  const { lab, bpfDir } = await xdpLab(t, 'fkx1', 2);
  const d = await startDirector(lab, 'd', dir, xdpConfig(2), ['--bpf-dir', bpfDir]);
  const dump = await capture(lab, 'd', 'tcp port 80');
  const answers = await answersFromAll(lab, 'c', `http://${VIP}/`, 2, 6);
  for (const a of answers) assert.match(a, /^r[12] 10\.62\.0\.1$/, 'each real server saw the client address');
  const seen = await dump.stop();
  const { requests, replies } = byDirection(seen, VIP, 80);
  assert.deepEqual(replies, [], 'no reply packet went through the director');
  // XDP takes the requests before the kernel's taps: tcpdump on the director sees none of them.
  assert.equal(requests.length, 0, `requests reached the director's stack: ${requests.slice(0, 3).join(' | ')}`);
  assert.equal(attachedProgram(lab, 'd'), 'xdp_root');
  assert.throws(() => lab.exec('d', 'nft', ['list', 'table', 'netdev', 'fulcrum']), 'no nftables DR table');
  await sleep(1500);
  const stats = adm(d.socket, ['-L', '-n', '--stats']);
  for (const rs of ['10.62.0.11:80', '10.62.0.12:80']) {
    const row = stats.split('\n').find((l) => l.includes(rs)) ?? '';
    assert.ok(Number(row.trim().split(/\s+/)[2]) > 0, `${rs} counted connections: ${row}`);
  }
  const conns = adm(d.socket, ['-L', '-n', '-c']);
  assert.match(conns, /10\.62\.0\.1:\d+\s+10\.62\.0\.100:80\s+10\.62\.0\.1[12]:80/, `the connection table lists flows:\n${conns}`);
  // 20 frames to the VIP whose TCP header is cut short: counted as malformed, passed to the
  // kernel (which drops them), and forwarding goes on.
  ensureCommand('trafgen', 'netsniff-ng');
  const c = lab.hosts.get('c');
  const dmac = lab.hosts.get('d')?.mac ?? '';
  lab.exec('c', 'trafgen', ['-o', 'eth0', '--cpus', '1', '-n', '20', `{ eth(da=${dmac}, sa=${c?.mac ?? ''}), ipv4(sa=10.62.0.1, da=${VIP}, proto=6, ttl=64), fill(0x00, 10) }`], 20_000);
  const packets = async (): Promise<Record<string, number>> => (await apiRequest<{ packets: Record<string, number> }>({ socketPath: d.socket }, 'GET', '/v1/status')).body.packets;
  // The plane reads the program's counters once a second.
  let p: Record<string, number> = {};
  for (let i = 0; i < 50 && (p['malformed'] ?? 0) < 20; i++) {
    p = await packets();
    if ((p['malformed'] ?? 0) < 20) await sleep(200);
  }
  assert.equal(p['malformed'], 20, `the malformed frames counted: ${JSON.stringify(p)}`);
  assert.ok((p['forwarded'] ?? 0) > 0 && (p['new'] ?? 0) > 0, `the program's counters: ${JSON.stringify(p)}`);
  assert.ok(curl(lab, 'c', `http://${VIP}/`) !== null, 'still forwarding');
}));

test('XDP DR: weight changes, a drain and a removal under a request loop fail no request; the keep-alive flow stays put', { skip, timeout: 180_000 }, (t) => withTempDir(async (dir) => {
  const { lab, bpfDir } = await xdpLab(t, 'fkx2', 3);
  const d = await startDirector(lab, 'd', dir, xdpConfig(3, { algo: 'wrr', global: false }), ['--bpf-dir', bpfDir]);
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'service up', 100);
  const result = requestLoop(lab, `http://${VIP}/`, 300, 10);
  await drChurn(d.socket, `${VIP}:80`, ['10.62.0.11:80', '10.62.0.12:80', '10.62.0.13:80']);
  const r = await result();
  assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
  assert.ok(r.ok >= 300, `${r.ok} requests answered`);
  assert.ok((r.by['r1'] ?? 0) > (r.by['r2'] ?? 0), `weight 5 took more than the drained server: ${JSON.stringify(r.by)}`);
  assert.equal(Object.keys(r.kept).length, 1, `the keep-alive connection stayed on one server: ${JSON.stringify(r.kept)}`);
}));

test('XDP DR: persistence keeps a client on one real server; IPv6 and UDP services forward too', { skip, timeout: 180_000 }, (t) => withTempDir(async (dir) => {
  const { lab, bpfDir } = await xdpLab(t, 'fkx3', 2);
  addAddress(lab, 'd', VIP6);
  for (const h of ['r1', 'r2']) {
    lab.exec(h, 'ip', ['-6', 'addr', 'add', `${VIP6}/128`, 'dev', 'lo']);
    udpServer(lab, h, VIP, 53);
  }
  const udp = `virtual_server ${VIP} 53 {\n  lb_algo rr\n  lb_kind DR\n  protocol UDP\n  real_server 10.62.0.11 53 {\n  }\n  real_server 10.62.0.12 53 {\n  }\n}\n`;
  const config = xdpConfig(2, { extra: '  persistence_timeout 30\n' }) + xdpConfig(2, { vip: VIP6 }).replace(/^global_defs \{[^}]*\}\n/, '') + udp;
  await startDirector(lab, 'd', dir, config, ['--bpf-dir', bpfDir]);
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'service up', 100);
  const held = new Set<string>();
  for (let i = 0; i < 8; i++) held.add((curl(lab, 'c', `http://${VIP}/`) ?? 'failed').split(' ')[0] ?? '');
  assert.equal(held.size, 1, `one server while persistent: ${[...held].join(',')}`);
  const six = await answersFromAll(lab, 'c', `http://[${VIP6}]/`, 2, 4);
  for (const a of six) assert.match(a, /^r[12] fd62::1$/, 'IPv6: each real server saw the client');
  const answers = udpAsk(lab, 'c', VIP, 53, 6);
  assert.equal(answers.filter((a) => a === 'timeout').length, 0, `UDP answers: ${answers.join(', ')}`);
  assert.equal(new Set(answers.map((a) => a.split(' ')[0])).size, 2, `UDP over both servers: ${answers.join(', ')}`);
}));

test('XDP DR: a persistence template lives while its client\'s connection carries traffic, past its timeout', { skip, timeout: 180_000 }, (t) => withTempDir(async (dir) => {
  const { lab, bpfDir } = await xdpLab(t, 'fkx7', 2);
  for (const h of ['r1', 'r2']) echoServer(lab, h, 7000);
  for (const h of ['r1', 'r2']) await listening(lab, h, 7000);
  const config = `global_defs {\n  fulcrum_dataplane xdp\n}\nvirtual_server ${VIP} 7000 {\n  lb_algo rr\n  lb_kind DR\n  protocol TCP\n  persistence_timeout 2\n  real_server 10.62.0.11 7000 {\n  }\n  real_server 10.62.0.12 7000 {\n  }\n}\n`;
  await startDirector(lab, 'd', dir, config, ['--bpf-dir', bpfDir]);
  // Connection A talks every 100 ms for 4 s; at 3 s (past the 2 s timeout) connection B opens.
  const js = `const net=require('net');const ask=(s)=>new Promise((r)=>{s.once('data',(d)=>r(d.toString().split(' ')[0]));s.write('x\\n')});
(async()=>{const a=net.connect(7000,${JSON.stringify(VIP)});await new Promise((r)=>a.once('connect',r));const first=await ask(a);
for(let i=0;i<30;i++){await new Promise((r)=>setTimeout(r,100));await ask(a)}
const b=net.connect(7000,${JSON.stringify(VIP)});await new Promise((r)=>b.once('connect',r));const second=await ask(b);
console.log(JSON.stringify({first,second}));a.destroy();b.destroy()})().catch((e)=>{console.log(JSON.stringify({error:e.message}))})`;
  const out = JSON.parse(lab.exec('c', process.execPath, ['-e', js], 20_000)) as { first?: string; second?: string; error?: string };
  assert.equal(out.error, undefined, out.error);
  assert.equal(out.second, out.first, `the new connection went to ${out.second ?? '?'}, the template's server was ${out.first ?? '?'}`);
}));

test('XDP DR: replacing the director (a new run takes over the pinned maps) under a request loop fails no request', { skip, timeout: 180_000 }, (t) => withTempDir(async (dir) => {
  const { lab, bpfDir } = await xdpLab(t, 'fkx4', 2);
  const first = await startDirector(lab, 'd', dir, xdpConfig(2), ['--bpf-dir', bpfDir, '--keep-forwarding']);
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'service up', 100);
  const result = requestLoop(lab, `http://${VIP}/`, 250, 10);
  await sleep(800);
  first.child.kill('SIGTERM');
  await until(() => first.child.exitCode !== null || first.child.signalCode !== null, 20_000, 'the first director to stop', 50);
  assert.equal(attachedProgram(lab, 'd'), 'xdp_root', 'the program stays attached between runs');
  await sleep(500);
  const second = await startDirector(lab, 'd', dir, xdpConfig(2), ['--bpf-dir', bpfDir]);
  const r = await result();
  assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
  assert.equal(Object.keys(r.kept).length, 1, `the keep-alive connection stayed on one server: ${JSON.stringify(r.kept)}`);
  await sleep(1200);
  const stats = adm(second.socket, ['-L', '-n', '--stats']);
  assert.match(stats, /10\.62\.0\.11:80/);
  second.child.kill('SIGTERM');
  await until(() => second.child.exitCode !== null || second.child.signalCode !== null, 20_000, 'the second director to stop', 50);
  assert.equal(attachedProgram(lab, 'd'), '', 'detached when stopped without --keep-forwarding');
}));

test('XDP TUN: the program wraps requests in VXLAN to each real server; no tunnel device on the director', { skip, timeout: 180_000 }, (t) => withTempDir(async (dir) => {
  ensureXdpProgram();
  const lab = drLab(t, 'fkx5', { net: '10.62.0', v6: 'fd62', vip: VIP, servers: 0 });
  passOnSwitchPort(lab, 'd');
  fullChecksums(lab, 'c');
  for (const [name, addr] of [['r1', '10.62.0.11'], ['r2', '10.62.0.12']] as const) {
    lab.host(name, addr);
    const r = realserver(lab, name, ['start', '--vip', VIP, '--mode', 'tun', '--state-dir', `${dir}/${name}`]);
    assert.equal(r.code, 0, r.out);
  }
  await serveHttp(lab, [80], ['r1', 'r2']);
  const bpfDir = testBpfDir(t, 'fkx5');
  await startDirector(lab, 'd', dir, `global_defs {\n  fulcrum_dataplane xdp\n}\nvirtual_server ${VIP} 80 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind TUN\n  real_server 10.62.0.11 80 {\n  }\n  real_server 10.62.0.12 80 {\n  }\n}\n`, ['--bpf-dir', bpfDir]);
  const seen = await answersFromAll(lab, 'c', `http://${VIP}/`, 2, 4);
  for (const a of seen) assert.match(a, /^r[12] 10\.62\.0\.1$/, 'the real server saw the client');
  assert.doesNotMatch(lab.exec('d', 'ip', ['-d', 'link', 'show']), /vxlan/, 'the program encapsulates: no tunnel device');
  assert.match(lab.exec('r1', 'ip', ['-s', 'link', 'show', 'fulcrum0']), /RX:.*\n\s+[1-9]\d*/, 'r1 received on its tunnel device');
}));

