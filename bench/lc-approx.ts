/**
 * How far the kernel planes' least-connection family (nftables and XDP: a slot table
 * re-dealt once a second by slots.ts balanceSlots, walked round robin in between) is from
 * IPVS, which picks per connection with the counts of that instant. A synthetic trace —
 * seeded, deterministic, no kernel — drives both side by side:
 *
 *  - IPVS: every arrival goes to the server the TypeScript port of the IPVS scheduler
 *    (src/scheduling, the same code the proxy uses) picks with the exact counts.
 *  - Slots: every second the slot table is re-dealt from the counts then and the previous
 *    second's arrivals; arrivals in between take the next slot.
 *
 * Reported per scheduler, weights and trace: agreement (the share of the slot plane's
 * picks that IPVS, given the slot plane's own counts at that instant, would also have made
 * — ties count as agreement), and imbalance (the time-average of the most loaded server's
 * active/weight over the service's, 1.00 = perfectly even), IPVS's beside the slots'.
 *
 * Run: `npm run bench:lc` (no root, a few seconds).
 */
import { createScheduler, makeDest, mulberry32 } from '../src/scheduling/index.js';
import type { Dest } from '../src/scheduling/types.js';
import type { AnySchedulerName } from '../src/scheduling/types.js';
import { balanceSlots, RR_SLOTS, type MemberLoad } from '../src/dataplane/nft/slots.js';

const SECONDS = 300;

interface Trace { readonly name: string; readonly arrivals: { t: number; d: number }[] }

function trace(name: string, seed: number, rate: (t: number) => number, duration: (r: () => number) => number): Trace {
  const r = mulberry32(seed);
  const arrivals: { t: number; d: number }[] = [];
  let t = 0;
  while (t < SECONDS) {
    t += -Math.log(1 - r()) / rate(t);
    arrivals.push({ t, d: duration(r) });
  }
  return { name, arrivals };
}

const exp = (mean: number) => (r: () => number): number => -Math.log(1 - r()) * mean;
const TRACES: Trace[] = [
  trace('steady 300/s, 1.5 s mean (exponential)', 1, () => 300, exp(1.5)),
  trace('steady 300/s, 90% 0.2 s + 10% 20 s', 2, () => 300, (r) => (r() < 0.9 ? exp(0.2)(r) : exp(20)(r))),
  trace('bursts: 50/s and 1,000/s alternating every 5 s, 1.5 s mean', 3, (t) => (Math.floor(t / 5) % 2 === 0 ? 50 : 1000), exp(1.5)),
];

/** The scheduler's own cost of giving `d` the next connection (lower is better), for tie-aware agreement. */
function cost(s: AnySchedulerName, d: Dest): number {
  const oh = d.active * 256 + d.inactive;
  switch (s) {
    case 'lc': return oh;
    case 'sed': return (d.active + 1) / d.weight;
    case 'nq': return d.active === 0 ? -1 / d.weight : (d.active + 1) / d.weight;
    default: return oh / d.weight;
  }
}

function servers(weights: readonly number[]): Dest[] {
  return weights.map((w, i) => makeDest({ family: 'inet', address: `10.0.0.${11 + i}`, port: 80, weight: w, uthreshold: 0, lthreshold: 0 }));
}

function run(sched: AnySchedulerName, weights: readonly number[], tr: Trace): { agreement: number; imbIpvs: number; imbSlots: number } {
  const ipvs = servers(weights);
  const slot = servers(weights);
  const picker = createScheduler(sched);
  picker.update(ipvs);
  const judge = createScheduler(sched);
  judge.update(slot);
  // Departures: [time, system, index].
  const ends: { t: number; sys: 0 | 1; i: number }[] = [];
  const pushEnd = (e: { t: number; sys: 0 | 1; i: number }): void => {
    let lo = 0;
    let hi = ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if ((ends[mid]?.t ?? 0) < e.t) lo = mid + 1;
      else hi = mid;
    }
    ends.splice(lo, 0, e);
  };
  let table: number[] = [];
  let cursor = 0;
  let nextDeal = 0;
  const recent = new Array<number>(weights.length).fill(0);
  let agree = 0;
  let picks = 0;
  let imbI = 0;
  let imbS = 0;
  let samples = 0;
  let nextSample = 0;
  const totalW = weights.reduce((a, b) => a + b, 0);
  const imbalance = (ds: Dest[]): number => {
    const total = ds.reduce((a, d) => a + d.active, 0);
    if (total === 0) return 1;
    return Math.max(...ds.map((d) => d.active / d.weight)) / (total / totalW);
  };
  const advance = (t: number): void => {
    while (ends.length > 0 && (ends[0]?.t ?? Infinity) <= t) {
      const e = ends.shift();
      if (!e) break;
      const d = (e.sys === 0 ? ipvs : slot)[e.i];
      if (d) d.active--;
    }
    while (nextSample <= t) {
      if (nextSample > 10) {
        imbI += imbalance(ipvs);
        imbS += imbalance(slot);
        samples++;
      }
      nextSample += 0.1;
    }
    while (nextDeal <= t) {
      const load = new Map<number, MemberLoad>(slot.map((d, i) => [i, { ref: i, active: d.active, inactive: d.inactive, recent: recent[i] ?? 0, agentLoad: Number.NaN }]));
      table = balanceSlots(sched, slot.map((d, i) => ({ ref: i, address: d.address, port: d.port, weight: d.weight })), load, RR_SLOTS);
      recent.fill(0);
      cursor = 0;
      nextDeal += 1;
    }
  };
  for (const a of tr.arrivals) {
    advance(a.t);
    const p = picker.pick({ saddrFold: 0, sport: 0, daddrFold: 0, dport: 80 }, a.t);
    const pi = p ? ipvs.indexOf(p) : -1;
    if (p) {
      p.active++;
      pushEnd({ t: a.t + a.d, sys: 0, i: pi });
    }
    const si = table[cursor++ % Math.max(1, table.length)];
    if (si === undefined) continue;
    const chosen = slot[si];
    if (!chosen) continue;
    if (a.t > 10) {
      const best = judge.pick({ saddrFold: 0, sport: 0, daddrFold: 0, dport: 80 }, a.t);
      picks++;
      if (best && cost(sched, best) === cost(sched, chosen)) agree++;
    }
    chosen.active++;
    recent[si] = (recent[si] ?? 0) + 1;
    pushEnd({ t: a.t + a.d, sys: 1, i: si });
  }
  return { agreement: agree / Math.max(1, picks), imbIpvs: imbI / Math.max(1, samples), imbSlots: imbS / Math.max(1, samples) };
}

console.log(`least-connection family: slot table re-dealt each second vs IPVS per connection; ${SECONDS} s traces (first 10 s not scored)`);
console.log('| scheduler | weights | trace | agreement with IPVS | imbalance IPVS | imbalance slots |');
console.log('|---|---|---|---|---|---|');
for (const sched of ['lc', 'wlc', 'sed', 'nq'] as const) {
  for (const weights of [[1, 1, 1], [4, 2, 1]]) {
    if (sched === 'lc' && weights[0] !== 1) continue; // lc ignores weights
    for (const tr of TRACES) {
      const r = run(sched, weights, tr);
      console.log(`| ${sched} | ${weights.join(':')} | ${tr.name} | ${(100 * r.agreement).toFixed(1)}% | ${r.imbIpvs.toFixed(3)} | ${r.imbSlots.toFixed(3)} |`);
    }
  }
}
