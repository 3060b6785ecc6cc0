/**
 * The load a `fulcrum agent` reports (0 idle … 100 saturated): a weighted average of CPU
 * utilisation (between two samples), load average per core, memory in use and established
 * TCP connections against a ceiling. Pure; the /proc readers below are the only I/O.
 */
import fs from 'node:fs';
import os from 'node:os';

export interface LoadSample {
  /** Jiffies the CPUs spent busy, and in all (from /proc/stat's `cpu` line). */
  readonly cpuBusy: number;
  readonly cpuTotal: number;
  readonly loadavg1: number;
  readonly cores: number;
  readonly memTotal: number;
  readonly memAvailable: number;
  readonly established: number;
}

export interface LoadWeights {
  readonly cpu: number;
  readonly loadavg: number;
  readonly memory: number;
  readonly connections: number;
  /** Established connections that count as 100%. */
  readonly maxConnections: number;
}

export const DEFAULT_LOAD_WEIGHTS: LoadWeights = { cpu: 1, loadavg: 1, memory: 1, connections: 1, maxConnections: 1000 };

export interface LoadBreakdown {
  readonly load: number;
  readonly cpu: number;
  readonly loadavg: number;
  readonly memory: number;
  readonly connections: number;
}

const pct = (x: number): number => Math.max(0, Math.min(100, x));

export function computeLoad(prev: LoadSample | null, cur: LoadSample, w: LoadWeights): LoadBreakdown {
  const dt = prev ? cur.cpuTotal - prev.cpuTotal : 0;
  const cpu = prev && dt > 0 ? pct(((cur.cpuBusy - prev.cpuBusy) / dt) * 100) : 0;
  const loadavg = pct((cur.loadavg1 / Math.max(1, cur.cores)) * 100);
  const memory = cur.memTotal > 0 ? pct((1 - cur.memAvailable / cur.memTotal) * 100) : 0;
  const connections = w.maxConnections > 0 ? pct((cur.established / w.maxConnections) * 100) : 0;
  const total = w.cpu + w.loadavg + w.memory + w.connections;
  const load = total > 0 ? Math.round((w.cpu * cpu + w.loadavg * loadavg + w.memory * memory + w.connections * connections) / total) : 0;
  return { load, cpu, loadavg, memory, connections };
}

/** Parse `cpu=1,load=2,memory=0,connections=1` over the defaults. */
export function parseWeights(s: string, base: LoadWeights = DEFAULT_LOAD_WEIGHTS): LoadWeights {
  const out: { -readonly [K in keyof LoadWeights]: number } = { ...base };
  const names: Record<string, keyof LoadWeights> = { cpu: 'cpu', load: 'loadavg', loadavg: 'loadavg', memory: 'memory', mem: 'memory', connections: 'connections', conns: 'connections' };
  for (const part of s.split(',').map((x) => x.trim()).filter(Boolean)) {
    const [k, v] = part.split('=');
    const key = names[k ?? ''];
    const n = Number(v);
    if (!key || v === undefined || !Number.isFinite(n) || n < 0) throw new Error(`bad weight '${part}': use cpu|load|memory|connections=N (N ≥ 0)`);
    out[key] = n;
  }
  return out;
}

/** Count ESTABLISHED (state 01) sockets in /proc/net/tcp and tcp6. */
export function countEstablished(texts: readonly string[]): number {
  let n = 0;
  for (const t of texts) {
    for (const line of t.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[3] === '01') n++;
    }
  }
  return n;
}

export function readSample(): LoadSample {
  const stat = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
  const j = stat.trim().split(/\s+/).slice(1).map(Number);
  const idle = (j[3] ?? 0) + (j[4] ?? 0);
  const total = j.slice(0, 8).reduce((a, b) => a + (Number.isFinite(b) ? b : 0), 0);
  const mem = fs.readFileSync('/proc/meminfo', 'utf8');
  const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(mem)?.[1] ?? 0);
  const tcp = ['/proc/net/tcp', '/proc/net/tcp6'].map((p) => { try { return fs.readFileSync(p, 'utf8'); } catch { return ''; } });
  return {
    cpuBusy: total - idle, cpuTotal: total, loadavg1: os.loadavg()[0] ?? 0, cores: os.cpus().length || 1,
    memTotal: kb('MemTotal'), memAvailable: kb('MemAvailable'), established: countEstablished(tcp),
  };
}
