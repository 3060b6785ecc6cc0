/**
 * Scheduling state shared by the data-plane workers, in SharedArrayBuffers of fixed size
 * (bounded memory whatever the traffic), so that N event loops schedule as one director:
 *
 *  - per destination (a real server of a service, by slot): active and inactive
 *    connections and the OVERLOAD flag, changed with Atomics by whichever worker binds or
 *    unbinds a connection — lc/wlc/sed/nq/ovf/twos and the -x/-y thresholds see every
 *    worker's connections; and each worker's own share of them, so a worker that dies can be
 *    subtracted;
 *  - per service (by slot): a short lock and the rr counter / wrr index and current weight,
 *    so round robin is exact over all workers together;
 *  - persistence templates: a bucketed hash table (4 ways per bucket, a lock per bucket),
 *    keyed by two 32-bit hashes of (scope, masked client) — a client sticks to one real
 *    server whichever worker accepts it; each worker's references per entry, for the same
 *    reason as above;
 *  - per worker, a snapshot of its traffic counters per destination and per service,
 *    written once a second by that worker (a single writer) and summed by the control
 *    plane for `ipvsadm --stats`, `--rate`, /metrics.
 *
 * No lock is ever held across I/O: a critical section is a few loads and stores. Slots are
 * handed out by the control plane (workers/plane.ts), which also initialises and clears them.
 * Times in the template table are deciseconds since the shared epoch (`epochMs`), read from
 * `sharedNow` so that every thread agrees.
 */
import type { ConnCells, Dest, SharedPosition, SharedWeights } from '../../scheduling/types.js';
import { templateClient, type TemplateStore } from '../../scheduling/persistence.js';
import ipaddr from 'ipaddr.js';
import type { Family } from '../../model/types.js';

export interface SharedLimits {
  /** Services (virtual servers) at once. */
  readonly services: number;
  /** Destinations (real servers of services) at once, draining ones included. */
  readonly dests: number;
  /** Worker slots. */
  readonly workers: number;
  /** Template buckets (a power of two); 4 templates per bucket. */
  readonly templateBuckets: number;
}

export const DEFAULT_SHARED_LIMITS: Omit<SharedLimits, 'workers'> = { services: 4096, dests: 65536, templateBuckets: 65536 };

/** Per service: lock, rr counter, wrr index, wrr current weight, weight generation. */
export const SERVICE_STRIDE = 5;
const S_LOCK = 0;
const S_RR = 1;
const S_WRR = 2;
const S_GEN = 4;
/** Per destination: active, inactive, overloaded, published weight + 1 (0: none). */
export const DEST_STRIDE = 4;
const D_WEIGHT = 3;
/** Per worker and destination: active, inactive (this worker's share). */
export const WORKER_DEST_STRIDE = 2;
/** Traffic counters per destination and per service: conns, inPkts, outPkts, inBytes, outBytes, dropped (services). */
export const COUNTER_FIELDS = 6;
export const TEMPLATE_WAYS = 4;
/** h1, h2, dest slot + 1, service slot + 1, last use, expires, control, timeout (deciseconds). */
export const TEMPLATE_STRIDE = 13;
const T_H1 = 0;
const T_H2 = 1;
const T_DEST = 2;
const T_SVC = 3;
const T_LAST = 4;
const T_EXP = 5;
const T_CTL = 6;
const T_TMO = 7;
/** The masked client, for connection sync: 4 (IPv4) or 6, then its bytes in 1 or 4 words. */
const T_FAM = 8;
const T_ADDR = 9;
const BUCKET_INTS = 1 + TEMPLATE_WAYS * TEMPLATE_STRIDE;

/** The buffers, as sent to a worker (structured clone keeps them shared). */
export interface SharedBuffers {
  readonly limits: SharedLimits;
  /** Milliseconds since the Unix epoch that template times count from. */
  readonly epochMs: number;
  readonly services: SharedArrayBuffer;
  readonly dests: SharedArrayBuffer;
  readonly workerDests: SharedArrayBuffer;
  /** Float64, per worker: dests × COUNTER_FIELDS, then services × COUNTER_FIELDS. */
  readonly counters: SharedArrayBuffer;
  readonly templates: SharedArrayBuffer;
  /** Uint16 per worker and template entry. */
  readonly templateRefs: SharedArrayBuffer;
}

