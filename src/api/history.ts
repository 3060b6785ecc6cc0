/**
 * Traffic history for the dashboard's charts, kept in the daemon so a page reload keeps it:
 * every sample (`record`, one per `stepMs`, driven by the caller's timer and clock) holds,
 * per virtual service, new connections/s and bytes/s, and per real server bytes/s and its
 * active connections. A fixed window of `capacity` samples (default 360 × 5 s = 30 min) in
 * typed-array rings: memory is bounded by the window and the table's size, not by time.
 * A series that has been absent for the whole window is dropped. Pure.
 */
import type { ServiceStats } from '../dataplane/types.js';

/** One series' values, oldest first; null where the service or server did not exist. */
export interface HistorySeries {
  /** New connections per second. */
  readonly cps: (number | null)[];
  /** Bytes per second, in + out. */
  readonly bps: (number | null)[];
  /** Active connections. */
  readonly active: (number | null)[];
}

export interface HistoryView {
  /** Milliseconds between samples. */
  readonly stepMs: number;
  /** Sample times (ms since the epoch), oldest first: those after `since`. */
  readonly at: number[];
  /** `SERVICE` (a virtual service) or `SERVICE|SERVER` (a real server) → its values at those times. */
  readonly series: Record<string, HistorySeries>;
}

class Ring {
  readonly cps: Float32Array;
  readonly bps: Float64Array;
  readonly active: Float32Array;
  /** The last sample index this series was present in. */
  seen = 0;
  constructor(n: number) {
    // One buffer for the three (a sample at 1,000 real servers makes 1,000 rings the first
    // time; one allocation each instead of three is about half the time).
    const b = new ArrayBuffer(n * 16);
    this.bps = new Float64Array(b, 0, n).fill(NaN);
    this.cps = new Float32Array(b, n * 8, n).fill(NaN);
    this.active = new Float32Array(b, n * 12, n).fill(NaN);
  }
}

/** A service's ring and its real servers' rings (by server key). */
interface ServiceRings {
  readonly ring: Ring;
  readonly servers: Map<string, Ring>;
}

export class TrafficHistory {
  private readonly at: Float64Array;
  /**
   * By service key, then server key: a sample looks each series up without building its
   * `SERVICE|SERVER` name (a sample at 1,000 real servers is on the control plane's thread
   * every `stepMs`, and should take it for as little time as it can).
   */
  private readonly rings = new Map<string, ServiceRings>();
  /** Samples recorded so far (the next slot is count % capacity). */
  private count = 0;

  constructor(readonly stepMs = 5000, readonly capacity = 360) {
    this.at = new Float64Array(capacity);
  }

  /** Add one sample taken at `now` from the data plane's statistics. */
  record(now: number, services: readonly ServiceStats[]): void {
    const slot = this.count % this.capacity;
    const count = this.count;
    this.at[slot] = now;
    const put = (r: Ring, cps: number, bps: number, active: number): void => {
      r.cps[slot] = cps;
      r.bps[slot] = bps;
      r.active[slot] = active;
      r.seen = count;
    };
    for (const s of services) {
      let sr = this.rings.get(s.spec.key);
      if (!sr) {
        sr = { ring: new Ring(this.capacity), servers: new Map() };
        this.rings.set(s.spec.key, sr);
      }
      let active = 0;
      for (const d of s.servers) {
        let r = sr.servers.get(d.spec.key);
        if (!r) {
          r = new Ring(this.capacity);
          sr.servers.set(d.spec.key, r);
        }
        put(r, d.rates.cps, d.rates.inBps + d.rates.outBps, d.active);
        active += d.active;
      }
      put(sr.ring, s.rates.cps, s.rates.inBps + s.rates.outBps, active);
    }
    // Absent from this sample: a gap; absent for the whole window: dropped.
    const absent = (r: Ring): boolean => {
      if (r.seen === count) return false;
      r.cps[slot] = NaN;
      r.bps[slot] = NaN;
      r.active[slot] = NaN;
      return count - r.seen >= this.capacity;
    };
    for (const [key, sr] of this.rings) {
      for (const [server, r] of sr.servers) if (absent(r)) sr.servers.delete(server);
      if (absent(sr.ring) && sr.servers.size === 0) this.rings.delete(key);
    }
    this.count++;
  }

  /** The samples taken after `since` (ms), every series aligned on them. */
  view(since = 0): HistoryView {
    const n = Math.min(this.count, this.capacity);
    const first = this.count - n;
    const idx: number[] = [];
    for (let i = first; i < this.count; i++) if ((this.at[i % this.capacity] ?? 0) > since) idx.push(i % this.capacity);
    const val = (a: Float32Array | Float64Array, i: number): number | null => {
      const v = a[i] ?? NaN;
      return Number.isNaN(v) ? null : Math.round(v * 100) / 100;
    };
    const series: Record<string, HistorySeries> = {};
    const one = (r: Ring): HistorySeries => ({ cps: idx.map((i) => val(r.cps, i)), bps: idx.map((i) => val(r.bps, i)), active: idx.map((i) => val(r.active, i)) });
    if (idx.length > 0) {
      for (const [key, sr] of this.rings) {
        series[key] = one(sr.ring);
        for (const [server, r] of sr.servers) series[`${key}|${server}`] = one(r);
      }
    }
    return { stepMs: this.stepMs, at: idx.map((i) => this.at[i] ?? 0), series };
  }
}
