/**
 * VRRP against real keepalived (Debian's package) on a bridged segment of network
 * namespaces: client (observer), Fulcrum, keepalived. Runs as root (CI does).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { testOnce, withTempDir } from '../src/testing/index.js';
import { isRoot, testLab, until, type Lab, type LabHost } from '../src/testing/netns.js';
import { expectedTakeoverMs, logEvent, startFulcrum, startKeepalived, startObserver, vrrpInstance, type Advert } from '../src/testing/vrrp-lab.js';

const skip = isRoot() ? false : 'needs root (network namespaces, raw sockets); CI runs as root';
const PREFIX = `fvi${process.pid % 10000}`;
const VIP = '10.61.0.100';

/** Client c (watching VRRP), Fulcrum's host f (.2) and keepalived's host k (.3) on one bridge. */
function segment(lab: Lab): { f: LabHost; k: LabHost; obs: ReturnType<typeof startObserver> } {
  lab.host('c', '10.61.0.9');
  const f = lab.host('f', '10.61.0.2');
  const k = lab.host('k', '10.61.0.3');
  return { f, k, obs: startObserver(lab, 'c') };
}

/**
 * Crash `victim` right after one of its adverts and time the survivor's first advert
 * against 3·advert_int + skew (advert_int 1, survivor priority 100), within 10%.
 */
async function crashAndTime(t: TestContext, lab: Lab, obs: ReturnType<typeof startObserver>, victim: LabHost, survivor: LabHost, version: 2 | 3, who: string): Promise<Advert> {
  const last = await obs.next((a) => a.src === victim.ipv4, 3000);
  lab.crash(victim.name);
  const first = await obs.next((a) => a.src === survivor.ipv4, 10_000);
  const took = first.t - last.t;
  const want = expectedTakeoverMs(version, 1, 100);
  t.diagnostic(`v${version} takeover by ${who}: ${took.toFixed(0)} ms after the master's last advert (3·advert + skew = ${want.toFixed(0)} ms)`);
  assert.ok(Math.abs(took - want) <= want * 0.1, `takeover ${took} ms, expected ${want} ± 10%`);
  return first;
}

for (const version of [2, 3] as const) {
  const pass = version === 2 ? 'sa5pw' : undefined;
  // v2 and v3 differ in the codec (pure, unit-tested on every line): v2 against keepalived runs once.
  const define: typeof testOnce = version === 3 ? (n, o, f) => void test(n, o, f) : testOnce;

  define(`VRRPv${version}: Fulcrum MASTER + keepalived BACKUP — kill Fulcrum, keepalived takes the VIP in 3·advert + skew, the client's ARP entry moves; Fulcrum returns and preempts`, { skip, timeout: 60_000 }, async (t) => {
    const lab = testLab(t, `${PREFIX}a${version}`);
    await withTempDir(async (dir) => {
      const { f, k, obs } = segment(lab);
      const fconf = vrrpInstance({ state: 'MASTER', priority: 150, version, pass, vip: `${VIP}/24` });
      let fulcrum = startFulcrum(lab, 'f', dir, fconf);
      await fulcrum.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
      const ka = startKeepalived(lab, 'k', dir, vrrpInstance({ priority: 100, version, pass, vip: `${VIP}/24` }));
      await ka.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000);
      // keepalived accepts Fulcrum's adverts: it stays BACKUP through 4 of them.
      const firstF = obs.adverts.filter((a) => a.src === f.ipv4).length;
      await until(() => obs.adverts.filter((a) => a.src === f.ipv4).length >= firstF + 4, 8000, 'four more adverts from Fulcrum');
      assert.ok(!ka.lines.some((l) => /Entering MASTER STATE/.test(l)), ka.lines.join('\n'));
      assert.ok(obs.adverts.every((a) => a.valid && a.ttl === 255 && a.version === version));
      assert.deepEqual(lab.addresses('f'), [f.ipv4, VIP]);
      assert.deepEqual(lab.addresses('k'), [k.ipv4]);
      lab.touch('c', VIP);
      assert.equal(lab.neighbour('c', VIP), f.mac);

      await crashAndTime(t, lab, obs, f, k, version, 'keepalived');
      await until(() => lab.addresses('k').includes(VIP), 2000, 'VIP on keepalived');
      // The client sent nothing to the VIP: only the gratuitous ARP can have moved its entry.
      await until(() => lab.neighbour('c', VIP) === k.mac, 2000, 'client ARP entry to point at keepalived');

      // Fulcrum returns with the higher priority and preempts (after its master-down interval).
      const mark = ka.lines.length;
      fulcrum = startFulcrum(lab, 'f', dir, fconf);
      await fulcrum.waitLine(logEvent('vrrp-transition', { from: 'BACKUP', to: 'MASTER' }), 10_000);
      await ka.waitLine((l) => /Entering BACKUP STATE|higher priority/.test(l), 5000, mark);
      await until(() => lab.addresses('f').includes(VIP) && !lab.addresses('k').includes(VIP), 3000, 'VIP back on Fulcrum only');
      await until(() => lab.neighbour('c', VIP) === f.mac, 3000, 'client ARP entry back to Fulcrum');
    });
  });

  define(`VRRPv${version}: keepalived MASTER + Fulcrum BACKUP — kill keepalived, Fulcrum takes the VIP in 3·advert + skew; keepalived returns and preempts`, { skip, timeout: 60_000 }, async (t) => {
    const lab = testLab(t, `${PREFIX}b${version}`);
    await withTempDir(async (dir) => {
      const { f, k, obs } = segment(lab);
      const kconf = vrrpInstance({ state: 'MASTER', priority: 150, version, pass, vip: `${VIP}/24` });
      let ka = startKeepalived(lab, 'k', dir, kconf);
      await ka.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000);
      const fulcrum = startFulcrum(lab, 'f', dir, vrrpInstance({ priority: 100, version, pass, vip: `${VIP}/24` }));
      await fulcrum.waitLine(logEvent('vrrp-transition', { to: 'BACKUP' }), 10_000);
      const seen = obs.adverts.filter((a) => a.src === k.ipv4).length;
      await until(() => obs.adverts.filter((a) => a.src === k.ipv4).length >= seen + 4, 8000, 'four more adverts from keepalived');
      assert.ok(!fulcrum.lines.some(logEvent('vrrp-transition', { to: 'MASTER' })), 'Fulcrum accepted keepalived as master');
      assert.ok(!fulcrum.lines.some(logEvent('vrrp-dropped')), fulcrum.lines.filter(logEvent('vrrp-dropped')).join('\n'));
      lab.touch('c', VIP);
      assert.equal(lab.neighbour('c', VIP), k.mac);

      // keepalived forks a VRRP child: crash() stops and kills every process in its namespace.
      const first = await crashAndTime(t, lab, obs, k, f, version, 'Fulcrum');
      assert.ok(first.valid && first.version === version && first.priority === 100);
      await until(() => lab.addresses('f').includes(VIP), 2000, 'VIP on Fulcrum');
      await until(() => lab.neighbour('c', VIP) === f.mac, 2000, 'client ARP entry to point at Fulcrum');

      // keepalived returns (priority 150): Fulcrum sees the higher priority and steps back.
      const mark = fulcrum.lines.length;
      ka = startKeepalived(lab, 'k', dir, kconf);
      await fulcrum.waitLine(logEvent('vrrp-transition', { from: 'MASTER', to: 'BACKUP', reason: 'higher-priority' }), 10_000, mark);
      await until(() => lab.addresses('k').includes(VIP) && !lab.addresses('f').includes(VIP), 3000, 'VIP back on keepalived only');
      await until(() => lab.neighbour('c', VIP) === k.mac, 3000, 'client ARP entry back to keepalived');
    });
  });
}

