/**
 * Connection sync between two Fulcrum directors, end to end in network namespaces: VRRPv3
 * at advert_int 0.1, a DR service with two real servers, a client holding 50 long-lived
 * TCP connections through the VIP that exchange a line every 100 ms. The master crashes
 * (every process SIGKILLed, then its link unplugged: a dead machine forwards nothing); with
 * `lvs_sync_daemon` the backup holds the master's flows and every connection continues on
 * its real server. The same run without sync is the baseline. Root only (CI runs as root).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, testLab, until, type Lab } from '../src/testing/netns.js';
import { addAddress, curl, echoServer, ensureKernelTools, httpServer, listening, longLived, realserver } from '../src/testing/lvs-lab.js';
import { logEvent, startFulcrum, vrrpInstance, type Proc } from '../src/testing/vrrp-lab.js';
import { testOnce, withTempDir } from '../src/testing/index.js';
import { ensureXdpProgram, fullChecksums, passOnSwitchPort, testBpfDir } from '../src/testing/xdp-lab.js';
import { apiRequest } from '../src/api/client.js';
import type { SyncStatus } from '../src/sync/index.js';
import { decodeMessage } from '../src/sync/codec.js';

const skip = isRoot() ? false : 'needs root (network namespaces, nftables, raw sockets); CI runs as root';
const PREFIX = `fsy${process.pid % 10000}`;

interface Pair {
  lab: Lab;
  d1: Proc & { socket: string };
  d2: Proc & { socket: string };
}

const VIP = '10.62.0.100';
const NAT_VIP = '10.63.1.100';
const VIP6 = 'fd62::100';
const NAT_VIP6 = 'fd63:1::100';

/**
 * Two directors (d1 MASTER at priority 254, d2 BACKUP at 250; VRRPv3, advert 0.1), two
 * real servers with a line echo server on 7000 and HTTP on 80, a client. DR: everything on
 * 10.62.0.0/24, the VIP on the real servers' lo. NAT: the client on 10.63.1.0/24, the real
 * servers on 10.63.0.0/24 routing through a second VRRP address (10.63.0.254) that moves
 * with the VIP.
 */