export function allocateShared(limits: SharedLimits, epochMs = Date.now()): SharedBuffers {
  if ((limits.templateBuckets & (limits.templateBuckets - 1)) !== 0) throw new RangeError('templateBuckets must be a power of two');
  const entries = limits.templateBuckets * TEMPLATE_WAYS;
  return {
    limits, epochMs,
    services: new SharedArrayBuffer(limits.services * SERVICE_STRIDE * 4),
    dests: new SharedArrayBuffer(limits.dests * DEST_STRIDE * 4),
    workerDests: new SharedArrayBuffer(limits.workers * limits.dests * WORKER_DEST_STRIDE * 4),
    counters: new SharedArrayBuffer(limits.workers * (limits.dests + limits.services) * COUNTER_FIELDS * 8),
    templates: new SharedArrayBuffer(limits.templateBuckets * BUCKET_INTS * 4),
    templateRefs: new SharedArrayBuffer(limits.workers * entries * 2),
  };
}

/** Seconds since the shared epoch: the same instant reads the same in every thread. */
export function sharedClock(epochMs: number): () => number {
  return () => (performance.timeOrigin + performance.now() - epochMs) / 1000;
}

const ds = (seconds: number): number => Math.floor(seconds * 10);

/** Two independent 32-bit hashes of a string (FNV-1a and a multiply-xorshift). */
export function hash2(s: string): [number, number] {
  let a = 0x811c9dc5;
  let b = 0x9e3779b1;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x85ebca6b);
    b ^= b >>> 13;
  }
  return [a >>> 0 | 0, (b ^ (b >>> 16)) | 0];
}

function lock(a: Int32Array, i: number, canWait: boolean): void {
  for (let spins = 0; Atomics.compareExchange(a, i, 0, 1) !== 0; spins++) {
    if (canWait && spins > 64) Atomics.wait(a, i, 1, 1);
  }
}

function unlock(a: Int32Array, i: number): void {
  Atomics.store(a, i, 0);
  Atomics.notify(a, i, 1);
}

/** Typed views over the buffers, for one thread. `worker` is this thread's worker slot (−1: the control plane). */
export class SharedState {
  readonly services: Int32Array;
  readonly dests: Int32Array;
  readonly workerDests: Int32Array;
  readonly counters: Float64Array;
  readonly templates: Int32Array;
  readonly templateRefs: Uint16Array;
  readonly limits: SharedLimits;
  readonly now: () => number;
  private readonly canWait: boolean;

  constructor(readonly buffers: SharedBuffers, readonly worker: number) {
    this.limits = buffers.limits;
    this.services = new Int32Array(buffers.services);
    this.dests = new Int32Array(buffers.dests);
    this.workerDests = new Int32Array(buffers.workerDests);
    this.counters = new Float64Array(buffers.counters);
    this.templates = new Int32Array(buffers.templates);
    this.templateRefs = new Uint16Array(buffers.templateRefs);
    this.now = sharedClock(buffers.epochMs);
    // Atomics.wait is not allowed on a main thread; there a lock spins (sections are tiny).
    this.canWait = worker >= 0;
  }

  // --- control plane ---------------------------------------------------------------

  /** A service slot starts fresh: unlocked, rr at 0, wrr before the list head. */
  resetService(slot: number): void {
    const at = slot * SERVICE_STRIDE;
    Atomics.store(this.services, at + S_LOCK, 0);
    Atomics.store(this.services, at + S_RR, 0);
    Atomics.store(this.services, at + S_WRR, -1);
    Atomics.store(this.services, at + S_WRR + 1, 0);
    Atomics.store(this.services, at + S_GEN, 0);
    this.zeroCounters(this.limits.dests + slot);
  }

  /**
   * The weight of a destination, where every worker's scheduler reads it (it compares the
   * service's generation before each choice). Published for every op that sets a weight,
   * before the op reaches a worker, so what is published is always the latest.
   */
  publishWeight(slot: number, weight: number): void {
    Atomics.store(this.dests, slot * DEST_STRIDE + D_WEIGHT, weight + 1);
  }

