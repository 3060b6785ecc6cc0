import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteWriter, WriterPool } from './bytes.js';

test('ByteWriter: appends UTF-8, grows past its first size, and resets', () => {
  const w = new ByteWriter(4);
  w.write('ab');
  w.write('…'); // 3 bytes
  w.write('x'.repeat(100));
  assert.equal(w.bytes().toString('utf8'), `ab…${'x'.repeat(100)}`);
  assert.ok(w.capacity >= 105);
  w.reset();
  w.write('z');
  assert.equal(w.bytes().toString(), 'z');
});

test('WriterPool: a writer is lent to one user at a time and kept for the next (at most `keep` idle)', () => {
  const pool = new WriterPool(16, 1);
  const a = pool.acquire();
  const b = pool.acquire();
  assert.notEqual(a, b, 'two responses in flight never share a buffer');
  a.write('first');
  pool.release(a);
  pool.release(b);
  assert.equal(pool.available, 1);
  const c = pool.acquire();
  assert.equal(c, a, 'reused');
  assert.equal(c.bytes().length, 0, 'reset before reuse');
});
