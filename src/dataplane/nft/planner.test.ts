/**
 * The kernel plane's planner as a pure function: no kernel, no fake — inputs in, questions
 * or a transaction out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverSpec, serviceSpec } from '../compliance.js';
import { SpecTable } from '../table.js';
import { DEFAULT_TIMEOUTS } from '../types.js';
import { emptyModel, hex } from './model.js';
import { demandChain, HASH_SEED } from './ruleset.js';
import { mergeModel, planSync, type PlaneState, type SyncCommit } from './planner.js';

const empty: PlaneState = {
  services: new Map(), backends: new Map(), sharedRefs: new Map(), applied: emptyModel(), loaded: { inet: false, netdev: false },
  adopted: null, ingress: new Set(), timeouts: DEFAULT_TIMEOUTS, nextId: 1, fragments: new Map(), claimed: new Set(),
};

function table(weights: number[], method: 'dr' | 'nat' = 'dr'): SpecTable {
  const t = new SpecTable();
  const svc = serviceSpec('10.90.0.1', 80, method);
  t.commit({ op: 'add-service', service: svc });
  weights.forEach((w, i) => t.commit({ op: 'add-server', service: svc.key, server: serverSpec(`10.90.0.${11 + i}`, 80, w, method) }));
  return t;
}

/** The state a plane would hold after committing `c` (as NftDataPlane.commitSync does). */
function after(st: PlaneState, c: SyncCommit): PlaneState {
  const applied = c.whole ?? (() => {
    const m = emptyModel();
    mergeModel(m, emptyModel(), st.applied);
    for (const [a, b] of c.changed) mergeModel(m, a, b);
    return m;
  })();
  const services = new Map(st.services);
  for (const x of c.built) if (!services.has(x.spec.key)) services.set(x.spec.key, { id: x.id, counters: { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 }, est: null as never, dropped: 0, dropBase: 0 });
  return {
    ...st, applied, services, backends: c.backends, sharedRefs: c.sharedRefs, fragments: c.fragments, timeouts: c.timeouts, nextId: c.nextId, claimed: c.claimed,
    loaded: { inet: st.loaded.inet || c.loadedKinds.includes('inet'), netdev: st.loaded.netdev || c.loadedKinds.includes('netdev') },
    ingress: new Set([...st.ingress, ...c.ingressAdded]),
  };
}

test('planner: a DR service first asks the host for its servers\' egress and its VIP\'s device (all at once), then plans one transaction', () => {
  const draft = table([2, 1]);
  const q = planSync({ state: empty, draft, only: null, answers: new Map(), now: 0 });
  assert.ok('need' in q);
  assert.deepEqual(q.need.map((x) => x.key).sort(), ['addr 10.90.0.1', 'egress dr 10.90.0.11', 'egress dr 10.90.0.12'], 'every question at once');
  const answers = new Map<string, string | null>([['egress dr 10.90.0.11', 'eth1'], ['egress dr 10.90.0.12', 'eth1'], ['addr 10.90.0.1', 'eth0']]);
  const p = planSync({ state: empty, draft, only: null, answers, now: 0 });
  assert.ok('cmds' in p);
  assert.ok(p.cmds.includes('add table netdev fulcrum'));
  assert.ok(p.cmds.some((c) => c.startsWith('add chain netdev fulcrum in_eth0 ')), 'classified on the VIP\'s device');
  assert.match(p.cmds.join('\n'), /add element netdev fulcrum be4 \{ 0x00001001 : 10\.90\.0\.11, 0x00001002 : 10\.90\.0\.12 \}/);
  assert.deepEqual(p.commit.loadedKinds, ['netdev']);
});

