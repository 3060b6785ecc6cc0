/**
 * `fulcrum adm` against a running `fulcrum run` (child process, loopback only): ipvsadm's
 * listing format compared line by line with golden files, -S → -C → -R round trip,
 * refusals that change nothing, runtime changes surviving SIGHUP, drain with progress.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { main } from '../src/cli/main.js';
import { runAdm } from '../src/cli/adm.js';
import type { NameSources } from '../src/cli/names.js';
import { repoRoot } from '../src/testing/index.js';
import { startDaemon, type RunningDaemon } from '../src/testing/daemon.js';
import { freePort, openSocket, readLine, startServer } from '../src/testing/net.js';

interface Out { code: number; out: string[]; err: string[] }

async function adm(d: RunningDaemon, args: string[], stdin?: string): Promise<Out> {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (t: string) => { out.push(...t.replace(/\n$/, '').split('\n')); }, err: (t: string) => { err.push(...t.replace(/\n$/, '').split('\n')); } };
  const code = await runAdm(['--socket', path.join(d.dir, 'fulcrum.sock'), ...args], io, { ...(stdin !== undefined ? { stdin: () => stdin } : {}), pollMs: 50 });
  return { code, out, err };
}

async function ok(d: RunningDaemon, args: string[], stdin?: string): Promise<string[]> {
  const r = await adm(d, args, stdin);
  assert.equal(r.code, 0, `fulcrum adm ${args.join(' ')}: ${r.err.join('\n')}`);
  return r.out;
}

/** Golden files hold ipvsadm's layout; UPDATE_GOLDEN=1 rewrites them (review the diff). */
function golden(name: string, lines: readonly string[]): void {
  const file = path.join(repoRoot(), 'test', 'fixtures', 'ipvsadm', name);
  const text = `${lines.join('\n')}\n`;
  if (process.env['UPDATE_GOLDEN'] === '1') fs.writeFileSync(file, text);
  const want = fs.readFileSync(file, 'utf8').split('\n');
  const got = text.split('\n');
  for (let i = 0; i < Math.max(want.length, got.length); i++) assert.equal(got[i], want[i], `${name} line ${i + 1}`);
}

// A table of services on addresses of 127.0.0.0/8 no other test uses, fixed so the listing is.
const RULES = [
  '-A -t 127.61.0.1:8080 -s wrr',
  '-a -t 127.61.0.1:8080 -r 127.61.1.1:8080 --proxy -w 3',
  '-a -t 127.61.0.1:8080 -r 127.61.1.2:8080 --proxy -w 1 -x 100 -y 50',
  '-A -t 127.61.0.2:8443 -s sh -b sh-port -p 600 -M 255.255.255.0',
  '-a -t 127.61.0.2:8443 -r 127.61.1.3:8443 --proxy -w 2',
  '-A -u 127.61.0.1:5353 -s rr -o',
  '-a -u 127.61.0.1:5353 -r 127.61.1.4:53 --proxy -w 1',
  '-a -u 127.61.0.1:5353 -r 127.61.1.5:53 --proxy -w 0',
];

const EMPTY = 'global_defs {\n  router_id adm-test\n}\n';

