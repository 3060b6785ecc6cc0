/**
 * Hash-bucket schedulers with IPVS's 256-bucket tables:
 *  - dh (ip_vs_dh.c): destination-address hash; buckets assigned round-robin over the
 *    destinations (weights ignored, as in IPVS). An unavailable bucket gives no server.
 *  - sh (ip_vs_sh.c): source-address hash (plus source port with sh-port / flag-2);
 *    a destination of weight w holds w consecutive buckets in turn. With sh-fallback
 *    (flag-1) an unavailable bucket falls back by rehashing with offsets 0..255.
 * The same key maps to the same server while the set and weights are unchanged.
 */
import type { SchedFlag } from '../../model/types.js';
import { dhHash, hash32 } from '../hash.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';

export const TAB_BITS = 8;
export const TAB_SIZE = 1 << TAB_BITS;
const TAB_MASK = TAB_SIZE - 1;

const unavailable = (d: Dest): boolean => !d.available || d.weight <= 0 || d.overloaded;

export class DestinationHashing implements Scheduler {
  readonly name = 'dh';
  private buckets: (Dest | null)[] = new Array<Dest | null>(TAB_SIZE).fill(null);

  update(dests: readonly Dest[]): void {
    const b = new Array<Dest | null>(TAB_SIZE);
    for (let i = 0; i < TAB_SIZE; i++) b[i] = dests.length === 0 ? null : (dests[i % dests.length] as Dest);
    this.buckets = b;
  }

  pick(flow: FlowKey, _now: number): Dest | null {
    const d = this.buckets[dhHash(flow.daddrFold, TAB_MASK)] ?? null;
    return d === null || unavailable(d) ? null : d;
  }
}

export class SourceHashing implements Scheduler {
  readonly name = 'sh';
  private buckets: (Dest | null)[] = new Array<Dest | null>(TAB_SIZE).fill(null);
  private readonly fallback: boolean;
  private readonly usePort: boolean;

  constructor(flags: readonly SchedFlag[] = []) {
    this.fallback = flags.includes('flag-1');
    this.usePort = flags.includes('flag-2');
  }

  update(dests: readonly Dest[]): void {
    const b = new Array<Dest | null>(TAB_SIZE).fill(null);
    if (dests.length > 0) {
      let p = 0;
      let count = 0;
      for (let i = 0; i < TAB_SIZE; i++) {
        const d = dests[p] as Dest;
        b[i] = d;
        // ip_vs_sh_reassign: a destination keeps taking buckets until it has `weight` of them.
        if (++count >= d.weight) {
          p = (p + 1) % dests.length;
          count = 0;
        }
      }
    }
    this.buckets = b;
  }

  /** IPVS ip_vs_sh_hashkey: (offset + hash_32(port + addr, 8)) & mask. */
  static bucket(fold: number, port: number, offset: number): number {
    return (offset + hash32((port + fold) >>> 0, TAB_BITS)) & TAB_MASK;
  }

  pick(flow: FlowKey, _now: number): Dest | null {
    const port = this.usePort ? flow.sport : 0;
    const d = this.buckets[SourceHashing.bucket(flow.saddrFold, port, 0)] ?? null;
    if (d === null) return null;
    if (!unavailable(d)) return d;
    if (!this.fallback) return null;
    for (let off = 0; off < TAB_SIZE; off++) {
      const c = this.buckets[SourceHashing.bucket(flow.saddrFold, port, off)] ?? null;
      if (c !== null && !unavailable(c)) return c;
    }
    return null;
  }
}
