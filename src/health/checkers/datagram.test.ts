/**
 * DNS_CHECK against dnsmasq, UDP_CHECK against real UDP sockets (and the ICMP
 * port-unreachable of a closed port), MISC_CHECK with real scripts, FILE_CHECK with a file.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ProbeTarget } from '../types.js';
import { checkerCompliance, probeOnce as once } from '../compliance.js';
import { DnsChecker } from './dns.js';
import { matchesHexPattern, UdpChecker } from './udp.js';
import { MiscChecker, miscVerdict } from './misc.js';
import { FileChecker, fileVerdict } from './file.js';
import { closedPort, ensureCommand, startDaemonProcess } from '../../testing/peers.js';
import { freePort } from '../../testing/net.js';

const at = (port: number): ProbeTarget => ({ family: 'inet', address: '127.0.0.1', port });

async function udpPeer(onMessage: (msg: Buffer, reply: (b: Buffer) => void) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, rinfo) => onMessage(m, (b) => s.send(b, rinfo.port, rinfo.address)));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  return { port: s.address().port, close: () => new Promise((r) => s.close(() => r())) };
}

const udpCfg = { requireReply: true, minReplyLength: 0, maxReplyLength: 255 };

checkerCompliance('UDP_CHECK', {
  build: (t) => new UdpChecker(t, { ...udpCfg, payload: '00' }),
  silent: async () => { const p = await udpPeer(() => undefined); return { target: at(p.port), close: p.close }; },
  refused: async () => at(await closedPort('udp')),
});
checkerCompliance('DNS_CHECK', {
  build: (t) => new DnsChecker(t, { queryType: 'A', name: 'good.example.test' }),
  silent: async () => { const p = await udpPeer(() => undefined); return { target: at(p.port), close: p.close }; },
  refused: async () => at(await closedPort('udp')),
});

test('UDP_CHECK: reply required and matched, ICMP unreachable = down, silence = up without require_reply', async () => {
  const echo = await udpPeer((m, reply) => reply(Buffer.concat([Buffer.from([0xca, 0xfe]), m])));
  const mute = await udpPeer(() => undefined);
  try {
    const ok = await once(new UdpChecker(at(echo.port), { ...udpCfg, payload: '0102', replyPattern: 'cafe0102' }));
    assert.equal(ok.ok, true);
    assert.equal((await once(new UdpChecker(at(echo.port), { ...udpCfg, payload: '0102', replyPattern: 'caxe' }))).ok, true, 'x is any nibble');
    const wrong = await once(new UdpChecker(at(echo.port), { ...udpCfg, payload: '0102', replyPattern: 'beef' }));
    assert.deepEqual([wrong.ok, wrong.code], [false, 'E_PROBE_MISMATCH']);
    const long = await once(new UdpChecker(at(echo.port), { ...udpCfg, payload: '0102', maxReplyLength: 3 }));
    assert.match(long.detail ?? '', /reply of 4 bytes outside 0\.\.3/);
    const silent = await once(new UdpChecker(at(mute.port), { ...udpCfg, requireReply: false, payload: '01' }), 300);
    assert.equal(silent.ok, true, 'no reply needed and no ICMP error');
    const refused = await once(new UdpChecker(at(await closedPort('udp')), { ...udpCfg, requireReply: false, payload: '01' }), 1000);
    assert.deepEqual([refused.ok, refused.code, refused.detail], [false, 'E_PROBE_REFUSED', 'ICMP port unreachable']);
    assert.ok(refused.took < 500, 'the ICMP error ends the probe at once');
  } finally {
    await Promise.all([echo.close(), mute.close()]);
  }
  assert.equal(matchesHexPattern(Buffer.from('ab', 'hex'), 'abcd'), false, 'a reply shorter than the pattern fails');
});

test('DNS_CHECK against dnsmasq: an answer passes; NXDOMAIN and an empty answer fail', async () => {
  const dnsmasq = ensureCommand('dnsmasq', 'dnsmasq-base');
  // dnsmasq binds UDP and TCP on its port; other test files open ports meanwhile, so a port
  // taken between the check and dnsmasq's bind is tried again with another (3 times at most).
  let port = 0;
  let server: Awaited<ReturnType<typeof startDaemonProcess>> | null = null;
  for (let attempt = 1; server === null; attempt++) {
    port = await freePort('127.0.0.1', 'both');
    try {
      server = await startDaemonProcess(dnsmasq, [
        '--keep-in-foreground', '--conf-file=/dev/null', '--no-resolv', '--no-hosts', '--pid-file=', '--user=root',
        '--bind-interfaces', '--listen-address=127.0.0.1', `--port=${port}`,
        '--address=/good.example.test/10.9.8.7', '--local=/example.test/', '--host-record=host.example.test,10.9.8.6', '--txt-record=txt.example.test,"fulcrum"',
      ], async () => (await once(new DnsChecker(at(port), { queryType: 'A', name: 'good.example.test' }), 200)).ok);
    } catch (err: unknown) {
      if (attempt >= 3 || !/Address already in use/.test(String(err))) throw err;
    }
  }
  try {
    const a = await once(new DnsChecker(at(port), { queryType: 'A', name: 'good.example.test' }));
    assert.deepEqual([a.ok, a.status], [true, 0]);
    assert.equal((await once(new DnsChecker(at(port), { queryType: 'TXT', name: 'txt.example.test' }))).ok, true);
    const nx = await once(new DnsChecker(at(port), { queryType: 'A', name: 'missing.example.test' }));
    assert.deepEqual([nx.ok, nx.code, nx.status, nx.detail], [false, 'E_PROBE_MISMATCH', 3, 'rcode NXDOMAIN for A missing.example.test']);
    const empty = await once(new DnsChecker(at(port), { queryType: 'AAAA', name: 'host.example.test' }));
    assert.deepEqual([empty.ok, empty.detail], [false, 'no answer for AAAA host.example.test']);
  } finally {
    await server.close();
  }
  // A reply that is not DNS, and one with the wrong id (ignored → timeout).
  const junk = await udpPeer((_m, reply) => reply(Buffer.from('not dns')));
  const wrongId = await udpPeer((m, reply) => { const b = Buffer.from(m); b.writeUInt16BE((m.readUInt16BE(0) + 1) & 0xffff, 0); b[2] = 0x81; reply(b); });
  try {
    assert.equal((await once(new DnsChecker(at(junk.port), { queryType: 'A', name: 'x.test' }))).code, 'E_PROBE_PROTOCOL');
    assert.equal((await once(new DnsChecker(at(wrongId.port), { queryType: 'A', name: 'x.test' }), 300)).code, 'E_PROBE_TIMEOUT');
  } finally {
    await Promise.all([junk.close(), wrongId.close()]);
  }
});

function script(dir: string, name: string, body: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

test('MISC_CHECK: exit codes 0/1/2/7 with and without misc_dynamic, timeout kills, arguments stay words', async () => {
  assert.deepEqual([0, 1, 2, 7, 255].map((c) => miscVerdict(c, true)), [{ ok: true }, { ok: false }, { ok: true, weight: 0 }, { ok: true, weight: 5 }, { ok: true, weight: 253 }]);
  assert.deepEqual([0, 1, 2, 7].map((c) => miscVerdict(c, false).ok), [true, false, false, false]);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-misc-'));
  try {
    const exit = script(dir, 'exit.sh', 'exit "$1"');
    const run = (code: string, dynamic: boolean): ReturnType<typeof once> =>
      once(new MiscChecker({ script: { argv: [exit, code], text: `${exit} ${code}` }, timeout: 2, dynamic }), 3000);
    const r0 = await run('0', true);
    const r1 = await run('1', true);
    const r2 = await run('2', true);
    const r7 = await run('7', true);
    assert.deepEqual([r0.ok, r1.ok, r2.ok, r7.ok], [true, false, true, true]);
    assert.deepEqual([r2.weight, r7.weight, r1.status], [0, 5, 1]);
    assert.equal((await run('7', false)).ok, false, 'without misc_dynamic only 0 passes');

    const marker = path.join(dir, 'survived');
    const slow = script(dir, 'slow.sh', `sleep 5; touch ${marker}`);
    const t = await once(new MiscChecker({ script: { argv: [slow], text: slow }, timeout: 0.3, dynamic: false }), 3000);
    assert.deepEqual([t.ok, t.code, t.detail], [false, 'E_PROBE_SCRIPT', 'killed after the 300 ms timeout']);
    assert.ok(t.took < 1500);

    // A hostile-looking argument is one word to the script, never shell syntax.
    const args = script(dir, 'args.sh', `printf '%s|' "$@" > ${dir}/args.txt`);
    await once(new MiscChecker({ script: { argv: [args, '$(touch /tmp/pwned-fulcrum)', 'a b;c'], text: '' }, timeout: 2, dynamic: false }));
    assert.equal(fs.readFileSync(path.join(dir, 'args.txt'), 'utf8'), '$(touch /tmp/pwned-fulcrum)|a b;c|');
    assert.equal(fs.existsSync('/tmp/pwned-fulcrum'), false);
    const missing = await once(new MiscChecker({ script: { argv: [path.join(dir, 'nope')], text: '' }, timeout: 1, dynamic: false }));
    assert.match(missing.detail ?? '', /cannot run: spawn .*ENOENT/);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fs.existsSync(marker), false, 'the killed script did not finish');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('MISC_CHECK runs as script_user (nobody) when root', { skip: process.getuid?.() !== 0 ? 'needs root to switch user' : false }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-misc-'));
  fs.chmodSync(dir, 0o777);
  try {
    const who = script(dir, 'who.sh', `id -un > ${dir}/who.txt`);
    const r = await once(new MiscChecker({ script: { argv: [who], text: who, user: 'nobody' }, timeout: 2, dynamic: false }));
    assert.equal(r.ok, true);
    assert.equal(fs.readFileSync(path.join(dir, 'who.txt'), 'utf8').trim(), 'nobody');
    const unknown = await once(new MiscChecker({ script: { argv: [who], text: who, user: 'no-such-user-fulcrum' }, timeout: 2, dynamic: false }));
    assert.equal(unknown.detail, "cannot run: unknown user 'no-such-user-fulcrum'");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('FILE_CHECK: status mode, weighted values, reverse, dynamic weight, absent file', async () => {
  assert.deepEqual(fileVerdict(0, { weight: 0, reverse: false, dynamic: false }, 10), { ok: true });
  assert.deepEqual(fileVerdict(1, { weight: 0, reverse: false, dynamic: false }, 10), { ok: false });
  assert.deepEqual(fileVerdict(-5, { weight: 60, reverse: false, dynamic: false }, 10), { ok: false }, '-300 < -253');
  assert.deepEqual(fileVerdict(5, { weight: 2, reverse: false, dynamic: true }, 10), { ok: true, weight: 20 });
  assert.deepEqual(fileVerdict(3, { weight: 2, reverse: true, dynamic: true }, 10), { ok: true, weight: 4 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-file-'));
  try {
    const f = path.join(dir, 'maint');
    const c = (): FileChecker => new FileChecker(f, { weight: 0, reverse: false, dynamic: false }, 1);
    const absent = await once(c());
    assert.deepEqual([absent.ok, absent.detail], [true, `${f} = 0 (file absent)`]);
    fs.writeFileSync(f, '1\n');
    assert.equal((await once(c())).ok, false, 'an operator wrote 1: out of rotation');
    fs.writeFileSync(f, '7');
    const dyn = await once(new FileChecker(f, { weight: 10, reverse: false, dynamic: true }, 5));
    assert.deepEqual([dyn.ok, dyn.weight], [true, 75]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// MISC_CHECK's "peer" is its script: port 1 = a script that hangs, anything else = one that does not exist.
const miscDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-misc-compliance-'));
const hang = script(miscDir, 'hang.sh', 'sleep 10');
test.after(() => fs.rmSync(miscDir, { recursive: true, force: true }));
checkerCompliance('MISC_CHECK', {
  build: (t) => new MiscChecker({ script: { argv: [t.port === 1 ? hang : path.join(miscDir, 'absent')], text: '' }, timeout: 0.25, dynamic: false }),
  silent: () => Promise.resolve({ target: at(1), close: () => undefined }),
  refused: () => Promise.resolve(at(2)),
});
