/**
 * Scheduling micro-benchmarks: decisions per second per scheduler at N = 10 and N = 1000
 * real servers, Maglev table build time (N = 1000, M = 65537), and allocation per decision.
 *
 * Allocation check: each timed loop runs between two forced GCs (node --expose-gc); the
 * heap growth over the loop divided by the decisions is the bytes allocated per decision,
 * and a PerformanceObserver counts garbage collections that happened inside the loop. A
 * pick that allocated even 16 bytes would show ≥ 16 B/decision and several scavenges over
 * millions of decisions.
 *
 * Run: npm run bench:scheduling   (prints a Markdown table; see docs/benchmarks.md)
 */
import os from 'node:os';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import v8 from 'node:v8';
import { ALL_SCHEDULERS, buildMaglevTable, createScheduler, makeDest, memberId, mulberry32, type Dest, type FlowKey } from '../src/scheduling/index.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error('run with node --expose-gc (npm run bench:scheduling does)');
  process.exit(2);
}
let gcCount = 0;
new PerformanceObserver((list) => { gcCount += list.getEntries().length; }).observe({ entryTypes: ['gc'] });

function dests(n: number, rnd: () => number): Dest[] {
  return Array.from({ length: n }, (_, i) => {
    const d = makeDest({ family: 'inet', address: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, port: 80, weight: 1 + (i % 5), uthreshold: 0, lthreshold: 0 });
    d.active = Math.floor(rnd() * 100);
    d.inactive = Math.floor(rnd() * 100);
    d.agentLoad = Math.floor(rnd() * 100);
    return d;
  });
}

const FLOWS = 1 << 14;
function flows(rnd: () => number): FlowKey[] {
  return Array.from({ length: FLOWS }, () => ({
    saddrFold: Math.floor(rnd() * 2 ** 32), sport: Math.floor(rnd() * 65536), daddrFold: Math.floor(rnd() * 256), dport: 80,
  }));
}

interface Row { name: string; n: number; perSec: number; bytesPerPick: number; gcs: number; picks: number }

async function measure(name: (typeof ALL_SCHEDULERS)[number], n: number): Promise<Row> {
  const rnd = mulberry32(n * 31 + name.length);
  const ds = dests(n, rnd);
  const fs = flows(rnd);
  const s = createScheduler(name, { random: mulberry32(9) });
  s.update(ds);
  // Warm up (JIT, and lblc/lblcr locality tables for the 256 destination addresses).
  for (let i = 0; i < 50_000; i++) s.pick(fs[i & (FLOWS - 1)] as FlowKey, 0);
  // Size the run to about 0.4 s from a short probe.
  let t0 = performance.now();
  for (let i = 0; i < 20_000; i++) s.pick(fs[i & (FLOWS - 1)] as FlowKey, 0);
  const per = (performance.now() - t0) / 20_000;
  const picks = Math.max(100_000, Math.min(20_000_000, Math.floor(400 / per)));
  gc?.();
  await new Promise((r) => setImmediate(r));
  const gcBefore = gcCount;
  const heap0 = v8.getHeapStatistics().used_heap_size;
  t0 = performance.now();
  let sink = 0;
  for (let i = 0; i < picks; i++) {
    const d = s.pick(fs[i & (FLOWS - 1)] as FlowKey, 0);
    if (d !== null) sink += d.port;
  }
  const ms = performance.now() - t0;
  const heap1 = v8.getHeapStatistics().used_heap_size;
  await new Promise((r) => setImmediate(r));
  if (sink === -1) console.log('');
  return { name, n, perSec: (picks / ms) * 1000, bytesPerPick: Math.max(0, heap1 - heap0) / picks, gcs: gcCount - gcBefore, picks };
}

function maglevBuild(n: number, m: number, runs: number): { median: number; min: number } {
  const members = Array.from({ length: n }, (_, i) => ({ id: memberId((0x0a000000 + i) >>> 0, 80), weight: 1 }));
  buildMaglevTable(members, m);
  const times: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    buildMaglevTable(members, m);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(runs / 2)] as number, min: times[0] as number };
}

async function main(): Promise<void> {
  const cpu = os.cpus()[0]?.model ?? 'unknown cpu';
  console.log(`# Scheduling benchmark — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${cpu}, ${os.cpus().length} cores\n`);
  console.log('| scheduler | N | decisions/s | bytes/decision | GCs in loop | decisions |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  for (const n of [10, 1000]) {
    for (const name of ALL_SCHEDULERS) {
      const r = await measure(name, n);
      console.log(`| ${r.name} | ${r.n} | ${Math.round(r.perSec).toLocaleString('en-US')} | ${r.bytesPerPick.toFixed(3)} | ${r.gcs} | ${r.picks.toLocaleString('en-US')} |`);
    }
  }
  const mg = maglevBuild(1000, 65537, 21);
  console.log(`\nMaglev table build, N = 1000, M = 65537: median ${mg.median.toFixed(2)} ms, min ${mg.min.toFixed(2)} ms (21 runs); published C++ figure 1.8 ms → ratio ${(mg.median / 1.8).toFixed(2)}×`);
  const mg2 = maglevBuild(1000, 131071, 11);
  console.log(`Maglev table build, N = 1000, M = 131071 (IPVS's largest size): median ${mg2.median.toFixed(2)} ms`);
}

void main();
