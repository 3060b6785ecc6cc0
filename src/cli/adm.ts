/**
 * `fulcrum adm`: ipvsadm's grammar and output against a running Fulcrum, through the
 * control API (the unix socket by default; `--url` + `--token-file` over TCP).
 *
 *   fulcrum adm -L -n [--stats|--rate|--exact|--thresholds|--persistent-conn] [-t|-u|-f SERVICE]
 *   fulcrum adm -L --timeout | -L -c
 *   fulcrum adm -A|-E|-D|-a|-e|-d|-C|-Z|--set …     (one change, all or nothing)
 *   fulcrum adm -S [-n]  /  fulcrum adm -R < rules   (the save format round-trips)
 *   fulcrum adm drain RS [-t|-u|-f SERVICE] [--deadline 10m] [--no-wait]
 *   fulcrum adm undrain RS [-t|-u|-f SERVICE]       (cancel a drain, restore the weight)
 *   fulcrum adm runtime [--forget]
 *
 * A command line is parsed here first, so a typo is reported with its position before
 * anything is sent. Refusals print ipvsadm's message ("Service already exists") and exit 1;
 * usage errors exit 2.
 */
import fs from 'node:fs';
import { DiagnosticSink, formatDiagnostic } from '../errors/index.js';
import {
  formatConnections, formatList, formatTimeouts, joinArgs, parseHostPort, parseIpvsadmLine, serviceIdKey, splitLine, type ArgToken, type IpvsCommand,
} from '../config/ipvsadm/index.js';
import type { ConnectionEntry, ServiceStats, Timeouts } from '../dataplane/index.js';
import type { DrainStatus } from '../daemon/index.js';
import type { SyncStatus } from '../sync/index.js';
import { apiRequest, type ApiResponse, type ApiTarget } from '../api/client.js';
import { defaultPaths } from './paths.js';
import type { NameLookup } from '../config/ipvsadm/list.js';
import type { NameSources } from './names.js';
import type { Io } from './check.js';

export const ADM_USAGE = `Usage: fulcrum adm [--socket PATH | --url URL --token-file FILE] <ipvsadm arguments>
       fulcrum adm drain RS [-t|-u SERVICE | -f MARK] [--deadline 10m] [--no-wait]
       fulcrum adm undrain RS [-t|-u SERVICE | -f MARK]
       fulcrum adm runtime [--forget]
ipvsadm commands: -A -E -D (services: -t/-u/-f, -s, -p [timeout], -M, -b, -o), -a -e -d (real servers:
-r, -g/-m/-i/--proxy, -w, -x, -y), -C, -Z, -L/-l [-n] [--stats|--rate|--exact|--thresholds|
--persistent-conn|--timeout|--daemon] [-c], -S [-n], -R (reads stdin), --set tcp tcpfin udp,
--start-daemon master|backup --mcast-interface IF [--syncid N] [--sync-maxlen N] [--mcast-group ADDR]
[--mcast-port P] [--mcast-ttl T], --stop-daemon master|backup.`;

export interface AdmDeps {
  /** Standard input for -R. */
  readonly stdin?: () => string;
  /** Milliseconds between drain progress checks. */
  readonly pollMs?: number;
  /** Where -L without -n finds names (default: /etc/hosts, /etc/services, DNS within 1 s). */
  readonly names?: () => NameSources;
}

/** The names -L prints without -n; undefined with -n (numeric, no lookups at all). */
async function listNames(numeric: boolean, addresses: Iterable<string>, deps: AdmDeps): Promise<NameLookup | undefined> {
  if (numeric) return undefined;
  const { resolveNames, systemNameSources } = await import('./names.js');
  return resolveNames(addresses, deps.names?.() ?? systemNameSources(1000));
}

/** `10m`, `90s`, `1h`, `2h30m`, or plain seconds → seconds; null when it is none of these. */
export function parseDuration(text: string): number | null {
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+(?:\.\d+)?)(h|m|s)/gy;
  let total = 0;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(text)) !== null) {
    total += Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
    end = re.lastIndex;
  }
  return end === text.length && end > 0 ? total : null;
}

function tokens(words: readonly string[]): ArgToken[] {
  // Columns count through the command line as typed (words joined by one space).
  let col = 1;
  return words.map((text) => {
    const t = { text, loc: { file: 'fulcrum adm', line: 1, col } };
    col += text.length + 1;
    return t;
  });
}


