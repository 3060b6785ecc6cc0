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

test('ByteWriter: many short writes past the text it joins come out whole and in order; reset drops what is not encoded yet', () => {
  const w = new ByteWriter(64);
  const lines: string[] = [];
  for (let i = 0; i < 5000; i++) lines.push(`fulcrum_real_server_weight{server="10.0.${i % 250}.${i}:80",name="é${i}"} ${i}\n`);
  for (const l of lines) w.write(l);
  const first = w.bytes();
  assert.equal(first.toString('utf8'), lines.join(''));
  assert.equal(first.length, Buffer.byteLength(lines.join('')));
  // Writing on after bytes() appends.
  w.write('tail');
  assert.equal(w.bytes().toString('utf8'), `${lines.join('')}tail`);
  // Pending text is dropped by a reset, not carried into the next response.
  w.reset();
  w.write('left over');
  w.reset();
  w.write('next');
  assert.equal(w.bytes().toString(), 'next');
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
