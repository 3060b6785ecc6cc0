import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sameSpec } from './plan.js';

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
