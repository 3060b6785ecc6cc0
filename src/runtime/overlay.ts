/**
 * Runtime changes (ipvsadm commands through `fulcrum adm` or the HTTP API) kept as a keyed
 * overlay on top of the configuration file.
 *
 * The file stays the operator's; it is never rewritten. Every accepted change is recorded
 * here by identity (service key, real-server key) — the last change to a key wins — and the
 * overlay is saved before the change is applied. A reload reads the file afresh and lays
 * the overlay over it, so a runtime change survives SIGHUP and restarts:
 *
 *   - `edited` replaces only what ipvsadm can say (scheduler, flags, persistence, -o; a real
 *     server's method, weight, thresholds, tunnel) and keeps the rest of the file's
 *     definition (checkers, notify scripts, quorum, sorry server);
 *   - `added` is a runtime definition: a service or real server that the file lacks, or one
 *     that was deleted and added again at runtime (it then replaces the file's definition,
 *     checkers and all — exactly what `ipvsadm -D` + `-A` does to a keepalived table);
 *   - `deleted` hides the file's definition.
 *
 * An entry whose target the file no longer has (an edit of a service removed from the file)
 * is *stale*: it is reported on every reload and by the API, and kept until the operator
 * drops the runtime changes — it is never silently lost. Pure: no I/O, no clock.
 */
import { DiagnosticSink } from '../errors/index.js';
import {
  IpvsTableIndex, ipvsRealServer, ipvsVirtualServer, serviceIdKey,
  type IndexedService, type IpvsCommand, type IpvsService, type IpvsTable, type ServerOptions, type ServiceId, type ServiceOptions,
} from '../config/ipvsadm/index.js';
import { formatHostPort } from '../model/address.js';
import { timeoutsOf } from '../director/desired.js';
import { realServerKey, serverKeysOf, serviceKey } from '../model/keys.js';
import { ObjectMemo } from '../model/memo.js';
import type { FulcrumConfig, ForwardingMethod, RealServer, VirtualServer } from '../model/types.js';

export type ServiceEntry =
  | { readonly key: string; readonly state: 'deleted' }
  | { readonly key: string; readonly state: 'edited'; readonly options: ServiceOptions }
  | { readonly key: string; readonly state: 'added'; readonly id: ServiceId; readonly options: ServiceOptions };

export type ServerEntry =
  | { readonly service: string; readonly key: string; readonly state: 'deleted' }
  | { readonly service: string; readonly key: string; readonly state: 'edited' | 'added'; readonly server: ServerOptions };

/** A drain in progress (`fulcrum adm drain`): removed once idle, or at its deadline. */
export interface DrainEntry {
  readonly service: string;
  readonly server: string;
  /** Milliseconds since the epoch. */
  readonly deadline: number;
  readonly started: number;
  /** The weight before the drain, which an undrain restores (absent in older state files: the file's weight). */
  readonly weight?: number;
}

export interface RuntimeOverlay {
  readonly version: 1;
  readonly services: readonly ServiceEntry[];
  readonly servers: readonly ServerEntry[];
  /** `--set tcp tcpfin udp`; 0 or absent = the file's value. */
  readonly timeouts: { readonly tcp: number; readonly tcpfin: number; readonly udp: number };
  readonly drains: readonly DrainEntry[];
}

export const EMPTY_OVERLAY: RuntimeOverlay = { version: 1, services: [], servers: [], timeouts: { tcp: 0, tcpfin: 0, udp: 0 }, drains: [] };

export interface OverlayResult {
  readonly config: FulcrumConfig;
  /** Entries that found nothing to change in this file, one sentence each. */
  readonly stale: readonly string[];
}

function srvKey(s: { address: string; port: number }): string {
  return formatHostPort(s.address, s.port);
}

function mergeService(vs: VirtualServer, o: ServiceOptions): VirtualServer {
  return { ...vs, scheduler: o.scheduler, schedFlags: o.schedFlags, persistence: o.persistence, ops: o.ops };
}

function mergeServer(rs: RealServer, o: ServerOptions): RealServer {
  return { ...rs, method: o.method, weight: o.weight, uthreshold: o.uthreshold, lthreshold: o.lthreshold, tunnel: o.tunnel };
}

