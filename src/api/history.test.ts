import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TrafficHistory } from './history.js';
import type { ServiceStats } from '../dataplane/types.js';

const rates = (cps: number, bps: number): ServiceStats['rates'] => ({ cps, inPps: 0, outPps: 0, inBps: bps, outBps: bps });
const svc = (key: string, servers: { key: string; cps: number; bps: number; active: number }[]): ServiceStats => ({
  spec: { key }, rates: rates(servers.reduce((n, s) => n + s.cps, 0), servers.reduce((n, s) => n + s.bps, 0)),
  servers: servers.map((s) => ({ spec: { key: s.key }, rates: rates(s.cps, s.bps), active: s.active })),
}) as unknown as ServiceStats;

test('TrafficHistory: per service and per real server, aligned on sample times; since returns only newer samples', () => {
  const h = new TrafficHistory(1000, 4);
  h.record(1000, [svc('tcp a:80', [{ key: 'r1', cps: 1, bps: 10, active: 2 }])]);
  h.record(2000, [svc('tcp a:80', [{ key: 'r1', cps: 2, bps: 20, active: 3 }, { key: 'r2', cps: 1, bps: 5, active: 1 }])]);
  const v = h.view();
  assert.deepEqual(v.at, [1000, 2000]);
  assert.equal(v.stepMs, 1000);
  assert.deepEqual(v.series['tcp a:80'], { cps: [1, 3], bps: [20, 50], active: [2, 4] });
  assert.deepEqual(v.series['tcp a:80|r1'], { cps: [1, 2], bps: [20, 40], active: [2, 3] });
  assert.deepEqual(v.series['tcp a:80|r2'], { cps: [null, 1], bps: [null, 10], active: [null, 1] }, 'a server added later has no earlier values');
  const later = h.view(1000);
  assert.deepEqual(later.at, [2000]);
  assert.deepEqual(later.series['tcp a:80|r1']?.bps, [40]);
  assert.deepEqual(h.view(2000), { stepMs: 1000, at: [], series: {} });
});

test('TrafficHistory: a fixed window; a series absent for a whole window is dropped', () => {
  const h = new TrafficHistory(1000, 3);
  h.record(1, [svc('s', [{ key: 'gone', cps: 1, bps: 1, active: 0 }])]);
  for (let t = 2; t <= 4; t++) h.record(t, [svc('s', [])]);
  const v = h.view();
  assert.deepEqual(v.at, [2, 3, 4], 'the window holds the last 3 samples');
  assert.equal(v.series['s|gone'], undefined, 'absent for 3 samples: dropped');
  assert.deepEqual(v.series['s']?.cps, [0, 0, 0]);
  for (let t = 5; t <= 1000; t++) h.record(t, [svc('s', [{ key: `r${t % 5}`, cps: 0, bps: 0, active: 0 }])]);
  assert.ok(Object.keys(h.view().series).length <= 1 + 5, 'series are bounded by what exists in the window');
  // A service that goes away: a gap, then (after a whole window) gone with its servers.
  h.record(1001, [svc('s', []), svc('x', [{ key: 'r', cps: 4, bps: 1, active: 1 }])]);
  h.record(1002, [svc('s', [])]);
  assert.deepEqual(h.view().series['x|r']?.cps, [null, 4, null]);
  for (let t = 1003; t <= 1005; t++) h.record(t, [svc('s', [])]);
  assert.deepEqual(Object.keys(h.view().series).filter((k) => k.startsWith('x')), []);
});