test('adm: -A/-a build a table whose -L -n, --stats, --rate, --thresholds and --persistent-conn match ipvsadm line by line', async () => {
  const d = await startDaemon(EMPTY, { args: ['--allow-empty'] });
  try {
    await d.waitLog((l) => l.event === 'api', 10000, 'the API');
    for (const rule of RULES) await ok(d, rule.split(' '));
    golden('adm-list.txt', await ok(d, ['-L', '-n']));
    golden('adm-stats.txt', await ok(d, ['-Ln', '--stats']));
    golden('adm-thresholds.txt', await ok(d, ['-L', '-n', '--thresholds']));
    golden('adm-persistent.txt', await ok(d, ['-l', '-n', '--persistent-conn']));
    const rate = await ok(d, ['-L', '-n', '--rate']);
    assert.equal(rate[1], 'Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS');
    // One service only, as ipvsadm -L -t.
    assert.deepEqual((await ok(d, ['-L', '-n', '-t', '127.61.0.2:8443'])).slice(3), [
      'TCP  127.61.0.2:8443 sh (sh-port) persistent 600 mask 255.255.255.0',
      '  -> 127.61.1.3:8443              Proxy   2      0          0         ',
    ]);
    assert.deepEqual(await ok(d, ['-L', '--timeout']), ['Timeout (tcp tcpfin udp): 900 120 300']);
    await ok(d, ['--set', '100', '20', '30']);
    assert.deepEqual(await ok(d, ['-L', '--timeout']), ['Timeout (tcp tcpfin udp): 100 20 30']);
    assert.deepEqual(await ok(d, ['-L', '-n', '-c']), ['IPVS connection entries', 'pro expire state       source             virtual            destination']);

    // Without -n, names as ipvsadm prints them: hosts file, then PTR (here: none answers), services by protocol.
    let asked = 0;
    const names = (): NameSources => ({
      hosts: '127.61.0.1 lb-a.example\n127.61.1.1 rs-one\n', services: 'http-alt 8080/tcp\nmdns 5353/udp\ndomain 53/udp\n',
      reverse: () => { asked++; return Promise.reject(new Error('no PTR')); }, cancel: () => undefined,
    });
    const out: string[] = [];
    const io = { out: (t: string) => { out.push(...t.replace(/\n$/, '').split('\n')); }, err: (t: string) => { out.push(t); } };
    assert.equal(await runAdm(['--socket', path.join(d.dir, 'fulcrum.sock'), '-L', '-t', '127.61.0.1:8080'], io, { names }), 0);
    assert.deepEqual(out.slice(3), [
      'TCP  lb-a.example:http-alt wrr',
      '  -> rs-one:http-alt              Proxy   3      0          0         ',
      '  -> 127.61.1.2:http-alt          Proxy   1      0          0         ',
    ]);
    assert.equal(asked, 1, 'one PTR query, for the one address the hosts file lacks');
    out.length = 0;
    assert.equal(await runAdm(['--socket', path.join(d.dir, 'fulcrum.sock'), '-L', '-u', '127.61.0.1:5353'], io, { names }), 0);
    assert.deepEqual(out.slice(3, 4), ['UDP  lb-a.example:mdns rr ops']);
  } finally {
    await d.cleanup();
  }
});