/**
 * The effective configuration: the file's, with the overlay laid over it. `method` is the
 * default forwarding method of a runtime service that has no real server yet.
 */
export function applyOverlay(base: FulcrumConfig, ov: RuntimeOverlay, method: ForwardingMethod): OverlayResult {
  const stale: string[] = [];
  const svcEntries = new Map(ov.services.map((e) => [e.key, e]));
  const srvEntries = new Map<string, ServerEntry[]>();
  for (const e of ov.servers) {
    const list = srvEntries.get(e.service) ?? [];
    list.push(e);
    srvEntries.set(e.service, list);
  }
  const applyServers = (vs: VirtualServer, key: string, fromFile: boolean): VirtualServer => {
    const entries = srvEntries.get(key) ?? [];
    if (entries.length === 0) return vs;
    const byKey = new Map(entries.map((e) => [e.key, e]));
    const out: RealServer[] = [];
    for (const rs of vs.realServers) {
      const e = byKey.get(realServerKey(rs));
      if (!e) out.push(rs);
      else if (e.state === 'edited') out.push(mergeServer(rs, e.server));
      else if (e.state === 'added') out.push(ipvsRealServer(e.server));
      // deleted: left out
    }
    const present = serverKeysOf(vs);
    for (const e of entries) {
      if (present.has(e.key)) continue;
      if (e.state === 'added') out.push(ipvsRealServer(e.server));
      else stale.push(`runtime ${e.state === 'deleted' ? 'deletion' : 'edit'} of real server ${e.key} in ${key}: ${fromFile ? 'the configuration file no longer has it' : 'not in the runtime service'}`);
    }
    return { ...vs, realServers: out };
  };
  const services: VirtualServer[] = [];
  const seen = new Set<string>();
  for (const vs of base.virtualServers) {
    const key = serviceKey(vs);
    seen.add(key);
    const e = svcEntries.get(key);
    if (e?.state === 'deleted') continue;
    if (e?.state === 'added') {
      services.push(applyServers(ipvsVirtualServer(e.id, e.options, [], method), key, false));
      continue;
    }
    services.push(applyServers(e?.state === 'edited' ? mergeService(vs, e.options) : vs, key, true));
  }
  for (const e of ov.services) {
    if (seen.has(e.key)) continue;
    if (e.state === 'added') services.push(applyServers(ipvsVirtualServer(e.id, e.options, [], method), e.key, false));
    else stale.push(`runtime ${e.state === 'deleted' ? 'deletion' : 'edit'} of service ${e.key}: the configuration file no longer has it`);
  }
  const present = new Set(services.map(serviceKey));
  for (const [key, entries] of srvEntries) {
    if (svcEntries.get(key)?.state === 'deleted' || present.has(key)) continue;
    for (const e of entries) stale.push(`runtime change of real server ${e.key} in ${key}: the service is gone`);
  }
  const t = ov.timeouts;
  const lt = base.global.lvsTimeouts;
  const global = t.tcp || t.tcpfin || t.udp
    ? { ...base.global, lvsTimeouts: { ...lt, tcp: t.tcp || lt.tcp, tcpfin: t.tcpfin || lt.tcpfin, udp: t.udp || lt.udp } }
    : base.global;
  return { config: { ...base, global, virtualServers: services }, stale };
}

/**
 * One service as ipvsadm sees it, with its real servers indexed, or null for a group
 * endpoint (which ipvsadm cannot name). Kept on the service object (ObjectMemo):
 * configurations are immutable and a runtime change or reload rebuilds only the services it
 * touched, so a command checked against a table of 1,000 real servers re-derives only the
 * touched ones.
 */
const ipvsServices = new ObjectMemo<VirtualServer, { readonly listed: IpvsService; readonly indexed: IndexedService } | null>('fulcrum.overlay.ipvs');

