/**
 * Director failover as a client sees it: two directors on a bridged segment of network
 * namespaces, VRRPv3 with advert_int 0.1 (backup priority 250 → skew 2.3 ms), a client
 * loop against VIP:8080 (a connection every ~6 ms), and a SIGKILL of the master's whole
 * namespace. Measured: the longest gap between successful requests.
 *
 * - Fulcrum: `fulcrum run` on each director, the VIP's listener (a proxied service, real
 *   server on the director's loopback) following MASTER/BACKUP.
 * - keepalived: Debian's keepalived moving the VIP between hosts whose server listens on
 *   every address (no proxy in the path) — the peer, in the same run.
 *
 * Run: `npm run bench:vrrp` (root; installs keepalived if missing). Env: BENCH_ROUNDS (7).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLab, isRoot } from '../src/testing/netns.js';
import { measureFailover, type FailoverResult } from '../src/testing/vrrp-lab.js';

const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 7);

function pct(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
}

async function rounds(kind: 'fulcrum' | 'keepalived'): Promise<FailoverResult[]> {
  const out: FailoverResult[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const prefix = `fbv${kind[0]}${i}`;
    const lab = createLab(prefix);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-bench-vrrp-'));
    try {
      lab.host('c', '10.68.0.9');
      lab.host('d1', '10.68.0.2');
      lab.host('d2', '10.68.0.3');
      // Crash at a different phase of the advert cycle each round.
      out.push(await measureFailover(lab, dir, kind, '10.68.0.100', { advert: 0.1, priorities: [254, 250], crashAfterMs: 800 + i * 37, probeMs: 2500 }));
    } finally {
      await lab.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

async function main(): Promise<void> {
  if (!isRoot()) throw new Error('bench:vrrp needs root (network namespaces, raw sockets)');
  const f = await rounds('fulcrum');
  const k = await rounds('keepalived');
  const line = (name: string, r: FailoverResult[]): string => {
    const o = r.map((x) => x.outageMs);
    return `${name.padEnd(11)} outage ms: min ${Math.min(...o).toFixed(0)}  p50 ${pct(o, 50).toFixed(0)}  max ${Math.max(...o).toFixed(0)}  (all: ${o.map((x) => x.toFixed(0)).join(', ')})`;
  };
  process.stdout.write(`VRRPv3 advert_int 0.1, backup priority 250: Master_Down_Interval ${f[0]?.expectedMs.toFixed(1)} ms; ${ROUNDS} crashes each\n`);
  process.stdout.write(`${line('fulcrum', f)}\n${line('keepalived', k)}\n`);
  const fo = f.map((x) => x.outageMs);
  const ko = k.map((x) => x.outageMs);
  process.stdout.write(`ratio fulcrum/keepalived: p50 ${(pct(fo, 50) / pct(ko, 50)).toFixed(2)}×  max ${(Math.max(...fo) / Math.max(...ko)).toFixed(2)}×\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exitCode = 1;
});
