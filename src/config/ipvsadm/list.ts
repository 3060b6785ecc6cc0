/**
 * `ipvsadm -L -n` output, column for column, from a data plane's live table: the plain
 * listing and `--stats`, `--rate`, `--thresholds`, `--persistent-conn`, `--exact`,
 * `--timeout` and `-c`. The printf formats are ipvsadm's (ipvsadm.c print_title,
 * print_service_entry, print_largenum), so scripts that parse ipvsadm keep working:
 *
 *   Prot LocalAddress:Port Scheduler Flags
 *     -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
 *   TCP  10.0.0.210:80 rr
 *     -> 10.0.0.11:80                 Route   1      0          0
 *
 * Addresses and ports are numeric unless the caller hands a NameLookup (adm without `-n`
 * resolves them first: cli/names.ts); a name that is not known prints numerically. Pure.
 */
import ipaddr from 'ipaddr.js';
import type { ForwardingMethod } from '../../model/types.js';
import { parseHostPort } from './parse.js';
import type { ConnectionEntry, ServerStats, ServiceStats, Timeouts } from '../../dataplane/types.js';

/** Host and service names resolved beforehand (ipvsadm without -n). */
export interface NameLookup {
  host(address: string): string | undefined;
  port(port: number, protocol: string): string | undefined;
}

export interface ListFormat {
  /** Print names where known (ipvsadm without -n). */
  readonly names?: NameLookup | undefined;
  readonly stats?: boolean;
  readonly rate?: boolean;
  readonly thresholds?: boolean;
  readonly persistentConn?: boolean;
  readonly exact?: boolean;
}

/** What ipvsadm prints first (Fulcrum reports IPVS 1.2.1's version line for parsers). */
export const IPVS_VERSION_LINE = 'IP Virtual Server version 1.2.1 (size=4096)';

const FORWARD: Record<ForwardingMethod, string> = { nat: 'Masq', dr: 'Route', tun: 'Tunnel', proxy: 'Proxy' };

const padR = (s: string, n: number): string => (s.length >= n ? s : s + ' '.repeat(n - s.length));
const padL = (s: string, n: number): string => (s.length >= n ? s : ' '.repeat(n - s.length) + s);

/** ipvsadm's print_largenum: 9 columns, K/M/G/T above 100 million unless --exact. */
export function largeNum(i: number, exact = false): string {
  const n = Math.max(0, Math.floor(i));
  if (exact) {
    const s = String(n);
    return padL(s, s.length <= 8 ? 9 : s.length + 1);
  }
  if (n < 100_000_000) return padL(String(n), 9);
  if (n < 1_000_000_000) return `${padL(String(Math.floor(n / 1000)), 8)}K`;
  if (n < 100_000_000_000) return `${padL(String(Math.floor(n / 1_000_000)), 8)}M`;
  if (n < 100_000_000_000_000) return `${padL(String(Math.floor(n / 1_000_000_000)), 8)}G`;
  return `${padL(String(Math.floor(n / 1_000_000_000_000)), 8)}T`;
}

export function hostPort(address: string, port: number, names?: NameLookup, protocol = 'tcp'): string {
  const host = names?.host(address) ?? address;
  const p = names?.port(port, protocol) ?? String(port);
  return address.includes(':') ? `[${host}]:${p}` : `${host}:${p}`;
}

function protoName(p: string): string {
  return p.toUpperCase();
}

/** The service's name column: `TCP  1.2.3.4:80`, `FWM  7`, `FWM  7 IPv6`. */
function serviceName(s: ServiceStats, names?: NameLookup): string {
  const ep = s.spec.endpoint;
  if (ep.kind === 'fwmark') return `FWM  ${ep.mark}${ep.family === 'inet6' ? ' IPv6' : ''}`;
  const listen = s.spec.listen[0];
  const name = ep.kind === 'address' ? hostPort(ep.address, ep.port, names, s.spec.protocol)
    : listen ? hostPort(listen.address, listen.port, names, s.spec.protocol) : `group ${ep.name}`;
  const full = `${protoName(s.spec.protocol)}  ${name}`;
  const v6 = ep.kind === 'address' ? ep.family === 'inet6' : name.startsWith('[');
  return v6 ? full : full.slice(0, 33);
}

