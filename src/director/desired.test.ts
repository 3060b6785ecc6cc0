import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FulcrumConfig, VirtualServer } from '../model/types.js';
import { errorsOf, parseText } from '../testing/index.js';
import { computeDesired, DesiredMemo, type Desired } from './desired.js';
import { sameSpec } from './plan.js';

function cfg(text: string): FulcrumConfig {
  const r = parseText(text);
  assert.deepEqual(errorsOf(r), []);
  return r.config;
}

const BASE = cfg([1, 2].map((s) => `virtual_server 10.0.0.${s} 80 {
  lb_algo wrr
  lb_kind NAT
${[1, 2, 3].map((i) => `  real_server 10.0.${s}.${i} 80 {\n    weight ${i}\n  }`).join('\n')}
}`).join('\n'));

/** `c` with one real server's weight replaced the way applyOverlay does it: new objects only on the path to it. */
function withWeight(c: FulcrumConfig, service: number, server: number, weight: number): FulcrumConfig {
  const virtualServers = c.virtualServers.map((vs, i): VirtualServer => (i !== service ? vs
    : { ...vs, realServers: vs.realServers.map((rs, j) => (j === server ? { ...rs, weight } : rs)) }));
  return { ...c, virtualServers };
}

function plain(d: Desired): unknown {
  return [...d].map(([k, s]) => [k, s.spec, [...s.servers], s.quorumUp, s.liveWeight]);
}

test('desired: with a memo the result equals the one computed afresh', () => {
  const memo = new DesiredMemo();
  const none = new Map();
  for (const c of [BASE, withWeight(BASE, 0, 1, 7), withWeight(withWeight(BASE, 0, 1, 7), 1, 2, 0), BASE]) {
    const fresh = computeDesired({ config: c, observations: none, quorum: none });
    const kept = computeDesired({ config: c, observations: none, quorum: none, memo });
    assert.ok(sameSpec(plain(kept), plain(fresh)));
  }
});

test('desired: a one-weight change computes one server spec; every other spec is the same object', () => {
  const memo = new DesiredMemo();
  const none = new Map();
  const a = computeDesired({ config: BASE, observations: none, quorum: none, memo });
  const changed = withWeight(BASE, 0, 1, 7);
  const b = computeDesired({ config: changed, observations: none, quorum: none, memo });
  const [s1, s2] = ['tcp 10.0.0.1:80', 'tcp 10.0.0.2:80'];
  assert.equal(b.get(s2)?.spec, a.get(s2)?.spec);
  for (const k of ['10.0.2.1:80', '10.0.2.2:80', '10.0.2.3:80', '10.0.1.1:80', '10.0.1.3:80']) {
    const svc = k.startsWith('10.0.1.') ? s1 : s2;
    assert.equal(b.get(svc)?.servers.get(k), a.get(svc)?.servers.get(k), k);
  }
  assert.notEqual(b.get(s1)?.servers.get('10.0.1.2:80'), a.get(s1)?.servers.get('10.0.1.2:80'));
  assert.equal(b.get(s1)?.servers.get('10.0.1.2:80')?.weight, 7);
  // A new observation of the same server object is a new spec (an agent's load is in it).
  const obs = new Map([[`${s2}|10.0.2.1:80`, { alive: true, load: 40 }]]);
  const c = computeDesired({ config: changed, observations: obs, quorum: none, memo });
  assert.equal(c.get(s2)?.servers.get('10.0.2.1:80')?.agentLoad, 40);
  assert.equal(c.get(s2)?.servers.get('10.0.2.2:80'), a.get(s2)?.servers.get('10.0.2.2:80'));
  // A changed global section (timeouts) is a new service spec even for the same VirtualServer.
  const g = { ...changed, global: { ...changed.global, lvsTimeouts: { ...changed.global.lvsTimeouts, tcp: 42 } } };
  const d = computeDesired({ config: g, observations: none, quorum: none, memo });
  assert.notEqual(d.get(s2)?.spec, a.get(s2)?.spec);
  assert.equal(d.get(s2)?.spec.timeouts.tcp, 42);
});

test('desired: with `observed`, a service nothing of which changed is the same result object; an observation or quorum change recomputes it', () => {
  const memo = new DesiredMemo();
  const none = new Map();
  const [s1, s2] = ['tcp 10.0.0.1:80', 'tcp 10.0.0.2:80'];
  const observed = new Map<string, number>();
  const run = (c: FulcrumConfig, obs: ReadonlyMap<string, { alive: boolean }> = none, quorum: ReadonlyMap<string, boolean> = none): Desired =>
    computeDesired({ config: c, observations: obs, quorum, memo, observed });
  const a = run(BASE);
  const up = new Map([[s1, true], [s2, true]]);
  const b = run(withWeight(BASE, 0, 1, 7), none, up);
  assert.equal(b.get(s2), a.get(s2), 'untouched service: the same result');
  assert.notEqual(b.get(s1), a.get(s1), 'the touched one is computed');
  // Its observations changed (the director counts them): computed again, with them.
  const down = new Map([[`${s2}|10.0.2.1:80`, { alive: false }]]);
  observed.set(s2, 1);
  const c = run(withWeight(BASE, 0, 1, 7), down, up);
  assert.notEqual(c.get(s2), b.get(s2));
  assert.equal(c.get(s2)?.servers.size, 3, 'no checker: an observation does not take it out');
  // Without `observed`, nothing is trusted: every service is computed (equal, new objects).
  const d = computeDesired({ config: withWeight(BASE, 0, 1, 7), observations: down, quorum: up, memo });
  assert.notEqual(d.get(s2), c.get(s2));
  assert.ok(sameSpec(plain(d), plain(c)));
  // A quorum state it did not start from or reach: computed again.
  const e = run(withWeight(BASE, 0, 1, 7), down, new Map([[s1, true], [s2, false]]));
  assert.notEqual(e.get(s2), c.get(s2));
});
