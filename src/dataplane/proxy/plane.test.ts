import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import dgram from 'node:dgram';
import { dataPlaneCompliance, serverSpec, serviceSpec } from '../compliance.js';
import { DataPlaneErrorCode, type ServiceSpec } from '../types.js';
import { ProxyDataPlane } from './plane.js';
import { WorkersDataPlane } from '../workers/plane.js';
import { decodeMessage, encodeMessages } from '../../sync/codec.js';
import { fromEntry, toEntry } from '../../sync/translate.js';
import { DEFAULT_TIMEOUTS, type DataPlane, type SyncedFlow } from '../types.js';
import { closedPort } from '../../testing/peers.js';
import { fetchText, freePort, openSocket, readLine, startServer, udpRequest, waitFor, type TestServer } from '../../testing/net.js';

/** TCP is relayed on the epoll reactor by default, or by Node's sockets: every TCP test runs on both. */
const RELAYS = ['epoll', 'node'] as const;

for (const relay of RELAYS) {
  dataPlaneCompliance(`ProxyDataPlane [${relay}]`, () => Promise.resolve({
    plane: new ProxyDataPlane({ tunables: { relay } }), address: '127.0.0.1', method: 'proxy', freePort: () => freePort(),
  }));
}

async function withSetup(relay: 'epoll' | 'node', n: number, fn: (p: ProxyDataPlane, servers: TestServer[], port: number) => Promise<void>, opts: { mode?: 'name' | 'echo' | 'name-echo' | 'sink'; expectProxy?: boolean } = {}): Promise<void> {
  const plane = new ProxyDataPlane({ tunables: { connectTimeoutMs: 1000, relay } });
  const servers: TestServer[] = [];
  try {
    for (let i = 0; i < n; i++) servers.push(await startServer(`rs${i + 1}`, opts));
    await fn(plane, servers, await freePort());
  } finally {
    await plane.close(0);
    for (const s of servers) await s.close();
  }
}

async function addService(plane: ProxyDataPlane, svc: ServiceSpec, servers: readonly { port: number; weight: number; pp?: 1 | 2 }[]): Promise<void> {
  const r = await plane.apply({ ops: [
    { op: 'add-service', service: svc },
    ...servers.map((s) => ({ op: 'add-server' as const, service: svc.key, server: { ...serverSpec('127.0.0.1', s.port, s.weight, 'proxy'), proxyProtocol: s.pp } })),
  ] });
  assert.deepEqual(r.failed, []);
}

function tally(lines: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const l of lines) t[l.trim()] = (t[l.trim()] ?? 0) + 1;
  return t;
}

/**
 * A client (a python3 process) that connects to `port` and sends `payload` and a newline
 * while this thread — the plane's — is held, so the connection the plane then accepts has its
 * request waiting already; then it prints the first `replies` lines it receives.
 */
async function speakBeforeAccept(port: number, payload: string, replies: number, dir: string): Promise<{ child: ChildProcess; lines: string[] }> {
  const sent = path.join(dir, `sent-${port}`);
  const child = spawn('python3', ['-c', [
    'import socket',
    `s = socket.create_connection(("127.0.0.1", ${port}))`,
    `s.sendall(${JSON.stringify(payload)}.encode() + b"\\n")`,
    `open(${JSON.stringify(sent)}, "w").close()`,
    'f = s.makefile()',
    `for _ in range(${replies}): print(f.readline().strip(), flush=True)`,
  ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const hold = new Int32Array(new SharedArrayBuffer(4));
  for (let i = 0; i < 500 && !fs.existsSync(sent); i++) Atomics.wait(hold, 0, 0, 20);
  assert.ok(fs.existsSync(sent), 'the client sent its request before the plane could accept it');
  const lines: string[] = [];
  let partial = '';
  child.stdout?.on('data', (b: Buffer) => {
    partial += b.toString();
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    lines.push(...parts);
  });
  return { child, lines };
}

/**
 * A listener that never accepts, its backlog filled by three connections: further SYNs go
 * unanswered, so a connect to it hangs (loopback only). `close` ends the listener and the fillers.
 */
async function unansweringServer(): Promise<{ port: number; close(): void }> {
  const py = spawn('python3', ['-c', [
    'import socket, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'print(s.getsockname()[1], flush=True)',
    'time.sleep(30)',
  ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] });
  const fillers: net.Socket[] = [];
  const close = (): void => {
    for (const f of fillers) f.destroy();
    py.kill('SIGKILL');
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      py.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim())));
      py.once('error', reject);
    });
    for (let i = 0; i < 3; i++) {
      const f = net.connect(port, '127.0.0.1');
      f.on('error', () => undefined);
      fillers.push(f);
    }
    await new Promise((r) => setTimeout(r, 200));
    return { port, close };
  } catch (err: unknown) {
    close();
    throw err;
  }
}

