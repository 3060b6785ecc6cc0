/**
 * `fulcrum sim`: show the distribution a service's scheduler produces for a synthetic
 * workload and, with --remove/--add, how many flows and persistence templates a change of
 * the server set moves — before touching production.
 */
import fs from 'node:fs';
import { loadKeepalivedConfig, parseHostPort, parseIpvsadmRules } from '../config/index.js';
import { formatDiagnostic, type Diagnostic } from '../errors/index.js';
import { formatHostPort } from '../model/address.js';
import { serviceKey } from '../model/keys.js';
import { isSchedulerName, type RealServer, type VirtualServer } from '../model/types.js';
import { simulateChange, simulateRun, withServers, type SimRun } from '../scheduling/index.js';
import type { Io } from './check.js';

export interface SimCliOptions {
  readonly file?: string | undefined;
  readonly ipvsadm?: string | undefined;
  readonly service: string;
  readonly protocol: string;
  readonly clients: string;
  readonly conns: string;
  readonly remove: string[];
  readonly add: string[];
  readonly scheduler?: string | undefined;
  readonly seed: string;
  readonly configId?: string | undefined;
}

function pct(n: number, d: number): string {
  return d === 0 ? '-' : `${((100 * n) / d).toFixed(1)}%`;
}

function table(run: SimRun, total: number): string[] {
  const weightSum = run.rows.reduce((s, r) => s + r.weight, 0);
  const lines = [`  ${'Real server'.padEnd(40)} ${'Weight'.padStart(6)} ${'Conns'.padStart(9)} ${'Share'.padStart(7)} ${'ByWeight'.padStart(8)}`];
  for (const r of run.rows) {
    lines.push(`  ${r.key.padEnd(40)} ${String(r.weight).padStart(6)} ${String(r.conns).padStart(9)} ${pct(r.conns, total).padStart(7)} ${pct(r.weight, weightSum).padStart(8)}`);
  }
  if (run.unscheduled > 0) lines.push(`  ${'(no server available)'.padEnd(40)} ${''.padStart(6)} ${String(run.unscheduled).padStart(9)} ${pct(run.unscheduled, total).padStart(7)}`);
  return lines;
}

function server(vs: VirtualServer, text: string, io: Io): RealServer | undefined {
  const hp = parseHostPort(text);
  if (!hp) {
    io.err(`fulcrum sim: '${text}' is not ADDRESS[:PORT]`);
    return undefined;
  }
  const port = hp.port ?? (vs.endpoint.kind === 'address' ? vs.endpoint.port : 0);
  const like = vs.realServers[0];
  return {
    family: hp.family, address: hp.address, port, weight: like?.weight ?? 1, method: like?.method ?? vs.method,
    uthreshold: 0, lthreshold: 0, inhibitOnFailure: false, alpha: false, checkers: [],
  };
}

/** The virtual servers of the keepalived.conf (-f) or ipvsadm rules (--ipvsadm) given. */
function loadServices(o: SimCliOptions): { ok: boolean; diagnostics: readonly Diagnostic[]; services: readonly VirtualServer[] } {
  if (o.file !== undefined) {
    const r = loadKeepalivedConfig(o.file, o.configId !== undefined ? { configId: o.configId } : {});
    return { ok: r.ok, diagnostics: r.diagnostics, services: r.config.virtualServers };
  }
  const r = parseIpvsadmRules(fs.readFileSync(o.ipvsadm as string, 'utf8'), o.ipvsadm);
  return { ok: r.ok, diagnostics: r.diagnostics, services: r.virtualServers };
}

export function runSim(o: SimCliOptions, io: Io): number {
  const clients = Number(o.clients);
  const conns = Number(o.conns);
  if (!Number.isInteger(clients) || clients < 1 || clients > 10_000_000 || !Number.isInteger(conns) || conns < 1 || conns > 50_000_000) {
    io.err('fulcrum sim: --clients and --conns must be positive integers (≤ 10,000,000 and 50,000,000)');
    return 2;
  }
  if ((o.file === undefined) === (o.ipvsadm === undefined)) {
    io.err('fulcrum sim: give exactly one of -f FILE or --ipvsadm FILE');
    return 2;
  }
  const loaded = loadServices(o);
  if (!loaded.ok) {
    for (const d of loaded.diagnostics) if (d.severity === 'error') io.err(formatDiagnostic(d));
    return 1;
  }
  const services: readonly VirtualServer[] = loaded.services;
  const want = /^(fwmark|group) /.test(o.service) ? o.service : (() => {
    const hp = parseHostPort(o.service);
    return hp ? `${o.protocol} ${formatHostPort(hp.address, hp.port ?? 0)}` : o.service;
  })();
  let vs = services.find((s) => serviceKey(s) === want || serviceKey(s) === `${want} inet`);
  if (!vs) {
    io.err(`fulcrum sim: no virtual server '${want}'; the file has: ${services.map((s) => serviceKey(s)).join(', ') || 'none'}`);
    return 1;
  }
  if (o.scheduler !== undefined) {
    if (!isSchedulerName(o.scheduler)) {
      io.err(`fulcrum sim: unknown scheduler '${o.scheduler}'`);
      return 2;
    }
    vs = { ...vs, scheduler: o.scheduler };
  }
  const base = vs;
  const remove = o.remove.map((t) => server(base, t, io));
  const add = o.add.map((t) => server(base, t, io));
  if (remove.includes(undefined) || add.includes(undefined)) return 2;
  const opts = { clients, conns, seed: Number(o.seed) || 1 };
  const p = vs.persistence;
  io.out(`Service ${serviceKey(vs)}  scheduler ${vs.scheduler}${vs.schedFlags.length ? ` (${vs.schedFlags.join(',')})` : ''}  persistence ${p ? `${p.timeout}s /${p.prefixLength}` : 'none'}`);
  io.out(`Workload: ${clients} clients, ${conns} connections, held open, interleaved across clients`);
  if (remove.length === 0 && add.length === 0) {
    const run = simulateRun(vs, opts);
    io.out(table(run, conns).join('\n'));
    return 0;
  }
  const after = withServers(vs, remove as RealServer[], add as RealServer[]);
  const ch = simulateChange(vs, after, opts);
  io.out('Before:');
  io.out(table(ch.before, conns).join('\n'));
  io.out(`After${o.remove.map((r) => ` --remove ${r}`).join('')}${o.add.map((a) => ` --add ${a}`).join('')}:`);
  io.out(table(ch.after, conns).join('\n'));
  io.out(`Moved: ${pct(ch.movedFlows, ch.comparableFlows)} of flows whose server remains (${ch.movedFlows} of ${ch.comparableFlows})`);
  if (p) io.out(`Moved: ${pct(ch.movedTemplates, ch.comparableTemplates)} of persistence templates whose server remains (${ch.movedTemplates} of ${ch.comparableTemplates})`);
  return 0;
}