  /**
   * Publish several weights of service `slot` as one change: the generation is odd while
   * they are written and moves on when they all are, so a worker takes all of them or, if
   * it looks meanwhile, none yet (a sequence lock; the workers only read).
   */
  publishWeights(slot: number, weights: readonly (readonly [dest: number, weight: number])[]): void {
    const at = slot * SERVICE_STRIDE + S_GEN;
    Atomics.add(this.services, at, 1);
    for (const [dest, weight] of weights) this.publishWeight(dest, weight);
    Atomics.add(this.services, at, 1);
  }

  // --- workers -----------------------------------------------------------------------

  /** The published weights of service `slot` for its scheduler (scheduling/types.ts). */
  sharedWeights(slot: number): SharedWeights {
    const services = this.services;
    const dests = this.dests;
    const at = slot * SERVICE_STRIDE + S_GEN;
    return {
      generation: () => Atomics.load(services, at),
      weightOf: (d) => {
        if (!(d instanceof SharedDest)) return undefined;
        const w = Atomics.load(dests, d.slot * DEST_STRIDE + D_WEIGHT);
        return w === 0 ? undefined : w - 1;
      },
    };
  }

  /**
   * Destination slots that are free again start fresh: counts, flags, counters, and the
   * templates pointing at them — one pass over the template table for all of them.
   */
  resetDests(slots: readonly number[]): void {
    if (slots.length === 0) return;
    for (const slot of slots) {
      for (let k = 0; k < DEST_STRIDE; k++) Atomics.store(this.dests, slot * DEST_STRIDE + k, 0);
      for (let w = 0; w < this.limits.workers; w++) {
        const at = (w * this.limits.dests + slot) * WORKER_DEST_STRIDE;
        Atomics.store(this.workerDests, at, 0);
        Atomics.store(this.workerDests, at + 1, 0);
      }
      this.zeroCounters(slot);
    }
    const gone = new Set(slots.map((s) => s + 1));
    this.forgetTemplates((e) => gone.has(this.templates[e + T_DEST] as number));
  }

  zeroCounters(row: number): void {
    const perWorker = (this.limits.dests + this.limits.services) * COUNTER_FIELDS;
    for (let w = 0; w < this.limits.workers; w++) this.counters.fill(0, w * perWorker + row * COUNTER_FIELDS, w * perWorker + (row + 1) * COUNTER_FIELDS);
  }

  /** Connections of a destination over every worker. */
  destCounts(slot: number): { active: number; inactive: number; overloaded: boolean } {
    const at = slot * DEST_STRIDE;
    return { active: Atomics.load(this.dests, at), inactive: Atomics.load(this.dests, at + 1), overloaded: Atomics.load(this.dests, at + 2) === 1 };
  }

  /** Traffic counters of a destination (`row` = slot) or a service (`row` = dests + slot), summed over workers. */
  counterSum(row: number, into: { conns: number; inPkts: number; outPkts: number; inBytes: number; outBytes: number }, base?: Float64Array): number {
    const perWorker = (this.limits.dests + this.limits.services) * COUNTER_FIELDS;
    const b = row * COUNTER_FIELDS;
    let c = base?.[b] ?? 0, ip = base?.[b + 1] ?? 0, op = base?.[b + 2] ?? 0, ib = base?.[b + 3] ?? 0, ob = base?.[b + 4] ?? 0, dr = base?.[b + 5] ?? 0;
    for (let w = 0; w < this.limits.workers; w++) {
      const at = w * perWorker + b;
      c += this.counters[at] as number;
      ip += this.counters[at + 1] as number;
      op += this.counters[at + 2] as number;
      ib += this.counters[at + 3] as number;
      ob += this.counters[at + 4] as number;
      dr += this.counters[at + 5] as number;
    }
    into.conns = c;
    into.inPkts = ip;
    into.outPkts = op;
    into.inBytes = ib;
    into.outBytes = ob;
    return dr;
  }

