/**
 * What a scheduler (or a change to the server set) will do, before applying it: replay a
 * synthetic workload — `clients` clients each opening `conns / clients` connections,
 * interleaved, held open (so least-connection schedulers see real load) — and count where
 * each flow and each persistence template lands. Deterministic: client addresses come from
 * the benchmarking range 198.18.0.0/15, source ports count up, time advances 1 ms a flow.
 */
import type { RealServer, VirtualServer } from '../model/types.js';
import { realServerKey } from '../model/keys.js';
import { addrFold, mulberry32 } from './hash.js';
import { persistenceScope, ServiceScheduler } from './service.js';
import type { FlowKey } from './types.js';

export interface SimOptions {
  readonly clients: number;
  readonly conns: number;
  readonly seed?: number;
}

export interface SimServerRow {
  readonly key: string;
  readonly weight: number;
  readonly conns: number;
}

export interface SimRun {
  readonly rows: readonly SimServerRow[];
  /** Flows no server took (none available). */
  readonly unscheduled: number;
  /** Per flow, the server key (or null). */
  readonly assignment: readonly (string | null)[];
  /** Per client template scope, the server key (persistent services only). */
  readonly templates: ReadonlyMap<string, string>;
}

export interface SimChange {
  readonly before: SimRun;
  readonly after: SimRun;
  /** Flows whose server still exists after the change but that went elsewhere. */
  readonly movedFlows: number;
  readonly comparableFlows: number;
  readonly movedTemplates: number;
  readonly comparableTemplates: number;
}

/** Client i's address: scattered over 198.18.0.0/15 (an odd multiplier is a bijection mod 2^17). */
export function clientAddress(i: number): string {
  const x = Math.imul(i, 40503) & 0x1ffff;
  return `198.${18 + (x >> 16)}.${(x >> 8) & 255}.${x & 255}`;
}

export function simulateRun(vs: VirtualServer, opts: SimOptions): SimRun {
  const sched = new ServiceScheduler(vs, { random: mulberry32(opts.seed ?? 1) });
  const perClient = Math.max(1, Math.ceil(opts.conns / Math.max(1, opts.clients)));
  const assignment: (string | null)[] = [];
  const vip = vs.endpoint.kind === 'address' ? addrFold(vs.endpoint.address) : 0;
  const dport = vs.endpoint.kind === 'address' ? vs.endpoint.port : 80;
  const folds = Array.from({ length: opts.clients }, (_, i) => addrFold(clientAddress(i)));
  const flow: FlowKey = { saddrFold: 0, sport: 0, daddrFold: vip, dport };
  let n = 0;
  let unscheduled = 0;
  for (let j = 0; j < perClient && n < opts.conns; j++) {
    for (let i = 0; i < opts.clients && n < opts.conns; i++, n++) {
      flow.saddrFold = folds[i] as number;
      flow.sport = 1024 + (j % 64000);
      const d = sched.schedule(flow, clientAddress(i), n / 1000);
      if (d === null) unscheduled++;
      assignment.push(d?.key ?? null);
    }
  }
  const counts = new Map<string, number>();
  for (const k of assignment) if (k !== null) counts.set(k, (counts.get(k) ?? 0) + 1);
  const templates = new Map<string, string>();
  if (vs.persistence) {
    const scope = persistenceScope(vs);
    for (const [k, v] of sched.templates.snapshot()) templates.set(k.slice(scope.length + 1), v);
  }
  return {
    rows: vs.realServers.map((r) => ({ key: realServerKey(r), weight: r.weight, conns: counts.get(realServerKey(r)) ?? 0 })),
    unscheduled, assignment, templates,
  };
}

export function simulateChange(before: VirtualServer, after: VirtualServer, opts: SimOptions): SimChange {
  const a = simulateRun(before, opts);
  const b = simulateRun(after, opts);
  const still = new Set(after.realServers.map((r) => realServerKey(r)));
  let movedFlows = 0;
  let comparableFlows = 0;
  a.assignment.forEach((k, i) => {
    if (k === null || !still.has(k)) return;
    comparableFlows++;
    if (b.assignment[i] !== k) movedFlows++;
  });
  let movedTemplates = 0;
  let comparableTemplates = 0;
  for (const [client, k] of a.templates) {
    if (!still.has(k)) continue;
    comparableTemplates++;
    if (b.templates.get(client) !== k) movedTemplates++;
  }
  return { before: a, after: b, movedFlows, comparableFlows, movedTemplates, comparableTemplates };
}

/** The service with a real server removed or added (`addr[:port]`, port defaulting to the service's). */
export function withServers(vs: VirtualServer, remove: readonly RealServer[], add: readonly RealServer[]): VirtualServer {
  const gone = new Set(remove.map((r) => realServerKey(r)));
  return { ...vs, realServers: [...vs.realServers.filter((r) => !gone.has(realServerKey(r))), ...add] };
}


