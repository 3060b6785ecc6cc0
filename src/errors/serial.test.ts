import { test } from 'node:test';
import assert from 'node:assert/strict';
import { serialQueue } from './serial.js';

test('serialQueue: tasks run one at a time in order; a rejection reaches its caller and the next task still runs', async () => {
  const serial = serialQueue();
  const log: string[] = [];
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => { release = r; });
  const a = serial(async () => { log.push('a start'); await gate; log.push('a end'); return 1; });
  const b = serial(() => { log.push('b'); return Promise.reject(new Error('b failed')); });
  const c = serial(() => { log.push('c'); return Promise.resolve(3); });
  await Promise.resolve();
  assert.deepEqual(log, ['a start'], 'b waits for a');
  release();
  assert.equal(await a, 1);
  await assert.rejects(b, /b failed/);
  assert.equal(await c, 3);
  assert.deepEqual(log, ['a start', 'a end', 'b', 'c']);
});