test('adm: -S → -C → -R restores the identical table; refusals change nothing and exit non-zero; SIGHUP keeps runtime changes', async () => {
  const d = await startDaemon(EMPTY, { args: ['--nft', 'none', '--allow-empty'] });
  try {
    await d.waitLog((l) => l.event === 'api', 10000, 'the API');
    await ok(d, ['-R'], `${RULES.join('\n')}\n`);
    const saved = await ok(d, ['-S', '-n']);
    assert.equal(saved.length, RULES.length);
    const listed = await ok(d, ['-L', '-n']);
    await ok(d, ['-C']);
    assert.equal((await ok(d, ['-L', '-n'])).length, 3, 'only the title after -C');
    await ok(d, ['-R'], `# restored\n${saved.join('\n')}\n`);
    assert.deepEqual(await ok(d, ['-S', '-n']), saved);
    assert.deepEqual(await ok(d, ['-L', '-n']), listed);

    // Refusals: ipvsadm's messages, exit 1, the table unchanged.
    for (const [args, msg] of [
      ['-A -t 127.61.0.1:8080 -s rr', 'Service already exists'],
      ['-E -t 127.61.0.9:80 -s rr', 'No such service'],
      ['-D -t 127.61.0.9:80', 'No such service'],
      ['-a -t 127.61.0.9:80 -r 127.61.1.1:80 --proxy', 'Service not defined'],
      ['-a -t 127.61.0.1:8080 -r 127.61.1.1:8080 --proxy', 'Destination already exists'],
      ['-e -t 127.61.0.1:8080 -r 127.61.1.9:8080 --proxy', 'No such destination'],
      ['-d -t 127.61.0.1:8080 -r 127.61.1.9:8080', 'No such destination'],
      ['-A -f 7 -s rr', 'fwmark 7: firewall-mark services need the kernel (nftables) data plane; the proxy data plane serves -t/-u services'],
    ] as const) {
      const r = await adm(d, args.split(' '));
      assert.deepEqual([r.code, r.err], [1, [msg]], args);
    }
    // A restore with one bad line applies none of it.
    const r = await adm(d, ['-R'], '-A -t 127.61.0.7:80 -s rr\n-a -t 127.61.0.1:8080 -r 127.61.1.2:8080 --proxy\n');
    assert.deepEqual([r.code, r.err], [1, ['line 2: Destination already exists']]);
    // Usage errors name the word, exit 2.
    const u = await adm(d, ['-A', '-t', '127.61.0.8:80', '-s', 'fastest']);
    assert.equal(u.code, 2);
    assert.match(u.err.join('\n'), /^fulcrum adm:1:\d+: .*fastest/);
    assert.deepEqual(await ok(d, ['-S', '-n']), saved, 'nothing changed');

    // SIGHUP re-reads the file and lays the runtime changes over it again.
    d.signal('SIGHUP');
    await d.waitLog((l) => l.event === 'reloaded', 10000, 'the reload');
    assert.deepEqual(await ok(d, ['-S', '-n']), saved);
    // -Z answers for a known service, refuses an unknown one.
    await ok(d, ['-Z', '-t', '127.61.0.1:8080']);
    assert.deepEqual((await adm(d, ['-Z', '-t', '127.61.0.9:80'])).err, ['No such service']);
    // The runtime changes, as the operator reads them.
    const rt = await ok(d, ['runtime']);
    assert.match(rt[0] ?? '', /runtime changes \(kept in .*runtime\.json\)/);
    assert.ok(rt.includes('  added service tcp 127.61.0.1:8080'), rt.join('\n'));
  } finally {
    await d.cleanup();
  }
});

