/**
 * `fulcrum run` end to end, as a child process on loopback: balancing, SIGHUP reloads
 * (good and broken), graceful stop, a real server dying mid-test, UDP, clear refusals.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { startDaemon } from '../src/testing/daemon.js';
import { fetchText, freePort, openSocket, readLine, startServer, udpRequest, waitFor, type TestServer } from '../src/testing/net.js';

function conf(port: number, servers: readonly { port: number; weight: number }[], extra = '', proto = 'TCP'): string {
  return `virtual_server 127.0.0.1 ${port} {
  lb_algo wrr
  lb_kind PROXY
  protocol ${proto}
  ${extra}
${servers.map((s) => `  real_server 127.0.0.1 ${s.port} {\n    weight ${s.weight}\n  }`).join('\n')}
}
`;
}

async function withServers(n: number, mode: 'name' | 'name-echo', fn: (rs: TestServer[]) => Promise<void>): Promise<void> {
  const rs: TestServer[] = [];
  try {
    for (let i = 0; i < n; i++) rs.push(await startServer(`rs${i + 1}`, { mode }));
    await fn(rs);
  } finally {
    for (const s of rs) await s.close();
  }
}

const tally = (xs: string[]): Record<string, number> => xs.reduce<Record<string, number>>((t, x) => ({ ...t, [x]: (t[x] ?? 0) + 1 }), {});

test('run: wrr 3:2:1 over 600 requests; SIGHUP with a changed weight keeps open connections', () => withServers(3, 'name-echo', async (rs) => {
  const port = await freePort();
  const d = await startDaemon(conf(port, [{ port: rs[0]!.port, weight: 3 }, { port: rs[1]!.port, weight: 2 }, { port: rs[2]!.port, weight: 1 }]));
  try {
    const got: string[] = [];
    for (let i = 0; i < 600; i++) {
      const s = await openSocket(port);
      got.push(await readLine(s));
      s.destroy();
    }
    assert.deepEqual(tally(got), { rs1: 300, rs2: 200, rs3: 100 });

    const held = await openSocket(port);
    const heldBy = await readLine(held);
    d.writeConfig(conf(port, [{ port: rs[0]!.port, weight: 1 }, { port: rs[1]!.port, weight: 1 }, { port: rs[2]!.port, weight: 1 }]));
    d.signal('SIGHUP');
    const reloaded = await d.waitLog((l) => l.event === 'reloaded', 10000, 'reload');
    assert.equal(reloaded['ops'], 2, 'only the two changed weights were applied');
    held.write('still connected\n');
    assert.equal(await readLine(held), 'still connected', `the connection to ${heldBy} survived the reload`);
    const after: string[] = [];
    for (let i = 0; i < 300; i++) {
      const s = await openSocket(port);
      after.push(await readLine(s));
      s.destroy();
    }
    assert.deepEqual(tally(after), { rs1: 100, rs2: 100, rs3: 100 });
    held.destroy();
  } finally {
    await d.cleanup();
  }
}));

test('run: SIGHUP with a broken file is rejected with located errors and keeps serving', () => withServers(1, 'name', async (rs) => {
  const port = await freePort();
  const good = conf(port, [{ port: rs[0]!.port, weight: 1 }]);
  const d = await startDaemon(good);
  try {
    assert.equal((await fetchText(port)).trim(), 'rs1');
    d.writeConfig(good.replace('lb_algo wrr', 'lb_algo nosuch').replace('weight 1', 'weight -5'));
    d.signal('SIGHUP');
    await d.waitLog((l) => l.event === 'reload-rejected' && l.msg.includes('running configuration stays'), 10000, 'rejection');
    const located = d.logs.filter((l) => l.event === 'reload-rejected' && /fulcrum\.conf:\d+:\d+: error E_/.test(l.msg));
    assert.ok(located.length >= 2, `each error is located: ${located.map((l) => l.msg).join(' | ')}`);
    assert.ok(located.some((l) => l.msg.includes("unknown scheduler 'nosuch'")));
    assert.equal((await fetchText(port)).trim(), 'rs1', 'still serving on the old configuration');
  } finally {
    await d.cleanup();
  }
}));

test('run: SIGTERM stops accepting, lets open connections finish, exits 0', () => withServers(1, 'name-echo', async (rs) => {
  const port = await freePort();
  const d = await startDaemon(conf(port, [{ port: rs[0]!.port, weight: 1 }]), { args: ['--drain-timeout', '10'] });
  try {
    const held = await openSocket(port);
    assert.equal(await readLine(held), 'rs1');
    const t0 = Date.now();
    d.signal('SIGTERM');
    await d.waitLog((l) => l.event === 'stopping', 5000, 'stopping');
    await assert.rejects(openSocket(port), (e: NodeJS.ErrnoException) => e.code === 'ECONNREFUSED', 'no new connections');
    held.write('draining\n');
    assert.equal(await readLine(held), 'draining', 'the open connection still works while draining');
    held.end();
    assert.equal(await d.waitExit(8000), 0);
    assert.ok(Date.now() - t0 < 8000, 'exited when the last connection finished, before the drain timeout');
  } finally {
    await d.cleanup();
  }
}));

test('run: a real server killed mid-test — its in-flight connections fail once, new ones go elsewhere', () => withServers(3, 'name-echo', async (rs) => {
  const port = await freePort();
  const d = await startDaemon(conf(port, rs.map((s) => ({ port: s.port, weight: 1 }))));
  try {
    const open = [];
    for (let i = 0; i < 9; i++) {
      const s = await openSocket(port);
      open.push({ s, by: await readLine(s) });
    }
    const victims = open.filter((o) => o.by === 'rs2');
    assert.equal(victims.length, 3);
    const failures = victims.map((v) => new Promise<string>((r) => {
      v.s.on('error', (e: NodeJS.ErrnoException) => r(e.code ?? 'error'));
      v.s.on('close', () => r('closed'));
    }));
    await rs[1]!.kill();
    assert.deepEqual(await Promise.all(failures), ['ECONNRESET', 'ECONNRESET', 'ECONNRESET']);
    for (const o of open.filter((x) => x.by !== 'rs2')) {
      o.s.write('alive\n');
      assert.equal(await readLine(o.s), 'alive', 'connections to the other servers are untouched');
    }
    const next: string[] = [];
    for (let i = 0; i < 30; i++) {
      const s = await openSocket(port);
      next.push(await readLine(s));
      s.destroy();
    }
    assert.deepEqual(tally(next), { rs1: 15, rs3: 15 }, 'every new connection succeeded elsewhere');
    for (const o of open) o.s.destroy();
    await d.waitLog((l) => l.event === 'connect-failed' && l['retrying'] === true, 5000, 'retry log');
  } finally {
    await d.cleanup();
  }
}));

test('run: UDP DNS-like request/response through the proxy', async () => {
  const dns = dgram.createSocket('udp4');
  dns.on('message', (m, r) => {
    // Echo the query ID with the QR bit set and one answer count, like a resolver's reply.
    const reply = Buffer.from(m);
    reply[2] = (reply[2] ?? 0) | 0x80;
    reply.writeUInt16BE(1, 6);
    dns.send(reply, r.port, r.address);
  });
  await new Promise<void>((r) => dns.bind(0, '127.0.0.1', r));
  const port = await freePort('127.0.0.1', 'udp');
  const d = await startDaemon(conf(port, [{ port: dns.address().port, weight: 1 }], '', 'UDP'));
  try {
    for (let id = 1; id <= 20; id++) {
      const q = Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, 0x77, 0x77, 0x77, 0, 0, 1, 0, 1]);
      const a = await udpRequest(port, q);
      assert.equal(a.readUInt16BE(0), id);
      assert.equal((a[2] ?? 0) & 0x80, 0x80);
      assert.equal(a.readUInt16BE(6), 1);
    }
  } finally {
    await d.cleanup();
    dns.close();
  }
});

test('run: clear refusals — DR without the kernel plane or without CAP_NET_ADMIN; a privileged port as an unprivileged user', async () => {
  const port = await freePort();
  const drConf = `virtual_server 127.0.0.1 ${port} {\n lb_kind DR\n real_server 127.0.0.2 ${port} {\n }\n}\n`;
  const dr = await startDaemon(drConf, { waitStarted: false, args: ['--nft', 'none'] });
  try {
    assert.equal(await dr.waitExit(), 1);
    assert.match(dr.stderr, /fulcrum\.conf:1:1: virtual server tcp 127\.0\.0\.1:\d+ uses DR forwarding, which needs the kernel \(nftables\) data plane/);
    assert.doesNotMatch(dr.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    await dr.cleanup();
  }
  // The kernel plane without CAP_NET_ADMIN (root drops it; any other user lacks it): nothing reaches nftables.
  const noAdmin = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-net_admin', '--inh-caps=-net_admin'] : [];
  const nocap = await startDaemon(drConf, { waitStarted: false, prefix: noAdmin });
  try {
    assert.equal(await nocap.waitExit(), 1);
    assert.match(nocap.stderr, /nftables needs CAP_NET_ADMIN/);
    assert.doesNotMatch(nocap.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    await nocap.cleanup();
  }
  // Without CAP_NET_BIND_SERVICE (root drops it with setpriv; any other user lacks it).
  const prefix = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-net_bind_service', '--inh-caps=-net_bind_service'] : [];
  const low = await startDaemon(`virtual_server 127.0.0.1 81 {\n lb_kind PROXY\n real_server 127.0.0.2 81 {\n }\n}\n`, { waitStarted: false, prefix });
  try {
    assert.equal(await low.waitExit(), 1);
    assert.match(low.stderr, /cannot listen on tcp 127\.0\.0\.1:81: permission denied \(ports below 1024 need root or CAP_NET_BIND_SERVICE\)/);
    assert.doesNotMatch(low.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    await low.cleanup();
  }
});

test('demo: the quick start command starts real servers and the director and shows the wrr split', async () => {
  const { main } = await import('../src/cli/main.js');
  const out: string[] = [];
  const code = await main(['demo', '--exit', '--requests', '12'], { out: (t) => out.push(t), err: (t) => out.push(t) });
  const text = out.join('\n');
  assert.equal(code, 0, text);
  assert.match(text, /Director up: tcp 127\.0\.0\.1:8080 \(wrr/);
  assert.match(text, /split: 127\.0\.0\.1:9001 6, 127\.0\.0\.1:9002 4, 127\.0\.0\.1:9003 2/);
  assert.match(text, /curl -s http:\/\/127\.0\.0\.1:8080\//);
});

test('run: VRRP without CAP_NET_RAW / CAP_NET_ADMIN is refused with the capabilities named', async () => {
  // Root drops both capabilities with setpriv; any other user lacks them anyway.
  const prefix = process.getuid?.() === 0 ? ['setpriv', '--bounding-set=-net_raw,-net_admin', '--inh-caps=-net_raw,-net_admin'] : [];
  const vrrp = 'vrrp_instance VI_1 {\n interface lo\n virtual_router_id 9\n priority 100\n virtual_ipaddress {\n 192.0.2.9/32\n }\n}\n';
  const d = await startDaemon(vrrp, { waitStarted: false, prefix });
  try {
    assert.equal(await d.waitExit(), 1);
    assert.match(d.stderr, /VRRP needs CAP_NET_RAW and CAP_NET_ADMIN/);
    assert.match(d.stderr, /setcap cap_net_raw,cap_net_admin\+ep/);
    assert.doesNotMatch(d.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    await d.cleanup();
  }
});

test('run: systemd is told READY only once the listener is open, RELOADING/READY around a reload, STOPPING on stop', () => withServers(1, 'name', async (rs) => {
  const { runRun } = await import('../src/cli/run.js');
  const { FakeServiceManager } = await import('../src/sys/index.js');
  const { EventEmitter } = await import('node:events');
  const fs = await import('node:fs');
  const os = await import('node:os');
  const path = await import('node:path');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-notify-run-'));
  const port = await freePort();
  const file = path.join(dir, 'fulcrum.conf');
  fs.writeFileSync(file, conf(port, [{ port: rs[0]!.port, weight: 1 }]));
  const signals = new EventEmitter();
  const listening: boolean[] = [];
  // What the listener answers at the moment each notification is sent.
  const probe = async (): Promise<boolean> => fetchText(port, { timeoutMs: 1000 }).then((t) => t.trim() === 'rs1', () => false);
  const manager = new FakeServiceManager();
  const notify = manager.notify.bind(manager);
  const ready = new Promise<void>((resolve) => {
    manager.notify = (fields) => {
      notify(fields);
      if (fields['READY'] === '1') {
        listening.push(false);
        const i = listening.length - 1;
        void probe().then((ok) => { listening[i] = ok; resolve(); });
      }
    };
  });
  const io = { out: () => undefined, err: () => undefined };
  try {
    const done = runRun({ file, drainTimeout: '1', logLevel: 'silent', workers: '1', nft: 'none', apiSocket: 'none', stateFile: path.join(dir, 'state.json') }, io, signals, 1, manager);
    await ready;
    assert.deepEqual(listening, [true], 'the port answered when READY=1 went out');
    assert.equal(manager.sent[0]?.['READY'], '1');
    assert.equal(manager.sent[0]?.['STATUS'], '1 virtual server(s), 1 real server(s), 0 VRRP instance(s)');
    fs.writeFileSync(file, conf(port, [{ port: rs[0]!.port, weight: 2 }]));
    signals.emit('SIGHUP');
    for (let i = 0; i < 100 && manager.sent.length < 3; i++) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(manager.sent.slice(1).map((f) => Object.keys(f)[0]), ['RELOADING', 'READY']);
    signals.emit('SIGTERM');
    assert.equal(await done, 0);
    assert.equal(manager.sent.at(-1)?.['STOPPING'], '1');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}));
