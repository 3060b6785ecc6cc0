/**
 * VRRP elections against real keepalived in network namespaces: equal priority decided by
 * the primary address (both ways), nopreempt, authentication mismatch, and malformed
 * packets injected from a third host. Runs as root (CI does).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { apiRequest } from '../src/api/client.js';
import { repoRoot, withTempDir } from '../src/testing/index.js';
import { isRoot, testLab, until } from '../src/testing/netns.js';
import { logEvent, sleep, startFulcrum, startKeepalived, startObserver, vrrpInstance } from '../src/testing/vrrp-lab.js';
import path from 'node:path';

const skip = isRoot() ? false : 'needs root (network namespaces, raw sockets); CI runs as root';
const PREFIX = `fve${process.pid % 10000}`;

test('equal priority: when two masters meet, the higher primary address wins — Fulcrum yields to a higher keepalived, keepalived to a higher Fulcrum', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}q`);
  await withTempDir(async (dir) => {
    lab.host('c', '10.62.0.9');
    // Pair 1 (VRID 61): Fulcrum .2 < keepalived .3. Pair 2 (VRID 62): keepalived .4 < Fulcrum .5.
    const f1 = lab.host('f1', '10.62.0.2');
    const k1 = lab.host('k1', '10.62.0.3');
    lab.host('k2', '10.62.0.4');
    lab.host('f2', '10.62.0.5');
    const conf = (vrid: number, vip: string): string => vrrpInstance({ vrid, priority: 100, version: 3, vip: `${vip}/24` });
    // Unplug the keepalived hosts from the bridge (their links stay up) so every instance
    // becomes MASTER on its own.
    lab.plug('k1', false);
    lab.plug('k2', false);
    const fa = startFulcrum(lab, 'f1', dir, conf(61, '10.62.0.101'));
    const fb = startFulcrum(lab, 'f2', dir, conf(62, '10.62.0.102'));
    const ka = startKeepalived(lab, 'k1', dir, conf(61, '10.62.0.101'));
    const kb = startKeepalived(lab, 'k2', dir, conf(62, '10.62.0.102'));
    await Promise.all([
      fa.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000), fb.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000),
      ka.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000), kb.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000),
    ]);
    const marks = [ka.lines.length, kb.lines.length];
    lab.plug('k1', true);
    lab.plug('k2', true);
    await fa.waitLine(logEvent('vrrp-transition', { from: 'MASTER', to: 'BACKUP', reason: 'equal-priority-higher-address', master: k1.ipv4 }), 5000);
    await kb.waitLine((l) => /Entering BACKUP STATE|equal priority|higher IP address/.test(l), 5000, marks[1]);
    await sleep(2500);
    assert.ok(!fb.lines.some(logEvent('vrrp-transition', { to: 'BACKUP', reason: 'equal-priority-higher-address' })), 'Fulcrum (higher address) kept MASTER');
    assert.ok(!ka.lines.slice(marks[0]).some((l) => /Entering BACKUP STATE/.test(l)), 'keepalived (higher address) kept MASTER');
    assert.deepEqual([lab.addresses('f1').includes('10.62.0.101'), lab.addresses('k1').includes('10.62.0.101')], [false, true]);
    assert.deepEqual([lab.addresses('f2').includes('10.62.0.102'), lab.addresses('k2').includes('10.62.0.102')], [true, false]);
  });
});

test('nopreempt: a higher-priority Fulcrum that starts while keepalived is MASTER stays BACKUP; without it, it preempts', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}n`);
  await withTempDir(async (dir) => {
    lab.host('c', '10.63.0.9');
    lab.host('f', '10.63.0.2');
    const k = lab.host('k', '10.63.0.3');
    const obs = startObserver(lab, 'c');
    const ka = startKeepalived(lab, 'k', dir, vrrpInstance({ state: 'MASTER', priority: 100, version: 2, pass: 'pw', vip: '10.63.0.100/24' }));
    await ka.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000);
    const fulcrum = startFulcrum(lab, 'f', dir, vrrpInstance({ priority: 200, version: 2, pass: 'pw', vip: '10.63.0.100/24', nopreempt: true }));
    await fulcrum.waitLine(logEvent('vrrp-transition', { to: 'BACKUP' }), 10_000);
    // Well past its master-down interval (3 + 0.22 s): still BACKUP, keepalived still advertising.
    const from = obs.adverts.length;
    await sleep(6000);
    assert.ok(!fulcrum.lines.some(logEvent('vrrp-transition', { to: 'MASTER' })));
    assert.ok(obs.adverts.slice(from).filter((a) => a.src === k.ipv4).length >= 5);
    assert.deepEqual(lab.addresses('f'), ['10.63.0.2']);
    // The same Fulcrum without nopreempt takes over.
    fulcrum.child.kill('SIGTERM');
    await until(() => fulcrum.child.exitCode !== null, 5000, 'Fulcrum to stop');
    const again = startFulcrum(lab, 'f', dir, vrrpInstance({ priority: 200, version: 2, pass: 'pw', vip: '10.63.0.100/24' }));
    await again.waitLine(logEvent('vrrp-transition', { from: 'BACKUP', to: 'MASTER' }), 10_000);
    await until(() => lab.addresses('f').includes('10.63.0.100') && !lab.addresses('k').includes('10.63.0.100'), 3000, 'VIP on Fulcrum only');
  });
});

test('authentication mismatch: both sides log it and neither accepts the other — both end up MASTER', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}p`);
  await withTempDir(async (dir) => {
    lab.host('c', '10.64.0.9');
    const f = lab.host('f', '10.64.0.2');
    const k = lab.host('k', '10.64.0.3');
    const fulcrum = startFulcrum(lab, 'f', dir, vrrpInstance({ state: 'MASTER', priority: 150, version: 2, pass: 'right', vip: '10.64.0.100/24' }));
    const ka = startKeepalived(lab, 'k', dir, vrrpInstance({ priority: 100, version: 2, pass: 'wrong', vip: '10.64.0.100/24' }));
    const drop = await fulcrum.waitLine(logEvent('vrrp-dropped', { reason: 'auth-mismatch', src: k.ipv4 }), 15_000);
    assert.match(drop, /password does not match/);
    const kline = await ka.waitLine((l) => /(auth|password)/i.test(l) && l.includes(f.ipv4) || /received an invalid passwd|bad auth|authentication/i.test(l), 15_000);
    t.diagnostic(`keepalived: ${kline}`);
    await fulcrum.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    await ka.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000);
    await sleep(1500);
    assert.ok(lab.addresses('f').includes('10.64.0.100') && lab.addresses('k').includes('10.64.0.100'), 'both hold the VIP: neither accepted the other');
    assert.ok(!fulcrum.lines.some(logEvent('vrrp-transition', { from: 'MASTER', to: 'BACKUP' })));
  });
});

test('malformed packets injected from a third host are dropped, counted by reason and change nothing', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}m`);
  await withTempDir(async (dir) => {
    const c = lab.host('c', '10.65.0.9');
    lab.host('f', '10.65.0.2');
    lab.host('k', '10.65.0.3');
    const fulcrum = startFulcrum(lab, 'f', dir, vrrpInstance({ state: 'MASTER', priority: 150, version: 2, pass: 'pw', vip: '10.65.0.100/24' }));
    const ka = startKeepalived(lab, 'k', dir, vrrpInstance({ priority: 100, version: 2, pass: 'pw', vip: '10.65.0.100/24' }));
    await fulcrum.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    await ka.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000);
    await fulcrum.waitLine(logEvent('api'), 10_000);
    type Vrrp = { instances: { state: string; transitions: number; advertsReceived: number; drops: Record<string, number> }[]; dropped: Record<string, number> };
    const get = async (): Promise<Vrrp> => {
      const r = await apiRequest<Vrrp>({ socketPath: fulcrum.socket }, 'GET', '/v1/vrrp');
      return r.body;
    };
    const mark = ka.lines.length;
    const before = await get();
    assert.deepEqual(before.dropped, {});
    const out = lab.exec('c', process.execPath, [path.join(repoRoot(), 'dist', 'src', 'testing', 'vrrp-tool.js'), 'inject', 'eth0', c.ipv4, '51', 'pw', '10.65.0.100']);
    const kinds = out.trim().split('\n');
    assert.equal(kinds.length, 10);
    await sleep(300);
    const after = await get();
    assert.deepEqual(after.dropped, Object.fromEntries(kinds.map((k) => [k, 1])), JSON.stringify(after.dropped));
    const inst = after.instances[0];
    assert.ok(inst);
    assert.equal(inst.state, 'MASTER');
    assert.equal(inst.transitions, before.instances[0]?.transitions);
    // Those with the instance's VRID count against it too; the other VRID only in total.
    assert.equal(inst.drops['unknown-vrid'], undefined);
    assert.equal(inst.drops['auth-mismatch'], 1);
    // keepalived is undisturbed as well.
    await sleep(1500);
    const kaAfter = ka.lines.slice(mark);
    assert.ok(!kaAfter.some((l) => /Entering MASTER STATE/.test(l)), kaAfter.join('\n'));
    // keepalived refused the same packets (its own words).
    for (const re of [/too short/, /checksum/i, /invalid passwd/, /TTL/, /interval mismatch/]) assert.ok(kaAfter.some((l) => re.test(l)), `keepalived did not log ${re}`);
    assert.deepEqual(lab.addresses('f'), ['10.65.0.2', '10.65.0.100']);
  });
});
