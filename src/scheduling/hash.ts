/**
 * Integer hashing as IPVS does it, on 32-bit unsigned values.
 */
import ipaddr from 'ipaddr.js';

/** 32-bit fold of an address: IPv4 as a host-order integer, IPv6 as the XOR of its words. */
export function addrFold(address: string): number {
  const v4 = foldDottedQuad(address);
  if (v4 >= 0) return v4;
  const b = ipaddr.parse(address).toByteArray();
  let x = 0;
  for (let i = 0; i < b.length; i += 4) {
    x ^= (((b[i] ?? 0) << 24) | ((b[i + 1] ?? 0) << 16) | ((b[i + 2] ?? 0) << 8) | (b[i + 3] ?? 0)) >>> 0;
  }
  return x >>> 0;
}

/**
 * A canonical dotted quad as an integer without allocating (the data planes fold every new
 * client's address); -1 when `s` is anything else, so the caller falls back to ipaddr.js.
 */
function foldDottedQuad(s: string): number {
  let x = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (digits === 3 || (digits > 0 && part === 0)) return -1;
      part = part * 10 + (c - 48);
      digits++;
      if (part > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      x = x * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return (x * 256 + part) >>> 0;
}

/** Linux's hash_32: multiply by the 32-bit golden ratio, keep the top `bits`. */
export function hash32(val: number, bits: number): number {
  return Math.imul(val >>> 0, 0x61c88647) >>> (32 - bits);
}

/** IPVS dh's key: address × 2654435761, masked to the table. */
export function dhHash(fold: number, mask: number): number {
  return Math.imul(fold >>> 0, 2654435761 >>> 0) >>> 0 & mask;
}

/** A 32-bit avalanche mix (murmur3 fmix32), for Maglev offsets/skips and flow hashing. */
export function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A seedable PRNG (mulberry32) returning [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** The gcd and the maximum of the positive weights (0 and 0 when none is positive). */
export function weightStats(weights: Iterable<number>): { gcd: number; max: number } {
  let g = 0;
  let m = 0;
  for (const w of weights) {
    if (w > 0) {
      g = gcd(w, g);
      if (w > m) m = w;
    }
  }
  return { gcd: g, max: m };
}