function errorOf(r: ApiResponse): string {
  const b = r.body as { error?: { message?: string; errors?: string[] } } | string;
  if (typeof b === 'object' && b !== null && b.error?.message) return [b.error.message, ...(b.error.errors ?? [])].join('\n');
  return `HTTP ${r.status}: ${r.text.slice(0, 200)}`;
}

/**
 * `ipvsadm -L --daemon`: one line per running role, as ipvsadm prints them
 * (`master sync daemon (mcast=eth0, syncid=1, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)`).
 */
export function formatDaemons(s: SyncStatus): string[] {
  const c = s.config;
  if (!c) return [];
  const roles = s.role === 'master+backup' ? ['master', 'backup'] : s.role === 'stopped' ? [] : [s.role];
  return roles.map((r) => `${r} sync daemon (mcast=${c.interface}, syncid=${c.syncid}, maxlen=${c.maxlen}, group=${c.group}, port=${c.port}, ttl=${c.ttl})`);
}

export async function runAdm(argv: readonly string[], io: Io, deps: AdmDeps = {}): Promise<number> {
  // Connection options come first.
  const args = [...argv];
  let socketPath = defaultPaths().socket;
  let url: string | undefined;
  let tokenFile: string | undefined;
  while (args.length > 0 && ['--socket', '--url', '--token-file'].includes(args[0] as string)) {
    const opt = args.shift() as string;
    const v = args.shift();
    if (v === undefined) {
      io.err(`fulcrum adm: ${opt} needs a value`);
      return 2;
    }
    if (opt === '--socket') socketPath = v;
    else if (opt === '--url') url = v;
    else tokenFile = v;
  }
  if (args.length === 0 || args[0] === '-h' || args[0] === '--help') {
    io.out(ADM_USAGE);
    return args.length === 0 ? 2 : 0;
  }
  let token: string | undefined;
  if (tokenFile !== undefined) {
    try {
      token = fs.readFileSync(tokenFile, 'utf8').trim();
    } catch (err: unknown) {
      io.err(`fulcrum adm: --token-file: ${err instanceof Error ? err.message : String(err)}`);
      return 2;
    }
  }
  const target: ApiTarget = url !== undefined ? { url, token } : { socketPath, token };
  try {
    if (args[0] === 'drain') return await drain(args.slice(1), target, io, deps);
    if (args[0] === 'undrain') return await undrain(args.slice(1), target, io);
    if (args[0] === 'runtime') return await runtime(args.slice(1), target, io);
    return await ipvsadm(args, target, io, deps);
  } catch (err: unknown) {
    io.err(`fulcrum adm: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

function parseLine(words: readonly string[], io: Io): IpvsCommand | null {
  const sink = new DiagnosticSink();
  const cmd = parseIpvsadmLine(tokens(words), sink);
  const errs = sink.items.filter((d) => d.severity === 'error');
  if (!cmd || errs.length > 0) {
    for (const e of errs) io.err(formatDiagnostic(e));
    if (errs.length === 0) io.err(ADM_USAGE);
    return null;
  }
  return cmd;
}

async function change(target: ApiTarget, lines: readonly string[], io: Io): Promise<number> {
  const r = await apiRequest<{ failed?: string[] }>(target, 'POST', '/v1/ipvsadm', { commands: lines });
  if (r.status === 200) {
    // Recorded, but the data plane has not taken all of it yet (an address not on this host
    // yet is retried every 5 s): say so, and exit non-zero as ipvsadm would.
    const failed = r.body.failed ?? [];
    for (const f of failed) io.err(`not applied yet (retried): ${f}`);
    return failed.length > 0 ? 1 : 0;
  }
  const body = r.body as { error?: { index?: number } };
  const at = lines.length > 1 && body.error?.index !== undefined ? `line ${body.error.index + 1}: ` : '';
  io.err(`${at}${errorOf(r)}`);
  return r.status === 400 ? 2 : 1;
}

async function get<T>(target: ApiTarget, path: string): Promise<T> {
  const r = await apiRequest<T>(target, 'GET', path);
  if (r.status !== 200) throw new Error(errorOf(r));
  return r.body;
}

async function ipvsadm(words: readonly string[], target: ApiTarget, io: Io, deps: AdmDeps): Promise<number> {
  const cmd = parseLine(words, io);
  if (!cmd) return 2;
  switch (cmd.op) {
    case 'start-daemon':
    case 'stop-daemon': {
      const body = cmd.op === 'start-daemon' ? { action: 'start', role: cmd.role, ...cmd.sync } : { action: 'stop', role: cmd.role };
      const r = await apiRequest<SyncStatus>(target, 'POST', '/v1/sync', body);
      if (r.status !== 200) {
        io.err(errorOf(r));
        return 1;
      }
      return 0;
    }
    case 'list': {
      const f = cmd.flags;
      if (f.has('daemon')) {
        for (const l of formatDaemons(await get<SyncStatus>(target, '/v1/sync'))) io.out(l);
        return 0;
      }
      if (f.has('timeout')) {
        io.out(formatTimeouts(await get<Timeouts>(target, '/v1/timeouts')));
        return 0;
      }
      if (f.has('connection')) {
        const conns = await get<ConnectionEntry[]>(target, '/v1/connections');
        const names = await listNames(f.has('numeric'), conns.flatMap((c) => [c.client.address, c.virtual.address, parseHostPort(c.server)?.address ?? c.server]), deps);
        for (const l of formatConnections(conns, names)) io.out(l);
        return 0;
      }
      let stats = await get<ServiceStats[]>(target, '/v1/stats');
      if (cmd.service) {
        const key = serviceIdKey(cmd.service);
        stats = stats.filter((s) => s.spec.key === key);
        if (stats.length === 0) {
          io.err('No such service');
          return 1;
        }
      }
      const addresses = stats.flatMap((s) => [
        ...(s.spec.endpoint.kind === 'address' ? [s.spec.endpoint.address] : s.spec.listen.map((l) => l.address)),
        ...s.servers.map((d) => d.spec.address),
      ]);
      const lines = formatList(stats, {
        names: await listNames(f.has('numeric'), addresses, deps),
        stats: f.has('stats'), rate: f.has('rate'), thresholds: f.has('thresholds'), persistentConn: f.has('persistent-conn'), exact: f.has('exact'),
      });
      for (const l of lines) io.out(l);
      return 0;
    }
    case 'save': {
      for (const l of (await get<{ lines: string[] }>(target, '/v1/ipvsadm')).lines) io.out(l);
      return 0;
    }
    case 'restore': {
      const text = (deps.stdin ?? (() => fs.readFileSync(0, 'utf8')))();
      const lines: string[] = [];
      const sink = new DiagnosticSink();
      text.split('\n').forEach((raw, i) => {
        const words = splitLine(raw, '<stdin>', i + 1);
        if (words.length === 0) return;
        if (parseIpvsadmLine(words, sink)) lines.push(raw.trim());
      });
      const errs = sink.items.filter((d) => d.severity === 'error');
      if (errs.length > 0) {
        for (const e of errs) io.err(formatDiagnostic(e));
        return 2;
      }
      if (lines.length === 0) return 0;
      return change(target, lines, io);
    }
    default:
      return change(target, [joinArgs(words)], io);
  }
}

function fmtSeconds(s: number): string {
  const t = Math.max(0, Math.round(s));
  const h = Math.floor(t / 3600);
  const m = Math.floor((t % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : m > 0 ? `${m}m${String(t % 60).padStart(2, '0')}s` : `${t}s`;
}

/** The real server and optional service selector of `drain`/`undrain`; a number is an exit code. */
function serverAndService(what: string, words: readonly string[], io: Io, extra: (w: string, next: () => string) => number | null): { server: string; service?: string } | number {
  let server: string | undefined;
  let service: string | undefined;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as string;
    const took = extra(w, () => words[++i] ?? '');
    if (took === 0) continue;
    if (took !== null) return took;
    if (['-t', '-u', '-f', '--tcp-service', '--udp-service', '--fwmark-service'].includes(w)) {
      const sel = parseLine(['-L', w, words[++i] ?? ''], io);
      if (!sel || sel.op !== 'list' || !sel.service) return 2;
      service = serviceIdKey(sel.service);
    } else if (w.startsWith('-')) {
      io.err(`fulcrum adm ${what}: unknown option '${w}'`);
      return 2;
    } else if (server === undefined) server = w;
    else {
      io.err(`fulcrum adm ${what}: one real server at a time ('${w}')`);
      return 2;
    }
  }
  if (server === undefined) {
    io.err(`fulcrum adm ${what}: which real server? (e.g. fulcrum adm ${what} 10.0.0.2:80${what === 'drain' ? ' --deadline 10m' : ''})`);
    return 2;
  }
  return service === undefined ? { server } : { server, service };
}

/** `fulcrum adm undrain RS [-t|-u|-f SERVICE]`: cancel a drain in progress, restoring the weight it had. */
async function undrain(words: readonly string[], target: ApiTarget, io: Io): Promise<number> {
  const which = serverAndService('undrain', words, io, () => null);
  if (typeof which === 'number') return which;
  const r = await apiRequest<{ restored: { service: string; weight: number }[] }>(target, 'DELETE', '/v1/drains', which);
  if (r.status !== 200) {
    io.err(errorOf(r));
    return r.status === 400 ? 2 : 1;
  }
  for (const x of r.body.restored) io.out(`${which.server} in ${x.service}: drain cancelled, weight ${x.weight} restored`);
  return 0;
}

async function drain(words: readonly string[], target: ApiTarget, io: Io, deps: AdmDeps): Promise<number> {
  let deadline = 600;
  let wait = true;
  const which = serverAndService('drain', words, io, (w, next) => {
    if (w === '--deadline') {
      const text = next();
      const d = parseDuration(text);
      if (d === null || d <= 0) {
        io.err(`fulcrum adm drain: --deadline: '${text}' is not a duration (e.g. 10m, 90s, 1h)`);
        return 2;
      }
      deadline = d;
      return 0;
    }
    if (w === '--no-wait') {
      wait = false;
      return 0;
    }
    return null;
  });
  if (typeof which === 'number') return which;
  const { server, service } = which;
  const r = await apiRequest<{ drains: DrainStatus[] }>(target, 'POST', '/v1/drains', { server, deadline, ...(service !== undefined ? { service } : {}) });
  if (r.status !== 200) {
    io.err(errorOf(r));
    return r.status === 400 ? 2 : 1;
  }
  const mine = (list: readonly DrainStatus[]): DrainStatus[] => list.filter((d) => d.server === server && (service === undefined || d.service === service));
  const show = (d: DrainStatus): string =>
    `draining ${d.server} in ${d.service}: ${d.active} active, ${d.inactive} inactive, ${d.templates} persistence template(s); removed at the latest in ${fmtSeconds((d.deadline - Date.now()) / 1000)}`;
  let last = new Map<string, string>();
  const report = (list: readonly DrainStatus[]): void => {
    const now = new Map(list.map((d) => [d.service, show(d)]));
    for (const [svc, line] of now) if (last.get(svc)?.replace(/in \S+$/, '') !== line.replace(/in \S+$/, '')) io.out(line);
    for (const svc of last.keys()) if (!now.has(svc)) io.out(`${server} removed from ${svc}`);
    last = now;
  };
  report(mine(r.body.drains));
  if (!wait) return 0;
  const stopAt = Date.now() + (deadline + 30) * 1000;
  while (last.size > 0 && Date.now() < stopAt) {
    await new Promise((res) => setTimeout(res, deps.pollMs ?? 1000));
    report(mine(await get<DrainStatus[]>(target, '/v1/drains')));
  }
  return last.size === 0 ? 0 : 1;
}

async function runtime(words: readonly string[], target: ApiTarget, io: Io): Promise<number> {
  if (words[0] === '--forget') {
    const r = await apiRequest(target, 'DELETE', '/v1/runtime');
    if (r.status !== 200) {
      io.err(errorOf(r));
      return 1;
    }
    io.out('runtime changes dropped: the configuration file is in effect as written');
    return 0;
  }
  if (words.length > 0) {
    io.err(`fulcrum adm runtime: unknown argument '${words[0] ?? ''}' (only --forget)`);
    return 2;
  }
  const r = await get<{ where: string; description: string[]; stale: string[] }>(target, '/v1/runtime');
  io.out(`runtime changes (kept in ${r.where}):`);
  for (const l of r.description) io.out(`  ${l}`);
  if (r.description.length === 0) io.out('  none');
  for (const s of r.stale) io.out(`  stale: ${s}`);
  return 0;
}
