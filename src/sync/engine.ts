/**
 * What to send and what to install (pure, clock passed in).
 *
 * SyncSender: given the plane's flows now, the ones to send — a flow the backups have not
 * been told about, one whose server or state changed, and one due for a refresh: after half
 * its timeout, `refreshSec` (IPVS's sync_refresh_period) or the full cycle (30 s), whichever
 * comes first — so a director that starts listening holds the whole table one cycle later. It keeps
 * one record per flow the plane holds, so its memory is the plane's table, whatever the rate.
 *
 * SyncReceiver: the backup's side — datagrams decoded, refused by reason, flows queued by
 * identity (a newer entry for the same flow replaces the queued one) up to a bound; what is
 * past the bound is dropped and counted, never queued.
 */
import type { SyncedFlow, Timeouts } from '../dataplane/types.js';
import { LVS_SYNC_FULL_CYCLE } from '../model/defaults.js';
import { decodeMessage, type SyncRefusal } from './codec.js';
import { flowKey, fromEntry, type TranslateRefusal } from './translate.js';

export interface SenderOptions {
  /** Resend a flow at least this often (seconds; IPVS's sync_refresh_period); 0: no more than the full cycle asks. */
  readonly refreshSec?: number | undefined;
  /** Every flow goes at least once per this many seconds (default LVS_SYNC_FULL_CYCLE). */
  readonly fullCycleSec?: number | undefined;
  /**
   * IPVS's sync_threshold (first value, default 3): a new flow whose plane counts packets
   * is sent once it has seen this many, so a half-open connection or a one-packet probe is
   * never synchronised. Flows from planes that do not count go at once.
   */
  readonly threshold?: number | undefined;
}

/** IPVS's default sync_threshold: a connection is synchronised at its third packet. */
export const SYNC_THRESHOLD = 3;

export class SyncSender {
  private readonly told = new Map<string, { server: string; dport: number; state: string; at: number }>();

  constructor(private readonly o: SenderOptions = {}) {}

  /** Forget everything sent (a new master, or new backups to fill): the next `due` sends all. */
  reset(): void {
    this.told.clear();
  }

  get size(): number {
    return this.told.size;
  }

  due(flows: readonly SyncedFlow[], now: number): SyncedFlow[] {
    const out: SyncedFlow[] = [];
    const seen = new Set<string>();
    for (const f of flows) {
      const k = flowKey(f);
      seen.add(k);
      const t = this.told.get(k);
      if (!t && f.packets !== undefined && f.packets < (this.o.threshold ?? SYNC_THRESHOLD)) continue;
      // Half its timeout keeps the backup's copy alive; the full cycle bounds how long a
      // director that just started listening waits for the whole table.
      const half = Math.max(10, f.timeout / 2);
      const every = Math.min(this.o.refreshSec || Infinity, half, this.o.fullCycleSec ?? LVS_SYNC_FULL_CYCLE);
      if (t && t.server === f.server && t.dport === f.dport && t.state === f.state && now - t.at < every) continue;
      this.told.set(k, { server: f.server, dport: f.dport, state: f.state, at: now });
      out.push(f);
    }
    for (const k of this.told.keys()) if (!seen.has(k)) this.told.delete(k);
    return out;
  }
}

export type ReceiveRefusal = SyncRefusal | TranslateRefusal | 'overflow';

export interface ReceiverOptions {
  /** Our syncid (0: accept every syncid). */
  readonly syncid: number;
  /** Flows waiting to be installed, at most (default 65,536). */
  readonly maxPending?: number | undefined;
  /** Timeouts for entries that carry none (version 0). */
  readonly timeouts: Timeouts;
}

export interface ReceiveCounts {
  messages: number;
  entries: number;
  refused: Map<ReceiveRefusal, number>;
}

export class SyncReceiver {
  private pending = new Map<string, SyncedFlow>();
  readonly counts: ReceiveCounts = { messages: 0, entries: 0, refused: new Map() };
  /** When the oldest flow now queued arrived (for the install lag), or null. */
  private oldest: number | null = null;

  constructor(private readonly o: ReceiverOptions) {}

  private refuse(r: ReceiveRefusal, n = 1): void {
    this.counts.refused.set(r, (this.counts.refused.get(r) ?? 0) + n);
  }

  /** One datagram. Returns how many flows it queued. Never throws. */
  receive(buf: Uint8Array, now: number): number {
    const d = decodeMessage(buf, { syncid: this.o.syncid });
    if (!d.ok) {
      this.refuse(d.reason);
      return 0;
    }
    this.counts.messages++;
    for (const s of d.skipped) this.refuse(s);
    if (d.truncated) this.refuse(d.truncated);
    let queued = 0;
    const max = this.o.maxPending ?? 65536;
    for (const e of d.entries) {
      this.counts.entries++;
      const f = fromEntry(e, this.o.timeouts);
      if (typeof f === 'string') {
        this.refuse(f);
        continue;
      }
      const k = flowKey(f);
      if (!this.pending.has(k) && this.pending.size >= max) {
        this.refuse('overflow');
        continue;
      }
      this.pending.set(k, f);
      queued++;
    }
    if (queued > 0 && this.oldest === null) this.oldest = now;
    return queued;
  }

  get queued(): number {
    return this.pending.size;
  }

  /** Take up to `max` queued flows (oldest first, for one install), and when the oldest of all arrived. */
  take(max = Infinity): { flows: SyncedFlow[]; since: number | null } {
    const since = this.oldest;
    if (max >= this.pending.size) {
      const flows = [...this.pending.values()];
      this.pending = new Map();
      this.oldest = null;
      return { flows, since };
    }
    const flows: SyncedFlow[] = [];
    for (const [k, f] of this.pending) {
      if (flows.length >= max) break;
      flows.push(f);
      this.pending.delete(k);
    }
    return { flows, since };
  }
}