async function directorPair(t: { after(fn: () => Promise<void>): void }, prefix: string, dir: string, o: { algo: string; sync: boolean; persistence?: number; kind?: 'DR' | 'NAT' | 'PROXY'; extra?: string; xdp?: boolean; v6?: boolean }): Promise<Pair & { vip: string }> {
  ensureKernelTools();
  const lab = testLab(t, prefix);
  const nat = o.kind === 'NAT';
  // v6: the service on an IPv6 VIP (and, for NAT, the real servers' IPv6 gateway) that
  // moves with the (IPv4) VRRP instance as virtual_ipaddress_excluded; sync still runs over
  // IPv4 multicast, as IPVS's does.
  const vip = nat ? (o.v6 ? NAT_VIP6 : NAT_VIP) : o.v6 ? VIP6 : VIP;
  const servers = nat ? (o.v6 ? ['fd63::11', 'fd63::12'] : ['10.63.0.11', '10.63.0.12']) : o.v6 ? ['fd62::11', 'fd62::12'] : ['10.62.0.11', '10.62.0.12'];
  if (nat) {
    lab.host('c', '10.63.1.1');
    if (o.v6) addAddress(lab, 'c', 'fd63:1::1', 64);
    for (const [d, n] of [['d1', 2], ['d2', 3]] as const) {
      lab.host(d, `10.63.0.${n}`);
      addAddress(lab, d, `10.63.1.${n}`, 24);
      lab.exec(d, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      if (o.v6) {
        addAddress(lab, d, `fd63::${n}`, 64);
        addAddress(lab, d, `fd63:1::${n}`, 64);
        lab.exec(d, 'sysctl', ['-qw', 'net.ipv6.conf.all.forwarding=1']);
      }
    }
    for (const [r, n] of [['r1', 11], ['r2', 12]] as const) {
      lab.host(r, `10.63.0.${n}`);
      lab.exec(r, 'ip', ['route', 'add', 'default', 'via', '10.63.0.254']);
      if (o.v6) {
        addAddress(lab, r, `fd63::${n}`, 64);
        lab.exec(r, 'ip', ['-6', 'route', 'add', 'default', 'via', 'fd63::254']);
      }
    }
  } else {
    for (const [name, n] of [['c', 1], ['d1', 2], ['d2', 3], ['r1', 11], ['r2', 12]] as const) {
      lab.host(name, `10.62.0.${n}`);
      if (o.v6) addAddress(lab, name, `fd62::${n}`, 64);
    }
    // DR real servers hold the VIP; proxied ones are reached at their own addresses.
    for (const r of o.kind === 'PROXY' ? [] : ['r1', 'r2']) {
      for (const a of o.v6 ? [VIP, VIP6] : [VIP]) {
        const out = realserver(lab, r, ['start', '--vip', a]);
        assert.equal(out.code, 0, out.out);
      }
    }
  }
  // The XDP plane: its maps pinned in a bpffs of the test's own, the directors' switch ports
  // able to take XDP_TX frames, the client sending complete checksums (see xdp-lab.ts).
  const bpf = o.xdp ? testBpfDir(t, prefix) : null;
  if (o.xdp) {
    ensureXdpProgram();
    for (const d of ['d1', 'd2']) passOnSwitchPort(lab, d);
    fullChecksums(lab, 'c');
  }
  for (const r of ['r1', 'r2']) {
    echoServer(lab, r, 7000);
    httpServer(lab, r, 80);
  }
  for (const r of ['r1', 'r2']) {
    await listening(lab, r, 7000);
    await listening(lab, r, 80);
  }
  const svc = (port: number): string => `virtual_server ${vip} ${port} {\n  delay_loop 1\n  lb_algo ${o.algo}\n  lb_kind ${o.kind ?? 'DR'}\n  protocol TCP\n`
    + (o.persistence ? `  persistence_timeout ${o.persistence}\n` : '') + (o.extra ?? '') + (o.xdp ? '  fulcrum_dataplane xdp\n' : '')
    + servers.map((a) => `  real_server ${a} ${port} {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n`).join('') + '}\n';
  const conf = (priority: number): string =>
    (o.sync ? 'global_defs {\n  lvs_sync_daemon eth0 VI_1 id 7\n}\n' : '')
    + vrrpInstance({
      vrid: 62, priority, version: 3, advert: 0.1, vip: nat ? `${NAT_VIP}/32\n    10.63.0.254/24` : `${VIP}/32`,
      ...(o.v6 ? { extra: `  virtual_ipaddress_excluded {\n    ${nat ? `${NAT_VIP6}/128\n    fd63::254/128` : `${VIP6}/128`}\n  }\n` } : {}),
    }) + svc(7000) + svc(80);
  const procs: (Proc & { socket: string })[] = [];
  for (const [i, host] of (['d1', 'd2'] as const).entries()) {
    const p = startFulcrum(lab, host, dir, conf(i === 0 ? 254 : 250), bpf ? ['--bpf-dir', `${bpf}/${host}`] : []);
    await p.waitLine(logEvent('vrrp-transition', { to: i === 0 ? 'MASTER' : 'BACKUP' }), 15_000);
    procs.push(p);
  }
  await until(() => curl(lab, 'c', `http://${vip.includes(':') ? `[${vip}]` : vip}/`) !== null, 20_000, 'the service answers through the master', 100).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\nd1:\n${procs[0]?.lines.filter((l) => /failed|E_/.test(l)).slice(0, 6).join('\n') ?? ''}\n${lab.exec('d1', 'ip', ['-d', 'link', 'show', 'dev', 'eth0'])}${lab.exec('d1', 'ip', ['neigh'])}`);
  });
  return { lab, vip, d1: procs[0] as Proc & { socket: string }, d2: procs[1] as Proc & { socket: string } };
}

async function syncStatus(socket: string): Promise<SyncStatus> {
  for (let i = 0; ; i++) {
    try {
      return (await apiRequest<SyncStatus>({ socketPath: socket }, 'GET', '/v1/sync')).body;
    } catch (err: unknown) {
      if (i >= 100) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `n` client addresses from `base` on the client host, and a curl from one of them: the real server's name (null: no answer). */
function templateClients(lab: Lab, base: number, n = 8): { clients: string[]; ask(src: string): string | null } {
  const clients = Array.from({ length: n }, (_, i) => `10.62.0.${base + i}`);
  for (const a of clients) addAddress(lab, 'c', a, 24);
  return {
    clients,
    ask(src) {
      try {
        return lab.exec('c', 'curl', ['-s', '--max-time', '2', '--interface', src, `http://${VIP}/`]).split(' ')[0] ?? null;
      } catch {
        return null;
      }
    },
  };
}

