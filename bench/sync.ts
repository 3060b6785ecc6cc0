/**
 * Connection sync at scale, in network namespaces (root): two `fulcrum run` directors with
 * a DR service, VRRPv3 (d1 MASTER, d2 BACKUP) and `lvs_sync_daemon eth0 VI_1`. The master's
 * kernel is given N DR connections at once (one nft transaction into its conn4 map, and
 * their packet counts past the sync threshold into seen4 — what the kernel holds after N
 * clients connected and talked); the clock runs until the backup reports all
 * N installed in its own kernel. Reported per run: that time, the entries per second, the
 * sync traffic (UDP payload bytes and Mbit/s), and the CPU time each director's process
 * (with its children) spent per synchronised connection, less what it spends idle over
 * the same time. The median of RUNS runs, each on a fresh pair of directors.
 *
 * No peer runs in the same measurement: IPVS's sync daemon is in the kernel's ip_vs module,
 * which this machine's kernel does not have (see docs/benchmarks.md).
 *
 * Run: `npm run bench:sync`. Env: BENCH_FLOWS (100000), BENCH_RUNS (3).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLab, isRoot, type Lab } from '../src/testing/netns.js';
import { ensureCommand } from '../src/testing/peers.js';
import { logEvent, startFulcrum, vrrpInstance } from '../src/testing/vrrp-lab.js';
import { apiRequest } from '../src/api/client.js';
import type { SyncStatus } from '../src/sync/index.js';

const FLOWS = Number(process.env['BENCH_FLOWS'] ?? 100_000);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const VIP = '10.68.0.100';
const HZ = 100;

/** utime + stime + cutime + cstime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ').map(Number);
  // Fields after the command: state(0) ppid(1) … utime(11) stime(12) cutime(13) cstime(14).
  return ((f[11] ?? 0) + (f[12] ?? 0) + (f[13] ?? 0) + (f[14] ?? 0)) / HZ;
}

/** Every process of a namespace: its total CPU seconds (the director, its VRRP child, nft). */
function nsCpu(lab: Lab, host: string): number {
  const pids = execFileSync('ip', ['netns', 'pids', `${lab.prefix}-${host}`], { encoding: 'utf8' }).trim();
  let sum = 0;
  for (const p of pids.split('\n').filter(Boolean)) {
    try {
      sum += cpuSeconds(Number(p));
    } catch {
      // gone
    }
  }
  return sum;
}

