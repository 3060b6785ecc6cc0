/**
 * An IPVS table as ipvsadm sees it: services in insertion order, each with its real
 * servers. Commands apply with ipvsadm's semantics and messages ("Service already exists",
 * "No such destination", …); a rejected command leaves the table unchanged.
 */
import { DiagnosticCode, type DiagnosticSink } from '../../errors/index.js';
import { formatHostPort } from '../../model/address.js';
import * as D from '../../model/defaults.js';
import { endpointKey } from '../../model/keys.js';
import { ownServers, type SharedServers } from '../../model/shared-map.js';
import type { ForwardingMethod, Protocol, RealServer, ServiceEndpoint, VirtualServer } from '../../model/types.js';
import type { IpvsCommand, ServerOptions, ServiceId, ServiceOptions } from './parse.js';

export interface IpvsService {
  readonly id: ServiceId;
  readonly options: ServiceOptions;
  readonly servers: readonly ServerOptions[];
}

export interface IpvsTimeouts { readonly tcp: number; readonly tcpfin: number; readonly udp: number }

/** Immutable snapshot: every `apply` returns a new table (or the same one on rejection). */
export interface IpvsTable {
  readonly services: readonly IpvsService[];
  readonly timeouts: IpvsTimeouts;
}

/** A service with its real servers indexed by `address:port` (shared: never modified). */
export interface IndexedService {
  readonly key: string;
  readonly id: ServiceId;
  readonly options: ServiceOptions;
  readonly servers: ReadonlyMap<string, ServerOptions>;
}

interface TableEntry extends SharedServers<ServerOptions> {
  id: ServiceId;
  options: ServiceOptions;
}

export const EMPTY_TABLE: IpvsTable = { services: [], timeouts: { tcp: 900, tcpfin: 120, udp: 300 } };

export function serviceIdKey(id: ServiceId): string {
  return id.kind === 'fwmark' ? endpointKey({ kind: 'fwmark', mark: id.mark, family: id.family }, 'tcp')
    : endpointKey({ kind: 'address', family: id.family, address: id.address, port: id.port }, id.protocol);
}

function serverKey(s: { address: string; port: number }): string {
  return formatHostPort(s.address, s.port);
}

/**
 * A mutable IPVS table indexed by service key: what a batch of commands is checked and
 * applied against, each command O(1) (an `ipvsadm -R` of thousands of lines is linear).
 * `apply` follows ipvsadm's rules and messages; a refused command changes nothing.
 */
export class IpvsTableIndex {
  /** Insertion-ordered, as ipvsadm lists services. */
  private readonly services = new Map<string, TableEntry>();
  timeouts: IpvsTimeouts;

  constructor(table: IpvsTable = EMPTY_TABLE) {
    this.timeouts = table.timeouts;
    for (const s of table.services) {
      const own = new Map(s.servers.map((r) => [serverKey(r), r]));
      this.services.set(serviceIdKey(s.id), { id: s.id, options: s.options, servers: own, own });
    }
  }

  /**
   * A table over already-indexed services whose server maps it shares (copying one only when
   * a command changes that service's servers): O(services), not O(real servers), so checking
   * one command against a large table costs what the command touches.
   */
  static over(timeouts: IpvsTimeouts, services: Iterable<IndexedService>): IpvsTableIndex {
    const t = new IpvsTableIndex({ timeouts, services: [] });
    for (const s of services) t.services.set(s.key, { id: s.id, options: s.options, servers: s.servers, own: null });
    return t;
  }

  has(key: string): boolean {
    return this.services.has(key);
  }

  /** Service keys in table order. */
  keys(): string[] {
    return [...this.services.keys()];
  }

  /** Apply `cmd`; false (and an error in `sink`) when ipvsadm would refuse it. */
  apply(cmd: IpvsCommand, sink: DiagnosticSink): boolean {
    const fail = (msg: string, code: DiagnosticCode = DiagnosticCode.CONTRADICTION): boolean => {
      sink.error(code, msg, cmd.loc);
      return false;
    };
    const missing = (msg: string): boolean => fail(msg, DiagnosticCode.NOT_FOUND);
    switch (cmd.op) {
      case 'add-service': {
        const key = serviceIdKey(cmd.service);
        if (this.services.has(key)) return fail('Service already exists');
        const own = new Map<string, ServerOptions>();
        this.services.set(key, { id: cmd.service, options: cmd.options, servers: own, own });
        return true;
      }
      case 'edit-service': {
        const s = this.services.get(serviceIdKey(cmd.service));
        if (!s) return missing('No such service');
        s.options = cmd.options;
        return true;
      }
      case 'delete-service':
        return this.services.delete(serviceIdKey(cmd.service)) || missing('No such service');
      case 'add-server':
      case 'edit-server':
      case 'delete-server': {
        const s = this.services.get(serviceIdKey(cmd.service));
        if (!s) return missing('Service not defined');
        const key = serverKey(cmd.server);
        const has = s.servers.has(key);
        if (cmd.op === 'add-server') {
          if (has) return fail('Destination already exists');
          ownServers(s).set(key, cmd.server);
        } else if (!has) return missing('No such destination');
        else if (cmd.op === 'edit-server') ownServers(s).set(key, cmd.server);
        else ownServers(s).delete(key);
        return true;
      }
      case 'clear':
        this.services.clear();
        return true;
      case 'set':
        // 0 leaves a timeout unchanged, as in ipvsadm.
        this.timeouts = { tcp: cmd.tcp || this.timeouts.tcp, tcpfin: cmd.tcpfin || this.timeouts.tcpfin, udp: cmd.udp || this.timeouts.udp };
        return true;
      case 'zero':
        if (cmd.service && !this.services.has(serviceIdKey(cmd.service))) return missing('No such service');
        return true;
      case 'save':
      case 'restore':
      case 'list':
      case 'start-daemon':
      case 'stop-daemon':
        return true;
    }
  }