  /**
   * Worker `w` is gone: take its connections out of every count and its references out of
   * every template, and fold its counters into `base` (so totals do not go back). Returns
   * how many connections it held (lost with it).
   */
  forgetWorker(w: number, base: Float64Array): number {
    let lost = 0;
    for (let s = 0; s < this.limits.dests; s++) {
      const at = (w * this.limits.dests + s) * WORKER_DEST_STRIDE;
      const a = Atomics.exchange(this.workerDests, at, 0);
      const i = Atomics.exchange(this.workerDests, at + 1, 0);
      if (a === 0 && i === 0) continue;
      lost += a + i;
      Atomics.sub(this.dests, s * DEST_STRIDE, a);
      Atomics.sub(this.dests, s * DEST_STRIDE + 1, i);
      const total = Atomics.load(this.dests, s * DEST_STRIDE) + Atomics.load(this.dests, s * DEST_STRIDE + 1);
      // With the dead worker's connections gone the server may be under its threshold again;
      // the next unbind re-evaluates exactly, this only never leaves it overloaded at zero.
      if (total === 0) Atomics.store(this.dests, s * DEST_STRIDE + 2, 0);
    }
    const entries = this.limits.templateBuckets * TEMPLATE_WAYS;
    for (let e = 0; e < entries; e++) {
      const n = this.templateRefs[w * entries + e] as number;
      if (n === 0) continue;
      this.templateRefs[w * entries + e] = 0;
      const b = Math.floor(e / TEMPLATE_WAYS);
      const at = b * BUCKET_INTS + 1 + (e % TEMPLATE_WAYS) * TEMPLATE_STRIDE;
      lock(this.templates, b * BUCKET_INTS, false);
      this.templates[at + T_CTL] = Math.max(0, (this.templates[at + T_CTL] as number) - n);
      unlock(this.templates, b * BUCKET_INTS);
    }
    const perWorker = (this.limits.dests + this.limits.services) * COUNTER_FIELDS;
    for (let k = 0; k < perWorker; k++) {
      base[k] = (base[k] as number) + (this.counters[w * perWorker + k] as number);
      this.counters[w * perWorker + k] = 0;
    }
    return lost;
  }

  /** Live templates per destination slot (one pass over the table). */
  templateCounts(now = this.now()): Map<number, number> {
    const out = new Map<number, number>();
    const t = ds(now);
    for (let b = 0; b < this.limits.templateBuckets; b++) {
      for (let w = 0; w < TEMPLATE_WAYS; w++) {
        const at = b * BUCKET_INTS + 1 + w * TEMPLATE_STRIDE;
        const dest = this.templates[at + T_DEST] as number;
        if (dest === 0) continue;
        if ((this.templates[at + T_CTL] as number) === 0 && t >= (this.templates[at + T_EXP] as number)) continue;
        out.set(dest - 1, (out.get(dest - 1) ?? 0) + 1);
      }
    }
    return out;
  }

  /** Clear every template entry `pred` selects (taking each bucket's lock). */
  forgetTemplates(pred: (entry: number) => boolean): void {
    const entries = this.limits.templateBuckets * TEMPLATE_WAYS;
    for (let b = 0; b < this.limits.templateBuckets; b++) {
      let locked = false;
      for (let w = 0; w < TEMPLATE_WAYS; w++) {
        const at = b * BUCKET_INTS + 1 + w * TEMPLATE_STRIDE;
        if (this.templates[at + T_DEST] === 0 || !pred(at)) continue;
        if (!locked) {
          lock(this.templates, b * BUCKET_INTS, this.canWait);
          locked = true;
        }
        this.templates.fill(0, at, at + TEMPLATE_STRIDE);
        for (let k = 0; k < this.limits.workers; k++) this.templateRefs[k * entries + b * TEMPLATE_WAYS + w] = 0;
      }
      if (locked) unlock(this.templates, b * BUCKET_INTS);
    }
  }

  // --- workers ---------------------------------------------------------------------

  /** The cells of destination `slot`, for this worker. */
  destCells(slot: number): ConnCells {
    const d = this.dests;
    const own = this.workerDests;
    const at = slot * DEST_STRIDE;
    const mine = (this.worker * this.limits.dests + slot) * WORKER_DEST_STRIDE;
    return {
      add(active: number, inactive: number): number {
        let total = 0;
        if (active !== 0) {
          total += Atomics.add(d, at, active) + active;
          Atomics.add(own, mine, active);
        } else total += Atomics.load(d, at);
        if (inactive !== 0) {
          total += Atomics.add(d, at + 1, inactive) + inactive;
          Atomics.add(own, mine + 1, inactive);
        } else total += Atomics.load(d, at + 1);
        return total;
      },
      setOverloaded(on: boolean): void {
        Atomics.store(d, at + 2, on ? 1 : 0);
      },
    };
  }