async function status(socket: string): Promise<SyncStatus> {
  return (await apiRequest<SyncStatus>({ socketPath: socket }, 'GET', '/v1/sync')).body;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RunResult { seconds: number; bytes: number; masterCpuUs: number; backupCpuUs: number; installed: number }

/** One run on a fresh pair of directors: N flows into the master's empty table. */
async function oneRun(run: number): Promise<RunResult> {
  const lab = createLab('fbs');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-sync-'));
  try {
    for (const [h, n] of [['d1', 2], ['d2', 3]] as const) lab.host(h, `10.68.0.${n}`);
    const conf = (priority: number): string => 'global_defs {\n  lvs_sync_daemon eth0 VI_1 id 1\n}\n'
      + vrrpInstance({ vrid: 68, priority, version: 3, advert: 0.1, vip: `${VIP}/32` })
      + `virtual_server ${VIP} 80 {\n  lb_algo wrr\n  lb_kind DR\n  real_server 10.68.0.11 80 {\n  }\n  real_server 10.68.0.12 80 {\n  }\n}\n`;
    const d1 = startFulcrum(lab, 'd1', dir, conf(254));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 15_000);
    const d2 = startFulcrum(lab, 'd2', dir, conf(250));
    await d2.waitLine(logEvent('vrrp-transition', { to: 'BACKUP' }), 15_000);
    for (let i = 0; i < 100; i++) {
      try {
        if ((await status(d2.socket)).role === 'backup' && (await status(d1.socket)).role === 'master') break;
      } catch {
        // the API is not up yet
      }
      await sleep(100);
    }
    const be = lab.exec('d1', 'nft', ['list', 'map', 'netdev', 'fulcrum', 'be4']);
    const marks = [...be.matchAll(/(0x[0-9a-f]+) : 10\.68\.0\.1[12]/g)].map((m) => m[1] as string);
    if (marks.length !== 2) throw new Error(`the master's be4: ${be}`);
    {
      // The idle cost over a similar span, to subtract.
      const idle0 = [nsCpu(lab, 'd1'), nsCpu(lab, 'd2')];
      await sleep(3000);
      const idlePerSec = [(nsCpu(lab, 'd1') - (idle0[0] ?? 0)) / 3, (nsCpu(lab, 'd2') - (idle0[1] ?? 0)) / 3];
      const before = await status(d2.socket);
      const sentBefore = (await status(d1.socket)).sent.bytes;
      const cmds: string[] = [];
      for (let i = 0; i < FLOWS; i += 1000) {
        const els: string[] = [];
        const seen: string[] = [];
        for (let k = i; k < Math.min(FLOWS, i + 1000); k++) {
          const client = `10.${200 + run}.${(k >> 8) & 255}.${k & 255}`;
          els.push(`0x00001000 . ${client} . ${1024 + (k >> 16)} timeout 900s : ${marks[k % 2]}`);
          // Past the sync threshold, as the kernel counts a connection that has talked.
          seen.push(`0x00001000 . ${client} . ${1024 + (k >> 16)} counter packets 10 bytes 1000 timeout 900s`);
        }
        cmds.push(`add element netdev fulcrum conn4 { ${els.join(', ')} }`, `add element netdev fulcrum seen4 { ${seen.join(', ')} }`);
      }
      const file = path.join(dir, `seed${run}.nft`);
      fs.writeFileSync(file, `${cmds.join('\n')}\n`);
      const cpu0 = [nsCpu(lab, 'd1'), nsCpu(lab, 'd2')];
      const s0 = performance.now();
      lab.exec('d1', 'nft', ['-f', file], 120_000);
      // The clock starts once the master's kernel holds them all (the seeding is nft's time).
      const t0 = performance.now();
      const seedS = (t0 - s0) / 1000;
      let st = before;
      const deadline = Date.now() + 300_000;
      let lastLog = Date.now();
      while (st.installed - before.installed < FLOWS && Date.now() < deadline) {
        await sleep(50);
        st = await status(d2.socket);
        if (Date.now() - lastLog > 5000 || process.env['BENCH_DEBUG']) {
          lastLog = Date.now();
          const m = await status(d1.socket);
          console.error(`  … master sent ${m.sent.entries} entries (${m.sent.errors} errors, lag ${m.lag.send}); backup received ${st.received.entries}, installed ${st.installed - before.installed}, queued ${st.queued}, refused ${JSON.stringify(st.refused)}`);
        }
      }
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = [nsCpu(lab, 'd1'), nsCpu(lab, 'd2')];
      const sent = (await status(d1.socket)).sent.bytes - sentBefore;
      const installed = st.installed - before.installed;
      const per = (k: 0 | 1): number => Math.max(0, ((cpu1[k] ?? 0) - (cpu0[k] ?? 0) - (idlePerSec[k] ?? 0) * (seconds + seedS)) * 1e6 / Math.max(1, installed));
      const r: RunResult = { seconds, bytes: sent, masterCpuUs: per(0), backupCpuUs: per(1), installed };
      console.log(`run ${run + 1}: seeded the master's conn4 in ${seedS.toFixed(2)} s; ${installed}/${FLOWS} installed on the backup ${seconds.toFixed(2)} s after (${(installed / seconds).toFixed(0)} flows/s); `
        + `${(sent / 1e6).toFixed(2)} MB sent (${((sent * 8) / seconds / 1e6).toFixed(1)} Mbit/s, ${(sent / Math.max(1, installed)).toFixed(1)} B/flow); `
        + `CPU per synced flow: master ${r.masterCpuUs.toFixed(1)} µs, backup ${r.backupCpuUs.toFixed(1)} µs; refused ${JSON.stringify(st.refused)}`);
      return r;
    }
  } finally {
    await lab.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  ensureCommand('nft', 'nftables');
  const results: RunResult[] = [];
  for (let run = 0; run < RUNS; run++) results.push(await oneRun(run));
  {
    const med = (f: (r: RunResult) => number): number => {
      const v = results.map(f).sort((a, b) => a - b);
      return v[Math.floor(v.length / 2)] ?? 0;
    };
    console.log(`median of ${RUNS}: ${FLOWS} flows in ${med((r) => r.seconds).toFixed(2)} s; ${(med((r) => r.bytes) / 1e6).toFixed(2)} MB; `
      + `master ${med((r) => r.masterCpuUs).toFixed(1)} µs/flow, backup ${med((r) => r.backupCpuUs).toFixed(1)} µs/flow`);
  }
}

if (!isRoot()) {
  console.error('bench:sync needs root (network namespaces, nftables)');
  process.exit(1);
}
console.log(`machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? '?'}, ${os.release()}, node ${process.version}; ${new Date().toISOString()}`);
await main();