/** Wait (bounded) until the backup has installed `n` flows; what it says it installed. */
async function installedAtLeast(socket: string, n: number): Promise<number> {
  let installed = 0;
  for (let i = 0; i < 150 && installed < n; i++) {
    installed = (await syncStatus(socket)).installed;
    if (installed < n) await new Promise((r) => setTimeout(r, 100));
  }
  return installed;
}

/** 50 long-lived connections; the master crashes once the backup holds them (with sync) or after 3 s. */
async function crashUnderLoad(p: Pair & { vip: string }, withSync: boolean, o: { halfOpen?: boolean } = {}): Promise<{ n: number; broken: number; reasons: string[]; by: Record<string, number>; lines: number; installed: number }> {
  const { lab, d1, d2 } = p;
  // IPVS's sync_threshold: a connection that only ever sent its SYN (the client drops the
  // real server's SYN-ACK and gives up) has one packet at the director and is never sent.
  const HALF_OPEN_PORT = 45678;
  if (o.halfOpen) {
    lab.exec('c', 'nft', ['add table ip fsyho; add chain ip fsyho in { type filter hook input priority 0; policy accept; }; '
      + `add rule ip fsyho in ip saddr ${p.vip} tcp dport ${HALF_OPEN_PORT} drop`]);
    assert.throws(() => lab.exec('c', 'curl', ['-s', '--local-port', String(HALF_OPEN_PORT), '--connect-timeout', '0.5', `http://${p.vip}/`]), 'the half-open connection gets no answer');
  }
  const client = lab.spawn('c', process.execPath, ['-e', longLived(p.vip, 7000, 50, 100, 8)]);
  let out = '';
  client.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
  await until(() => out.includes('connected') || out.includes('error'), 20_000, 'the client\'s 50 connections', 50);
  assert.ok(!out.includes('error'), out);
  let installed = 0;
  if (withSync) {
    // Deterministic: crash only once the backup says it installed all 50.
    for (let i = 0; i < 150 && installed < 50; i++) {
      installed = (await syncStatus(d2.socket)).installed;
      if (installed < 50) await new Promise((r) => setTimeout(r, 100));
    }
    const m = await syncStatus(d1.socket);
    assert.equal(m.role, 'master');
    assert.ok(m.sent.entries >= 50, `the master sent ${m.sent.entries} entries`);
    assert.ok(installed >= 50, `the backup installed ${installed} flows`);
    if (o.halfOpen) {
      // Every poll since the 50 connections began saw the half-open flow, and every one of
      // those connections has reached the backup: the half-open one would have too.
      const flow = ` . 10.62.0.1 . ${HALF_OPEN_PORT} `;
      const seen = lab.exec('d1', 'nft', ['list', 'set', 'netdev', 'fulcrum', 'seen4']).split('\n').find((l) => l.includes(flow));
      assert.match(seen ?? '', /counter packets 1 /, `the master counted its one packet: ${seen ?? 'absent'}`);
      assert.ok(lab.exec('d1', 'nft', ['list', 'map', 'netdev', 'fulcrum', 'conn4']).includes(flow), 'the master holds the half-open flow');
      assert.ok(!lab.exec('d2', 'nft', ['list', 'map', 'netdev', 'fulcrum', 'conn4']).includes(flow), 'the backup was never sent it');
    }
  } else {
    await new Promise((r) => setTimeout(r, 3000));
  }
  lab.crash('d1');
  lab.plug('d1', false);
  await d2.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 5000);
  await until(() => out.includes('"broken"'), 40_000, 'the client\'s report', 100);
  const r = JSON.parse(out.split('\n').find((l) => l.includes('"broken"')) ?? '{}') as { n: number; broken: number; reasons: string[]; by: Record<string, number>; lines: number };
  return { ...r, installed };
}

