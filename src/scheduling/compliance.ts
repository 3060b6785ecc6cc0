/**
 * The compliance suite every Scheduler implementation runs (including the fake): the
 * contract callers rely on, independent of the policy.
 */
import assert from 'node:assert/strict';
import { it } from 'node:test';
import { makeDest } from './dest.js';
import type { Dest, FlowKey, Scheduler } from './types.js';

export function testDests(weights: readonly number[]): Dest[] {
  return weights.map((w, i) => makeDest({ family: 'inet', address: `10.0.0.${i + 1}`, port: 80, weight: w, uthreshold: 0, lthreshold: 0 }));
}

export function flowOf(i: number): FlowKey {
  return { saddrFold: (0x0a000000 + i * 2654435761) >>> 0, sport: 1024 + (i % 50000), daddrFold: 0xc0000201 + (i % 7), dport: 80 };
}

/** `make()` must return a fresh scheduler; `scripted` marks the fake (its picks follow a script). */
export function schedulerCompliance(make: () => Scheduler): void {
  it('returns null with no destinations', () => {
    const s = make();
    s.update([]);
    assert.equal(s.pick(flowOf(1), 0), null);
  });

  it('never picks a quiescent (weight 0), overloaded or removed destination', () => {
    const s = make();
    const ds = testDests([1, 0, 1, 1]);
    (ds[2] as Dest).overloaded = true;
    s.update(ds);
    (ds[3] as Dest).available = false;
    for (let i = 0; i < 500; i++) {
      const d = s.pick(flowOf(i), i);
      if (d !== null) assert.equal(d.key, '10.0.0.1:80');
    }
  });

  it('returns null when every destination is quiescent', () => {
    const s = make();
    s.update(testDests([0, 0, 0]));
    for (let i = 0; i < 50; i++) assert.equal(s.pick(flowOf(i), i), null);
  });

  it('only returns destinations from its latest update', () => {
    const s = make();
    const first = testDests([1, 1]);
    s.update(first);
    const second = testDests([1, 1, 1]).slice(1);
    s.update(second);
    for (let i = 0; i < 200; i++) {
      const d = s.pick(flowOf(i), i);
      if (d !== null) assert.ok(second.includes(d));
    }
  });

  it('is deterministic for the same inputs', () => {
    const run = (): (string | null)[] => {
      const s = make();
      s.update(testDests([3, 1, 2]));
      return Array.from({ length: 100 }, (_, i) => s.pick(flowOf(i), i)?.key ?? null);
    };
    assert.deepEqual(run(), run());
  });
}
