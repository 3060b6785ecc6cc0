import assert from 'node:assert/strict';
import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import { ObjectMemo, OwnedMemo } from './memo.js';

interface Service { readonly name: string; readonly servers: readonly number[] }

test('ObjectMemo: kept on the object, one slot per memo, unseen by spread, JSON, clone and deep equality', () => {
  const a = new ObjectMemo<Service, string>('a');
  const b = new ObjectMemo<Service, number | null>('b');
  const vs: Service = { name: 'web', servers: [1, 2] };
  assert.equal(a.get(vs), undefined);
  a.set(vs, 'derived');
  b.set(vs, null);
  assert.equal(a.get(vs), 'derived');
  assert.equal(b.get(vs), null, 'a memoized null is not a miss');
  a.set(vs, 'again');
  assert.equal(a.get(vs), 'again');
  assert.equal(Object.getOwnPropertySymbols(vs).length, 2, 'one property per memo, however often it is set');
  // How a changed configuration object is made: the copy starts with no memo.
  const copy = { ...vs, servers: [1, 2, 3] };
  assert.equal(a.get(copy), undefined);
  assert.deepEqual(Object.keys(vs), ['name', 'servers']);
  assert.equal(JSON.stringify(vs), '{"name":"web","servers":[1,2]}');
  assert.deepStrictEqual(vs, { name: 'web', servers: [1, 2] });
  assert.equal(a.get(structuredClone(vs)), undefined);
});

test('ObjectMemo: an object that cannot take a property is not memoized, and nothing throws', () => {
  const m = new ObjectMemo<Service, string>('m');
  const frozen = Object.freeze({ name: 'f', servers: [] });
  m.set(frozen, 'x');
  assert.equal(m.get(frozen), undefined);
  // Memoized, then frozen: the memo stays, and can no longer change.
  const later: Service = { name: 'l', servers: [] };
  m.set(later, 'first');
  Object.freeze(later);
  m.set(later, 'second');
  assert.equal(m.get(later), 'first');
});

test('OwnedMemo: an entry of another owner reads as absent and is replaced; a new owner drops them all', () => {
  const m = new OwnedMemo<Service, string>('owned');
  const vs: Service = { name: 'web', servers: [] };
  const one = {};
  const two = {};
  m.set(vs, one, 'for one');
  assert.equal(m.get(vs, one), 'for one');
  assert.equal(m.get(vs, two), undefined);
  m.set(vs, two, 'for two');
  assert.equal(m.get(vs, two), 'for two');
  assert.equal(m.get(vs, one), undefined);
});

test('ObjectMemo: memos of objects that die young are not promoted to the old generation', (t) => {
  // Each in a process of its own: V8 learns from an allocation site whether its objects
  // survive (and then allocates them old), so one variant would teach the other.
  // 20,000 short-lived keys, each with a 100-object value (about 100 MB allocated in all,
  // through many young-generation collections); only the last key is alive at the end.
  const grown = (keep: string): number => {
    const script = `
      import v8 from 'node:v8';
      import { ObjectMemo } from ${JSON.stringify(new URL('./memo.js', import.meta.url).href)};
      const memo = new ObjectMemo('churn');
      const weak = new WeakMap();
      const oldSpace = () => v8.getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').space_used_size;
      let last = null;
      const before = oldSpace();
      for (let i = 0; i < 20000; i++) {
        const key = { i };
        const value = Array.from({ length: 100 }, (_, j) => ({ a: j, b: i }));
        ${keep};
        last = key;
      }
      process.stdout.write(String((oldSpace() - before) / 1048576 + (last === null ? 1 : 0)));`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout);
  };
  const onObjects = grown('memo.set(key, value)');
  const inWeakMap = grown('weak.set(key, value)');
  t.diagnostic(`old generation grew ${onObjects.toFixed(1)} MB with ObjectMemo, ${inWeakMap.toFixed(1)} MB with a WeakMap (${process.version})`);
  assert.ok(onObjects < 3, `ObjectMemo: the old generation grew ${onObjects.toFixed(1)} MB`);
});