test('adm: drain shows progress and removes the server; unreachable daemon and bad durations are clear errors', async () => {
  const port = await freePort();
  const d = await startDaemon(`virtual_server 127.0.0.1 ${port} {\n  lb_kind PROXY\n  real_server 127.0.0.1 1 { weight 1 }\n  real_server 127.0.0.1 2 { weight 1 }\n}\n`);
  try {
    await d.waitLog((l) => l.event === 'api', 10000, 'the API');
    const out = await ok(d, ['drain', '127.0.0.1:2', '--deadline', '1m']);
    assert.match(out[0] ?? '', new RegExp(`^draining 127\\.0\\.0\\.1:2 in tcp 127\\.0\\.0\\.1:${port}: 0 active, 0 inactive, 0 persistence template\\(s\\); removed at the latest in (59s|1m00s)$`));
    assert.equal(out[out.length - 1], `127.0.0.1:2 removed from tcp 127.0.0.1:${port}`);
    assert.deepEqual((await ok(d, ['-L', '-n'])).slice(4).map((l) => l.trim().split(/\s+/)[1]), ['127.0.0.1:1']);
    const bad = await adm(d, ['drain', '127.0.0.1:1', '--deadline', 'soon']);
    assert.deepEqual([bad.code, bad.err], [2, ["fulcrum adm drain: --deadline: 'soon' is not a duration (e.g. 10m, 90s, 1h)"]]);
    const none = await adm(d, ['drain', '127.0.0.9:1']);
    assert.deepEqual([none.code, none.err], [1, ['No such destination: no service has real server 127.0.0.9:1']]);
  } finally {
    await d.cleanup();
  }
  {
    // undrain: a drain held open by a connection is cancelled; the weight from before comes back.
    const rs = await startServer('held', { mode: 'name-echo' });
    const vport = await freePort();
    const u = await startDaemon(`virtual_server 127.0.0.1 ${vport} {\n  lb_kind PROXY\n  real_server 127.0.0.1 ${rs.port} { weight 4 }\n}\n`);
    const s = await openSocket(vport);
    try {
      await u.waitLog((l) => l.event === 'api', 10000, 'the API');
      assert.equal(await readLine(s), 'held');
      await ok(u, ['drain', `127.0.0.1:${rs.port}`, '--no-wait']);
      assert.equal((await ok(u, ['-L', '-n'])).at(-1)?.trim().split(/\s+/)[3], '0');
      assert.deepEqual(await ok(u, ['undrain', `127.0.0.1:${rs.port}`, '-t', `127.0.0.1:${vport}`]), [`127.0.0.1:${rs.port} in tcp 127.0.0.1:${vport}: drain cancelled, weight 4 restored`]);
      assert.equal((await ok(u, ['-L', '-n'])).at(-1)?.trim().split(/\s+/)[3], '4');
      s.write('on\n');
      assert.equal(await readLine(s), 'on', 'the connection held through drain and undrain');
      const again = await adm(u, ['undrain', `127.0.0.1:${rs.port}`]);
      assert.deepEqual([again.code, again.err], [1, [`127.0.0.1:${rs.port} is not draining`]]);
    } finally {
      s.destroy();
      await u.cleanup();
      await rs.close();
    }
  }
  const err: string[] = [];
  const code = await main(['adm', '--socket', path.join(d.dir, 'gone.sock'), '-L', '-n'], { out: () => undefined, err: (t) => { err.push(t); } });
  assert.equal(code, 1);
  assert.match(err.join(''), /cannot reach the fulcrum API at .*gone\.sock: is `fulcrum run` running\?/);
});

test('adm: --start-daemon / -L --daemon / --stop-daemon run the sync daemon as ipvsadm does; a bad interface is refused and nothing starts', async () => {
  const d = await startDaemon(EMPTY, { args: ['--allow-empty'] });
  try {
    await d.waitLog((l) => l.event === 'api', 10000, 'the API');
    assert.deepEqual(await ok(d, ['-L', '--daemon']), []);
    const bad = await adm(d, ['--start-daemon', 'master', '--mcast-interface', 'nosuchif0']);
    assert.equal(bad.code, 1);
    assert.match(bad.err.join('\n'), /sync interface nosuchif0 does not exist/);
    assert.deepEqual(await ok(d, ['-L', '--daemon']), [], 'nothing started');
    await ok(d, ['--start-daemon', 'master', '--mcast-interface', 'lo', '--syncid', '5']);
    assert.deepEqual(await ok(d, ['-L', '--daemon']), ['master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)']);
    await ok(d, ['--start-daemon', 'backup', '--mcast-interface', 'lo', '--syncid', '5']);
    assert.deepEqual(await ok(d, ['-L', '--daemon']), [
      'master sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)',
      'backup sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)',
    ]);
    await ok(d, ['--stop-daemon', 'master']);
    assert.deepEqual(await ok(d, ['-L', '--daemon']), ['backup sync daemon (mcast=lo, syncid=5, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)']);
    await ok(d, ['--stop-daemon', 'backup']);
    assert.deepEqual(await ok(d, ['-L', '--daemon']), []);
    const again = await adm(d, ['--stop-daemon', 'backup']);
    assert.equal(again.code, 1);
    assert.match(again.err.join('\n'), /no backup sync daemon is running/);
    await d.waitLog((l) => l.event === 'sync-role' && l['to'] === 'stopped', 5000, 'the role change logged');
  } finally {
    await d.cleanup();
  }
});