  /** The shared rr/wrr position of service `slot`. */
  position(slot: number): SharedPosition {
    const s = this.services;
    const at = slot * SERVICE_STRIDE;
    const canWait = this.canWait;
    return {
      exclusive<T>(fn: (cells: Int32Array, at: number) => T): T {
        lock(s, at + S_LOCK, canWait);
        try {
          return fn(s, at + S_WRR);
        } finally {
          unlock(s, at + S_LOCK);
        }
      },
      next: () => Atomics.add(s, at + S_RR, 1) >>> 0,
    };
  }

  /** Publish this worker's counters of destination `slot` (or service row dests + slot). */
  publishCounters(row: number, c: { conns: number; inPkts: number; outPkts: number; inBytes: number; outBytes: number }, dropped = 0): void {
    const at = (this.worker * (this.limits.dests + this.limits.services) + row) * COUNTER_FIELDS;
    this.counters[at] = c.conns;
    this.counters[at + 1] = c.inPkts;
    this.counters[at + 2] = c.outPkts;
    this.counters[at + 3] = c.inBytes;
    this.counters[at + 4] = c.outBytes;
    this.counters[at + 5] = dropped;
  }

  /** Templates of service `service` in the shared table; `dest(slot)` finds this worker's Dest for a slot. */
  templateStore(service: number, dest: (slot: number) => Dest | undefined, o: { expireQuiescentTemplate: boolean } = { expireQuiescentTemplate: false }): TemplateStore {
    return new SharedTemplates(this, service, dest, o.expireQuiescentTemplate);
  }

  /** The refs cell of entry (bucket b, way w) for this worker. */
  refIndex(b: number, w: number): number {
    return this.worker * this.limits.templateBuckets * TEMPLATE_WAYS + b * TEMPLATE_WAYS + w;
  }

  lockBucket(b: number): void {
    lock(this.templates, b * BUCKET_INTS, this.canWait);
  }

  unlockBucket(b: number): void {
    unlock(this.templates, b * BUCKET_INTS);
  }
}

/** The shared template table as one service's TemplateStore. */
class SharedTemplates implements TemplateStore {
  private readonly t: Int32Array;
  private readonly mask: number;

  constructor(private readonly st: SharedState, private readonly service: number, private readonly dest: (slot: number) => Dest | undefined, private readonly expireQuiescent: boolean) {
    this.t = st.templates;
    this.mask = st.limits.templateBuckets - 1;
  }

  /** Find `key` in its bucket (locked by the caller): the entry's offset, or −1; `free` gets a usable way. */
  private find(b: number, h1: number, h2: number, now: number, free: { at: number; way: number }): number {
    let hit = -1;
    for (let w = 0; w < TEMPLATE_WAYS; w++) {
      const at = b * BUCKET_INTS + 1 + w * TEMPLATE_STRIDE;
      const t = this.t;
      if (t[at + T_DEST] === 0 || ((t[at + T_CTL] as number) === 0 && now >= (t[at + T_EXP] as number))) {
        if (free.at < 0) {
          free.at = at;
          free.way = w;
        }
        continue;
      }
      if (t[at + T_H1] === h1 && t[at + T_H2] === h2 && t[at + T_SVC] === this.service + 1) hit = at;
    }
    return hit;
  }

  private valid(at: number): Dest | null {
    const d = this.dest((this.t[at + T_DEST] as number) - 1);
    if (!d || !d.available || (this.expireQuiescent && d.weight === 0)) return null;
    return d;
  }

  lookup(key: string, now: number): Dest | null {
    const [h1, h2] = hash2(key);
    const b = h1 & this.mask;
    const n = ds(now);
    this.st.lockBucket(b);
    try {
      const at = this.find(b, h1, h2, n, { at: -1, way: -1 });
      if (at < 0) return null;
      const d = this.valid(at);
      if (d === null) this.clearEntry(b, at);
      return d;
    } finally {
      this.st.unlockBucket(b);
    }
  }

