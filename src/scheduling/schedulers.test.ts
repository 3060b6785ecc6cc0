import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { flowOf, testDests } from './compliance.js';
import { bindConn, createScheduler, isOverloaded, mulberry32, unbindConn, type AnySchedulerName, type Dest, type FlowKey } from './index.js';
import { LocalityBasedReplicated } from './schedulers/locality.js';

const letters = (ds: Dest[]) => (d: Dest | null): string => (d === null ? '-' : String.fromCharCode(65 + ds.indexOf(d)));
function sequence(name: AnySchedulerName, weights: number[], n: number): string {
  const ds = testDests(weights);
  const s = createScheduler(name);
  s.update(ds);
  const l = letters(ds);
  return Array.from({ length: n }, (_, i) => l(s.pick(flowOf(i), 0))).join('');
}
function shares(name: AnySchedulerName, weights: number[], n: number, opts: { hold?: boolean; flow?: (i: number) => FlowKey } = {}): number[] {
  const ds = testDests(weights);
  const s = createScheduler(name, { random: mulberry32(7), flags: ['flag-2'] });
  s.update(ds);
  const counts = ds.map(() => 0);
  for (let i = 0; i < n; i++) {
    const d = s.pick((opts.flow ?? flowOf)(i), 0);
    if (d) {
      counts[ds.indexOf(d)] = (counts[ds.indexOf(d)] ?? 0) + 1;
      if (opts.hold) bindConn(d, true);
    }
  }
  return counts.map((c) => c / n);
}
function assertRatios(actual: number[], weights: number[], tol = 0.01): void {
  const total = weights.reduce((a, b) => a + b, 0);
  weights.forEach((w, i) => assert.ok(Math.abs((actual[i] ?? 0) - w / total) <= tol, `share ${i}: ${actual[i]} vs ${w / total}`));
}

describe('rr and wrr pick sequences (IPVS)', () => {
  it('rr cycles in list order and skips quiescent servers', () => {
    assert.equal(sequence('rr', [1, 1, 1], 7), 'ABCABCA');
    assert.equal(sequence('rr', [1, 0, 5], 4), 'ACAC');
  });
  it('wrr interleaves by gcd-stepped weight: 4:3:2 → AABABCABC', () => {
    assert.equal(sequence('wrr', [4, 3, 2], 18), 'AABABCABC'.repeat(2));
    assert.equal(sequence('wrr', [1, 1, 1], 6), 'ABCABC');
    assert.equal(sequence('wrr', [4, 2], 6), 'AABAAB');
    assert.equal(sequence('wrr', [5, 0, 1], 12), 'AAAAACAAAAAC');
    assert.equal(sequence('wrr', [0, 0], 2), '--');
  });
  it('wrr keeps its position on update as IPVS does (cw kept when still valid)', () => {
    const ds = testDests([4, 3, 2]);
    const s = createScheduler('wrr');
    s.update(ds);
    const l = letters(ds);
    const a = Array.from({ length: 4 }, () => l(s.pick(flowOf(0), 0))).join('');
    (ds[1] as Dest).weight = 1;
    s.update(ds);
    const b = Array.from({ length: 6 }, () => l(s.pick(flowOf(0), 0))).join('');
    assert.equal(a, 'AABA');
    // cw was 2 → kept: A and C (≥2), then cw 1: A B C, then cw back to max 4: A
    assert.equal(b, 'ACABCA');
  });
});

describe('weighted ratios over 10^5 picks are within 1%', () => {
  const W = [5, 3, 2];
  it('wrr', () => assertRatios(shares('wrr', W, 100_000), W));
  it('wlc, sed with held connections', () => {
    assertRatios(shares('wlc', W, 100_000, { hold: true }), W);
    assertRatios(shares('sed', W, 100_000, { hold: true }), W);
  });
  it('twos with held connections', () => assertRatios(shares('twos', W, 100_000, { hold: true }), W));
  it('sh and mh over random clients (weighted tables)', () => {
    const rnd = mulberry32(3);
    const flow = (i: number): FlowKey => ({ saddrFold: Math.floor(rnd() * 2 ** 32), sport: i & 0xffff, daddrFold: 1, dport: 80 });
    // sh has IPVS's 256 buckets, so shares are exact only when the weights divide 256
    // (5:3:2 gives buckets 131:76:49, i.e. 51.2%); 4:2:2 divides it.
    assertRatios(shares('sh', [4, 2, 2], 100_000, { flow }), [4, 2, 2]);
    assertRatios(shares('mh', W, 100_000, { flow }), W);
  });
});

