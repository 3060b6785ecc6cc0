import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serverSpec, serviceSpec } from './compliance.js';
import { SpecTable } from './table.js';

const weights = (t: SpecTable, key: string): number[] => [...(t.services.get(key)?.servers.values() ?? [])].map((s) => s.weight);

test('SpecTable: a clone and its original never see each other\'s changes (server maps are shared until one changes them)', () => {
  const a = new SpecTable();
  const s1 = serviceSpec('10.90.0.1', 80, 'nat');
  const s2 = serviceSpec('10.90.0.2', 80, 'nat');
  for (const s of [s1, s2]) {
    a.commit({ op: 'add-service', service: s });
    for (const i of [1, 2, 3]) a.commit({ op: 'add-server', service: s.key, server: serverSpec(`10.91.0.${i}`, 80, i, 'nat') });
  }
  const b = a.clone();
  b.commit({ op: 'weight', service: s1.key, key: '10.91.0.1:80', weight: 9 });
  b.commit({ op: 'remove-server', service: s1.key, key: '10.91.0.2:80' });
  assert.deepEqual(weights(a, s1.key), [1, 2, 3], 'the original is untouched by the clone');
  assert.deepEqual(weights(b, s1.key), [9, 3]);
  assert.equal(b.services.get(s2.key)?.servers, a.services.get(s2.key)?.servers, 'an untouched service shares its map');
  // The other way round: the original changes after the clone was taken.
  a.commit({ op: 'add-server', service: s2.key, server: serverSpec('10.91.0.4', 80, 4, 'nat') });
  a.commit({ op: 'load', service: s1.key, key: '10.91.0.3:80', load: 50 });
  assert.deepEqual(weights(b, s2.key), [1, 2, 3], 'the clone is untouched by the original');
  assert.equal(b.services.get(s1.key)?.servers.get('10.91.0.3:80')?.agentLoad, undefined);
  assert.deepEqual(weights(a, s2.key), [1, 2, 3, 4]);
  // A clone of a clone, then restore: the service comes back as the clone held it.
  const c = b.clone();
  b.commit({ op: 'remove-service', key: s1.key });
  b.restore(s1.key, c);
  assert.deepEqual(weights(b, s1.key), [9, 3]);
  b.commit({ op: 'edit-server', service: s1.key, server: serverSpec('10.91.0.3', 80, 7, 'nat') });
  assert.deepEqual(weights(c, s1.key), [9, 3], 'restored maps are shared, not handed over');
  assert.deepEqual(weights(b, s1.key), [9, 7]);
  b.restore('tcp 10.99.9.9:80', c);
  assert.equal(b.services.has('tcp 10.99.9.9:80'), false);
});