  bind(key: string, dest: Dest, timeout: number, now: number): boolean {
    const slot = (dest as Dest & { slot?: number }).slot;
    if (slot === undefined) return false;
    const [h1, h2] = hash2(key);
    const b = h1 & this.mask;
    const n = ds(now);
    const tmo = Math.max(1, ds(timeout));
    const t = this.t;
    this.st.lockBucket(b);
    try {
      const free = { at: -1, way: -1 };
      let at = this.find(b, h1, h2, n, free);
      if (at >= 0 && t[at + T_DEST] === slot + 1) {
        t[at + T_LAST] = n;
        t[at + T_TMO] = tmo;
        t[at + T_CTL] = (t[at + T_CTL] as number) + 1;
        t[at + T_EXP] = n + tmo;
      } else {
        if (at >= 0) this.clearEntry(b, at);
        at = at >= 0 ? at : free.at;
        if (at < 0) return false;
        this.writeEntry(at, key, h1, h2, slot, n, tmo, 1);
      }
      const way = (at - b * BUCKET_INTS - 1) / TEMPLATE_STRIDE;
      const r = this.st.refIndex(b, way);
      this.st.templateRefs[r] = Math.min(0xffff, (this.st.templateRefs[r] as number) + 1);
      return true;
    } finally {
      this.st.unlockBucket(b);
    }
  }

  release(key: string, dest: Dest, now: number): void {
    const slot = (dest as Dest & { slot?: number }).slot;
    if (slot === undefined) return;
    const [h1, h2] = hash2(key);
    const b = h1 & this.mask;
    const n = ds(now);
    const t = this.t;
    this.st.lockBucket(b);
    try {
      const at = this.find(b, h1, h2, n, { at: -1, way: -1 });
      if (at < 0 || t[at + T_DEST] !== slot + 1 || t[at + T_CTL] === 0) return;
      t[at + T_CTL] = (t[at + T_CTL] as number) - 1;
      const way = (at - b * BUCKET_INTS - 1) / TEMPLATE_STRIDE;
      const r = this.st.refIndex(b, way);
      if ((this.st.templateRefs[r] as number) > 0) this.st.templateRefs[r] = (this.st.templateRefs[r] as number) - 1;
      if (t[at + T_CTL] === 0 && n > (t[at + T_EXP] as number)) {
        // The timer fired while connections remained and re-armed: next firing after `now`.
        const last = t[at + T_LAST] as number;
        const tmo = t[at + T_TMO] as number;
        t[at + T_EXP] = last + Math.ceil((n - last) / tmo) * tmo;
      }
    } finally {
      this.st.unlockBucket(b);
    }
  }

  /** A new entry at `at` (its bucket locked): `key` to `slot`, expiring `tmo` from `n`, controlling `ctl` connections. */
  private writeEntry(at: number, key: string, h1: number, h2: number, slot: number, n: number, tmo: number, ctl: number): void {
    const t = this.t;
    t[at + T_H1] = h1;
    t[at + T_H2] = h2;
    t[at + T_DEST] = slot + 1;
    t[at + T_SVC] = this.service + 1;
    t[at + T_LAST] = n;
    t[at + T_EXP] = n + tmo;
    t[at + T_CTL] = ctl;
    t[at + T_TMO] = tmo;
    writeClient(t, at, key);
  }

  private clearEntry(b: number, at: number): void {
    this.t.fill(0, at, at + TEMPLATE_STRIDE);
    const way = (at - b * BUCKET_INTS - 1) / TEMPLATE_STRIDE;
    const entries = this.st.limits.templateBuckets * TEMPLATE_WAYS;
    for (let k = 0; k < this.st.limits.workers; k++) this.st.templateRefs[k * entries + b * TEMPLATE_WAYS + way] = 0;
  }

  /** Expired entries are reused in place; nothing to sweep. */
  sweep(): number {
    return 0;
  }

  countFor(dest: Dest): number {
    const slot = (dest as Dest & { slot?: number }).slot;
    return slot === undefined ? 0 : this.st.templateCounts().get(slot) ?? 0;
  }

  get size(): number {
    let n = 0;
    for (const c of this.st.templateCounts().values()) n += c;
    return n;
  }

  /** Persistence turned off for the service: its templates go. */
  clear(): void {
    this.st.forgetTemplates((at) => this.t[at + T_SVC] === this.service + 1);
  }

  snapshot(): Map<string, string> {
    return new Map();
  }