function schedFlagNames(s: ServiceStats): string[] {
  const names: Record<string, Record<string, string>> = {
    sh: { 'flag-1': 'sh-fallback', 'flag-2': 'sh-port' },
    mh: { 'flag-1': 'mh-fallback', 'flag-2': 'mh-port' },
  };
  return s.spec.schedFlags.map((f) => names[s.spec.scheduler]?.[f] ?? f);
}

function serviceLine(s: ServiceStats, names?: NameLookup): string {
  let line = `${serviceName(s, names)} ${s.spec.scheduler}`;
  const flags = schedFlagNames(s);
  if (flags.length > 0) line += ` (${flags.join(',')})`;
  const p = s.spec.persistence;
  if (p) {
    line += ` persistent ${p.timeout}`;
    const v6 = s.spec.endpoint.kind !== 'group' && s.spec.endpoint.family === 'inet6';
    if (!v6 && p.prefixLength !== 32) line += ` mask ${p.netmask}`;
    if (v6 && p.prefixLength !== 128) line += ` mask ${p.prefixLength}`;
  }
  if (s.spec.ops) line += ' ops';
  return line;
}

function destName(s: ServiceStats, d: ServerStats, names?: NameLookup): string {
  const n = hostPort(d.spec.address, d.spec.port, names, s.spec.protocol);
  return d.spec.family === 'inet6' ? n : n.slice(0, 28);
}

function compareAddress(a: string, b: string): number {
  const x = ipaddr.parse(a).toByteArray();
  const y = ipaddr.parse(b).toByteArray();
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}

const PROTO_NUM: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

/** ipvsadm's ipvs_cmp_services: fwmark, family, protocol, address, port. */
function compareServices(a: ServiceStats, b: ServiceStats): number {
  const ea = a.spec.endpoint;
  const eb = b.spec.endpoint;
  const mark = (e: typeof ea): number => (e.kind === 'fwmark' ? e.mark : 0);
  if (mark(ea) !== mark(eb)) return mark(ea) - mark(eb);
  const la = a.spec.listen[0];
  const lb = b.spec.listen[0];
  const fam = (l: typeof la): number => (l?.family === 'inet6' ? 10 : 2);
  if (fam(la) !== fam(lb)) return fam(la) - fam(lb);
  const pa = PROTO_NUM[a.spec.protocol] ?? 0;
  const pb = PROTO_NUM[b.spec.protocol] ?? 0;
  if (pa !== pb) return pa - pb;
  if (la && lb) {
    const c = compareAddress(la.address, lb.address);
    if (c !== 0) return c;
    return la.port - lb.port;
  }
  return 0;
}

function compareDests(a: ServerStats, b: ServerStats): number {
  const c = compareAddress(a.spec.address, b.spec.address);
  return c !== 0 ? c : a.spec.port - b.spec.port;
}

function title(f: ListFormat): string[] {
  const prot = padR('Prot LocalAddress:Port', 33);
  if (f.stats) return [`${prot} ${['Conns', 'InPkts', 'OutPkts', 'InBytes', 'OutBytes'].map((x) => padL(x, 8)).join(' ')}`, '  -> RemoteAddress:Port'];
  if (f.rate) return [`${prot} ${['CPS', 'InPPS', 'OutPPS', 'InBPS', 'OutBPS'].map((x) => padL(x, 8)).join(' ')}`, '  -> RemoteAddress:Port'];
  if (f.thresholds) return [`${prot} ${['Uthreshold', 'Lthreshold', 'ActiveConn', 'InActConn'].map((x) => padR(x, 10)).join(' ')}`, '  -> RemoteAddress:Port'];
  if (f.persistentConn) return [`${prot} ${padR('Weight', 9)} ${padR('PersistConn', 11)} ${padR('ActiveConn', 10)} ${padR('InActConn', 10)}`, '  -> RemoteAddress:Port'];
  return ['Prot LocalAddress:Port Scheduler Flags', '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn'];
}