  /** An immutable snapshot. */
  toTable(): IpvsTable {
    return { timeouts: this.timeouts, services: [...this.services.values()].map((s) => ({ id: s.id, options: s.options, servers: [...s.servers.values()] })) };
  }
}

/** Apply one command to an immutable table. Errors go to `sink` and return the table unchanged. */
export function applyIpvsCommand(table: IpvsTable, cmd: IpvsCommand, sink: DiagnosticSink): IpvsTable {
  const x = new IpvsTableIndex(table);
  return x.apply(cmd, sink) ? x.toTable() : table;
}

/** The table in the shared model; keepalived-only settings take their defaults. */
export function tableToVirtualServers(table: IpvsTable): VirtualServer[] {
  return table.services.map((s) => ipvsVirtualServer(s.id, s.options, s.servers));
}

/** One ipvsadm real server in the shared model: no checkers, so it is always alive. */
export function ipvsRealServer(r: ServerOptions): RealServer {
  return {
    family: r.family, address: r.address, port: r.port, weight: r.weight, method: r.method, tunnel: r.tunnel,
    uthreshold: r.uthreshold, lthreshold: r.lthreshold, inhibitOnFailure: false, alpha: false, checkers: [],
  };
}

/**
 * One ipvsadm service in the shared model. `method` is the service's default forwarding
 * method when it has no real server to take it from.
 */
export function ipvsVirtualServer(id: ServiceId, options: ServiceOptions, servers: readonly ServerOptions[], method: ForwardingMethod = 'dr'): VirtualServer {
  const endpoint: ServiceEndpoint = id.kind === 'fwmark'
    ? { kind: 'fwmark', family: id.family, mark: id.mark }
    : { kind: 'address', family: id.family, address: id.address, port: id.port };
  const protocol: Protocol = id.kind === 'address' ? id.protocol : 'tcp';
  return {
    endpoint, protocol, scheduler: options.scheduler, schedFlags: options.schedFlags,
    method: servers[0]?.method ?? method, persistence: options.persistence, ops: options.ops,
    delayLoop: D.DEFAULT_DELAY_LOOP, quorum: D.DEFAULT_QUORUM, hysteresis: 0, inhibitOnFailure: false,
    alpha: false, omega: false, haSuspend: false, realServers: servers.map(ipvsRealServer),
  };
}

/** ipvsadm's forwarding flag for a method. */
export const METHOD_FLAG: Readonly<Record<ForwardingMethod, string>> = { dr: '-g', nat: '-m', tun: '-i', proxy: '--proxy' };

/** `ipvsadm -S -n` output for the table: restoring it rebuilds the identical table. */
export function formatIpvsSave(table: IpvsTable): string[] {
  const out: string[] = [];
  for (const s of table.services) {
    const sel = s.id.kind === 'fwmark'
      ? `-f ${s.id.mark}${s.id.family === 'inet6' ? ' -6' : ''}`
      : `${s.id.protocol === 'tcp' ? '-t' : s.id.protocol === 'udp' ? '-u' : '--sctp-service'} ${formatHostPort(s.id.address, s.id.port)}`;
    const o = s.options;
    let line = `-A ${sel} -s ${o.scheduler}`;
    if (o.schedFlags.length > 0) line += ` -b ${o.schedFlags.join(',')}`;
    if (o.persistence) {
      line += ` -p ${o.persistence.timeout}`;
      const full = s.id.family === 'inet' ? 32 : 128;
      if (o.persistence.prefixLength !== full) line += ` -M ${s.id.family === 'inet' ? o.persistence.netmask : o.persistence.prefixLength}`;
    }
    if (o.ops) line += ' -o';
    out.push(line);
    for (const r of s.servers) {
      let l = `-a ${sel} -r ${formatHostPort(r.address, r.port)} ${METHOD_FLAG[r.method]} -w ${r.weight}`;
      if (r.uthreshold) l += ` -x ${r.uthreshold}`;
      if (r.lthreshold) l += ` -y ${r.lthreshold}`;
      if (r.tunnel && (r.tunnel.type !== 'ipip' || r.tunnel.checksum)) {
        l += ` --tun-type ${r.tunnel.type}`;
        if (r.tunnel.port !== undefined) l += ` --tun-port ${r.tunnel.port}`;
        if (r.tunnel.checksum) l += ` --tun-${r.tunnel.checksum}`;
      }
      out.push(l);
    }
  }
  return out;
}
