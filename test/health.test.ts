/**
 * Health checks end to end: `fulcrum run` as a child process with TCP_CHECK and HTTP_GET
 * on loopback real servers — the measured time from a real server dying to being out of
 * rotation and from recovering to being back; `fulcrum genhash` against a real server.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type net from 'node:net';
import { startDaemon } from '../src/testing/daemon.js';
import { fetchText, freePort, startServer } from '../src/testing/net.js';
import { tcpPeer } from '../src/testing/peers.js';
import { main } from '../src/cli/main.js';

test('run with TCP_CHECK: a killed real server leaves rotation within delay_loop + connect_timeout, and returns', async () => {
  const rs1 = await startServer('rs1', { mode: 'name' });
  const rs2 = await startServer('rs2', { mode: 'name' });
  const port = await freePort();
  const check = `    TCP_CHECK {\n      connect_timeout 1\n      delay_loop 1\n      retry 0\n      warmup 0\n    }\n`;
  const fifoDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-lvsfifo-'));
  const fifo = path.join(fifoDir, 'lvs_notify_fifo');
  const d = await startDaemon(`global_defs {
  lvs_notify_fifo ${fifo}
}
virtual_server 127.0.0.1 ${port} {
  lb_algo rr
  lb_kind PROXY
  real_server 127.0.0.1 ${rs1.port} {
${check}  }
  real_server 127.0.0.1 ${rs2.port} {
${check}  }
}
`);
  let rs1b: Awaited<ReturnType<typeof startServer>> | null = null;
  try {
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await fetchText(port)).trim());
    assert.deepEqual([...seen].sort(), ['rs1', 'rs2']);
    assert.equal(d.logs.some((l) => /not part of this build/.test(l.msg)), false, 'no "not implemented" notice any more');

    const killedAt = Date.now();
    await rs1.kill();
    const down = await d.waitLog((l) => l.event === 'server-down', 10_000, 'rs1 out of rotation');
    const outMs = Date.now() - killedAt;
    assert.match(String(down['reason']), /TCP_CHECK down: connection refused/);
    assert.ok(outMs <= 2500, `out of rotation ${outMs} ms after dying (delay_loop 1 s, retry 0)`);
    const after = [];
    for (let i = 0; i < 10; i++) after.push((await fetchText(port)).trim());
    assert.deepEqual([...new Set(after)], ['rs2'], 'every new connection goes to rs2');

    const backAt = Date.now();
    rs1b = await startServer('rs1', { mode: 'name', port: rs1.port });
    await d.waitLog((l) => l.event === 'server-up', 10_000, 'rs1 back in rotation');
    const inMs = Date.now() - backAt;
    assert.ok(inMs <= 2500, `back ${inMs} ms after recovering`);
    const again = new Set<string>();
    for (let i = 0; i < 6; i++) again.add((await fetchText(port)).trim());
    assert.deepEqual([...again].sort(), ['rs1', 'rs2']);
    console.log(`# measured on loopback: out of rotation after ${outMs} ms, back after ${inMs} ms (delay_loop 1, connect_timeout 1, retry 0)`);
    // lvs_notify_fifo: keepalived's lines, in order, in the FIFO the daemon created.
    const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const buf = Buffer.alloc(4096);
    const lines = buf.subarray(0, fs.readSync(fd, buf)).toString().trim().split('\n');
    fs.closeSync(fd);
    assert.deepEqual(lines.filter((l) => l.startsWith('RS ')), [`RS [127.0.0.1]:tcp:${rs1.port} [127.0.0.1]:tcp:${port} DOWN`, `RS [127.0.0.1]:tcp:${rs1.port} [127.0.0.1]:tcp:${port} UP`]);
  } finally {
    fs.rmSync(fifoDir, { recursive: true, force: true });
    await d.cleanup();
    await rs2.close();
    await rs1b?.close();
  }
});

test('run with TCP_CHECK fulcrum_half_open: the real server comes up on its SYN-ACKs, its application accepts none of them, and a dead one goes down', async () => {
  let accepted = 0;
  const rs = await tcpPeer((s) => { accepted++; s.destroy(); });
  const port = await freePort();
  // alpha: the server starts down, so coming up proves a half-open probe succeeded.
  const d = await startDaemon(`virtual_server 127.0.0.1 ${port} {
  lb_algo rr
  lb_kind PROXY
  real_server 127.0.0.1 ${rs.port} {
    TCP_CHECK {
      fulcrum_half_open
      alpha
      connect_timeout 1
      delay_loop 1
      retry 0
      warmup 0
    }
  }
}
`);
  try {
    await d.waitLog((l) => l.event === 'server-up', 10_000, 'the real server up on a half-open probe');
    // Three more probes, a second apart.
    await new Promise((r) => setTimeout(r, 3200));
    // A delayed ACK goes out only if the daemon's loop stalled past the delayed-ACK timer (≥ 40 ms).
    assert.ok(accepted <= 1, `${accepted} probes reached the real server's application`);
    await rs.close();
    // (alpha logged a server-down with "no success yet" at the start.)
    await d.waitLog((l) => l.event === 'server-down' && /TCP_CHECK down: connection refused/.test(String(l['reason'])), 10_000, 'the closed real server out of rotation');
  } finally {
    await d.cleanup();
    await rs.close();
  }
});

test('run with HTTP_GET: a 503 takes the server out, with the status as evidence in the log', async () => {
  let status = 200;
  const web = http.createServer((_req, res) => { res.writeHead(status); res.end('web\n'); });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const wport = (web.address() as net.AddressInfo).port;
  const port = await freePort();
  const d = await startDaemon(`virtual_server 127.0.0.1 ${port} {
  lb_algo rr
  lb_kind PROXY
  real_server 127.0.0.1 ${wport} {
    HTTP_GET {
      url {
        path /health
        status_code 200-299
      }
      connect_timeout 1
      delay_loop 1
      retry 0
      warmup 0
    }
  }
}
`);
  try {
    status = 503;
    const down = await d.waitLog((l) => l.event === 'check-down', 10_000, 'HTTP_GET down');
    assert.equal(down['status'], 503);
    assert.equal(down['detail'], '/health: status 503 not in 200-299');
    status = 200;
    await d.waitLog((l) => l.event === 'server-up', 10_000, 'back up');
  } finally {
    await d.cleanup();
    web.closeAllConnections();
    await new Promise<void>((r) => web.close(() => r()));
  }
});

test('genhash: prints the MD5 the HTTP_GET digest needs; errors name the server', async () => {
  const body = 'digest me\n';
  const web = http.createServer((_req, res) => { res.writeHead(200); res.end(body); });
  await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
  const wport = (web.address() as net.AddressInfo).port;
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => { out.push(t); }, err: (t: string) => { err.push(t); } };
  try {
    assert.equal(await main(['genhash', '-s', '127.0.0.1', '-p', String(wport), '-u', '/x'], io), 0);
    assert.deepEqual(out, [`MD5SUM = ${createHash('md5').update(body).digest('hex')}`]);
    assert.equal(await main(['genhash', '-s', 'example', '-u', '/'], io), 2);
    assert.match(err.join(''), /--server: 'example' is not an IP address/);
    const closed = await freePort();
    assert.equal(await main(['genhash', '-s', '127.0.0.1', '-p', String(closed), '-u', '/'], io), 1);
    assert.match(err.at(-1) ?? '', new RegExp(`127\\.0\\.0\\.1:${closed}/: connect (to 127\\.0\\.0\\.1:${closed}: )?ECONNREFUSED`));
  } finally {
    await new Promise<void>((r) => web.close(() => r()));
  }
});

test('fulcrum agent (CLI): answers a probe with the system load, stops on SIGTERM; bad usage exits 2', async () => {
  const { EventEmitter } = await import('node:events');
  const { probeAgent } = await import('../src/agents/index.js');
  const { runAgent } = await import('../src/cli/agent.js');
  const err: string[] = [];
  const io = { out: () => undefined, err: (t: string) => { err.push(t); } };
  const base = { listen: '127.0.0.1', dialect: 'equalizer', interval: '0.2', timeout: '1', stale: '5', maxConnections: '1000', probeWait: '0.05', logLevel: 'silent' };
  assert.equal(await runAgent({ ...base, port: '1510', dialect: 'xml' }, io), 2);
  assert.match(err.join('\n'), /--dialect: 'xml' is not equalizer or haproxy/);
  const port = await freePort();
  const signals = new EventEmitter();
  const done = runAgent({ ...base, port: String(port) }, io, signals as unknown as Parameters<typeof runAgent>[2]);
  let load: number | undefined;
  for (let i = 0; i < 50 && load === undefined; i++) {
    const r = await probeAgent({ family: 'inet', address: '127.0.0.1', port }, undefined, 500);
    if (r.parse.ok) load = r.parse.reply.load;
    else await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(load !== undefined && load >= 0 && load <= 100, `a load 0..100 (${load})`);
  signals.emit('SIGTERM');
  assert.equal(await done, 0);
});
