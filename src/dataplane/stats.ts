/**
 * Counters and IPVS's rate estimator (net/netfilter/ipvs/ip_vs_est.c): every 2 seconds the
 * per-second rate over the last interval is folded into a moving average with weight 1/4
 * (`avg += (rate − avg) / 4`). Pure: the caller supplies the clock.
 */
import type { Counters, Rates } from './types.js';

export function newCounters(): Counters {
  return { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
}

/** Client → server traffic of one read or datagram, counted for the service and the server. */
export function countIn(svc: Counters, srv: Counters, bytes: number): void {
  svc.inPkts++;
  svc.inBytes += bytes;
  srv.inPkts++;
  srv.inBytes += bytes;
}

/** Server → client traffic, likewise. */
export function countOut(svc: Counters, srv: Counters, bytes: number): void {
  svc.outPkts++;
  svc.outBytes += bytes;
  srv.outPkts++;
  srv.outBytes += bytes;
}

export function addCounters(into: Counters, c: Readonly<Counters>): void {
  into.conns += c.conns;
  into.inPkts += c.inPkts;
  into.outPkts += c.outPkts;
  into.inBytes += c.inBytes;
  into.outBytes += c.outBytes;
}

/** Set every counter to 0 (ipvsadm -Z). */
export function zeroCounters(c: Counters): void {
  c.conns = 0;
  c.inPkts = 0;
  c.outPkts = 0;
  c.inBytes = 0;
  c.outBytes = 0;
}

export const ZERO_RATES: Rates = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

/** IPVS's estimation interval, seconds. */
export const ESTIMATOR_INTERVAL = 2;

export class RateEstimator {
  /** The counters at the last fold (copied field by field: a tick allocates nothing). */
  private readonly last: Counters;
  private lastAt: number;
  private readonly avg = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

  /** `now` in seconds. */
  constructor(private readonly counters: Readonly<Counters>, now: number) {
    this.last = { ...counters };
    this.lastAt = now;
  }

  /** Fold in the interval(s) that have passed; a no-op before 2 s have elapsed. */
  tick(now: number): void {
    const dt = now - this.lastAt;
    if (dt < ESTIMATOR_INTERVAL) return;
    const c = this.counters;
    const a = this.avg;
    const l = this.last;
    // Idle (nothing counted, nothing left to decay): the fold would compute zeros; most of the
    // rows of a large table are idle at any one time.
    if (c.conns === l.conns && c.inPkts === l.inPkts && c.outPkts === l.outPkts && c.inBytes === l.inBytes && c.outBytes === l.outBytes
      && a.cps === 0 && a.inPps === 0 && a.outPps === 0 && a.inBps === 0 && a.outBps === 0) {
      this.lastAt = now;
      return;
    }
    a.cps += ((c.conns - l.conns) / dt - a.cps) / 4;
    a.inPps += ((c.inPkts - l.inPkts) / dt - a.inPps) / 4;
    a.outPps += ((c.outPkts - l.outPkts) / dt - a.outPps) / 4;
    a.inBps += ((c.inBytes - l.inBytes) / dt - a.inBps) / 4;
    a.outBps += ((c.outBytes - l.outBytes) / dt - a.outBps) / 4;
    this.remember(now);
  }

  /** `ipvsadm -Z`: the counters were zeroed; forget the averages too (ip_vs_zero_estimator). */
  zero(now: number): void {
    const a = this.avg;
    a.cps = a.inPps = a.outPps = a.inBps = a.outBps = 0;
    this.remember(now);
  }

  private remember(now: number): void {
    const c = this.counters;
    const l = this.last;
    l.conns = c.conns;
    l.inPkts = c.inPkts;
    l.outPkts = c.outPkts;
    l.inBytes = c.inBytes;
    l.outBytes = c.outBytes;
    this.lastAt = now;
  }

  /** Rates rounded to whole units, as ipvsadm prints them. */
  rates(): Rates {
    const a = this.avg;
    return {
      cps: Math.round(a.cps), inPps: Math.round(a.inPps), outPps: Math.round(a.outPps),
      inBps: Math.round(a.inBps), outBps: Math.round(a.outBps),
    };
  }
}
