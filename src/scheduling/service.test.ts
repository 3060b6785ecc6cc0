import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { VirtualServer } from '../model/types.js';
import { flowOf } from './compliance.js';
import { ServiceScheduler, unbindConn } from './index.js';
import type { Dest, SharedWeights } from './types.js';

const vs: VirtualServer = {
  endpoint: { kind: 'address', family: 'inet', address: '10.0.0.100', port: 80 }, protocol: 'tcp', scheduler: 'wrr', schedFlags: [],
  method: 'proxy', persistence: null, ops: false, delayLoop: 60, quorum: 1, hysteresis: 0, inhibitOnFailure: false, alpha: false,
  omega: false, haSuspend: false,
  realServers: ['10.1.0.1', '10.1.0.2'].map((address) => ({
    family: 'inet' as const, address, port: 80, weight: 1, method: 'proxy' as const, uthreshold: 0, lthreshold: 0, inhibitOnFailure: false, alpha: false, checkers: [],
  })),
};

/** Published weights as another thread would leave them; `during` runs between reading one weight and the next. */
class Published implements SharedWeights {
  gen = 0;
  readonly weights = new Map<string, number>();
  during: (() => void) | null = null;
  generation(): number {
    return this.gen;
  }
  weightOf(d: Dest): number | undefined {
    const w = this.weights.get(d.key);
    const f = this.during;
    this.during = null;
    f?.();
    return w;
  }
}

function picks(s: ServiceScheduler, n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const d = s.schedule(flowOf(i), '192.0.2.1', 0, true);
    assert.ok(d);
    out.push(d.key.split(':')[0]?.slice(-1) ?? '');
    unbindConn(d, true);
  }
  return out.sort();
}

test('service scheduler: published weights are taken whole before a choice — not while the generation is odd (being written), not when it moved during the read', () => {
  const w = new Published();
  const s = new ServiceScheduler(vs, { weights: w });
  assert.deepEqual(picks(s, 4), ['1', '1', '2', '2'], 'nothing published yet: the configured weights');
  w.weights.set('10.1.0.1:80', 3);
  w.weights.set('10.1.0.2:80', 0);
  w.gen = 1;
  assert.deepEqual(picks(s, 4), ['1', '1', '2', '2'], 'odd: being written, the weights before stand');
  w.gen = 2;
  w.during = () => { w.gen = 4; };
  picks(s, 1);
  assert.deepEqual([s.dest('10.1.0.1:80')?.weight, s.dest('10.1.0.2:80')?.weight], [1, 1], 'changed during the read: not taken');
  assert.deepEqual(picks(s, 6), ['1', '1', '1', '1', '1', '1'], 'whole once the writer is done: 3 and 0');
  // A weight the control plane sends with a plan is taken at once; the published one is
  // read again at the next choice and agrees (it is published before the plan is sent).
  w.weights.set('10.1.0.2:80', 1);
  s.setWeight('10.1.0.2:80', 1);
  assert.deepEqual(picks(s, 8), ['1', '1', '1', '1', '1', '1', '2', '2']);
});
