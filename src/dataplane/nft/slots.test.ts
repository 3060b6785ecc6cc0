import { test } from 'node:test';
import assert from 'node:assert/strict';
import { balanceSlots, failoverSlots, maglevSlots, roundRobinSlots, slotShape, sourceHashSlots, type MemberLoad, type SlotMember } from './slots.js';
import { elementDelta, maskText } from './ruleset.js';

const m = (ref: number, weight: number): SlotMember => ({ ref, address: `10.0.0.${ref}`, port: 80, weight });

test('wrr slots follow IPVS\'s interleaved order (4:3:2 → A A B A B C A B C)', () => {
  assert.deepEqual(roundRobinSlots([m(1, 4), m(2, 3), m(3, 2)], 9, true), [1, 1, 2, 1, 2, 3, 1, 2, 3]);
  const s = roundRobinSlots([m(1, 3), m(2, 1)], 32, true);
  assert.equal(s.filter((x) => x === 1).length, 24, 'weights are slot counts when the cycle divides the table');
});

test('rr slots ignore weights but not weight 0; no live server, no slots', () => {
  assert.deepEqual(roundRobinSlots([m(1, 5), m(2, 1), m(3, 0)], 4, false), [1, 2, 1, 2]);
  assert.deepEqual(roundRobinSlots([m(1, 0)], 4, false), []);
});

test('sh gives each server weight consecutive buckets in turn (ip_vs_sh_reassign)', () => {
  assert.deepEqual(sourceHashSlots([m(1, 2), m(2, 1)], 6), [1, 1, 2, 1, 1, 2]);
});

test('mh: a Maglev table; removing one of 3 servers moves few of the others\' slots', () => {
  const all = maglevSlots([m(1, 1), m(2, 1), m(3, 1)], 251);
  const less = maglevSlots([m(1, 1), m(2, 1)], 251);
  assert.equal(all.length, 251);
  const moved = all.filter((x, i) => x !== 3 && less[i] !== x).length;
  // Maglev's minimal disruption: besides the removed server's third, under 5% move.
  assert.ok(moved < 251 * 0.05, `${moved} slots of surviving servers moved`);
});

test('fo: all slots to the heaviest server', () => {
  assert.deepEqual(failoverSlots([m(1, 1), m(2, 5), m(3, 5)], 3), [2, 2, 2]);
});

test('the least-connection controller deals the next interval to the least loaded, as lc/wlc would', () => {
  const load = (ref: number, active: number, recent = 0): [number, MemberLoad] => [ref, { ref, active, inactive: 0, recent, agentLoad: Number.NaN }];
  // Server 1 has 20 active connections, server 2 none; 32 new connections expected.
  const s = balanceSlots('lc', [m(1, 1), m(2, 1)], new Map([load(1, 20, 16), load(2, 0, 16)]), 32);
  const n1 = s.filter((x) => x === 1).length;
  // lc deals to 2 until it reaches 20, then alternates: 20 + 6 to server 2, 6 to server 1.
  assert.equal(n1, 6);
  // wlc: weight 3 vs 1 with equal load → 3:1.
  const w = balanceSlots('wlc', [m(1, 3), m(2, 1)], new Map([load(1, 0), load(2, 0)]), 32);
  assert.equal(w.filter((x) => x === 1).length, 24);
  assert.equal(slotShape('lc', []).dynamic, true);
  assert.equal(slotShape('wrr', []).dynamic, false);
});

test('netmasks and element deltas', () => {
  assert.equal(maskText('inet', 24), '255.255.255.0');
  assert.equal(maskText('inet', 32), null);
  assert.equal(maskText('inet6', 64), 'ffff:ffff:ffff:ffff::');
  const prev = new Map([['slots', new Map([['0x00001000 . 0', '0x00001001'], ['0x00001000 . 1', '0x00001002']])]]);
  const next = new Map([['slots', new Map([['0x00001000 . 0', '0x00001001'], ['0x00001000 . 1', '0x00001001']])]]);
  assert.deepEqual(elementDelta('netdev', prev, next), [
    'delete element netdev fulcrum slots { 0x00001000 . 1 }',
    'add element netdev fulcrum slots { 0x00001000 . 1 : 0x00001001 }',
  ], 'a changed slot is one delete and one add; unchanged slots are not sent');
});
