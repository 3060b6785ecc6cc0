/**
 * TCP_CHECK, HTTP_GET, SSL_GET and SMTP_CHECK against real local servers (Node's HTTP and
 * HTTPS servers, nginx, the smtp-server package) and hostile ones.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import type { HttpCheck, HttpUrl } from '../../model/types.js';
import { checkerCompliance, probeOnce as once } from '../compliance.js';
import type { ProbeTarget } from '../types.js';
import { TcpChecker } from './tcp.js';
import { ReactorStream, readStream } from '../stream.js';
import { reactorAvailable } from '../../sys/reactor.js';
import { createServer } from 'node:net';
import { HttpChecker, requestText } from './http.js';
import { SmtpChecker } from './smtp.js';
import { closedPort, ensureCommand, floodPeer, nginxCommand, selfSignedCert, silentPeer, startDaemonProcess, tcpPeer, tricklePeer } from '../../testing/peers.js';
import { freePort, waitFor } from '../../testing/net.js';

const at = (port: number): ProbeTarget => ({ family: 'inet', address: '127.0.0.1', port });

const timing = { delayLoop: 1, warmup: 0, connectTimeout: 1, retry: 0, delayBeforeRetry: 1, alpha: false, logAllFailures: false, rise: 1 };
function httpCheck(urls: Partial<HttpUrl>[], more: Partial<HttpCheck> = {}): HttpCheck {
  return {
    type: 'HTTP_GET', conn: {}, timing, httpProtocol: '1.0', fastRecovery: false, enableSni: false, tlsCompliant: false,
    urls: urls.map((u) => ({ path: '/', statusCodes: [[200, 299]], regexNoMatch: false, ...u })),
    ...more,
  };
}

interface Seen { line: string; host: string | undefined; connection: string | undefined; servername?: string | undefined }

async function webServer(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void, seen: Seen[]): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = http.createServer((req, res) => {
    seen.push({ line: `${req.method ?? ''} ${req.url ?? ''} HTTP/${req.httpVersion}`, host: req.headers.host, connection: req.headers.connection });
    handler(req, res);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => { srv.closeAllConnections(); srv.close(() => r()); }) };
}

checkerCompliance('TCP_CHECK', {
  build: (t) => new TcpChecker(t), silent: async () => { const p = await silentPeer(); return { target: at(p.port), close: p.close }; },
  refused: async () => at(await closedPort()), silentIsHealthy: true,
});
checkerCompliance('TCP_CHECK fulcrum_half_open', {
  build: (t) => new TcpChecker(t, { halfOpen: true }), silent: async () => { const p = await silentPeer(); return { target: at(p.port), close: p.close }; },
  refused: async () => at(await closedPort()), silentIsHealthy: true,
});
checkerCompliance('HTTP_GET', {
  build: (t) => new HttpChecker(t, httpCheck([{}])), silent: async () => { const p = await silentPeer(); return { target: at(p.port), close: p.close }; },
  refused: async () => at(await closedPort()),
});
checkerCompliance('SMTP_CHECK', {
  build: (t) => new SmtpChecker(t, 'director.test'), silent: async () => { const p = await silentPeer(); return { target: at(p.port), close: p.close }; },
  refused: async () => at(await closedPort()),
});

test('a probe stream writes a request larger than the socket takes, then sleeps until the reply: no wake-ups while it waits', { skip: !reactorAvailable() }, async () => {
  const request = Buffer.alloc(8 << 20, 0x61);
  let got = 0;
  let allIn: () => void = () => undefined;
  const everything = new Promise<void>((r) => { allIn = r; });
  let reply: () => void = () => undefined;
  const srv = createServer((sock) => {
    sock.on('data', (c: Buffer) => {
      got += c.length;
      if (got === request.length) allIn();
    });
    reply = () => sock.end('ok\n');
    sock.on('error', () => undefined);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  const ac = new AbortController();
  const s = await ReactorStream.connect(at(port), ac.signal);
  try {
    s.write(request);
    const answer = readStream(s, ac.signal, (c) => c.includes(0x0a));
    await everything;
    // The request is all written; the reply is held back for many turns of the event loop.
    const before = s.wakes;
    for (let i = 0; i < 200; i++) await new Promise((r) => setImmediate(r));
    const idle = s.wakes - before;
    reply();
    assert.equal(await answer, 'done');
    assert.ok(idle <= 2, `woken ${idle} times while nothing was due (a writable socket it no longer needed)`);
    assert.equal(got, request.length);
  } finally {
    s.destroy();
    await new Promise((r) => srv.close(r));
  }
});

test('TCP_CHECK: up against a listener, refused when closed, bindto is the source address', async () => {
  let from = '';
  const p = await tcpPeer((s) => { from = s.remoteAddress ?? ''; s.end(); });
  try {
    assert.equal((await once(new TcpChecker(at(p.port)))).ok, true);
    const bound = await once(new TcpChecker({ ...at(p.port), bindAddress: '127.0.0.7' }));
    assert.equal(bound.ok, true);
    assert.equal(from, '127.0.0.7');
  } finally {
    await p.close();
  }
  const r = await once(new TcpChecker(at(await closedPort())));
  assert.equal(r.ok, false);
  assert.equal(r.code, 'E_PROBE_REFUSED');
});

test('TCP_CHECK fulcrum_half_open: up on the SYN-ACK, never accepted by the real server\'s application, no TIME_WAIT; refused when closed', { skip: !reactorAvailable() }, async () => {
  let accepted = 0;
  // The real server listens on a loopback address of this test's own: the count of TIME_WAIT
  // sockets below is of this test's connections only. A port alone matched, now and then, a
  // TIME_WAIT of a test running beside this one whose ephemeral port was the same number.
  const host = '127.0.41.9';
  const p = await tcpPeer((s) => { accepted++; s.end(); }, host);
  const target = { ...at(p.port), address: host };
  const timeWait = (): number => execFileSync('ss', ['-Htan', 'state', 'time-wait', `( src ${host} and sport = :${p.port} ) or ( dst ${host} and dport = :${p.port} )`], { encoding: 'utf8' })
    .split('\n').filter((l) => l.trim() !== '').length;
  try {
    for (let i = 0; i < 20; i++) assert.equal((await once(new TcpChecker(target, { halfOpen: true }))).ok, true);
    // Time for the peer's loop to accept anything whose handshake did complete.
    await new Promise((r) => setTimeout(r, 300));
    // The last ACK goes out only if a probe's loop stalled past the delayed-ACK timer (≥ 40 ms).
    assert.ok(accepted <= 2, `${accepted} of 20 half-open probes were accepted by the application`);
    assert.equal(timeWait(), 0, 'a reset leaves no TIME_WAIT on either side');
    const before = accepted;
    for (let i = 0; i < 5; i++) assert.equal((await once(new TcpChecker(target))).ok, true);
    const t0 = Date.now();
    while (accepted - before < 5 && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
    assert.equal(accepted - before, 5, 'a full-handshake TCP_CHECK (keepalived\'s) is accepted every time');
    // The same count sees the FIN exchanges of those five: the filter is not blind.
    assert.ok(timeWait() >= 1, 'a full-handshake TCP_CHECK closes with a FIN, and one side keeps TIME_WAIT');
  } finally {
    await p.close();
  }
  const r = await once(new TcpChecker(at(await closedPort()), { halfOpen: true }));
  assert.equal(r.ok, false);
  assert.equal(r.code, 'E_PROBE_REFUSED');
});

test('HTTP_GET: status ranges, digest, regex, virtualhost and the request line per http_protocol', async () => {
  const seen: Seen[] = [];
  const body = 'hello from the real server\n';
  const digest = createHash('md5').update(body).digest('hex');
  const web = await webServer((req, res) => {
    if (req.url === '/down') { res.writeHead(503); res.end('maintenance'); return; }
    if (req.url === '/redirect') { res.writeHead(302, { Location: '/' }); res.end(); return; }
    if (req.url === '/chunked') { res.writeHead(200); res.write(body.slice(0, 5)); setTimeout(() => res.end(body.slice(5)), 20); return; }
    res.writeHead(200, { 'Content-Type': 'text/plain' });
    res.end(body);
  }, seen);
  try {
    const t = at(web.port);
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/' }])))).ok, true);
    const down = await once(new HttpChecker(t, httpCheck([{ path: '/down' }])));
    assert.deepEqual([down.ok, down.code, down.status, down.detail], [false, 'E_PROBE_MISMATCH', 503, '/down: status 503 not in 200-299']);
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/down', statusCodes: [[500, 599]] }])))).ok, true, 'status_code 500-599');
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/redirect', statusCodes: [[200, 200], [301, 302]] }])))).ok, true, 'several codes/ranges');
    const good = await once(new HttpChecker(t, httpCheck([{ path: '/', digest }])));
    assert.equal(good.ok, true);
    const bad = await once(new HttpChecker(t, httpCheck([{ path: '/', digest: '0'.repeat(32) }])));
    assert.equal(bad.ok, false);
    assert.match(bad.detail ?? '', new RegExp(`digest ${digest} is not 0{32}`));
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/chunked', digest }], { httpProtocol: '1.1' })))).ok, true, 'chunked body de-chunked before hashing');
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/', regex: 'real server' }])))).ok, true);
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/', regex: 'real server', regexNoMatch: true }])))).ok, false);
    assert.equal((await once(new HttpChecker(t, httpCheck([{ path: '/' }, { path: '/down' }])))).ok, false, 'every url must pass');

    seen.length = 0;
    await once(new HttpChecker(t, httpCheck([{ path: '/a' }])));
    await once(new HttpChecker(t, httpCheck([{ path: '/b' }], { httpProtocol: '1.0C', virtualhost: 'www.example.test' })));
    await once(new HttpChecker(t, httpCheck([{ path: '/c', virtualhost: 'url.example.test' }], { httpProtocol: '1.1', virtualhost: 'www.example.test' })));
    assert.deepEqual(seen, [
      { line: 'GET /a HTTP/1.0', host: `127.0.0.1:${web.port}`, connection: undefined },
      { line: 'GET /b HTTP/1.0', host: 'www.example.test', connection: 'close' },
      { line: 'GET /c HTTP/1.1', host: 'url.example.test', connection: 'close' },
    ]);
  } finally {
    await web.close();
  }
  assert.equal(requestText({ path: '/x', host: 'h', protocol: '1.0', tls: false }), 'GET /x HTTP/1.0\r\nUser-Agent: KeepAliveClient\r\nHost: h\r\n\r\n');
});

test('HTTP_GET against hostile servers: never answers, trickles, 100 MB body, garbage', async () => {
  const silent = await silentPeer();
  const trickle = await tricklePeer('HTTP/1.0 200 OK\r\nX-Slow: ' + 'x'.repeat(1000), 50);
  const flood = await floodPeer(100 * 1024 * 1024);
  const garbage = await tcpPeer((s) => s.once('data', () => s.end('SSH-2.0-OpenSSH_9.2\r\n\r\n')));
  try {
    const r1 = await once(new HttpChecker(at(silent.port), httpCheck([{}])), 500);
    assert.deepEqual([r1.ok, r1.code], [false, 'E_PROBE_TIMEOUT']);
    assert.ok(r1.took < 900, `silent server cut at the deadline (${Math.round(r1.took)} ms)`);
    const r2 = await once(new HttpChecker(at(trickle.port), httpCheck([{}])), 500);
    assert.deepEqual([r2.ok, r2.code], [false, 'E_PROBE_TIMEOUT']);
    assert.ok(r2.took < 900, `trickling server cut at the deadline (${Math.round(r2.took)} ms)`);
    // Without a digest the status line is all that is needed: the body is never read.
    const r3 = await once(new HttpChecker(at(flood.port), httpCheck([{}])), 2000);
    assert.equal(r3.ok, true);
    assert.ok(flood.sent() < 16 * 1024 * 1024, `read only the head (${flood.sent()} bytes left the server, mostly into socket buffers)`);
    // With a digest the body is hashed as it streams, and capped.
    const r4 = await once(new HttpChecker(at(flood.port), httpCheck([{ digest: '0'.repeat(32) }])), 5000);
    assert.equal(r4.ok, false);
    assert.match(r4.detail ?? '', /body larger than 16777216 bytes|timed out/);
    const r5 = await once(new HttpChecker(at(garbage.port), httpCheck([{}])));
    assert.deepEqual([r5.ok, r5.code], [false, 'E_PROBE_PROTOCOL']);
  } finally {
    await Promise.all([silent.close(), trickle.close(), flood.close(), garbage.close()]);
  }
});

test('HTTP_GET: a reply head in pieces, bare LF line ends, headers read only for a body; the request sent in UTF-8', async () => {
  const body = 'piecewise body\n';
  const requests: Buffer[] = [];
  // The status line and the headers arrive in three writes, 30 ms apart, with LF line ends.
  const peer = await tcpPeer((s) => s.once('data', (req: Buffer) => {
    requests.push(req);
    const parts = ['HTTP/1.1 2', `00 OK\nContent-Length: ${body.length}\nX-A: b`, `\n\n${body}`];
    parts.forEach((p, i) => setTimeout(() => (i === parts.length - 1 ? s.end(p) : s.write(p)), i * 30));
  }));
  try {
    const digest = createHash('md5').update(body).digest('hex');
    const ok = await once(new HttpChecker(at(peer.port), httpCheck([{ path: '/caf\u00e9', digest }])), 2000);
    assert.deepEqual([ok.ok, ok.status], [true, 200], ok.detail);
    // The digest is over the Content-Length bytes: the headers were parsed for it.
    const bad = await once(new HttpChecker(at(peer.port), httpCheck([{ path: '/', digest: '0'.repeat(32) }])), 2000);
    assert.deepEqual([bad.ok, bad.code], [false, 'E_PROBE_MISMATCH']);
    assert.match(bad.detail ?? '', new RegExp(`digest ${digest} is not`));
    const plain = await once(new HttpChecker(at(peer.port), httpCheck([{ path: '/', statusCodes: [[201, 299]] }])), 2000);
    assert.deepEqual([plain.ok, plain.status], [false, 200]);
    // keepalived sends the configuration's bytes: a path with é goes as UTF-8.
    assert.ok(requests[0]?.includes(Buffer.from('GET /caf\u00e9 HTTP/1.0\r\n', 'utf8')), requests[0]?.toString('latin1'));
  } finally {
    await peer.close();
  }
});

test('HTTP_GET: the handshake\'s last ACK rides on the request (no lone ACK from the checker), as HAProxy\'s checks', { skip: process.getuid?.() !== 0 ? 'tcpdump on lo needs root' : false }, async () => {
  const tcpdump = ensureCommand('tcpdump', 'tcpdump');
  const peer = await tcpPeer((s) => s.once('data', () => s.end('HTTP/1.0 200 OK\r\n\r\nok\n')));
  const dump = spawn(tcpdump, ['-i', 'lo', '-n', '-l', '-S', `tcp dst port ${peer.port}`], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    let err = '';
    dump.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    dump.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    await waitFor(() => err.includes('listening on'), 10_000, 'tcpdump to listen');
    const probes = 3;
    for (let i = 0; i < probes; i++) assert.equal((await once(new HttpChecker(at(peer.port), httpCheck([{}])), 2000)).ok, true);
    // The capture is line-buffered; wait until every probe's FIN is seen.
    await waitFor(() => (out.match(/Flags \[F/g) ?? []).length >= probes, 5000, 'every probe\'s FIN in the capture');
    // Per connection (by the checker's port): what it sent after its SYN.
    const byConn = new Map<string, string[]>();
    for (const line of out.split('\n')) {
      const m = /IP [\d.]+\.(\d+) > [\d.]+: Flags \[([^\]]+)\].*length (\d+)/.exec(line);
      if (!m) continue;
      byConn.set(m[1]!, [...byConn.get(m[1]!) ?? [], `${m[2]!}:${m[3]!}`]);
    }
    assert.equal(byConn.size, probes, out);
    for (const [port, pkts] of byConn) {
      assert.equal(pkts[0], 'S:0', `${port}: ${pkts.join(' ')}`);
      assert.match(pkts[1] ?? '', /^P\.:[1-9]/, `${port}: the packet after the SYN carries the request (${pkts.join(' ')})`);
    }
  } finally {
    dump.kill('SIGKILL');
    await peer.close();
  }
});

test('SSL_GET: TLS to a real HTTPS server, SNI sent when enabled, wrong status fails', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-ssl-'));
  const names: (string | null)[] = [];
  try {
    const { key, cert } = selfSignedCert(dir, 'secure.example.test');
    const srv = https.createServer({ key, cert }, (req, res) => {
      res.writeHead(req.url === '/health' ? 200 : 404);
      res.end('ok');
    });
    srv.on('secureConnection', (s: import('node:tls').TLSSocket) => { names.push((s as unknown as { servername?: string | false }).servername || null); });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      const base = httpCheck([{ path: '/health' }], { type: 'SSL_GET' });
      assert.equal((await once(new HttpChecker(at(port), base))).ok, true);
      const sni = await once(new HttpChecker(at(port), { ...base, enableSni: true, virtualhost: 'secure.example.test' }));
      assert.equal(sni.ok, true);
      assert.deepEqual(names, [null, 'secure.example.test'], 'no SNI unless enable_sni');
      const nf = await once(new HttpChecker(at(port), httpCheck([{ path: '/missing' }], { type: 'SSL_GET' })));
      assert.deepEqual([nf.ok, nf.status], [false, 404]);
      // Plain HTTP against TLS: the handshake fails, a network error.
      const plain = await once(new HttpChecker(at(port), httpCheck([{ path: '/health' }])), 1000);
      assert.equal(plain.ok, false);
    } finally {
      srv.closeAllConnections();
      await new Promise<void>((r) => srv.close(() => r()));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('HTTP_GET against nginx: status and digest of a static file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-nginx-'));
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'index.html'), 'nginx says hi\n');
  const nginx = nginxCommand(dir, { http: `server { listen 127.0.0.1:${port}; root ${dir}; location = /gone { return 410; } }` });
  const web = await startDaemonProcess(nginx.command, nginx.args, async () => (await once(new TcpChecker(at(port)), 200)).ok);
  try {
    const digest = createHash('md5').update('nginx says hi\n').digest('hex');
    assert.equal((await once(new HttpChecker(at(port), httpCheck([{ path: '/index.html', digest }], { httpProtocol: '1.1' })))).ok, true);
    const gone = await once(new HttpChecker(at(port), httpCheck([{ path: '/gone' }])));
    assert.deepEqual([gone.ok, gone.status], [false, 410]);
  } finally {
    await web.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('SMTP_CHECK: a real SMTP server passes; a 554 greeting, a refused HELO and a trickler fail', async () => {
  const helos: string[] = [];
  const smtp = new SMTPServer({ authOptional: true, disabledCommands: ['STARTTLS'], onConnect: (_s, cb) => cb(), logger: false });
  smtp.on('error', () => undefined);
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  const port = (smtp.server.address() as net.AddressInfo).port;
  const busy = await tcpPeer((s) => s.write('554 5.3.2 too busy\r\n'));
  const noHelo = await tcpPeer((s) => {
    s.write('220-mail.example.test ESMTP\r\n220 ready\r\n');
    s.on('data', (d) => { helos.push(d.toString().trim()); s.write('502 5.5.1 HELO not accepted\r\n'); });
  });
  const trickle = await tricklePeer('220 slow greeting that never end', 50);
  try {
    const ok = await once(new SmtpChecker(at(port), 'director.test'));
    assert.deepEqual([ok.ok, ok.status], [true, 250]);
    const b = await once(new SmtpChecker(at(busy.port), 'director.test'));
    assert.deepEqual([b.ok, b.status, b.detail], [false, 554, 'greeting 554 5.3.2 too busy']);
    const h = await once(new SmtpChecker(at(noHelo.port), 'director.test'));
    assert.deepEqual([h.ok, h.status], [false, 502]);
    assert.deepEqual(helos, ['HELO director.test'], 'multi-line greeting read whole, then HELO helo_name');
    const t = await once(new SmtpChecker(at(trickle.port), 'x'), 500);
    assert.deepEqual([t.ok, t.code], [false, 'E_PROBE_TIMEOUT']);
  } finally {
    await Promise.all([busy.close(), noHelo.close(), trickle.close(), new Promise<void>((r) => smtp.close(() => r()))]);
  }
});