for (const algo of ['wrr', 'lc']) {
  // lc differs from wrr only in the pure scheduler: its run on a second Node line adds nothing.
  const define: typeof testOnce = algo === 'wrr' ? (n, o, f) => void test(n, o, f) : testOnce;
  define(`sync (${algo}, DR): the master crashes under 50 long-lived connections and all 50 continue on their real servers`, { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
    const pair = await directorPair(t, `${PREFIX}${algo}`, dir, { algo, sync: true });
    const r = await crashUnderLoad(pair, true, { halfOpen: algo === 'wrr' });
    t.diagnostic(`${algo}: ${r.n - r.broken}/${r.n} connections continued after the takeover (backup had installed ${r.installed}); servers ${JSON.stringify(r.by)}; ${r.lines} lines answered${r.broken ? `; broken: ${r.reasons.join(', ')}` : ''}`);
    assert.equal(r.n, 50);
    assert.equal(r.broken, 0, `broken connections: ${r.reasons.join(', ')}`);
    const st = await syncStatus(pair.d2.socket);
    assert.equal(st.role, 'master', 'the new master sends from now on');
    assert.equal(st.received.peer, '10.62.0.2');
  }));
}

testOnce('sync (wrr, DR on the XDP plane): the master crashes under 50 long-lived connections and all 50 continue; flows are sent from their third packet', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}x`, dir, { algo: 'wrr', sync: true, xdp: true });
  const r = await crashUnderLoad(pair, true);
  t.diagnostic(`XDP: ${r.n - r.broken}/${r.n} connections continued after the takeover (backup had installed ${r.installed}); servers ${JSON.stringify(r.by)}${r.broken ? `; broken: ${r.reasons.join(', ')}` : ''}`);
  assert.equal(r.n, 50);
  assert.equal(r.broken, 0, `broken connections: ${r.reasons.join(', ')}`);
  assert.equal(pair.lab.exec('d2', 'ip', ['-d', 'link', 'show', 'dev', 'eth0']).includes('name xdp_root'), true, 'the backup forwards with XDP');
}));

testOnce('sync (wrr, DR over IPv6): the master crashes under 50 long-lived IPv6 connections and all 50 continue — the backup installed them under the kernel\'s own hashed keys', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}6`, dir, { algo: 'wrr', sync: true, v6: true });
  const r = await crashUnderLoad(pair, true);
  t.diagnostic(`IPv6: ${r.n - r.broken}/${r.n} connections continued after the takeover (backup had installed ${r.installed}); servers ${JSON.stringify(r.by)}${r.broken ? `; broken: ${r.reasons.join(', ')}` : ''}`);
  assert.equal(r.n, 50);
  assert.equal(r.broken, 0, `broken connections: ${r.reasons.join(', ')}`);
  assert.equal(Object.keys(r.by).length, 2, `the flows spread over both servers: ${JSON.stringify(r.by)}`);
}));

test('sync (wrr, NAT): the master crashes under 50 long-lived connections and all 50 continue: the backup holds their conntrack entries with the NAT', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}n`, dir, { algo: 'wrr', sync: true, kind: 'NAT' });
  const r = await crashUnderLoad(pair, true);
  t.diagnostic(`NAT: ${r.n - r.broken}/${r.n} connections continued after the takeover (backup had installed ${r.installed}); servers ${JSON.stringify(r.by)}${r.broken ? `; broken: ${r.reasons.join(', ')}` : ''}`);
  assert.equal(r.n, 50);
  assert.equal(r.broken, 0, `broken connections: ${r.reasons.join(', ')}`);
}));

testOnce('sync (wrr, NAT over IPv6): the master crashes under 50 long-lived IPv6 connections and all 50 continue: the backup holds IPv6 conntrack entries with the NAT', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}7`, dir, { algo: 'wrr', sync: true, kind: 'NAT', v6: true });
  const r = await crashUnderLoad(pair, true);
  t.diagnostic(`NAT over IPv6: ${r.n - r.broken}/${r.n} connections continued after the takeover (backup had installed ${r.installed}); servers ${JSON.stringify(r.by)}${r.broken ? `; broken: ${r.reasons.join(', ')}` : ''}`);
  assert.equal(r.n, 50);
  assert.equal(r.broken, 0, `broken connections: ${r.reasons.join(', ')}`);
}));

