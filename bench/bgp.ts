/**
 * BGP announcement latency, in network namespaces (root): three `fulcrum run` directors
 * announcing one VIP through their own gobgpd to a BIRD 2 router (the lab of
 * test/bgp.test.ts). Measured on the router's kernel FIB (`ip route`, read every 5 ms):
 *
 *  - quorum lost → withdrawn: d1's two real servers set to weight 0 through the API
 *    (the change is applied when the call returns) until d1 leaves the VIP's next hops;
 *  - quorum back → installed: weights back to 1 until d1 is a next hop again;
 *  - clean stop → withdrawn: SIGTERM to d1 until it leaves the next hops;
 *  - cold start → installed: `fulcrum run` started until it is a next hop (gobgpd started,
 *    session opened, route sent, FIB written).
 *
 * Each run repeats the quorum cycle CYCLES times; the median of RUNS runs is reported.
 * No peer runs in the same measurement: neither keepalived nor HAProxy announces routes
 * (see docs/benchmarks.md). Run: `npm run bench:bgp`. Env: BENCH_RUNS (3), BENCH_CYCLES (5).
 */
import os from 'node:os';
import fs from 'node:fs';
import path from 'node:path';
import { createLab, isRoot, type Lab } from '../src/testing/netns.js';
import { BGP_VIP, bgpLab, hopsOf, nextHops } from '../src/testing/bgp-lab.js';
import { apiRequest } from '../src/api/client.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const CYCLES = Number(process.env['BENCH_CYCLES'] ?? 5);

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function waitHops(lab: Lab, pred: (hops: string[]) => boolean, timeoutMs: number, what: string): Promise<number> {
  const t0 = performance.now();
  for (;;) {
    if (pred(nextHops(lab))) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function setWeights(socket: string, weight: number): Promise<void> {
  for (const rs of ['10.64.0.11:80', '10.64.0.12:80']) {
    const r = await apiRequest({ socketPath: socket }, 'PATCH', `/v1/services/${encodeURIComponent(`tcp ${BGP_VIP}:80`)}/servers/${encodeURIComponent(rs)}`, { weight });
    if (r.status !== 200) throw new Error(`weight change refused: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

async function run(i: number): Promise<{ withdraw: number[]; install: number[]; stop: number; cold: number }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-bgp-'));
  const lab = createLab(`fbb${i}${process.pid % 1000}`);
  try {
    const L = await bgpLab(lab, dir, [80]);
    for (const d of ['d2', 'd3'] as const) L.start(d);
    await waitHops(lab, (h) => h.length === 2, 30_000, 'two next hops');
    const tc = performance.now();
    L.start('d1');
    await waitHops(lab, (h) => h.includes(hopsOf('d1')[0] as string), 30_000, 'd1 to be a next hop');
    const cold = performance.now() - tc;
    const d1 = hopsOf('d1')[0] as string;
    const withdraw: number[] = [];
    const install: number[] = [];
    for (let c = 0; c < CYCLES; c++) {
      await setWeights(L.socket('d1'), 0);
      withdraw.push(await waitHops(lab, (h) => !h.includes(d1) && h.length === 2, 10_000, 'd1 withdrawn'));
      await setWeights(L.socket('d1'), 1);
      install.push(await waitHops(lab, (h) => h.includes(d1), 10_000, 'd1 installed'));
    }
    const p = L.procs.get('d1');
    p?.child.kill('SIGTERM');
    const stop = await waitHops(lab, (h) => !h.includes(d1), 10_000, 'd1 withdrawn at stop');
    return { withdraw, install, stop, cold };
  } finally {
    await lab.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('bench:bgp needs root (network namespaces)');
  const results = [];
  for (let i = 0; i < RUNS; i++) {
    const r = await run(i);
    const line = { run: i + 1, withdrawMs: median(r.withdraw), installMs: median(r.install), stopMs: r.stop, coldStartMs: r.cold };
    console.log(JSON.stringify({ ...line, withdrawAll: r.withdraw.map((x) => Math.round(x)), installAll: r.install.map((x) => Math.round(x)) }));
    results.push(line);
  }
  console.log(JSON.stringify({
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}`, date: new Date().toISOString(), runs: RUNS, cycles: CYCLES,
    medianMs: {
      quorumLostToWithdrawn: Math.round(median(results.map((r) => r.withdrawMs))),
      quorumBackToInstalled: Math.round(median(results.map((r) => r.installMs))),
      cleanStopToWithdrawn: Math.round(median(results.map((r) => r.stopMs))),
      coldStartToInstalled: Math.round(median(results.map((r) => r.coldStartMs))),
    },
  }));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