  held(now: number): { client: string; dest: Dest; remaining: number }[] {
    const out: { client: string; dest: Dest; remaining: number }[] = [];
    const n = ds(now);
    const t = this.t;
    for (let b = 0; b <= this.mask; b++) {
      this.st.lockBucket(b);
      try {
        for (let w = 0; w < TEMPLATE_WAYS; w++) {
          const at = b * BUCKET_INTS + 1 + w * TEMPLATE_STRIDE;
          if (t[at + T_DEST] === 0 || t[at + T_SVC] !== this.service + 1) continue;
          const ctl = t[at + T_CTL] as number;
          const exp = t[at + T_EXP] as number;
          if (ctl === 0 && n >= exp) continue;
          const d = this.valid(at);
          const client = readClient(t, at);
          if (!d || client === null) continue;
          out.push({ client, dest: d, remaining: (ctl > 0 ? (t[at + T_TMO] as number) : exp - n) / 10 });
        }
      } finally {
        this.st.unlockBucket(b);
      }
    }
    return out;
  }

  adopt(key: string, dest: Dest, timeout: number, now: number): 'installed' | 'unchanged' | 'full' {
    const slot = (dest as Dest & { slot?: number }).slot;
    if (slot === undefined) return 'full';
    const [h1, h2] = hash2(key);
    const b = h1 & this.mask;
    const n = ds(now);
    const tmo = Math.max(1, ds(timeout));
    const t = this.t;
    this.st.lockBucket(b);
    try {
      const free = { at: -1, way: -1 };
      let at = this.find(b, h1, h2, n, free);
      if (at >= 0 && t[at + T_DEST] === slot + 1) {
        if ((t[at + T_CTL] as number) > 0 || (t[at + T_EXP] as number) - n > tmo / 2) return 'unchanged';
        t[at + T_EXP] = n + tmo;
        t[at + T_LAST] = n;
        return 'installed';
      }
      if (at >= 0) this.clearEntry(b, at);
      at = at >= 0 ? at : free.at;
      if (at < 0) return 'full';
      this.writeEntry(at, key, h1, h2, slot, n, tmo, 0);
      return 'installed';
    } finally {
      this.st.unlockBucket(b);
    }
  }
}

/** Store a template key's masked client in its entry (parsed once, when the entry is made). */
function writeClient(t: Int32Array, at: number, key: string): void {
  t[at + T_FAM] = 0;
  let bytes: number[];
  try {
    bytes = ipaddr.parse(templateClient(key)).toByteArray();
  } catch {
    return; // not an address (never from a scheduler): the entry just cannot be synchronised
  }
  t[at + T_FAM] = bytes.length === 4 ? 4 : 6;
  for (let i = 0; i < bytes.length / 4; i++) {
    t[at + T_ADDR + i] = ((bytes[i * 4] as number) << 24) | ((bytes[i * 4 + 1] as number) << 16) | ((bytes[i * 4 + 2] as number) << 8) | (bytes[i * 4 + 3] as number);
  }
}

function readClient(t: Int32Array, at: number): string | null {
  const fam = t[at + T_FAM];
  if (fam !== 4 && fam !== 6) return null;
  const bytes: number[] = [];
  for (let i = 0; i < (fam === 4 ? 1 : 4); i++) {
    const w = t[at + T_ADDR + i] as number;
    bytes.push((w >>> 24) & 0xff, (w >>> 16) & 0xff, (w >>> 8) & 0xff, w & 0xff);
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** A destination whose counts live in shared cells (see SharedState.destCells). */
export class SharedDest implements Dest {
  readonly cells: ConnCells;
  weight: number;
  uthreshold: number;
  lthreshold: number;
  available = true;
  agentLoad = Number.NaN;
  private readonly at: number;

  constructor(
    private readonly st: SharedState,
    readonly slot: number,
    readonly key: string,
    readonly family: Family,
    readonly address: string,
    readonly port: number,
    readonly addrFold: number,
    init: { weight: number; uthreshold: number; lthreshold: number },
  ) {
    this.cells = st.destCells(slot);
    this.at = slot * DEST_STRIDE;
    this.weight = init.weight;
    this.uthreshold = init.uthreshold;
    this.lthreshold = init.lthreshold;
  }

  get active(): number {
    return Atomics.load(this.st.dests, this.at);
  }

  get inactive(): number {
    return Atomics.load(this.st.dests, this.at + 1);
  }

  get overloaded(): boolean {
    return Atomics.load(this.st.dests, this.at + 2) === 1;
  }
}