test('planner: a weight change is one element delta of the slots map — no host question, no other set', () => {
  const answers = new Map<string, string | null>([['egress dr 10.90.0.11', 'eth1'], ['egress dr 10.90.0.12', 'eth1'], ['addr 10.90.0.1', 'eth0']]);
  const p = planSync({ state: empty, draft: table([2, 1]), only: null, answers, now: 0 });
  assert.ok('cmds' in p);
  const st = after(empty, p.commit);
  const p2 = planSync({ state: st, draft: table([1, 1]), only: new Set(['tcp 10.90.0.1:80']), answers: new Map(), now: 1 });
  assert.ok('cmds' in p2, 'nothing to ask: devices are kept');
  assert.ok(p2.cmds.length > 0);
  assert.ok(p2.cmds.every((c) => / netdev fulcrum slots \{/.test(c)), p2.cmds.join('\n'));
});

test('planner: a host error fails the plan (nothing to send); a missing route is a clear refusal', () => {
  const draft = table([1]);
  assert.throws(() => planSync({ state: empty, draft, only: null, answers: new Map([['egress dr 10.90.0.11', new Error('EIO')]]), now: 0 }), /EIO/);
  assert.throws(() => planSync({ state: empty, draft, only: null, answers: new Map([['egress dr 10.90.0.11', null]]), now: 0 }), /no route to it/);
});

test('planner: the input state is never changed', () => {
  const answers = new Map<string, string | null>([['egress dr 10.90.0.11', 'eth1'], ['egress dr 10.90.0.12', 'eth1'], ['addr 10.90.0.1', 'eth0']]);
  const p = planSync({ state: empty, draft: table([2, 1]), only: null, answers, now: 0 });
  assert.ok('cmds' in p);
  const st = after(empty, p.commit);
  const snapshot = JSON.stringify({ b: [...st.backends.keys()], f: [...st.fragments.keys()], r: [...st.sharedRefs], n: st.nextId, a: [...st.applied.netdev].map(([k, v]) => [k, [...v]]) });
  planSync({ state: st, draft: table([5, 0, 3]), only: new Set(['tcp 10.90.0.1:80']), answers: new Map([['egress dr 10.90.0.13', 'eth1']]), now: 2 });
  assert.equal(JSON.stringify({ b: [...st.backends.keys()], f: [...st.fragments.keys()], r: [...st.sharedRefs], n: st.nextId, a: [...st.applied.netdev].map(([k, v]) => [k, [...v]]) }), snapshot);
});

test('planner: a DR service announced over BGP is classified on its VIP\'s device and on the device of the route to each neighbour', () => {
  const draft = new SpecTable();
  const svc = serviceSpec('10.90.0.1', 80, 'dr', { arriveFrom: ['10.80.0.1'] });
  draft.commit({ op: 'add-service', service: svc });
  draft.commit({ op: 'add-server', service: svc.key, server: serverSpec('10.90.0.11', 80, 1, 'dr') });
  // The VIP is not held here (null): the servers' link and the router's link both classify.
  const answers = new Map<string, string | null>([['egress dr 10.90.0.11', 'eth1'], ['addr 10.90.0.1', null], ['route 10.90.0.11', 'eth1'], ['route 10.80.0.1', 'uplink0']]);
  const asked: string[] = [];
  let p = planSync({ state: empty, draft, only: null, answers: new Map(), now: 0 });
  const known = new Map<string, string | null>();
  for (let i = 0; 'need' in p && i < 4; i++) {
    for (const x of p.need) {
      asked.push(x.key);
      known.set(x.key, answers.get(x.key) ?? null);
    }
    p = planSync({ state: empty, draft, only: null, answers: known, now: 0 });
  }
  assert.ok('cmds' in p, JSON.stringify(p));
  assert.ok(asked.includes('route 10.80.0.1'), `the neighbour's route was asked: ${asked.join(', ')}`);
  const chains = p.cmds.filter((c) => c.startsWith('add chain netdev fulcrum in_')).map((c) => c.split(' ')[4]).sort();
  assert.deepEqual(chains, ['in_eth1', 'in_uplink0']);
});

test('planner: hash_seed names the slot chain and seeds its hash; the default seed keeps the plain name; a chain is rebuilt from its name alone', () => {
  const chainsFor = (hashSeed?: number): string[] => {
    const draft = new SpecTable();
    const svc = serviceSpec('10.90.0.1', 80, 'dr', { scheduler: 'mh', schedFlags: ['flag-2'], ...(hashSeed !== undefined ? { hashSeed } : {}) });
    draft.commit({ op: 'add-service', service: svc });
    draft.commit({ op: 'add-server', service: svc.key, server: serverSpec('10.90.0.11', 80, 1, 'dr') });
    const answers = new Map<string, string | null>([['egress dr 10.90.0.11', 'eth1'], ['addr 10.90.0.1', 'eth0']]);
    const p = planSync({ state: empty, draft, only: null, answers, now: 0 });
    assert.ok('cmds' in p);
    return p.cmds.filter((c) => / s4_/.test(c));
  };
  const plain = chainsFor();
  assert.ok(plain.some((c) => c.startsWith('add chain netdev fulcrum s4_mhp')), plain.join('\n'));
  assert.ok(plain.some((c) => c.includes(`seed ${hex(HASH_SEED)}`)), plain.join('\n'));
  const custom = chainsFor(42);
  assert.ok(custom.some((c) => c.startsWith('add chain netdev fulcrum s4_mhp_0000002a')), custom.join('\n'));
  assert.ok(custom.some((c) => /jhash ip saddr \. th sport mod \d+ seed 0x0000002a/.test(c)), custom.join('\n'));
  assert.ok(!custom.some((c) => c.includes(hex(HASH_SEED))), 'the default seed is not used');
  assert.deepEqual(demandChain('netdev', 's4_mhp_0000002a'), demandChain('netdev', 's4_mhp').map((r) => r.replace(hex(HASH_SEED), '0x0000002a')));
  assert.throws(() => demandChain('netdev', 's4_mhp_xyz'), /unknown slot hash/);
});

test('ruleset: a persistence chain with a non-contiguous IPv4 mask is named by the mask in hex and masks with it', () => {
  assert.deepEqual(demandChain('inet', 'p4_ff00ff00_360'), ['ct mark set ct mark . (ip saddr & 255.0.255.0) map @persist4']);
  assert.deepEqual(demandChain('inet', 'u4_ff00ff00_360'), ['update @persist4 { ct mark & 0xfffff000 . (ip saddr & 255.0.255.0) timeout 360s : ct mark }']);
  assert.deepEqual(demandChain('inet', 'p4_24_360'), ['ct mark set ct mark . (ip saddr & 255.255.255.0) map @persist4']);
});
