import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ip6PortBytes, jhash, nftJhash } from './jhash.js';
import { conn6Key } from './ruleset.js';

test('nftables jhash of ip6 saddr . th sport: the keys Linux 6.18 printed for three IPv6 flows', () => {
  // From `nft -j list set` after one UDP datagram each, with the rule
  // `update @s6 { meta mark & 0xfffff000 . jhash ip6 saddr . th sport mod 4294967295 seed 0x1 . … seed 0x2 }`.
  for (const [address, port, h1, h2] of [
    ['fd99::1', 5555, 731657954, 3590316126],
    ['fd99::1', 40000, 638019046, 3806585992],
    ['fd99::abcd:1234:5678', 1, 3185693274, 2691158144],
  ] as const) {
    const data = ip6PortBytes(address, port);
    assert.deepEqual([nftJhash(data, 4294967295, 1), nftJhash(data, 4294967295, 2)], [h1, h2], `${address} ${port}`);
    assert.equal(conn6Key(0x1000, address, port), `0x00001000 . ${h1} . ${h2}`);
  }
  assert.deepEqual([...ip6PortBytes('fd99::1', 0x1234).slice(14)], [0, 1, 0x12, 0x34, 0, 0], 'the port in network order, then two zero bytes of the register');
});

test('jhash: every tail length (0–12 bytes past a block) is hashed, and lookup3\'s known value for an empty key', () => {
  // lookup3: hashlittle("", 0, 0) = 0xdeadbeef.
  assert.equal(jhash(new Uint8Array(0), 0), 0xdeadbeef);
  const seen = new Set<number>();
  for (let n = 1; n <= 25; n++) seen.add(jhash(Uint8Array.from({ length: n }, (_, i) => i + 1), 7));
  assert.equal(seen.size, 25, 'each length a different hash');
  for (let n = 1; n <= 25; n++) assert.ok(jhash(Uint8Array.from({ length: n }, () => 255), 0xffffffff) >= 0, 'unsigned 32-bit');
});