testOnce('sync baseline (wrr, NAT, no lvs_sync_daemon): how many of 50 connections break at a takeover', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}m`, dir, { algo: 'wrr', sync: false, kind: 'NAT' });
  const r = await crashUnderLoad(pair, false);
  t.diagnostic(`NAT baseline without sync: ${r.broken}/${r.n} connections broke at the takeover (${r.reasons.slice(0, 3).join(', ')})`);
  assert.equal(r.n, 50);
}));

testOnce('sync baseline (wrr, DR, no lvs_sync_daemon): how many of 50 connections break at a takeover', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}b`, dir, { algo: 'wrr', sync: false });
  const r = await crashUnderLoad(pair, false);
  t.diagnostic(`baseline without sync: ${r.broken}/${r.n} connections broke at the takeover (${r.reasons.slice(0, 3).join(', ')})`);
  assert.equal(r.n, 50);
}));

test('sync: a persistence template follows the takeover; the sync traffic decodes with the kernel\'s layout; hostile datagrams are counted and change nothing', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}p`, dir, { algo: 'rr', sync: true, persistence: 600 });
  const { lab, d2 } = pair;
  // Eight client addresses, each with a template on the master.
  const { clients, ask } = templateClients(lab, 21);
  const before = new Map(clients.map((a) => [a, ask(a)]));
  assert.ok([...before.values()].every((s) => s === 'r1' || s === 'r2'), JSON.stringify([...before]));
  assert.equal(new Set(before.values()).size, 2, 'rr spread the clients over both servers');
  // The master's datagrams, captured on the backup's wire, as raw bytes.
  const dump = lab.spawn('d2', 'tcpdump', ['-i', 'eth0', '-n', '-l', '-x', '-c', '4', 'udp port 8848']);
  let hexdump = '';
  dump.stdout?.on('data', (b: Buffer) => { hexdump += b.toString(); });
  const installed = await installedAtLeast(d2.socket, 8);
  assert.ok(installed >= 8, `the backup installed ${installed} templates and flows`);
  await until(() => (hexdump.match(/IP 10\.62\.0\.2\.\d+ > 224\.0\.0\.81\.8848/g) ?? []).length >= 1, 15_000, 'a sync datagram on the wire', 100);
  // Decode the first captured datagram by hand with the kernel's offsets (not the codec).
  const first = hexdump.split(/\n(?=\S)/).find((b) => b.includes('> 224.0.0.81.8848')) ?? '';
  const bytes = Buffer.from(first.split('\n').slice(1).map((l) => l.replace(/^\s*0x[0-9a-f]+:\s*/, '')).join('').replace(/\s/g, ''), 'hex');
  const ihl = ((bytes[0] ?? 0) & 15) * 4;
  const udp = bytes.subarray(ihl);
  const msg = udp.subarray(8, udp.readUInt16BE(4));
  assert.equal(msg[0], 0, 'reserved');
  assert.equal(msg[1], 7, 'syncid 7');
  assert.equal(msg.readUInt16BE(2), msg.length, 'size is the datagram');
  assert.equal(msg[5], 1, 'version 1');
  assert.equal(msg.readUInt16BE(6), 0, 'spare');
  assert.ok((msg[4] ?? 0) >= 1, 'count');
  const e = msg.subarray(8);
  assert.equal(e[0], 0, 'type 0: IPv4');
  assert.equal(e[1], 6, 'TCP');
  assert.equal(e.readUInt16BE(2) >> 12, 0, 'entry version 0');
  assert.equal(e.readUInt16BE(2) & 0xfff, 36, 'an IPv4 entry without options is 36 bytes');
  assert.equal(e.readUInt32BE(4) & 7, 3, 'IP_VS_CONN_F_DROUTE');
  const vport = e.readUInt16BE(12);
  assert.ok(vport === 80 || vport === 7000, `vport ${vport}`);
  assert.equal([...e.subarray(28, 32)].join('.'), VIP, 'vaddr');
  assert.ok(['10.62.0.11', '10.62.0.12'].includes([...e.subarray(32, 36)].join('.')), 'daddr is a real server');
  assert.ok(decodeMessage(msg, { syncid: 7 }).ok, 'and the codec agrees');
  // Hostile datagrams from the client's namespace: counted by reason, nothing installed.
  const st0 = await syncStatus(d2.socket);
  const send = (hex: string): void => {
    lab.exec('c', process.execPath, ['-e', `const s=require('dgram').createSocket('udp4');s.bind(0,'10.62.0.1',()=>{s.setMulticastInterface('10.62.0.1');s.send(Buffer.from(${JSON.stringify(hex)},'hex'),8848,'224.0.0.81',()=>s.close())})`]);
  };
  send('00');                                           // short header
  send('0007002c01010000');                             // size says 44, datagram has 8
  send('0009000c0101000000000000');                     // syncid 9
  send(`0007002c0101000002060024${'00'.repeat(32)}`);   // entry type 2
  let st = st0;
  for (let i = 0; i < 50; i++) {
    st = await syncStatus(d2.socket);
    if ((st.refused['short-header'] ?? 0) > (st0.refused['short-header'] ?? 0) && (st.refused['entry-type'] ?? 0) > (st0.refused['entry-type'] ?? 0)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  for (const reason of ['short-header', 'bad-size', 'syncid', 'entry-type']) {
    assert.equal((st.refused[reason] ?? 0) - (st0.refused[reason] ?? 0), 1, `${reason} counted once: ${JSON.stringify(st.refused)}`);
  }
  // The takeover: every client's next connection goes to the server its template names.
  lab.crash('d1');
  lab.plug('d1', false);
  await d2.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 5000);
  await until(() => ask(clients[0] as string) !== null, 10_000, 'the new master answers', 100);
  const after = new Map(clients.map((a) => [a, ask(a)]));
  t.diagnostic(`templates: before ${JSON.stringify([...before])}, after ${JSON.stringify([...after])}`);
  assert.deepEqual([...after], [...before], 'every client kept its real server across the takeover');
}));

test('sync (PROXY, two workers): persistence templates follow the takeover — each returning client reaches the real server it had, over the same IPVS sync protocol', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  const pair = await directorPair(t, `${PREFIX}x`, dir, { algo: 'rr', sync: true, persistence: 600, kind: 'PROXY' });
  const { lab, d2 } = pair;
  const { clients, ask } = templateClients(lab, 41);
  const before = new Map(clients.map((a) => [a, ask(a)]));
  assert.ok([...before.values()].every((x) => x === 'r1' || x === 'r2'), JSON.stringify([...before]));
  assert.equal(new Set(before.values()).size, 2, 'rr spread the clients over both servers');
  const installed = await installedAtLeast(d2.socket, 8);
  assert.ok(installed >= 8, `the backup installed ${installed} templates: master ${JSON.stringify(await syncStatus(pair.d1.socket))}, backup ${JSON.stringify(await syncStatus(d2.socket))}`);
  lab.crash('d1');
  lab.plug('d1', false);
  await d2.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 5000);
  await until(() => ask(clients[0] as string) !== null, 10_000, 'the new master answers', 100);
  const after = new Map(clients.map((a) => [a, ask(a)]));
  t.diagnostic(`proxied templates: before ${JSON.stringify([...before])}, after ${JSON.stringify([...after])}`);
  assert.deepEqual([...after], [...before], 'every client kept its real server across the takeover');
}));

testOnce('identical hashing (mh with mh-port, DR, no sync): both directors hash with the same explicit seed, so every flow keeps its real server across a takeover', { skip, timeout: 150_000 }, (t) => withTempDir(async (dir) => {
  // mh-port hashes the client's port too: the 50 connections spread over both servers.
  const pair = await directorPair(t, `${PREFIX}h`, dir, { algo: 'mh', sync: false, extra: '  mh-port\n' });
  for (const d of ['d1', 'd2']) {
    const chain = pair.lab.exec(d, 'nft', ['list', 'chain', 'netdev', 'fulcrum', 's4_mhp']);
    assert.match(chain, /jhash ip saddr \. th sport mod \d+ seed 0x46554c43/, `${d}'s slot hash is seeded: ${chain}`);
  }
  const r = await crashUnderLoad(pair, false);
  t.diagnostic(`mh without sync: ${r.n - r.broken}/${r.n} connections continued after the takeover; servers ${JSON.stringify(r.by)}${r.broken ? `; broken: ${r.reasons.join(', ')}` : ''}`);
  assert.equal(r.n, 50);
  assert.equal(Object.keys(r.by).length, 2, `the flows spread over both servers: ${JSON.stringify(r.by)}`);
  assert.equal(r.broken, 0, `broken connections: ${r.reasons.join(', ')}`);
}));
