/**
 * Maglev lookup-table construction (Eisenbud et al., NSDI 2016; IPVS ip_vs_mh.c), weighted
 * as IPVS does: each destination fills `turns = (weight / gcd) >> shift` slots per round, in
 * the order of its own permutation (offset, skip). Typed arrays throughout: building a
 * 65537-entry table for 1000 servers allocates a few arrays and nothing per slot.
 */
import { mix32, weightStats } from './hash.js';

/** IPVS's table sizes (primes); the table is the first ≥ 100·N (Maglev's rule of thumb). */
export const MH_PRIMES: readonly number[] = [251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071];

export function maglevSize(n: number): number {
  for (const p of MH_PRIMES) if (p >= 100 * n) return p;
  return MH_PRIMES[MH_PRIMES.length - 1] as number;
}

export interface MaglevMember {
  /** Identity hash of the server (address fold and port): its permutation depends only on it. */
  readonly id: number;
  readonly weight: number;
}

const SEED1 = 0x9e3779b9;
const SEED2 = 0x85ebca77;

/** Hash of (address fold, port) identifying a server for its permutation. */
export function memberId(addrFold: number, port: number): number {
  return mix32((addrFold ^ Math.imul(port + 1, 0x27d4eb2d)) >>> 0);
}

/**
 * Build the lookup table: entry i is the index (into `members`) of the server owning slot i,
 * or -1 when no member has weight. `m` must be prime (any prime; MH_PRIMES are IPVS's).
 */
export function buildMaglevTable(members: readonly MaglevMember[], m: number): Int32Array {
  const n = members.length;
  const lookup = new Int32Array(m).fill(-1);
  const { gcd: g, max: mw } = weightStats(members.map((x) => x.weight));
  if (g === 0) return lookup;
  // ip_vs_mh_shift_weight: keep turns within about half the table's bits.
  const tabBits = Math.floor(Math.log2(m) / 2);
  const shift = Math.max(0, (32 - Math.clz32(Math.floor(mw / g))) - tabBits);
  const perm = new Uint32Array(n);
  const skip = new Uint32Array(n);
  const turns = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const x = members[i] as MaglevMember;
    perm[i] = mix32((x.id ^ SEED1) >>> 0) % m;
    skip[i] = (mix32((x.id ^ SEED2) >>> 0) % (m - 1)) + 1;
    turns[i] = x.weight > 0 ? Math.max(1, Math.floor(x.weight / g) >>> shift) : 0;
  }
  let filled = 0;
  while (filled < m) {
    for (let i = 0; i < n; i++) {
      for (let t = turns[i] as number; t > 0; t--) {
        let c = perm[i] as number;
        while (lookup[c] !== -1) {
          c += skip[i] as number;
          if (c >= m) c -= m;
        }
        perm[i] = c;
        lookup[c] = i;
        if (++filled === m) return lookup;
      }
    }
  }
  return lookup;
}
