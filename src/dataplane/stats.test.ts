import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateEstimator, newCounters } from './stats.js';

test('rate estimator follows IPVS: 2 s intervals, avg += (rate - avg) / 4', () => {
  const c = newCounters();
  const e = new RateEstimator(c, 0);
  c.conns = 100;
  c.inBytes = 8000;
  e.tick(1); // under 2 s: nothing folded yet
  assert.equal(e.rates().cps, 0);
  e.tick(2); // 50 conn/s over the interval → avg 12.5
  assert.equal(e.rates().cps, 13);
  assert.equal(e.rates().inBps, 1000);
  c.conns = 200;
  e.tick(4); // rate 50 again → 12.5 + (50 − 12.5)/4 = 21.875
  assert.equal(e.rates().cps, 22);
  let avg = 21.875;
  for (let t = 6; t <= 60; t += 2) {
    c.conns += 100;
    e.tick(t);
    avg += (50 - avg) / 4;
  }
  assert.equal(e.rates().cps, Math.round(avg));
  assert.ok(Math.abs(avg - 50) < 0.01, 'a steady rate converges');
  for (let t = 62; t <= 120; t += 2) e.tick(t);
  assert.equal(e.rates().cps, 0, 'no traffic decays to zero');
});
