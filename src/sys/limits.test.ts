import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileLimit, recentFileLimit } from './limits.js';

test('recentFileLimit reads the limit again only after a second', () => {
  const now = fileLimit();
  assert.ok(now, 'getrlimit works on Linux');
  const t0 = 5_000_000;
  const a = recentFileLimit(t0);
  assert.deepEqual(a, now);
  // Within the second: the same object, not a fresh read.
  assert.equal(recentFileLimit(t0 + 999), a);
  // A second later (or a clock that went back): read again.
  const b = recentFileLimit(t0 + 1000);
  assert.notEqual(b, a);
  assert.deepEqual(b, now);
  const c = recentFileLimit(t0 - 10);
  assert.notEqual(c, b);
});