describe('least-connection family on hand-built counts', () => {
  const pick = (name: AnySchedulerName, spec: [number, number, number][]): string => {
    const ds = testDests(spec.map(([w]) => w));
    spec.forEach(([, a, i], k) => Object.assign(ds[k] as Dest, { active: a, inactive: i }));
    const s = createScheduler(name);
    s.update(ds);
    return letters(ds)(s.pick(flowOf(0), 0));
  };
  it('lc: least active·256 + inactive; weight only gates; ties to the first', () => {
    assert.equal(pick('lc', [[1, 2, 0], [9, 1, 300], [1, 1, 299]]), 'A'); // 512, 556, 555
    assert.equal(pick('lc', [[1, 2, 0], [9, 2, 1], [1, 1, 255]]), 'C'); // 512, 513, 511
    assert.equal(pick('lc', [[1, 1, 0], [5, 1, 0]]), 'A');
    assert.equal(pick('lc', [[0, 0, 0], [1, 5, 0]]), 'B');
  });
  it('wlc: least overhead/weight, compared by cross-multiplication', () => {
    assert.equal(pick('wlc', [[1, 1, 0], [3, 2, 0]]), 'B'); // 256 vs 170.7
    assert.equal(pick('wlc', [[1, 1, 0], [2, 2, 0]]), 'A'); // tie
    assert.equal(pick('wlc', [[2, 0, 100], [1, 0, 49]]), 'B'); // 50 vs 49
  });
  it('sed: (active + 1)/weight, inactive ignored', () => {
    assert.equal(pick('sed', [[1, 0, 0], [3, 2, 0]]), 'A'); // 1 vs 1
    assert.equal(pick('sed', [[1, 1, 0], [3, 2, 0]]), 'B'); // 2 vs 1
    assert.equal(pick('sed', [[1, 0, 1000], [1, 1, 0]]), 'A');
  });
  it('nq: the first idle server, else as sed', () => {
    assert.equal(pick('nq', [[5, 1, 0], [1, 0, 0], [1, 0, 0]]), 'B');
    assert.equal(pick('nq', [[1, 2, 0], [3, 4, 0]]), 'B'); // 3 vs 1.67
  });
  it('fo: highest weight; ovf: highest weight with active ≤ weight', () => {
    assert.equal(pick('fo', [[2, 100, 0], [5, 100, 0], [5, 0, 0]]), 'B');
    assert.equal(pick('ovf', [[2, 0, 0], [5, 5, 0], [3, 0, 0]]), 'B'); // 5 ≤ 5 still takes
    assert.equal(pick('ovf', [[2, 0, 0], [5, 6, 0], [3, 3, 0]]), 'C');
    assert.equal(pick('ovf', [[2, 3, 0], [5, 6, 0]]), '-');
  });
});

describe('thresholds (ipvsadm -x/-y)', () => {
  it('over the upper threshold: no new flows until below the lower one', () => {
    const [a, b] = testDests([1, 1]) as [Dest, Dest];
    a.uthreshold = 3;
    a.lthreshold = 1;
    const s = createScheduler('lc');
    s.update([a, b]);
    for (let i = 0; i < 3; i++) bindConn(a, true);
    assert.equal(a.overloaded, true);
    assert.equal(s.pick(flowOf(0), 0), b);
    unbindConn(a, true); // 2 left: not below 1
    assert.equal(a.overloaded, true);
    unbindConn(a, true); // 1 left: not below 1
    assert.equal(a.overloaded, true);
    unbindConn(a, true); // 0: below the lower threshold
    assert.equal(a.overloaded, false);
  });
  it('without a lower threshold the flag clears below 3/4 of the upper', () => {
    const [a] = testDests([1]) as [Dest];
    a.uthreshold = 8;
    for (let i = 0; i < 8; i++) bindConn(a, i % 2 === 0);
    assert.equal(a.overloaded, true);
    unbindConn(a, true); // 7·4 = 28 ≥ 24
    assert.equal(a.overloaded, true);
    unbindConn(a, false); // 6·4 = 24, not < 24
    assert.equal(a.overloaded, true);
    unbindConn(a, true); // 5·4 = 20 < 24
    assert.equal(a.overloaded, false);
  });
});

describe('lblc and lblcr overload transitions', () => {
  const flow = (daddr: number): FlowKey => ({ saddrFold: 1, sport: 1, daddrFold: daddr, dport: 80 });
  it('IPVS overload rule: active > weight and some server below half its weight', () => {
    const [a, b] = testDests([2, 4]) as [Dest, Dest];
    a.active = 3;
    b.active = 2; // 2·2 = 4, not < 4
    assert.equal(isOverloaded(a, [a, b]), false);
    b.active = 1;
    assert.equal(isOverloaded(a, [a, b]), true);
    a.active = 2;
    assert.equal(isOverloaded(a, [a, b]), false);
  });
  it('lblc keeps a destination address on its server until that server is overloaded', () => {
    const ds = testDests([2, 2]) as [Dest, Dest];
    const s = createScheduler('lblc');
    s.update(ds);
    const first = s.pick(flow(7), 0) as Dest;
    assert.equal(first, ds[0]);
    for (let i = 0; i < 3; i++) {
      assert.equal(s.pick(flow(7), i), first);
      bindConn(first, true);
    }
    // first: 3 active > weight 2, and B has 0·2 < 2 → overloaded → reassigned to B (wlc)
    assert.equal(s.pick(flow(7), 5), ds[1]);
    assert.equal(s.pick(flow(7), 6), ds[1]);
    ds[1].weight = 0;
    assert.equal(s.pick(flow(7), 7), ds[0]); // quiescent → rescheduled
  });
  it('lblcr grows the set under overload and shrinks it after the expiration', () => {
    const ds = testDests([1, 1, 1]) as [Dest, Dest, Dest];
    const s = new LocalityBasedReplicated(60);
    s.update(ds);
    assert.equal(s.pick(flow(9), 0), ds[0]);
    ds[0].active = 2; // > weight 1 and others at 0 → overloaded
    assert.equal(s.pick(flow(9), 1), ds[1]);
    assert.deepEqual(s.members(9), [ds[0], ds[1]]);
    ds[1].active = 1; // set min: A 2/1, B 1/1 → B; B not overloaded (1 ≤ 1)
    assert.equal(s.pick(flow(9), 2), ds[1]);
    // 61 s without set changes: the most loaded member (A) is dropped
    assert.equal(s.pick(flow(9), 63), ds[1]);
    assert.deepEqual(s.members(9), [ds[1]]);
  });
});

