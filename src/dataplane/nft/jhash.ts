/**
 * The kernel's `jhash()` (include/linux/jhash.h: Bob Jenkins' lookup3, byte-wise, words read
 * little-endian as on x86 and arm64) and nftables' `jhash … mod N seed S` on top of it
 * (net/netfilter/nft_hash.c: `reciprocal_scale(jhash(data, len, seed), N)`), in TypeScript.
 *
 * Why: the nftables plane keys IPv6 DR/TUN connections by two such hashes of (client
 * address, client port), because nft 1.0.6 cannot update a map keyed by the IPv6 4-tuple.
 * A director that installs another director's IPv6 flows (connection sync) must compute the
 * same keys the kernel computes for the flow's packets. Pure; checked against the kernel's
 * own output by test/nft-dump.test.ts.
 */
import ipaddr from 'ipaddr.js';

const rol = (x: number, k: number): number => ((x << k) | (x >>> (32 - k))) >>> 0;

/** The kernel's jhash(key, length, initval). */
export function jhash(key: Uint8Array, initval: number): number {
  let length = key.length;
  let a = (0xdeadbeef + length + initval) >>> 0;
  let b = a;
  let c = a;
  let k = 0;
  const word = (i: number): number => ((key[i] ?? 0) | ((key[i + 1] ?? 0) << 8) | ((key[i + 2] ?? 0) << 16) | ((key[i + 3] ?? 0) << 24)) >>> 0;
  while (length > 12) {
    a = (a + word(k)) >>> 0;
    b = (b + word(k + 4)) >>> 0;
    c = (c + word(k + 8)) >>> 0;
    // __jhash_mix
    a = (a - c) >>> 0; a = (a ^ rol(c, 4)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol(a, 6)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol(b, 8)) >>> 0; b = (b + a) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rol(c, 16)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rol(a, 19)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rol(b, 4)) >>> 0; b = (b + a) >>> 0;
    length -= 12;
    k += 12;
  }
  if (length === 0) return c;
  // The last block, 1..12 bytes, zero-filled.
  const byte = (i: number): number => (i < length ? key[k + i] ?? 0 : 0);
  a = (a + (byte(0) | (byte(1) << 8) | (byte(2) << 16) | (byte(3) << 24) >>> 0)) >>> 0;
  b = (b + (byte(4) | (byte(5) << 8) | (byte(6) << 16) | (byte(7) << 24) >>> 0)) >>> 0;
  c = (c + (byte(8) | (byte(9) << 8) | (byte(10) << 16) | (byte(11) << 24) >>> 0)) >>> 0;
  // __jhash_final
  c = (c ^ b) >>> 0; c = (c - rol(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rol(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rol(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rol(b, 24)) >>> 0;
  return c;
}

/** nftables' `jhash <data> mod <modulus> seed <seed>` (offset 0). */
export function nftJhash(data: Uint8Array, modulus: number, seed: number): number {
  return Number((BigInt(jhash(data, seed >>> 0)) * BigInt(modulus)) >> 32n);
}

/**
 * The register bytes of `ip6 saddr . th sport`: the 16 address bytes, then the port in
 * network order in a 32-bit register whose other two bytes are zero (nft pads each field of
 * a concatenation to 4 bytes; the payload load zeroes the partial register).
 */
export function ip6PortBytes(address: string, port: number): Uint8Array {
  const out = new Uint8Array(20);
  out.set(ipaddr.IPv6.parse(address).toByteArray(), 0);
  out[16] = (port >> 8) & 255;
  out[17] = port & 255;
  return out;
}
