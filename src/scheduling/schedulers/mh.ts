/**
 * mh — Maglev hashing (ip_vs_mh.c): the source address (plus source port with mh-port /
 * flag-2) indexes a Maglev table. The table is built from each server's last non-zero
 * weight, so quiescing a server (weight 0) moves no other key; its own keys get no server,
 * or with mh-fallback (flag-1) are rehashed around the table to an available one.
 */
import type { SchedFlag } from '../../model/types.js';
import { mix32 } from '../hash.js';
import { buildMaglevTable, maglevSize, memberId } from '../maglev.js';
import type { Dest, FlowKey, Scheduler } from '../types.js';

const unavailable = (d: Dest): boolean => !d.available || d.weight <= 0 || d.overloaded;

export class MaglevHashing implements Scheduler {
  readonly name = 'mh';
  private dests: readonly Dest[] = [];
  private table: Int32Array = new Int32Array(0);
  private readonly lastWeight = new Map<string, number>();
  private readonly fallback: boolean;
  private readonly usePort: boolean;

  constructor(flags: readonly SchedFlag[] = [], private readonly size?: number) {
    this.fallback = flags.includes('flag-1');
    this.usePort = flags.includes('flag-2');
  }

  update(dests: readonly Dest[]): void {
    this.dests = dests;
    for (const d of dests) if (d.weight > 0) this.lastWeight.set(d.key, d.weight);
    for (const k of [...this.lastWeight.keys()]) if (!dests.some((d) => d.key === k)) this.lastWeight.delete(k);
    const members = dests.map((d) => ({ id: memberId(d.addrFold, d.port), weight: this.lastWeight.get(d.key) ?? 0 }));
    this.table = buildMaglevTable(members, this.size ?? maglevSize(dests.length));
  }

  /** Slot for a key and rehash offset. */
  private slot(fold: number, port: number, offset: number): number {
    return mix32((fold ^ Math.imul(port, 0x9e3779b1) ^ Math.imul(offset, 0x85ebca6b)) >>> 0) % this.table.length;
  }

  pick(flow: FlowKey, _now: number): Dest | null {
    if (this.table.length === 0) return null;
    const port = this.usePort ? flow.sport : 0;
    const idx = this.table[this.slot(flow.saddrFold, port, 0)] as number;
    const d = idx >= 0 ? (this.dests[idx] as Dest) : null;
    if (d === null) return null;
    if (!unavailable(d)) return d;
    if (!this.fallback) return null;
    const m = this.table.length;
    for (let off = 1; off < m; off++) {
      const j = this.table[this.slot(flow.saddrFold, port, off)] as number;
      const c = j >= 0 ? (this.dests[j] as Dest) : null;
      if (c !== null && !unavailable(c)) return c;
    }
    return null;
  }

  /** The current lookup table (indexes into the destinations), for the kernel plane. */
  lookupTable(): Int32Array {
    return this.table;
  }
}