test('VRRPv3 over IPv6 (link-local sources, ff02::12): keepalived accepts Fulcrum as master and takes over when it crashes; Fulcrum as backup takes over from a crashed keepalived', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}6`);
  await withTempDir(async (dir) => {
    lab.host('f', '10.61.0.2');
    lab.host('k', '10.61.0.3');
    const vip6 = 'fd00:61::100';
    const has = (h: string): boolean => lab.exec(h, 'ip', ['-6', '-o', 'addr', 'show', 'dev', 'eth0']).includes(`${vip6}/64`);
    const conf = (priority: number, state: 'MASTER' | 'BACKUP'): string => vrrpInstance({ vrid: 60, priority, state, version: 3, vip: `${vip6}/64` });
    const f = startFulcrum(lab, 'f', dir, conf(150, 'MASTER'));
    await f.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    const k = startKeepalived(lab, 'k', dir, conf(100, 'BACKUP'));
    await k.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000);
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(!k.lines.some((l) => /Entering MASTER STATE/.test(l)), 'keepalived accepted Fulcrum\'s IPv6 adverts');
    assert.deepEqual([has('f'), has('k')], [true, false]);
    lab.crash('f');
    await k.waitLine((l) => /Entering MASTER STATE/.test(l), 6000);
    await until(() => has('k'), 2000, 'IPv6 VIP on keepalived');
    const f2 = startFulcrum(lab, 'f', dir, conf(100, 'BACKUP'));
    await f2.waitLine(logEvent('vrrp-transition', { to: 'BACKUP' }), 10_000);
    await new Promise((r) => setTimeout(r, 4000));
    assert.ok(!f2.lines.some(logEvent('vrrp-transition', { to: 'MASTER' })), 'Fulcrum accepted keepalived\'s IPv6 adverts');
    assert.ok(!f2.lines.some(logEvent('vrrp-dropped')), f2.lines.filter(logEvent('vrrp-dropped')).join('\n'));
    lab.crash('k');
    await f2.waitLine(logEvent('vrrp-transition', { from: 'BACKUP', to: 'MASTER', reason: 'master-down' }), 6000);
    await until(() => has('f'), 2000, 'IPv6 VIP on Fulcrum');
  });
});