function ipvsServiceOf(vs: VirtualServer): { readonly listed: IpvsService; readonly indexed: IndexedService } | null {
  const had = ipvsServices.get(vs);
  if (had !== undefined) return had;
  const ep = vs.endpoint;
  let out: { listed: IpvsService; indexed: IndexedService } | null = null;
  if (ep.kind !== 'group') {
    const id: ServiceId = ep.kind === 'fwmark'
      ? { kind: 'fwmark', mark: ep.mark, family: ep.family }
      : { kind: 'address', protocol: vs.protocol, family: ep.family, address: ep.address, port: ep.port };
    const servers: ServerOptions[] = vs.realServers.map((r) => ({
      family: r.family, address: r.address, port: r.port, method: r.method, weight: r.weight,
      uthreshold: r.uthreshold, lthreshold: r.lthreshold, tunnel: r.tunnel,
    }));
    const options: ServiceOptions = { scheduler: vs.scheduler, schedFlags: vs.schedFlags, persistence: vs.persistence, ops: vs.ops };
    out = {
      listed: { id, options, servers },
      indexed: { key: serviceIdKey(id), id, options, servers: new Map(servers.map((r) => [realServerKey(r), r])) },
    };
  }
  ipvsServices.set(vs, out);
  return out;
}

/** The effective configuration as ipvsadm sees it: what its commands are checked against. */
export function ipvsView(config: FulcrumConfig): IpvsTable {
  return {
    timeouts: timeoutsOf(config),
    services: config.virtualServers.flatMap((vs) => {
      const s = ipvsServiceOf(vs);
      return s ? [s.listed] : [];
    }),
  };
}

export type RecordOutcome =
  | { readonly ok: true; readonly overlay: RuntimeOverlay }
  /** `code`: the refusal's DiagnosticCode (E_NOT_FOUND when what the command names is absent). */
  | { readonly ok: false; readonly message: string; readonly code: string };

/** Commands that change the table (the others — list, save, zero — are answered elsewhere). */
export function changesTable(cmd: IpvsCommand): boolean {
  return cmd.op !== 'list' && cmd.op !== 'save' && cmd.op !== 'restore' && cmd.op !== 'zero';
}

/**
 * Records a batch of commands into an overlay: each is checked against the effective table
 * the ones before it leave (ipvsadm's rules and messages: "Service already exists", "No
 * such destination", …) and, if accepted, recorded by identity. Every step is O(1), so a
 * batch of n commands costs O(n + size of the table) — a 4,000-line `fulcrum adm -R` is one
 * linear pass, not n rebuilds of the configuration.
 */
export class OverlayRecorder {
  private readonly table: IpvsTableIndex;
  private readonly services: Map<string, ServiceEntry>;
  /** `${service}\0${server}` → entry, in overlay order. */
  private readonly servers: Map<string, ServerEntry>;
  /** Server entry keys by service, for deleting a service's entries at once. */
  private readonly byService = new Map<string, Set<string>>();
  /** The file's services by key, each with its real servers' keys. */
  private readonly baseServers: Map<string, ReadonlySet<string>>;
  private timeouts: RuntimeOverlay['timeouts'];
  private changed = false;

  constructor(private readonly ov: RuntimeOverlay, base: FulcrumConfig, effective: FulcrumConfig) {
    this.table = IpvsTableIndex.over(timeoutsOf(effective), effective.virtualServers.flatMap((vs) => {
      const s = ipvsServiceOf(vs);
      return s ? [s.indexed] : [];
    }));
    this.services = new Map(ov.services.map((e) => [e.key, e]));
    this.servers = new Map();
    for (const e of ov.servers) this.putServer(e);
    this.baseServers = new Map(base.virtualServers.map((vs) => [serviceKey(vs), serverKeysOf(vs)]));
    this.timeouts = ov.timeouts;
  }

  private putServer(e: ServerEntry): void {
    const k = `${e.service}\0${e.key}`;
    this.servers.set(k, e);
    let set = this.byService.get(e.service);
    if (!set) this.byService.set(e.service, (set = new Set()));
    set.add(k);
  }

  private dropServer(service: string, key: string): void {
    const k = `${service}\0${key}`;
    this.servers.delete(k);
    this.byService.get(service)?.delete(k);
  }

  private dropServersOf(service: string): void {
    for (const k of this.byService.get(service) ?? []) this.servers.delete(k);
    this.byService.delete(service);
  }

  /** Does the service exist in the table as the commands so far leave it? */
  hasService(key: string): boolean {
    return this.table.has(key);
  }

