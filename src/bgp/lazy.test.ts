import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LazyAnnouncer } from './lazy.js';
import { FakeAnnouncer } from './fake.js';

test('LazyAnnouncer loads its speaker once, on first use, and closing an unused one loads nothing', async () => {
  let loads = 0;
  const fake = new FakeAnnouncer();
  const lazy = new LazyAnnouncer(async () => { loads++; return fake; });
  assert.equal(lazy.name, 'gobgpd (loading)');
  await lazy.close();
  assert.equal(loads, 0, 'close() of an announcer never used loads nothing');
  await Promise.all([lazy.routes(), lazy.sessions()]);
  assert.equal(loads, 1, 'concurrent first calls share one load');
  assert.equal(lazy.name, fake.name);
  let failing = true;
  const flaky = new LazyAnnouncer(async () => { if (failing) throw new Error('no gobgpd'); return fake; });
  await assert.rejects(flaky.routes(), /no gobgpd/);
  failing = false;
  assert.deepEqual(await flaky.routes(), [], 'a failed load is tried again');
});