describe('sh, dh and mh', () => {
  const keys = (n: number, seed: number): FlowKey[] => {
    const r = mulberry32(seed);
    return Array.from({ length: n }, () => ({ saddrFold: Math.floor(r() * 2 ** 32), sport: Math.floor(r() * 65536), daddrFold: Math.floor(r() * 2 ** 32), dport: 80 }));
  };
  for (const name of ['sh', 'dh', 'mh'] as const) {
    it(`${name}: the same key maps to the same server while the set is unchanged`, () => {
      const ds = testDests([1, 2, 3, 1]);
      const s = createScheduler(name);
      s.update(ds);
      const ks = keys(2000, 5);
      const first = ks.map((k) => s.pick(k, 0));
      for (let round = 0; round < 3; round++) {
        for (const d of ds) bindConn(d, true); // load changes must not matter
        s.update(ds);
        assert.deepEqual(ks.map((k) => s.pick(k, round)), first);
      }
    });
  }
  it('sh-port includes the source port; without it every port of a client agrees', () => {
    const ds = testDests([1, 1, 1, 1]);
    const plain = createScheduler('sh');
    const withPort = createScheduler('sh', { flags: ['flag-2'] });
    plain.update(ds);
    withPort.update(ds);
    const at = (p: number): FlowKey => ({ saddrFold: 0x0a000001, sport: p, daddrFold: 1, dport: 80 });
    assert.equal(new Set(Array.from({ length: 50 }, (_, p) => plain.pick(at(p), 0))).size, 1);
    assert.ok(new Set(Array.from({ length: 50 }, (_, p) => withPort.pick(at(p), 0))).size > 1);
  });
  it('sh/mh fallback: an unavailable bucket gives null, or another server with the fallback flag', () => {
    for (const name of ['sh', 'mh'] as const) {
      const ds = testDests([1, 1, 1]);
      const strict = createScheduler(name);
      const fb = createScheduler(name, { flags: ['flag-1'] });
      strict.update(ds);
      fb.update(ds);
      const ks = keys(500, 11);
      const owned = ks.filter((k) => strict.pick(k, 0) === ds[0]);
      assert.ok(owned.length > 50);
      (ds[0] as Dest).weight = 0;
      strict.update(ds);
      fb.update(ds);
      for (const k of owned) {
        assert.equal(strict.pick(k, 0), null);
        const alt = fb.pick(k, 0);
        assert.ok(alt === ds[1] || alt === ds[2]);
      }
      // keys of other servers do not move when one is quiescent
      for (const k of ks.filter((x) => !owned.includes(x))) assert.notEqual(strict.pick(k, 0), null);
    }
  });
  it('mh: removing 1 of 100 equal servers moves ≤ 3% of the keys that were not on it', () => {
    const ds = testDests(Array.from({ length: 100 }, () => 1)).map((d, i) => Object.assign(d, {})) as Dest[];
    const s = createScheduler('mh');
    s.update(ds);
    const ks = keys(100_000, 17);
    const before = ks.map((k) => s.pick(k, 0));
    const removed = ds[37] as Dest;
    const rest = ds.filter((d) => d !== removed);
    s.update(rest);
    let stayed = 0;
    let moved = 0;
    ks.forEach((k, i) => {
      if (before[i] === removed) return;
      stayed++;
      if (s.pick(k, 0) !== before[i]) moved++;
    });
    assert.ok(moved / stayed <= 0.03, `moved ${(100 * moved / stayed).toFixed(2)}%`);
  });
});

describe('twos', () => {
  it('prefers the less loaded of two weighted draws', () => {
    const ds = testDests([1, 1]) as [Dest, Dest];
    ds[0].active = 50;
    const s = createScheduler('twos', { random: mulberry32(1) });
    s.update(ds);
    let a = 0;
    for (let i = 0; i < 10_000; i++) if (s.pick(flowOf(i), 0) === ds[0]) a++;
    // A only wins when both draws are A: about 1/4 of the time
    assert.ok(a > 2200 && a < 2800, String(a));
  });
});
