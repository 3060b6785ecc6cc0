import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServerMap } from './server-map.js';

test('ServerMap: a value per (service, server); a service is forgotten with its last server', () => {
  const m = new ServerMap<number>();
  m.set('tcp a:80', 'r1', 1);
  m.set('tcp a:80', 'r2', 2);
  m.set('tcp b:80', 'r1', 3);
  assert.equal(m.get('tcp a:80', 'r2'), 2);
  assert.equal(m.get('tcp b:80', 'r1'), 3);
  assert.equal(m.get('tcp b:80', 'r2'), undefined);
  assert.equal(m.get('tcp c:80', 'r1'), undefined);
  assert.deepEqual([...m.service('tcp a:80') ?? []], [['r1', 1], ['r2', 2]]);
  assert.equal(m.delete('tcp a:80', 'r1'), 1);
  assert.equal(m.delete('tcp a:80', 'r1'), undefined);
  assert.deepEqual([...m.service('tcp a:80') ?? []], [['r2', 2]]);
  m.delete('tcp a:80', 'r2');
  assert.equal(m.service('tcp a:80'), undefined, 'no empty service is kept');
  m.deleteService('tcp b:80');
  assert.equal(m.get('tcp b:80', 'r1'), undefined);
});
