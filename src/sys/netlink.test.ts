import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressMessage } from './netlink.js';

/** The attributes of an RTM_NEWADDR/RTM_DELADDR message: type → payload. */
function attrsOf(msg: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let off = 16 + 8; off + 4 <= msg.length;) {
    const len = msg.readUInt16LE(off);
    out.set(msg.readUInt16LE(off + 2), msg.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

test('an IPv6 /128 VIP is added deprecated (preferred 0, valid forever) and without DAD; IPv4 and shorter IPv6 prefixes keep the kernel\'s lifetimes', () => {
  const v6 = addressMessage('add', { ifname: 'eth0', family: 'inet6', address: 'fd62::100', prefixLength: 128 }, 3, 1);
  assert.equal(v6.readUInt32LE(0), v6.length, 'the header holds the whole length');
  assert.equal(v6[16 + 2], 0x02, 'IFA_F_NODAD');
  const cache = attrsOf(v6).get(6);
  assert.ok(cache, 'IFA_CACHEINFO');
  assert.deepEqual([cache.readUInt32LE(0), cache.readUInt32LE(4)], [0, 0xffffffff]);
  assert.equal(attrsOf(addressMessage('add', { ifname: 'eth0', family: 'inet6', address: 'fd62::100', prefixLength: 64 }, 3, 1)).has(6), false);
  assert.equal(attrsOf(addressMessage('add', { ifname: 'eth0', family: 'inet', address: '10.0.0.1', prefixLength: 32 }, 3, 1)).has(6), false);
  assert.equal(attrsOf(addressMessage('remove', { ifname: 'eth0', family: 'inet6', address: 'fd62::100', prefixLength: 128 }, 3, 1)).has(6), false, 'a removal names the address only');
});
