import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DiffMemo, diffTables, sameSpec, type TableView } from './plan.js';
import { SpecTable } from '../dataplane/table.js';
import { DEFAULT_TIMEOUTS, type ServerSpec, type ServiceSpec } from '../dataplane/types.js';

test('sameSpec decides as comparing JSON would, for data built in one key order', () => {
  const value = fc.letrec((tie) => ({
    leaf: fc.oneof(fc.integer({ min: -3, max: 3 }), fc.constantFrom(0.5, Number.NaN), fc.boolean(), fc.constantFrom('a', 'b', ''), fc.constant(null), fc.constant(undefined)),
    node: fc.oneof({ depthSize: 'small' }, tie('leaf'), fc.array(tie('node'), { maxLength: 3 }),
      fc.record({ a: tie('node'), b: tie('node') }, { requiredKeys: [] })),
  })).node;
  fc.assert(fc.property(value, value, (a, b) => {
    assert.equal(sameSpec(a, b), JSON.stringify(a) === JSON.stringify(b), `${JSON.stringify(a)} vs ${JSON.stringify(b)}`);
    assert.equal(sameSpec(a, structuredClone(a)), true);
  }), { numRuns: 2000 });
  assert.equal(sameSpec({ w: 1, x: undefined }, { w: 1 }), true, 'an undefined value is an absent key');
  assert.equal(sameSpec({ w: 1 }, { w: 2 }), false);
  assert.equal(sameSpec([1, 2], [1, 2, 3]), false);
});

const spec = (key: string): ServiceSpec => ({
  key, endpoint: { kind: 'address', family: 'inet', address: '10.0.0.1', port: 80 }, protocol: 'tcp', listen: [], scheduler: 'wrr',
  schedFlags: [], persistence: null, method: 'nat', ops: false, timeouts: DEFAULT_TIMEOUTS,
});
const server = (weight: number): ServerSpec => ({ key: '10.0.1.1:80', family: 'inet', address: '10.0.1.1', port: 80, weight, method: 'nat', uthreshold: 0, lthreshold: 0 });

test('diffTables with a memo: a service found equal is skipped while its desired entry and the plane\'s revision stay; either changing compares it again', () => {
  const memo = new DiffMemo();
  const want = { spec: spec('tcp 10.0.0.1:80'), servers: new Map([['10.0.1.1:80', server(1)]]) };
  const desired = { services: new Map([[want.spec.key, want]]) };
  const held = (weight: number, rev: number): TableView => ({ services: new Map([[want.spec.key, { spec: want.spec, servers: new Map([['10.0.1.1:80', server(weight)]]), rev }]]) });
  assert.deepEqual(diffTables(held(1, 5), desired, memo).ops, [], 'equal');
  // The same revision is trusted (its servers are not looked at again)…
  assert.deepEqual(diffTables(held(9, 5), desired, memo).ops, []);
  // …a new one is not: the plane changed underneath.
  assert.deepEqual(diffTables(held(9, 6), desired, memo).ops, [{ op: 'weight', service: want.spec.key, key: '10.0.1.1:80', weight: 1 }]);
  // A new desired entry is compared too, and without revisions everything is compared.
  const want2 = { ...want, servers: new Map([['10.0.1.1:80', server(3)]]) };
  assert.deepEqual(diffTables(held(1, 5), { services: new Map([[want.spec.key, want2]]) }, memo).ops, [{ op: 'weight', service: want.spec.key, key: '10.0.1.1:80', weight: 3 }]);
  const bare: TableView = { services: new Map([[want.spec.key, { spec: want.spec, servers: new Map([['10.0.1.1:80', server(2)]]) }]]) };
  assert.equal(diffTables(bare, desired, memo).ops.length, 1);
  assert.equal(diffTables(bare, desired, memo).ops.length, 1);
});

test('SpecTable revisions: every change to a service is a new revision, a clone keeps it, untouched services keep theirs', () => {
  const t = new SpecTable();
  t.commit({ op: 'add-service', service: spec('a') });
  t.commit({ op: 'add-service', service: spec('b') });
  t.commit({ op: 'add-server', service: 'a', server: server(1) });
  const rev = (x: SpecTable, k: string): number | undefined => x.services.get(k)?.rev;
  const [a0, b0] = [rev(t, 'a'), rev(t, 'b')];
  const c = t.clone();
  assert.deepEqual([rev(c, 'a'), rev(c, 'b')], [a0, b0]);
  c.commit({ op: 'weight', service: 'a', key: '10.0.1.1:80', weight: 4 });
  assert.notEqual(rev(c, 'a'), a0);
  assert.equal(rev(t, 'a'), a0, 'the original is untouched');
  assert.equal(rev(c, 'b'), b0);
  t.commit({ op: 'edit-service', service: spec('b') });
  assert.notEqual(rev(t, 'b'), b0);
  t.restore('a', c);
  assert.equal(rev(t, 'a'), rev(c, 'a'));
});
