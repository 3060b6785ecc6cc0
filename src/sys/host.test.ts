import { test } from 'node:test';
import assert from 'node:assert/strict';
import { vipFilterCommands } from './host.js';

test('VIP filter commands: the table is made afresh when first needed, elements change by difference, the table goes with the last address', () => {
  const first = vipFilterCommands(null, new Set(['inet 10.0.0.100', 'inet6 2001:db8::1']), 't');
  // A table left by an earlier run is dropped by the add/delete/add idiom, then rebuilt.
  assert.deepEqual(first.slice(0, 3), ['add table inet t', 'delete table inet t', 'add table inet t']);
  assert.ok(first.includes('add rule inet t in ip daddr @vips4 drop'));
  assert.ok(first.includes('add rule inet t out ip6 saddr @vips6 drop'));
  assert.ok(first.indexOf('add rule inet t in icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept') < first.indexOf('add rule inet t in ip6 daddr @vips6 drop'), 'ND passes before the drop');
  assert.deepEqual(first.slice(-2), ['add element inet t vips4 { 10.0.0.100 }', 'add element inet t vips6 { 2001:db8::1 }']);
  assert.deepEqual(vipFilterCommands(new Set(['inet 10.0.0.100', 'inet6 2001:db8::1']), new Set(['inet 10.0.0.100', 'inet 10.0.0.101']), 't'),
    ['delete element inet t vips6 { 2001:db8::1 }', 'add element inet t vips4 { 10.0.0.101 }']);
  assert.deepEqual(vipFilterCommands(new Set(['inet 10.0.0.100']), new Set(['inet 10.0.0.100']), 't'), []);
  assert.deepEqual(vipFilterCommands(new Set(['inet 10.0.0.100']), new Set(), 't'), ['delete table inet t']);
  assert.deepEqual(vipFilterCommands(null, new Set(), 't'), []);
});