for (const relay of RELAYS) {
  test(`proxy [${relay}]: wrr 3:2:1 over 600 connections gives exactly IPVS's split, and counters add up`, () => withSetup(relay, 3, async (plane, rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    await addService(plane, svc, [{ port: rs[0]!.port, weight: 3 }, { port: rs[1]!.port, weight: 2 }, { port: rs[2]!.port, weight: 1 }]);
    const seq: string[] = [];
    for (let i = 0; i < 600; i++) seq.push((await fetchText(port)).trim());
    assert.deepEqual(tally(seq), { rs1: 300, rs2: 200, rs3: 100 });
    // As IPVS after `ipvsadm -a` one server at a time: with only A (weight 3) the gcd is 3, so
    // mw = cw = 1; adding B and C keeps cw = 1 (ip_vs_wrr_dest_changed), so the first round
    // is the cw = 1 level: A B C, then A (cw 3), A B (cw 2), …
    assert.deepEqual(seq.slice(0, 12), ['rs1', 'rs2', 'rs3', 'rs1', 'rs1', 'rs2', 'rs1', 'rs2', 'rs3', 'rs1', 'rs1', 'rs2']);
    await waitFor(() => plane.sessionCount === 0, 3000, 'sessions to finish');
    const st = plane.stats()[0]!;
    assert.equal(st.counters.conns, 600);
    assert.equal(st.counters.outBytes, 600 * 4);
    assert.deepEqual(st.servers.map((s) => s.counters.conns), [300, 200, 100]);
    assert.deepEqual(st.servers.map((s) => [s.active, s.inactive]), [[0, 0], [0, 0], [0, 0]]);
    // ipvsadm -Z: counters back to 0, the table untouched.
    assert.equal(plane.zero(svc.key), true);
    const z = plane.stats()[0]!;
    assert.deepEqual([z.counters.conns, z.counters.outBytes, ...z.servers.map((s) => s.counters.conns)], [0, 0, 0, 0, 0]);
    assert.deepEqual(z.servers.map((s) => s.spec.weight), [3, 2, 1]);
  }));

  test(`proxy [${relay}]: a connection accepted between prepare and commit waits, and is served once the whole plan is in — not by a service without its real servers`, () => withSetup(relay, 1, async (plane, rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    const plan = { ops: [
      { op: 'add-service' as const, service: svc },
      { op: 'add-server' as const, service: svc.key, server: serverSpec('127.0.0.1', rs[0]!.port, 1, 'proxy') },
    ] };
    assert.deepEqual([...(await plane.prepare(plan)).keys()], []);
    const answer = fetchText(port, { payload: 'ping', timeoutMs: 5000 });
    await waitFor(() => plane.preparedWaiting === 1, 3000, 'the connection to be accepted and held');
    const r = await plane.commit(plan, new Set());
    assert.deepEqual(r.failed, []);
    assert.equal(await answer, 'rs1\nping');
    assert.equal(plane.stats()[0]?.counters.conns, 1);
  }, { mode: 'name-echo' }));

  test(`proxy [${relay}]: PROXY protocol v1 and v2 tell the real server the client address`, () => withSetup(relay, 2, async (plane, rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr' });
    await addService(plane, svc, [{ port: rs[0]!.port, weight: 1, pp: 1 }, { port: rs[1]!.port, weight: 1, pp: 2 }]);
    const a = await fetchText(port, { payload: 'hello' });
    const b = await fetchText(port, { payload: 'world' });
    assert.equal(a, 'hello');
    assert.equal(b, 'world');
    const h1 = rs[0]!.proxyHeaders[0]!;
    const h2 = rs[1]!.proxyHeaders[0]!;
    assert.equal(h1.version, 1);
    assert.equal(h2.version, 2);
    for (const h of [h1, h2]) {
      assert.equal(h.src, '127.0.0.1');
      assert.equal(h.dst, '127.0.0.1');
      assert.equal(h.dport, port);
      assert.ok(h.sport > 0);
    }
  }, { mode: 'echo', expectProxy: true }));

  test(`proxy [${relay}]: a request sent before the plane accepted follows the PROXY header`, () => withSetup(relay, 1, async (plane, rs, port) => {
    await addService(plane, serviceSpec('127.0.0.1', port, 'proxy'), [{ port: rs[0]!.port, weight: 1, pp: 1 }]);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-early-'));
    const early = await speakBeforeAccept(port, 'early bird', 1, dir);
    try {
      await waitFor(() => early.lines.length >= 1, 5000, 'the echo');
      assert.deepEqual(early.lines, ['early bird']);
      assert.equal(rs[0]!.proxyHeaders.length, 1);
      assert.equal(rs[0]!.proxyHeaders[0]!.dport, port);
    } finally {
      early.child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, { mode: 'echo', expectProxy: true }));

  test(`proxy [${relay}]: IPv6 service in front of IPv4 real servers`, async (t) => {
    const probe = net.createServer();
    const v6 = await new Promise<boolean>((r) => { probe.once('error', () => r(false)); probe.listen(0, '::1', () => { probe.close(); r(true); }); });
    if (!v6) {
      t.skip('no ::1 on this host');
      return;
    }
    await withSetup(relay, 1, async (plane, rs) => {
      const port = await freePort('::1');
      const svc = serviceSpec('::1', port, 'proxy', {
        key: `tcp [::1]:${port}`, endpoint: { kind: 'address', family: 'inet6', address: '::1', port }, listen: [{ family: 'inet6', address: '::1', port }],
      });
      await addService(plane, svc, [{ port: rs[0]!.port, weight: 1 }]);
      assert.equal((await fetchText(port, { host: '::1' })).trim(), 'rs1');
    });
  });

  test(`proxy [${relay}]: a refused real server is retried on another for the same connection`, () => withSetup(relay, 2, async (plane, rs, port) => {
    const dead = await closedPort();
    const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr' });
    await addService(plane, svc, [{ port: dead, weight: 1 }, { port: rs[0]!.port, weight: 1 }, { port: rs[1]!.port, weight: 1 }]);
    const got: string[] = [];
    for (let i = 0; i < 30; i++) got.push((await fetchText(port)).trim());
    assert.equal(got.length, 30, 'no client saw a failure');
    assert.ok(got.every((g) => g === 'rs1' || g === 'rs2'));
    const st = plane.stats()[0]!;
    assert.equal(st.servers[0]!.counters.conns, 0, 'the dead server completed no connection');
    assert.equal(st.counters.conns, 30);
  }));

  test(`proxy [${relay}]: a connection fails (reset) only when every attempt fails`, () => withSetup(relay, 0, async (plane, _rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    await addService(plane, svc, [{ port: await closedPort(), weight: 1 }, { port: await closedPort(), weight: 1 }]);
    await assert.rejects(fetchText(port), (e: NodeJS.ErrnoException) => e.code === 'ECONNRESET');
    await waitFor(() => plane.sessionCount === 0, 3000, 'session cleanup');
    const st = plane.stats()[0]!;
    assert.deepEqual(st.servers.map((s) => [s.active, s.inactive]), [[0, 0], [0, 0]], 'accounting unwound');
  }));

  test(`proxy [${relay}]: weight 0 drains — open connections continue, new ones go elsewhere`, () => withSetup(relay, 2, async (plane, rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr' });
    await addService(plane, svc, [{ port: rs[0]!.port, weight: 1 }, { port: rs[1]!.port, weight: 1 }]);
    const c = await openSocket(port);
    assert.equal(await readLine(c), 'rs1');
    await plane.apply({ ops: [{ op: 'weight', service: svc.key, key: `127.0.0.1:${rs[0]!.port}`, weight: 0 }] });
    for (let i = 0; i < 5; i++) {
      const o = await openSocket(port);
      assert.equal(await readLine(o), 'rs2');
      o.destroy();
    }
    c.write('still here\n');
    assert.equal(await readLine(c), 'still here');
    assert.equal(plane.stats()[0]!.servers[0]!.active, 1);
    // Removing the server entirely still lets the open connection finish.
    await plane.apply({ ops: [{ op: 'remove-server', service: svc.key, key: `127.0.0.1:${rs[0]!.port}` }] });
    c.write('after removal\n');
    assert.equal(await readLine(c), 'after removal');
    c.end();
    await waitFor(() => plane.sessionCount === 0, 3000, 'drained');
  }, { mode: 'name-echo' }));

  test(`proxy [${relay}]: half-close — the client ends its side and still receives the reply`, () => withSetup(relay, 1, async (plane, rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    await addService(plane, svc, [{ port: rs[0]!.port, weight: 1 }]);
    const big = 'x'.repeat(300_000);
    assert.equal((await fetchText(port, { payload: big })).length, big.length);
    const st = plane.stats()[0]!;
    assert.equal(st.counters.inBytes, big.length);
    assert.equal(st.counters.outBytes, big.length);
  }, { mode: 'echo' }));

  test(`proxy [${relay}]: resets propagate from either side`, () => withSetup(relay, 1, async (plane, rs, port) => {
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    await addService(plane, svc, [{ port: rs[0]!.port, weight: 1 }]);
    // Real server resets → the client sees ECONNRESET.
    const c = await openSocket(port);
    assert.equal(await readLine(c), 'rs1');
    const err = new Promise<string>((r) => { c.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? '')); c.on('close', () => r('closed')); });
    for (const s of rs[0]!.sockets) s.resetAndDestroy();
    assert.equal(await err, 'ECONNRESET');
    // Client resets → the real server's socket sees ECONNRESET.
    const c2 = await openSocket(port);
    assert.equal(await readLine(c2), 'rs1');
    await waitFor(() => rs[0]!.sockets.size === 1, 2000, 'server socket');
    const [srvSock] = [...rs[0]!.sockets];
    const err2 = new Promise<string>((r) => { srvSock!.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? '')); srvSock!.on('close', () => r('closed')); });
    c2.resetAndDestroy();
    assert.equal(await err2, 'ECONNRESET');
    await waitFor(() => plane.sessionCount === 0, 3000, 'cleanup');
  }, { mode: 'name-echo' }));

  test(`proxy [${relay}]: persistence — PPC keeps a client on one server; PCC across a group's ports`, () => withSetup(relay, 3, async (plane, rs) => {
    const p1 = await freePort();
    const p2 = await freePort();
    const svc: ServiceSpec = {
      ...serviceSpec('127.0.0.1', p1, 'proxy', { scheduler: 'rr', persistence: { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' } }),
      key: 'group G tcp', endpoint: { kind: 'group', name: 'G' },
      listen: [{ family: 'inet', address: '127.0.0.1', port: p1 }, { family: 'inet', address: '127.0.0.1', port: p2 }],
    };
    await addService(plane, svc, rs.map((s) => ({ port: s.port, weight: 1 })));
    const via = (port: number, local: string): Promise<string> => new Promise((resolve, reject) => {
      const s = net.connect({ port, host: '127.0.0.1', localAddress: local });
      let buf = '';
      s.on('data', (c: Buffer) => { buf += c.toString(); });
      s.on('end', () => resolve(buf.trim()));
      s.on('error', reject);
    });
    const clients = ['127.0.0.11', '127.0.0.12', '127.0.0.13', '127.0.0.14'];
    const first = new Map<string, string>();
    for (const c of clients) first.set(c, await via(p1, c));
    assert.equal(new Set(first.values()).size, 3, 'rr spreads new clients');
    for (let i = 0; i < 3; i++) {
      for (const c of clients) {
        assert.equal(await via(p1, c), first.get(c), `${c} sticks on port 1`);
        assert.equal(await via(p2, c), first.get(c), `${c} sticks across the group's second port`);
      }
    }
  }));

}

test('proxy: UDP request/response, sessions keyed by client, idle timeout', async () => {
  let clock = 1000;
  const plane = new ProxyDataPlane({ now: () => clock });
  const echo: dgram.Socket[] = [];
  const seenBy: string[] = [];
  try {
    for (const name of ['dns1', 'dns2']) {
      const s = dgram.createSocket('udp4');
      s.on('message', (m, r) => { seenBy.push(name); s.send(Buffer.concat([Buffer.from(`${name}:`), m]), r.port, r.address); });
      await new Promise<void>((res) => s.bind(0, '127.0.0.1', res));
      echo.push(s);
    }
    const port = await freePort('127.0.0.1', 'udp');
    const svc = serviceSpec('127.0.0.1', port, 'proxy', {
      key: `udp 127.0.0.1:${port}`, protocol: 'udp', scheduler: 'rr', timeouts: { tcp: 900, tcpfin: 120, udp: 30 },
    });
    const r = await plane.apply({ ops: [
      { op: 'add-service', service: svc },
      ...echo.map((e) => ({ op: 'add-server' as const, service: svc.key, server: serverSpec('127.0.0.1', e.address().port, 1, 'proxy') })),
    ] });
    assert.deepEqual(r.failed, []);
    const a = dgram.createSocket('udp4');
    const b = dgram.createSocket('udp4');
    try {
      const q = Buffer.from([0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
      const ra1 = await udpRequest(port, q, { socket: a });
      const ra2 = await udpRequest(port, q, { socket: a });
      const rb1 = await udpRequest(port, q, { socket: b });
      assert.equal(ra1.toString('latin1').split(':')[0], ra2.toString('latin1').split(':')[0], 'one client, one session, one server');
      assert.notEqual(ra1.toString('latin1').split(':')[0], rb1.toString('latin1').split(':')[0], 'rr: the next client gets the other server');
      assert.ok(ra1.subarray(5).equals(q));
      assert.equal(plane.connectionList().filter((c) => c.state === 'UDP').length, 2);
      const st = plane.stats()[0]!;
      assert.equal(st.counters.conns, 2);
      assert.equal(st.counters.inPkts, 3);
      assert.equal(st.counters.outPkts, 3);
      assert.deepEqual(st.servers.map((s) => s.inactive), [1, 1], 'UDP sessions count as inactive, as in IPVS');
      clock += 31;
      plane.tick();
      assert.equal(plane.connectionList().length, 0, 'idle sessions expire after the UDP timeout');
      assert.deepEqual(plane.stats()[0]!.servers.map((s) => s.inactive), [0, 0]);
      const ra3 = await udpRequest(port, q, { socket: a });
      assert.ok(ra3.length > 0, 'a new session after expiry');
    } finally {
      a.close();
      b.close();
    }
  } finally {
    await plane.close(0);
    for (const e of echo) e.close();
  }
});

test('proxy: UDP sessions are capped; past the cap new clients are dropped and counted, existing sessions keep working, and room frees as they expire', async () => {
  let clock = 1000;
  const plane = new ProxyDataPlane({ now: () => clock, tunables: { udpSessionLimit: 3 } });
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  await new Promise<void>((res) => echo.bind(0, '127.0.0.1', res));
  const clients = Array.from({ length: 5 }, () => dgram.createSocket('udp4'));
  const failures: unknown[] = [];
  const onFailure = (m: unknown): void => { failures.push(m); };
  subscribe('fulcrum:failure', onFailure);
  try {
    const port = await freePort('127.0.0.1', 'udp');
    const svc = serviceSpec('127.0.0.1', port, 'proxy', { key: `udp 127.0.0.1:${port}`, protocol: 'udp', scheduler: 'rr', timeouts: { tcp: 900, tcpfin: 120, udp: 30 } });
    await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.1', echo.address().port, 1, 'proxy') }] });
    const q = Buffer.from('ping');
    for (const c of clients.slice(0, 3)) assert.ok((await udpRequest(port, q, { socket: c })).equals(q));
    for (const c of clients.slice(3)) await assert.rejects(udpRequest(port, q, { socket: c, timeoutMs: 300 }), 'no session past the cap');
    assert.equal(plane.udpBudget.refused, 2);
    assert.equal(plane.stats()[0]?.dropped, 2);
    assert.ok(failures.some((f) => (f as { code: string }).code === 'E_UDP_SESSION_LIMIT'));
    // The sessions that exist still answer.
    for (const c of clients.slice(0, 3)) assert.ok((await udpRequest(port, q, { socket: c })).equals(q));
    assert.equal(plane.connectionList().length, 3);
    // Once they expire, there is room again.
    clock += 31;
    plane.tick();
    assert.equal(plane.udpBudget.used, 0);
    assert.ok((await udpRequest(port, q, { socket: clients[4] as dgram.Socket })).equals(q));
  } finally {
    unsubscribe('fulcrum:failure', onFailure);
    for (const c of clients) c.close();
    echo.close();
    await plane.close(0);
  }
});

for (const relay of RELAYS) {
  test(`proxy [${relay}]: clear refusals — DR on the proxy, address in use, address not on this host`, () => withSetup(relay, 0, async (plane, _rs, port) => {
    const dr = await plane.apply({ ops: [{ op: 'add-service', service: serviceSpec('127.0.0.1', port, 'dr') }] });
    assert.equal(dr.failed[0]?.code, DataPlaneErrorCode.UNSUPPORTED);
    assert.match(dr.failed[0]!.message, /DR forwarding.*nftables/);
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(port, '127.0.0.1', r));
    try {
      const inUse = await plane.apply({ ops: [{ op: 'add-service', service: serviceSpec('127.0.0.1', port, 'proxy') }] });
      assert.equal(inUse.failed[0]?.code, DataPlaneErrorCode.LISTEN);
      assert.match(inUse.failed[0]!.message, /already in use/);
    } finally {
      blocker.close();
    }
    const notHere = await plane.apply({ ops: [{ op: 'add-service', service: serviceSpec('192.0.2.7', port, 'proxy') }] });
    assert.equal(notHere.failed[0]?.code, DataPlaneErrorCode.LISTEN);
    assert.match(notHere.failed[0]!.message, /not on this host/);
    assert.deepEqual(plane.stats(), []);
  }));

  test(`proxy [${relay}]: a connect that hangs is retried elsewhere after the connect timeout; idle connections close after the tcp timeout`, async () => {
    let clock = 500;
    const plane = new ProxyDataPlane({ now: () => clock, tunables: { connectTimeoutMs: 2000, relay } });
    const rs = await startServer('good', { mode: 'name-echo' });
    const dead = await unansweringServer();
    const deadPort = dead.port;
    try {
      const port = await freePort();
      const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr', timeouts: { tcp: 60, tcpfin: 10, udp: 30 } });
      await addService(plane, svc, [{ port: deadPort, weight: 1 }, { port: rs.port, weight: 1 }]);
      const c = await openSocket(port);
      await waitFor(() => plane.connectionList()[0]?.state === 'SYN_SENT', 2000, 'connecting upstream');
      plane.tick();
      assert.equal(plane.connectionList()[0]?.state, 'SYN_SENT', 'not yet timed out');
      clock += 2;
      plane.tick();
      assert.equal(await readLine(c), 'good', 'retried on the other server after the connect timeout');
      assert.equal(plane.connectionList()[0]?.state, 'ESTABLISHED');
      clock += 59;
      plane.tick();
      assert.equal(plane.sessionCount, 1, 'not idle long enough');
      const closed = new Promise<void>((r) => c.on('close', () => r()));
      clock += 2;
      plane.tick();
      await closed;
      await waitFor(() => plane.sessionCount === 0, 2000, 'idle connection closed');
    } finally {
      dead.close();
      await plane.close(0);
      await rs.close();
    }
  });

  test(`proxy [${relay}]: what a client sent before any real server accepted reaches the one that does, after a retry`, async () => {
    let clock = 500;
    const plane = new ProxyDataPlane({ now: () => clock, tunables: { connectTimeoutMs: 2000, relay } });
    const rs = await startServer('good', { mode: 'name-echo' });
    const dead = await unansweringServer();
    const deadPort = dead.port;
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-early-'));
    let client: ChildProcess | null = null;
    try {
      const port = await freePort();
      await addService(plane, serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr' }), [{ port: deadPort, weight: 1 }, { port: rs.port, weight: 1 }]);
      const early = await speakBeforeAccept(port, 'first words', 2, dir);
      client = early.child;
      const lines = early.lines;
      await waitFor(() => plane.connectionList()[0]?.state === 'SYN_SENT', 2000, 'connecting to the server that never answers');
      clock += 2.5;
      plane.tick();
      await waitFor(() => lines.length >= 2, 5000, 'the reply through the retried server');
      assert.deepEqual(lines, ['good', 'first words'], 'the bytes read before the retry went to the server that accepted');
      const st = plane.stats()[0]!;
      assert.equal(st.servers[1]!.counters.inBytes, 12, 'counted on the server that took them');
      assert.equal(st.servers[0]!.counters.inBytes, 0);
    } finally {
      client?.kill('SIGKILL');
      dead.close();
      await plane.close(0);
      await rs.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`proxy [${relay}]: every IPVS scheduler (and agent) serves connections through the proxy`, () => withSetup(relay, 2, async (plane, rs) => {
    const { ALL_SCHEDULERS } = await import('../../scheduling/index.js');
    for (const name of ALL_SCHEDULERS) {
      const port = await freePort();
      const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: name });
      await addService(plane, svc, [{ port: rs[0]!.port, weight: 2 }, { port: rs[1]!.port, weight: 1 }]);
      const got: string[] = [];
      for (let i = 0; i < 6; i++) got.push((await fetchText(port)).trim());
      assert.ok(got.every((g) => g === 'rs1' || g === 'rs2'), `${name}: ${got.join(',')}`);
      await plane.apply({ ops: [{ op: 'remove-service', key: svc.key }] });
    }
  }));

  // The epoll relay splices bulk directions through a pipe unless told not to; both ways
  // must deliver every byte, to slow readers too, and leave no descriptor behind.
  // pipeShare 0: the pipes' share of the descriptor limit is spent, so bulk is copied.
  const variants = relay === 'epoll'
    ? [{ splice: true, pipeShare: 0.25, how: ', spliced' }, { splice: false, pipeShare: 0.25, how: ', copied (--no-splice)' }, { splice: true, pipeShare: 0, how: ', copied (no pipe budget left)' }]
    : [{ splice: true, pipeShare: 0.25, how: '' }];
  for (const { splice, pipeShare, how } of variants) {
    const spliced = splice && pipeShare > 0;
    test(`proxy [${relay}${how}]: bulk arrives intact both ways, also to a slow reader and through a half-close; nothing is left open`, { timeout: 60_000 }, async () => {
      const { createHash, randomBytes } = await import('node:crypto');
      const body = randomBytes(8 * 1024 * 1024);
      const want = createHash('sha256').update(body).digest('hex');
      // Node destroys a socket a turn or more after its 'end': the descriptors are counted once
      // every socket of the test's own (clients and real server) has closed.
      const closed: Promise<void>[] = [];
      const track = (s: net.Socket): void => { closed.push(new Promise((r) => s.once('close', () => r()))); };
      // The real server answers a bare connection with the body; one that sends first gets its bytes' hash.
      const srv = net.createServer((s) => {
        track(s);
        s.on('error', () => undefined);
        const h = createHash('sha256');
        let got = 0;
        const t = setTimeout(() => s.end(body), 50);
        s.on('data', (c: Buffer) => { clearTimeout(t); got += c.length; h.update(c); });
        s.on('end', () => { if (got > 0) s.end(h.digest('hex')); });
      });
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      const rsPort = (srv.address() as net.AddressInfo).port;
      const fds = (): number => fs.readdirSync('/proc/self/fd').length;
      const before = fds();
      const plane = new ProxyDataPlane({ tunables: { relay, splice, pipeShare } });
      let pipesMidway = 0;
      try {
        const port = await freePort();
        const svc = serviceSpec('127.0.0.1', port, 'proxy');
        await addService(plane, svc, [{ port: rsPort, weight: 1 }]);
        // A slow reader stops reading for 300 ms at its first bytes (the proxy's writes to it
        // then fall short and the rest waits, in a buffer or the pipe), then 1 ms per chunk.
        const fetchHash = (slow: boolean): Promise<string> => new Promise((resolve, reject) => {
          const h = createHash('sha256');
          const s = net.connect(port, '127.0.0.1');
          track(s);
          let first = true;
          s.on('data', (c: Buffer) => {
            h.update(c);
            if (slow) {
              s.pause();
              // Mid-transfer, the response direction is spliced (its first full read is behind it).
              if (first) pipesMidway = Math.max(pipesMidway, plane.pipes());
              setTimeout(() => s.resume(), first ? 300 : 1);
              first = false;
            }
          });
          s.on('end', () => resolve(h.digest('hex')));
          s.on('error', reject);
        });
        // Upload: 8 MiB from the client, then its FIN while the last bytes may still be owed.
        const upload = (): Promise<string> => new Promise((resolve, reject) => {
          let reply = '';
          const s = net.connect(port, '127.0.0.1', () => s.end(body));
          track(s);
          s.on('data', (c: Buffer) => { reply += c.toString(); });
          s.on('end', () => resolve(reply));
          s.on('error', reject);
        });
        const results = await Promise.all([fetchHash(false), fetchHash(true), fetchHash(false), fetchHash(true), upload()]);
        assert.deepEqual(results, [want, want, want, want, want]);
        await waitFor(() => plane.sessionCount === 0, 5000, 'sessions to finish');
        const c = plane.stats()[0]!.counters;
        assert.equal(c.outBytes, 4 * body.length + want.length);
        assert.equal(c.inBytes, body.length);
        const reactor = plane.reactor();
        if (reactor !== null) {
          // Each download's response direction and the upload's request direction, when spliced.
          assert.equal(reactor.pipesMade, spliced ? 5 : 0, 'pipes made');
          assert.equal(reactor.pipesOpen, 0, 'every pipe closed');
          assert.equal(spliced, pipesMidway > 0, `pipes seen mid-transfer: ${pipesMidway}`);
          assert.equal(plane.pipes(), 0);
          assert.equal(reactor.size, 1, 'only the listener watched');
        }
        // Every pipe and socket closed with its connection (the listener is the plane's).
        await Promise.all(closed);
        assert.ok(fds() <= before + 2, `descriptors: ${before} before, ${fds()} after`);
      } finally {
        await plane.close(0);
        srv.close();
      }
    });
  }

  /** One exchange from a given loopback source address: the real server's name. */
}

function askFrom(port: number, from: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ port, host: '127.0.0.1', localAddress: from });
    let buf = '';
    c.setTimeout(5000, () => c.destroy(new Error('timeout')));
    c.on('data', (d) => { buf += d.toString(); });
    c.on('end', () => resolve(buf.trim()));
    c.on('error', reject);
  });
}

