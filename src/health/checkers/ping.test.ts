/**
 * PING_CHECK: the codec, the shared pinger on a fake raw socket, and the real thing —
 * ICMP echo to loopback and into a network namespace this test creates (and always
 * removes), plus the error a process without CAP_NET_RAW gets.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { FakeRawSockets } from '../../sys/fake.js';
import { ffiRawSockets } from '../../sys/raw.js';
import { probeOnce as once } from '../compliance.js';
import { echoRequest, inetChecksum, parseEchoReply, Pinger, PingChecker } from './ping.js';
import { repoRoot } from '../../testing/index.js';

const isRoot = process.getuid?.() === 0;

test('ICMP echo codec: checksum, request layout, reply parsing', () => {
  const req = echoRequest('inet', 0x1234, 7, Buffer.from([1, 2, 3, 4]));
  assert.equal(req.toString('hex'), '0800e1be1234000701020304');
  assert.equal(inetChecksum(req), 0, 'a packet with its checksum sums to 0');
  const ip = Buffer.concat([Buffer.from('4500002000004000400100007f0000017f000001', 'hex'), Buffer.from('00000000123400070102', 'hex')]);
  assert.deepEqual(parseEchoReply('inet', ip), { id: 0x1234, seq: 7 });
  assert.equal(parseEchoReply('inet', Buffer.from('4500', 'hex')), null, 'truncated');
  assert.equal(parseEchoReply('inet6', Buffer.from('8100000012340007', 'hex'))?.seq, 7);
  assert.equal(parseEchoReply('inet6', Buffer.from('8000000012340007', 'hex')), null, 'a request is not a reply');
});

test('PING_CHECK on a fake raw socket: matches id/seq/source, shares one socket, permission error is clear', async () => {
  const raw = new FakeRawSockets();
  raw.reply = (pkt, address) => {
    if (address === '192.0.2.9') return null;
    const r = Buffer.from(pkt);
    r[0] = 129;
    return { packet: r, from: address };
  };
  const p = new Pinger(raw, 'inet6');
  const a = new PingChecker({ family: 'inet6', address: '2001:db8::1', port: 0 }, p);
  const b = new PingChecker({ family: 'inet6', address: '2001:db8::2', port: 0 }, p);
  const ra = await a.check({ signal: new AbortController().signal, timeoutMs: 500 });
  const rb = await b.check({ signal: new AbortController().signal, timeoutMs: 500 });
  assert.deepEqual([ra.ok, rb.ok, raw.opened], [true, true, 1]);
  a.close();
  assert.equal(raw.closed, 0, 'still used by b');
  b.close();
  assert.equal(raw.closed, 1);
  const silent = await once(new PingChecker({ family: 'inet6', address: '192.0.2.9', port: 0 }, new Pinger(raw, 'inet6')), 200);
  assert.deepEqual([silent.ok, silent.code], [false, 'E_PROBE_TIMEOUT']);
  raw.deny = true;
  const denied = await once(new PingChecker({ family: 'inet', address: '127.0.0.1', port: 0 }, new Pinger(raw, 'inet')));
  assert.deepEqual([denied.ok, denied.code], [false, 'E_PROBE_PERMISSION']);
});

test('PING_CHECK for real: loopback answers; a namespace host answers until its link goes down', { skip: isRoot ? false : 'needs root (raw sockets, netns)' }, async () => {
  const lo = await once(new PingChecker({ family: 'inet', address: '127.0.0.1', port: 0 }, new Pinger(ffiRawSockets, 'inet')));
  assert.equal(lo.ok, true, lo.detail);
  const lo6 = await once(new PingChecker({ family: 'inet6', address: '::1', port: 0 }, new Pinger(ffiRawSockets, 'inet6')));
  assert.equal(lo6.ok, true, lo6.detail);

  const tag = `fpg${process.pid % 100000}`;
  const ns = `${tag}ns`;
  const net = `10.250.${process.pid % 250}`;
  const ip = (...a: string[]): void => { execFileSync('ip', a, { stdio: 'ignore', timeout: 10_000 }); };
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', `${tag}a`, 'type', 'veth', 'peer', 'name', `${tag}b`);
    ip('link', 'set', `${tag}b`, 'netns', ns);
    ip('addr', 'add', `${net}.1/30`, 'dev', `${tag}a`);
    ip('link', 'set', `${tag}a`, 'up');
    ip('netns', 'exec', ns, 'ip', 'addr', 'add', `${net}.2/30`, 'dev', `${tag}b`);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', `${tag}b`, 'up');
    const pinger = new Pinger(ffiRawSockets, 'inet');
    const up = await once(new PingChecker({ family: 'inet', address: `${net}.2`, port: 0 }, pinger), 2000);
    assert.equal(up.ok, true, up.detail);
    ip('netns', 'exec', ns, 'ip', 'link', 'set', `${tag}b`, 'down');
    const down = await once(new PingChecker({ family: 'inet', address: `${net}.2`, port: 0 }, pinger), 500);
    assert.deepEqual([down.ok, down.code], [false, 'E_PROBE_TIMEOUT']);
  } finally {
    try { ip('link', 'del', `${tag}a`); } catch { /* already gone with the namespace */ }
    try { ip('netns', 'del', ns); } catch { /* never created */ }
  }
});

test('PING_CHECK without CAP_NET_RAW says so plainly', { skip: isRoot ? false : 'needs root to start an unprivileged child' }, () => {
  const mod = path.join(repoRoot(), 'dist/src/health/index.js');
  const sys = path.join(repoRoot(), 'dist/src/sys/index.js');
  const code = `const h = await import(${JSON.stringify(mod)}); const s = await import(${JSON.stringify(sys)});
const c = new h.PingChecker({ family: 'inet', address: '127.0.0.1', port: 0 }, new h.Pinger(s.ffiRawSockets, 'inet'));
const r = await c.check({ signal: new AbortController().signal, timeoutMs: 500 }); console.log(JSON.stringify(r));`;
  const out = execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, '--input-type=module', '-e', code], { encoding: 'utf8', timeout: 10_000 });
  const r = JSON.parse(out) as { ok: boolean; code: string; detail: string };
  assert.equal(r.ok, false);
  assert.equal(r.code, 'E_PROBE_PERMISSION');
  assert.match(r.detail, /needs CAP_NET_RAW: run as root or grant it/);
});
