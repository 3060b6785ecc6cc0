/**
 * Strict mode and accept mode against keepalived (issue 21): a Fulcrum and a keepalived, both
 * with `vrrp_strict`, on one segment. Strict mode turns accept mode off for a non-owner, so
 * while MASTER each drops the traffic to its VIP (keepalived in its `keepalived` nftables
 * table, Fulcrum in `fulcrum_vrrp`); `accept` lifts that. Both elect each other as usual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withTempDir } from '../src/testing/index.js';
import { isRoot, testLab, until } from '../src/testing/netns.js';
import { curl, httpServer, listening } from '../src/testing/lvs-lab.js';
import { logEvent, startFulcrum, startKeepalived, vrrpInstance } from '../src/testing/vrrp-lab.js';

const skip = isRoot() ? false : 'needs root (network namespaces, raw sockets, nftables); CI runs as root';
const PREFIX = `fst${process.pid % 10000}`;

test('vrrp_strict: the MASTER without accept mode drops its VIP\'s traffic, as keepalived does; accept (on reload) lets it in; the table goes at stop and keepalived, taking over in strict mode, drops it too', { skip, timeout: 90_000 }, async (t) => {
  const lab = testLab(t, PREFIX);
  await withTempDir(async (dir) => {
    lab.host('c', '10.69.0.9');
    lab.host('d1', '10.69.0.2');
    lab.host('k', '10.69.0.3');
    for (const h of ['d1', 'k']) httpServer(lab, h, 8080);
    for (const h of ['d1', 'k']) await listening(lab, h, 8080);
    const vip = '10.69.0.100';
    const strict = 'global_defs {\n  vrrp_strict\n}\n';
    const fconf = (extra: string): string => strict + vrrpInstance({ vrid: 74, priority: 200, version: 3, advert: 0.1, vip: `${vip}/24`, extra });
    const d1 = startFulcrum(lab, 'd1', dir, fconf(''));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    const k = startKeepalived(lab, 'k', dir, strict + vrrpInstance({ vrid: 74, priority: 100, version: 3, advert: 0.1, vip: `${vip}/24` }));
    await k.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000);
    assert.equal(curl(lab, 'c', 'http://10.69.0.2:8080/'), 'd1 10.69.0.9', 'the director answers on its own address');
    assert.ok(lab.addresses('d1').includes(vip));
    assert.equal(curl(lab, 'c', `http://${vip}:8080/`, 1), null, 'strict mode, not the owner: traffic to the VIP is dropped');
    assert.match(lab.exec('d1', 'nft', ['list', 'set', 'inet', 'fulcrum_vrrp', 'vips4']), /elements = \{ 10\.69\.0\.100 \}/);

    // accept on reload: the filter is lifted without a state change.
    fs.writeFileSync(path.join(dir, 'd1.conf'), fconf('  accept\n'));
    const mark = d1.lines.length;
    d1.child.kill('SIGHUP');
    await d1.waitLine(logEvent('reloaded'), 10_000, mark);
    assert.ok(!d1.lines.slice(mark).some(logEvent('vrrp-transition')), 'no transition on reload');
    await until(() => curl(lab, 'c', `http://${vip}:8080/`, 1) === 'd1 10.69.0.9', 10_000, 'the VIP answers with accept');
    assert.throws(() => lab.exec('d1', 'nft', ['list', 'table', 'inet', 'fulcrum_vrrp']), 'no table once nothing is filtered');
    fs.writeFileSync(path.join(dir, 'd1.conf'), fconf(''));
    d1.child.kill('SIGHUP');
    await until(() => curl(lab, 'c', `http://${vip}:8080/`, 1) === null, 10_000, 'dropped again without accept');

    // Stop: the table goes with the VIP; keepalived takes over and, in strict mode, drops it too.
    d1.child.kill('SIGTERM');
    await new Promise((r) => d1.child.once('exit', r));
    assert.throws(() => lab.exec('d1', 'nft', ['list', 'table', 'inet', 'fulcrum_vrrp']), 'the table is removed at stop');
    await k.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000);
    assert.ok(lab.addresses('k').includes(vip));
    assert.equal(curl(lab, 'c', 'http://10.69.0.3:8080/'), 'k 10.69.0.9');
    assert.equal(curl(lab, 'c', `http://${vip}:8080/`, 1), null, 'keepalived in strict mode drops the VIP\'s traffic the same way');
    assert.match(lab.exec('k', 'nft', ['list', 'ruleset']), /10\.69\.0\.100/, 'in its own nftables table');
  });
});