/** Flows through the wire (IPVS sync version 1) and back, as a receiving director reads them. */
function overTheWire(flows: readonly SyncedFlow[]): SyncedFlow[] {
  const out: SyncedFlow[] = [];
  for (const m of encodeMessages(flows.map(toEntry), { syncid: 7 })) {
    const d = decodeMessage(m, { syncid: 7 });
    assert.ok(d.ok);
    for (const e of d.entries) {
      const f = fromEntry(e, DEFAULT_TIMEOUTS);
      assert.notEqual(typeof f, 'string', `refused: ${String(f)}`);
      if (typeof f !== 'string') out.push(f);
    }
  }
  return out;
}

for (const kind of ['single loop', 'two workers'] as const) {
  test(`proxy (${kind}): connection sync carries persistence templates — over the wire, a returning client keeps its server on the other director; connections are refused as unsupported`, async () => {
    const servers = [await startServer('rs1'), await startServer('rs2')];
    const make = (): DataPlane => (kind === 'single loop' ? new ProxyDataPlane() : new WorkersDataPlane({ workers: 2 }));
    const a = make();
    const b = make();
    try {
      const pers = { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' };
      const [pa, pb] = [await freePort(), await freePort()];
      const add = async (plane: DataPlane, port: number, order: TestServer[]): Promise<void> => {
        const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr', persistence: pers });
        const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, ...order.map((x) => ({ op: 'add-server' as const, service: svc.key, server: serverSpec('127.0.0.1', x.port, 1, 'proxy') }))] });
        assert.deepEqual(r.failed, []);
      };
      await add(a, pa, servers);
      const first = await askFrom(pa, '127.0.0.2');
      const second = await askFrom(pa, '127.0.0.3');
      assert.notEqual(first, second, 'rr: two clients, two servers');
      const exported = await a.syncExport?.() ?? [];
      assert.deepEqual(exported.map((f) => [f.template, f.method, f.client, f.cport, f.virtual, f.vport, f.dport]).sort(), [
        [true, 'proxy', '127.0.0.2', 0, '127.0.0.1', pa, servers.find((x) => x.name === first)?.port],
        [true, 'proxy', '127.0.0.3', 0, '127.0.0.1', pa, servers.find((x) => x.name === second)?.port],
      ].sort());
      assert.ok(exported.every((f) => f.timeout > 290 && f.timeout <= 300), exported.map((f) => f.timeout).join());
      // The other director: the same service (here on another port), its servers in the other
      // order, so its own rr would send each client to the other server.
      // The templates arrive while b does not serve the service (a VRRP backup keeps a
      // proxied VIP service out of its plane): b keeps them for it.
      const flows = overTheWire(exported).map((f) => ({ ...f, vport: pb }));
      const conn: SyncedFlow = { ...(flows[0] as SyncedFlow), template: false, cport: 40000, state: 'established' };
      const r = await b.syncInstall?.([...flows, conn]);
      assert.equal(r?.installed, 2);
      assert.deepEqual([...(r?.refused ?? new Map())], [['unsupported', 1]]);
      assert.equal((await b.syncInstall?.(flows))?.unchanged, 2, 'a refresh with nothing new changes nothing');
      // The takeover: b serves the service; the kept templates are in place before it listens.
      await add(b, pb, [...servers].reverse());
      assert.equal((await b.syncInstall?.(flows))?.unchanged, 2, 'adopted: a refresh finds them in the service');
      assert.equal(await askFrom(pb, '127.0.0.3'), second, 'the template, not rr, chose');
      assert.equal(await askFrom(pb, '127.0.0.2'), first);
      assert.equal(await askFrom(pb, '127.0.0.4'), servers[1]?.name, 'a new client: b\'s own rr (after its two adopted templates)');
    } finally {
      await a.close(0);
      await b.close(0);
      for (const x of servers) await x.close();
    }
  });
}