/** The lines `ipvsadm -L -n [format]` prints for these services (without trailing newline). */
export function formatList(services: readonly ServiceStats[], f: ListFormat = {}): string[] {
  const out = [IPVS_VERSION_LINE, ...title(f)];
  const ex = f.exact === true;
  for (const s of [...services].sort(compareServices)) {
    const name = serviceName(s, f.names);
    if (f.stats) {
      const c = s.counters;
      out.push(padR(name, 33) + [c.conns, c.inPkts, c.outPkts, c.inBytes, c.outBytes].map((x) => largeNum(x, ex)).join(''));
    } else if (f.rate) {
      const r = s.rates;
      out.push(padR(name, 33) + [r.cps, r.inPps, r.outPps, r.inBps, r.outBps].map((x) => largeNum(x, ex)).join(''));
    } else out.push(serviceLine(s, f.names));
    for (const d of [...s.servers].sort(compareDests)) {
      const dn = padR(destName(s, d, f.names), 28);
      if (f.stats) {
        const c = d.counters;
        out.push(`  -> ${dn}${[c.conns, c.inPkts, c.outPkts, c.inBytes, c.outBytes].map((x) => largeNum(x, ex)).join('')}`);
      } else if (f.rate) {
        const r = d.rates;
        out.push(`  -> ${dn} ${padL(String(Math.floor(r.cps)), 8)} ${padL(String(Math.floor(r.inPps)), 8)} ${padL(String(Math.floor(r.outPps)), 8)}${largeNum(r.inBps, ex)}${largeNum(r.outBps, ex)}`);
      } else if (f.thresholds) {
        out.push(`  -> ${dn} ${[d.spec.uthreshold, d.spec.lthreshold, d.active, d.inactive].map((x) => padR(String(x), 10)).join(' ')}`);
      } else if (f.persistentConn) {
        out.push(`  -> ${dn} ${padR(String(d.spec.weight), 9)} ${padR(String(d.persistent), 11)} ${padR(String(d.active), 10)} ${padR(String(d.inactive), 10)}`);
      } else {
        out.push(`  -> ${dn} ${padR(FORWARD[d.spec.method], 7)} ${padR(String(d.spec.weight), 6)} ${padR(String(d.active), 10)} ${padR(String(d.inactive), 10)}`);
      }
    }
  }
  return out;
}

/** `ipvsadm -L --timeout`. */
export function formatTimeouts(t: Timeouts): string {
  return `Timeout (tcp tcpfin udp): ${t.tcp} ${t.tcpfin} ${t.udp}`;
}

/** A connection's `ADDR:PORT` / `[ADDR]:PORT` destination with names, else as it is. */
function serverName(server: string, names: NameLookup | undefined, protocol: string): string {
  if (!names) return server;
  const hp = parseHostPort(server);
  return hp && hp.port !== undefined ? hostPort(hp.address, hp.port, names, protocol) : server;
}

/** `ipvsadm -L -c -n` (or, with names, `-L -c`): the connection table. */
export function formatConnections(conns: readonly ConnectionEntry[], names?: NameLookup): string[] {
  const out = ['IPVS connection entries', `pro expire ${padR('state', 11)} ${padR('source', 18)} ${padR('virtual', 18)} destination`];
  for (const c of conns) {
    const secs = Math.max(0, Math.floor(c.expires));
    const expire = `${String(Math.floor(secs / 60)).padStart(2, '0')}:${String(secs % 60).padStart(2, '0')}`;
    out.push(`${padR(protoName(c.protocol), 3)} ${padR(expire, 6)} ${padR(c.state, 11)} ${padR(hostPort(c.client.address, c.client.port, names, c.protocol), 18)} ${padR(hostPort(c.virtual.address, c.virtual.port, names, c.protocol), 18)} ${serverName(c.server, names, c.protocol)}`);
  }
  return out;
}