  /** Check `cmd` and record it; a refusal leaves everything as it was. */
  record(cmd: IpvsCommand): { readonly ok: true } | { readonly ok: false; readonly message: string; readonly code: string } {
    const keysBefore = cmd.op === 'clear' ? this.table.keys() : [];
    const sink = new DiagnosticSink(4);
    if (!this.table.apply(cmd, sink)) {
      const err = sink.items.find((d) => d.severity === 'error');
      return { ok: false, message: err?.message ?? 'refused', code: err?.code ?? 'E_CONTRADICTION' };
    }
    const deleteService = (key: string): void => {
      this.dropServersOf(key);
      if (this.baseServers.has(key)) this.services.set(key, { key, state: 'deleted' });
      else this.services.delete(key);
    };
    switch (cmd.op) {
      case 'add-service': {
        const key = serviceIdKey(cmd.service);
        this.dropServersOf(key);
        this.services.set(key, { key, state: 'added', id: cmd.service, options: cmd.options });
        break;
      }
      case 'edit-service': {
        const key = serviceIdKey(cmd.service);
        const e = this.services.get(key);
        this.services.set(key, e?.state === 'added' ? { ...e, options: cmd.options } : { key, state: 'edited', options: cmd.options });
        break;
      }
      case 'delete-service':
        deleteService(serviceIdKey(cmd.service));
        break;
      case 'clear':
        for (const key of keysBefore) deleteService(key);
        break;
      case 'add-server':
      case 'edit-server': {
        const service = serviceIdKey(cmd.service);
        const key = srvKey(cmd.server);
        const prev = this.servers.get(`${service}\0${key}`);
        const added = cmd.op === 'add-server' || prev?.state === 'added';
        this.putServer({ service, key, state: added ? 'added' : 'edited', server: cmd.server });
        break;
      }
      case 'delete-server': {
        const service = serviceIdKey(cmd.service);
        const key = srvKey(cmd.server);
        const fromFile = this.services.get(service)?.state !== 'added' && (this.baseServers.get(service)?.has(key) ?? false);
        if (fromFile) this.putServer({ service, key, state: 'deleted' });
        else this.dropServer(service, key);
        break;
      }
      case 'set':
        this.timeouts = { tcp: cmd.tcp || this.timeouts.tcp, tcpfin: cmd.tcpfin || this.timeouts.tcpfin, udp: cmd.udp || this.timeouts.udp };
        break;
      case 'zero':
      case 'list':
      case 'save':
      case 'restore':
      case 'start-daemon':
      case 'stop-daemon':
        return { ok: true };
    }
    this.changed = true;
    return { ok: true };
  }

  /** The overlay with every accepted command recorded (the same object when none changed it). */
  get overlay(): RuntimeOverlay {
    if (!this.changed) return this.ov;
    return { ...this.ov, services: [...this.services.values()], servers: [...this.servers.values()], timeouts: this.timeouts };
  }
}

/**
 * Check one command against the effective table and record it (see OverlayRecorder).
 * `base` is the file's configuration, `effective` what runs now (applyOverlay(base, ov)).
 */
export function recordCommand(ov: RuntimeOverlay, base: FulcrumConfig, effective: FulcrumConfig, cmd: IpvsCommand): RecordOutcome {
  const r = new OverlayRecorder(ov, base, effective);
  const out = r.record(cmd);
  return out.ok ? { ok: true, overlay: r.overlay } : out;
}

/** The overlay as the ipvsadm lines an operator would read (for `fulcrum adm runtime`). */
export function describeOverlay(ov: RuntimeOverlay): string[] {
  const out: string[] = [];
  for (const e of ov.services) out.push(`${e.state} service ${e.key}`);
  for (const e of ov.servers) out.push(`${e.state} real server ${e.key} in ${e.service}${e.state === 'deleted' ? '' : ` (weight ${e.server.weight}, ${e.server.method})`}`);
  const t = ov.timeouts;
  if (t.tcp || t.tcpfin || t.udp) out.push(`timeouts tcp ${t.tcp || '-'} tcpfin ${t.tcpfin || '-'} udp ${t.udp || '-'}`);
  for (const d of ov.drains) out.push(`draining ${d.server} in ${d.service} until ${new Date(d.deadline).toISOString()}`);
  return out;
}
