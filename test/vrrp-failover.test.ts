/**
 * Sub-second director failover: two Fulcrum directors, VRRPv3 with advert_int 0.1, a real
 * server behind each, a client loop against the VIP; the master crashes. Also a director
 * that runs VRRP only (no virtual_server), like `keepalived --vrrp`. Runs as root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withTempDir } from '../src/testing/index.js';
import { isRoot, testLab } from '../src/testing/netns.js';
import { measureFailover } from '../src/testing/vrrp-lab.js';

const skip = isRoot() ? false : 'needs root (network namespaces, raw sockets); CI runs as root';
const PREFIX = `fvf${process.pid % 10000}`;

test('sub-second failover: the client loop through a Fulcrum pair sees at most 400 ms of outage when the master crashes; the listener follows the VIP', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, PREFIX);
  await withTempDir(async (dir) => {
    lab.host('c', '10.66.0.9');
    lab.host('d1', '10.66.0.2');
    lab.host('d2', '10.66.0.3');
    const r = await measureFailover(lab, dir, 'fulcrum', '10.66.0.100', { advert: 0.1, priorities: [254, 250] });
    t.diagnostic(`outage ${r.outageMs.toFixed(0)} ms (master down interval ${r.expectedMs.toFixed(0)} ms), ${r.failed}/${r.tries} tries failed, ${r.before} → ${r.after}`);
    assert.equal(r.before, 'd1');
    assert.equal(r.after, 'd2');
    assert.ok(r.failed > 0, 'the crash was seen by the client');
    assert.ok(r.outageMs <= 400, `outage ${r.outageMs} ms`);
    // The master's last advert came at most one interval before the crash, so the backup
    // cannot have taken over sooner than Master_Down_Interval − advert_int after it.
    assert.ok(r.outageMs >= r.expectedMs - 100, `outage ${r.outageMs} ms is shorter than the master-down interval allows: the backup did not wait`);
  });
});
