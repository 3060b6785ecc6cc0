/**
 * The VRRP node: runs every configured vrrp_instance — sockets (through the injected
 * HostNetwork), timers (through the injected Clock), the pure state machine (fsm.ts), the
 * trackers (track.ts), sync groups, virtual addresses, gratuitous ARP / neighbour
 * advertisements and notify scripts — and tells its owner which virtual addresses it holds
 * (the director's hook: services on a VRRP address follow MASTER/BACKUP).
 *
 * Every received packet is decoded and checked before the state machine sees it; one that
 * fails is dropped, counted by reason (per instance when its VRID is known, and in total)
 * and logged (at most once per 10 s per instance, reason and sender).
 */
import fs from 'node:fs';
import { channel } from 'node:diagnostics_channel';
import ipaddr from 'ipaddr.js';
import type { Clock } from '../health/types.js';
import * as D from '../model/defaults.js';
import { instanceAddresses, type FulcrumConfig, type GlobalDefs, type ScriptSpec, type StaticRoute, type TrackFile, type TrackProcess, type VirtualIp, type VrrpInstance, type VrrpScript, type VrrpSyncGroup } from '../model/types.js';
import { errorMessage, FailureCode, reportFailure } from '../errors/index.js';
import { describeOutcome, runScript as realRunScript, type RunScriptOptions, type ScriptOutcome } from '../notify/script.js';
import { SysError, SysErrorCode } from '../sys/errors.js';
import type { HostNetwork, VrrpChannel, VrrpPacketIn } from '../sys/host.js';
import { openNotifyFifo, type FifoOpener, type NotifyFifo } from '../sys/fifo.js';
import { checkAdvert, decodeAdvert, decodeIpv4, DropReason, encodeAdvert, VRRP_PROTOCOL, type Drop } from './codec.js';
import { initialState, step, type FsmConfig, type FsmEvent, type FsmState, type TransitionReason, type VrrpStateName } from './fsm.js';
import { foldProcess, foldScript, initialStanding, parseTrackFileValue, processMatches, trackVerdict, type ProcessEntry, type ProcessStanding, type ScriptStanding } from './track.js';
import { readProcesses } from '../sys/procs.js';

/** diagnostics_channel name for VrrpEvent messages. */
export const VRRP_CHANNEL = 'fulcrum:vrrp';
const events = channel(VRRP_CHANNEL);

export type VrrpEvent =
  | { readonly type: 'transition'; readonly instance: string; readonly from: VrrpStateName; readonly to: VrrpStateName; readonly reason: TransitionReason; readonly priority: number; readonly master: string | null }
  | { readonly type: 'dropped'; readonly instance: string | null; readonly interface: string | null; readonly src: string; readonly reason: DropReason; readonly detail: string; readonly count: number }
  | { readonly type: 'track'; readonly instance: string; readonly priority: number; readonly faults: readonly string[] }
  | { readonly type: 'script'; readonly script: string; readonly ok: boolean; readonly outcome: string }
  | { readonly type: 'notify'; readonly instance: string; readonly script: string; readonly ok: boolean; readonly outcome: string }
  | { readonly type: 'error'; readonly instance: string; readonly message: string };

function publish(e: VrrpEvent): void {
  if (events.hasSubscribers) events.publish(e);
}

export interface VrrpNodeOptions {
  readonly host: HostNetwork;
  readonly clock: Clock;
  /** How operator scripts run (tests may fake it). */
  readonly runScript?: (spec: ScriptSpec, o: RunScriptOptions) => Promise<ScriptOutcome>;
  /** Told whenever the set of virtual addresses this node holds (as MASTER) changes. */
  readonly onHeldChange?: (held: ReadonlySet<string>) => void;
  /** Milliseconds a notify script may run (default 30 s). */
  readonly notifyTimeoutMs?: number;
  /** Read a tracked file (null: it cannot be read); default: the file system. */
  readonly readFile?: (path: string) => string | null;
  /** Write a track_file's init_file value; default: the file system. */
  readonly writeFile?: (path: string, text: string) => void;
  /** How often tracked files are read (default 1 s). */
  readonly trackFileMs?: number;
  /** Opens notify_fifo / vrrp_notify_fifo (default: the real FIFO, created when absent). */
  readonly openFifo?: FifoOpener;
  /** The running processes, for vrrp_track_process (default: /proc). */
  readonly listProcesses?: (o: { cmdline: boolean }) => readonly ProcessEntry[];
  /** How often processes are counted (default 1 s). */
  readonly trackProcessMs?: number;
}

/** A static or virtual route's identity: what `ip` is told, and how. */
function routeKey(r: StaticRoute): string {
  return `${r.kind} ${r.family} ${r.action} ${r.words.join(' ')}`;
}

/** The names some instance or sync group tracks (its track_script or track_file entries). */
function trackedNames(cfg: FulcrumConfig, pick: (x: VrrpInstance | VrrpSyncGroup) => readonly { readonly name: string }[] | undefined): Set<string> {
  const used = new Set<string>();
  for (const x of [...cfg.vrrpInstances, ...cfg.vrrpSyncGroups]) for (const t of pick(x) ?? []) used.add(t.name);
  return used;
}

function readFileOrNull(p: string): string | null {
  try {
    return fs.readFileSync(p, 'utf8').slice(0, 128);
  } catch {
    return null;
  }
}

export interface InstanceStatus {
  readonly name: string;
  readonly state: VrrpStateName;
  readonly priority: number;
  readonly basePriority: number;
  readonly vrid: number;
  readonly interface: string | null;
  readonly family: 'inet' | 'inet6';
  readonly version: 2 | 3;
  readonly advertInt: number;
  readonly addresses: readonly string[];
  readonly master: string | null;
  readonly source: string | null;
  /** Clock time of the last transition. */
  readonly since: number;
  readonly reason: TransitionReason | null;
  readonly faults: readonly string[];
  readonly advertsSent: number;
  readonly advertsReceived: number;
  readonly becameMaster: number;
  readonly transitions: number;
  readonly drops: Readonly<Record<string, number>>;
}

interface Port {
  readonly key: string;
  readonly ifname: string | null;
  /** The multicast group joined (undefined: unicast peers only). */
  readonly group: string | undefined;
  readonly channel: VrrpChannel;
  readonly instances: Map<number, Inst>;
}

interface Inst {
  cfg: VrrpInstance;
  fsm: FsmConfig;
  st: FsmState;
  group: VrrpSyncGroup | undefined;
  port: Port | null;
  source: string | null;
  timer: unknown;
  garpTimer: unknown;
  /** garp_master_refresh: the next refresh while MASTER. */
  refreshTimer: unknown;
  faults: readonly string[];
  since: number;
  reason: TransitionReason | null;
  sent: number;
  received: number;
  becameMaster: number;
  transitions: number;
  drops: Map<string, number>;
  notify: Promise<void>;
}

const LOG_EVERY_MS = 10_000;

function intervalCs(i: VrrpInstance): number {
  return Math.round(i.advertInt * 100);
}

function sameIdentity(a: VrrpInstance, b: VrrpInstance): boolean {
  return a.vrid === b.vrid && a.interface === b.interface && a.family === b.family && a.version === b.version
    && a.mcastSrcIp === b.mcastSrcIp && a.unicastSrcIp === b.unicastSrcIp
    && JSON.stringify(a.unicastPeers) === JSON.stringify(b.unicastPeers) && JSON.stringify(a.vmac) === JSON.stringify(b.vmac);
}

/** The virtual router MAC of RFC 5798 §7.3: 00:00:5e:00:01:VRID (IPv4), 00:00:5e:00:02:VRID (IPv6). */
export function vrrpMac(vrid: number, family: VirtualIp['family'] = 'inet'): string {
  return `00:00:5e:00:0${family === 'inet6' ? 2 : 1}:${vrid.toString(16).padStart(2, '0')}`;
}

/** An address as the held/managed sets key it (one spelling per address). */
export function addressKey(address: string): string {
  return ipaddr.parse(address).toNormalizedString();
}

function vipKey(v: VirtualIp): string {
  return addressKey(v.address);
}

/** Every address some instance of `config` manages, keyed by `addressKey`. */
export function vrrpAddresses(config: FulcrumConfig | null): Set<string> {
  const out = new Set<string>();
  for (const c of config?.vrrpInstances ?? []) for (const v of instanceAddresses(c)) out.add(vipKey(v));
  return out;
}

function permissionError(lacking: readonly string[]): SysError {
  return new SysError(SysErrorCode.PERMISSION, `VRRP needs ${lacking.join(' and ')} (raw sockets and gratuitous ARP need CAP_NET_RAW, virtual addresses CAP_NET_ADMIN): ` +
    `run as root or grant them (setcap cap_net_raw,cap_net_admin+ep, or AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN in the systemd unit)`);
}

export class VrrpNode {
  private readonly insts = new Map<string, Inst>();
  private readonly ports = new Map<string, Port>();
  private readonly scripts = new Map<string, { def: VrrpScript; standing: ScriptStanding; timer: unknown; running: boolean }>();
  /** static_ipaddress / static_routes / static_rules in place, by key. */
  private readonly staticAddrs = new Map<string, VirtualIp>();
  private readonly staticRoutes = new Map<string, StaticRoute>();
  /** notify_fifo and vrrp_notify_fifo, open: every state change is a line in each. */
  private fifos = new Map<string, NotifyFifo>();
  /** track_file blocks some instance or sync group tracks: the value last read, and the poll. */
  private readonly files = new Map<string, { def: TrackFile; value: number; timer: unknown }>();
  /** vrrp_track_process blocks in use, with their standing; one /proc scan a tick serves them all. */
  private readonly procs = new Map<string, { def: TrackProcess; standing: ProcessStanding }>();
  private procTimer: unknown = null;
  private readonly totalDrops = new Map<string, number>();
  private readonly logged = new Map<string, { at: number; count: number }>();
  private config: FulcrumConfig | null = null;
  private watch: { close(): void } | null = null;
  private held = new Set<string>();
  /** What the host's VIP filter drops now (`family address`), as last applied. */
  private filtered = new Set<string>();
  /** The state each sync group last notified, by group name. */
  private readonly groupStates = new Map<string, string>();
  private stopped = false;
  /** Ports opened by prepare() or emptied during a reload, not (yet) used by an instance. */
  private readonly spare = new Map<string, Port>();
  private reloading = false;
  private readonly run: (spec: ScriptSpec, o: RunScriptOptions) => Promise<ScriptOutcome>;

  constructor(private readonly o: VrrpNodeOptions) {
    this.run = o.runScript ?? realRunScript;
  }

  /** Start every instance. Throws a SysError when the sockets cannot be opened (no CAP_NET_RAW). */
  start(config: FulcrumConfig): void {
    this.config = config;
    if (config.vrrpInstances.length === 0) return;
    const lacking = this.o.host.missingCapabilities();
    if (lacking.length > 0) throw permissionError(lacking);
    this.watch = this.o.host.watchLinks(() => this.linksChanged());
    this.syncScripts();
    this.syncFiles();
    this.syncProcesses();
    this.syncFifos();
    this.syncStatics();
    try {
      for (const cfg of config.vrrpInstances) this.addInstance(cfg);
    } catch (err: unknown) {
      for (const i of this.insts.values()) this.clearTimers(i);
      for (const p of this.ports.values()) p.channel.close();
      this.ports.clear();
      for (const i of this.insts.values()) this.makeVmac(i.cfg, 'delete');
      this.insts.clear();
      this.watch.close();
      this.watch = null;
      for (const s of this.scripts.values()) this.o.clock.cancel(s.timer);
      this.scripts.clear();
      for (const f of this.files.values()) this.o.clock.cancel(f.timer);
      this.files.clear();
      this.stopProcesses();
      for (const f of this.fifos.values()) f.close();
      this.fifos.clear();
      throw err;
    }
    // Tracking first, so an instance that starts faulty goes straight to FAULT.
    this.evaluate();
    for (const i of this.insts.values()) this.fire(i, { type: 'startup' });
  }

  /**
   * A reload: instances keep their state by name. A changed identity (VRID, interface,
   * family, version, source, peers) restarts the instance; other changes (priority,
   * addresses, timers, tracking, scripts) apply in place.
   */
  reload(config: FulcrumConfig): void {
    const prev = this.config;
    this.config = config;
    if (!prev || this.stopped) return;
    this.reloading = true;
    try {
      this.reloadNow(config);
    } finally {
      this.reloading = false;
      this.closeSpares();
    }
  }

  private reloadNow(config: FulcrumConfig): void {
    if (!this.watch && config.vrrpInstances.length > 0) this.watch = this.o.host.watchLinks(() => this.linksChanged());
    this.syncScripts();
    this.syncFiles();
    this.syncProcesses();
    this.syncFifos();
    this.syncStatics();
    const wanted = new Map(config.vrrpInstances.map((c) => [c.name, c]));
    for (const [name, i] of [...this.insts]) {
      const next = wanted.get(name);
      if (!next || !sameIdentity(i.cfg, next)) this.removeInstance(i);
    }
    const fresh: Inst[] = [];
    for (const cfg of config.vrrpInstances) {
      const i = this.insts.get(cfg.name);
      if (!i) {
        this.addInstance(cfg);
        const added = this.insts.get(cfg.name);
        if (added) fresh.push(added);
        continue;
      }
      const before = new Set(instanceAddresses(i.cfg).map(vipKey));
      const old = i.cfg;
      i.cfg = cfg;
      i.fsm = this.fsmConfig(cfg, i.source ?? '0.0.0.0');
      i.group = this.groupOf(cfg.name);
      if (i.st.name === 'MASTER') {
        const keep = new Set((cfg.virtualRoutes ?? []).map(routeKey));
        const had = new Set((old.virtualRoutes ?? []).map(routeKey));
        for (const r of old.virtualRoutes ?? []) if (!keep.has(routeKey(r))) this.virtualRoute(i, 'delete', r);
        const now = new Set(instanceAddresses(cfg).map(vipKey));
        for (const v of instanceAddresses(old)) if (!now.has(vipKey(v))) this.removeVip(i, v);
        for (const v of instanceAddresses(cfg)) {
          if (before.has(vipKey(v))) continue;
          this.addVip(i, v);
          this.announceVip(i, v, cfg.garpMasterRepeat);
        }
        for (const r of cfg.virtualRoutes ?? []) if (!had.has(routeKey(r))) this.virtualRoute(i, 'add', r);
      }
    }
    this.evaluate();
    for (const i of fresh) this.fire(i, { type: 'startup' });
    this.publishHeld();
  }

  /** Shut down: masters send priority 0 (fast takeover), addresses go, notify_stop runs. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    for (const i of this.insts.values()) this.fire(i, { type: 'shutdown' });
    for (const i of this.insts.values()) this.clearTimers(i);
    for (const s of this.scripts.values()) this.o.clock.cancel(s.timer);
    for (const f of this.files.values()) this.o.clock.cancel(f.timer);
    this.stopProcesses();
    for (const p of this.ports.values()) p.channel.close();
    this.ports.clear();
    this.closeSpares();
    for (const i of this.insts.values()) this.makeVmac(i.cfg, 'delete');
    this.watch?.close();
    this.watch = null;
    this.syncStatics(true);
    this.syncFilter();
    // The STOP lines are written: the FIFOs can go.
    for (const f of this.fifos.values()) f.close();
    this.fifos.clear();
    await Promise.all([...this.insts.values()].map((i) => i.notify));
  }

  /** Virtual addresses held now (instances in MASTER), normalized. */
  heldAddresses(): ReadonlySet<string> {
    return this.held;
  }

  /** Every virtual address some instance manages, normalized. */
  managedAddresses(): ReadonlySet<string> {
    return vrrpAddresses(this.config);
  }

  /** Packets dropped, by reason, over all interfaces. */
  drops(): Readonly<Record<string, number>> {
    return Object.fromEntries(this.totalDrops);
  }

  status(): InstanceStatus[] {
    return [...this.insts.values()].map((i) => ({
      name: i.cfg.name, state: i.st.name, priority: i.st.priority, basePriority: i.cfg.priority, vrid: i.cfg.vrid,
      interface: i.cfg.interface ?? null, family: i.cfg.family, version: i.cfg.version, advertInt: i.cfg.advertInt,
      addresses: i.cfg.virtualIpAddresses.map((v) => `${v.address}/${v.prefixLength}`),
      master: i.st.name === 'MASTER' ? i.source : i.st.masterAddress, source: i.source, since: i.since, reason: i.reason,
      faults: i.faults, advertsSent: i.sent, advertsReceived: i.received, becameMaster: i.becameMaster, transitions: i.transitions,
      drops: Object.fromEntries(i.drops),
    }));
  }

  // ---------------------------------------------------------------------------------

  private groupOf(name: string): VrrpSyncGroup | undefined {
    return this.config?.vrrpSyncGroups.find((g) => g.group.includes(name));
  }

  private fsmConfig(cfg: VrrpInstance, source: string): FsmConfig {
    // The instance lvs_sync_daemon follows holds preemption for one full sync cycle (see
    // LVS_SYNC_PREEMPT_HOLD): a returning master takes over once it holds the connections.
    const hold = this.config?.global.lvsSyncDaemon?.instance === cfg.name ? D.LVS_SYNC_PREEMPT_HOLD : 0;
    return { version: cfg.version, intervalCs: intervalCs(cfg), nopreempt: cfg.nopreempt && cfg.initialState === 'BACKUP', preemptDelayMs: Math.max(cfg.preemptDelay, hold) * 1000, address: source };
  }

  /** The group adverts go to: global_defs' vrrp_mcast_group4/6, else RFC 5798's. */
  private multicastGroup(cfg: VrrpInstance, config: FulcrumConfig | null = this.config): string {
    return cfg.family === 'inet' ? config?.global.vrrpMcastGroup4 ?? D.VRRP_MCAST_GROUP4 : config?.global.vrrpMcastGroup6 ?? D.VRRP_MCAST_GROUP6;
  }

  /** Our source address: configured, else the interface's first address of the family that is not a VIP (IPv6: link-local). */
  private sourceOf(cfg: VrrpInstance, config: FulcrumConfig | null = this.config): string | null {
    const conf = cfg.mcastSrcIp ?? cfg.unicastSrcIp;
    if (conf !== undefined) return conf;
    if (cfg.interface === undefined) return null;
    const link = this.o.host.link(cfg.interface);
    if (!link) return null;
    const vips = vrrpAddresses(config);
    const cands = link.addresses.filter((a) => a.family === cfg.family && !vips.has(addressKey(a.address)));
    const pick = cfg.family === 'inet6' ? cands.find((a) => ipaddr.parse(a.address).range() === 'linkLocal') : cands[0];
    return pick?.address ?? null;
  }

  private addInstance(cfg: VrrpInstance): void {
    const now = this.o.clock.now();
    const i: Inst = {
      cfg, fsm: this.fsmConfig(cfg, '0.0.0.0'), st: initialState(cfg.priority), group: this.groupOf(cfg.name), port: null, source: null,
      timer: null, garpTimer: null, refreshTimer: null, faults: [], since: now, reason: null, sent: 0, received: 0, becameMaster: 0, transitions: 0,
      drops: new Map(), notify: Promise.resolve(),
    };
    this.insts.set(cfg.name, i);
    this.makeVmac(cfg, 'add');
    this.attach(i);
  }

  /** use_vmac: the instance's macvlan, made with it and removed with it. */
  private makeVmac(cfg: VrrpInstance, op: 'add' | 'delete'): void {
    if (!cfg.vmac || cfg.interface === undefined) return;
    try {
      this.o.host.vmac(op, { name: cfg.vmac.name, base: cfg.interface, mac: vrrpMac(cfg.vrid, cfg.family), family: cfg.family });
      // IPv6 adverts leave the vmac from the interface's own link-local (keepalived's
      // set_link_local_address): it goes on the vmac too.
      const source = op === 'add' && cfg.family === 'inet6' && !cfg.vmac.xmitBase ? this.sourceOf(cfg) : null;
      if (source !== null) this.o.host.addAddress({ ifname: cfg.vmac.name, family: 'inet6', address: source, prefixLength: 64 });
    } catch (err: unknown) {
      publish({ type: 'error', instance: cfg.name, message: `use_vmac ${cfg.vmac.name}: ${errorMessage(err)}` });
    }
  }

  /** The interface a virtual address goes on: its own `dev`, else the vmac, else the instance's. */
  private vipIf(i: Inst, v: VirtualIp): string | undefined {
    return v.dev ?? i.cfg.vmac?.name ?? i.cfg.interface;
  }

  /** Where an instance's adverts go and come from: its port's key, source and group (null: no source address yet). */
  private portOf(cfg: VrrpInstance, config: FulcrumConfig | null = this.config): { key: string; source: string; group: string | undefined } | null {
    const source = this.sourceOf(cfg, config);
    if (source === null) return null;
    const group = cfg.unicastPeers.length > 0 ? undefined : this.multicastGroup(cfg, config);
    const tx = cfg.vmac && !cfg.vmac.xmitBase ? cfg.vmac.name : '';
    return { key: `${cfg.family}|${cfg.interface ?? ''}|${source}|${group ?? 'unicast'}|${tx}`, source, group };
  }

  /** Open a port's channel (throws a SysError when the socket cannot be had). */
  private openPort(cfg: VrrpInstance, at: { key: string; source: string; group: string | undefined }): Port {
    const ifname = cfg.interface ?? null;
    let p: Port | null = null;
    // use_vmac: adverts leave from the virtual MAC interface (the RFC's source MAC), unless
    // vmac_xmit_base; they are heard on the interface itself either way.
    const txIfname = cfg.vmac && !cfg.vmac.xmitBase ? cfg.vmac.name : undefined;
    const ch = this.o.host.openVrrp({ family: cfg.family, ifname: cfg.interface, group: at.group, source: at.source, txIfname }, (pkt) => {
      // A spare port (prepared, not yet used) hears nothing on behalf of an instance.
      if (p && this.ports.get(p.key) === p) this.receive(p, pkt);
    });
    p = { key: at.key, ifname, group: at.group, channel: ch, instances: new Map() };
    return p;
  }

  /** Find the source address and join the instance to its port (a prepared one, or opened now). */
  private attach(i: Inst): void {
    const at = this.portOf(i.cfg);
    if (at === null) return;
    const { key, source } = at;
    i.source = source;
    i.fsm = this.fsmConfig(i.cfg, source);
    let port = this.ports.get(key);
    if (!port) {
      port = this.spare.get(key) ?? this.openPort(i.cfg, at);
      this.spare.delete(key);
      this.ports.set(key, port);
    }
    const other = port.instances.get(i.cfg.vrid);
    if (other && other !== i) {
      publish({ type: 'error', instance: i.cfg.name, message: `VRID ${i.cfg.vrid} is already used by ${other.cfg.name} on ${port.ifname ?? 'this link'}` });
      return;
    }
    port.instances.set(i.cfg.vrid, i);
    i.port = port;
  }

  private detach(i: Inst): void {
    const p = i.port;
    if (!p) return;
    p.instances.delete(i.cfg.vrid);
    i.port = null;
    if (p.instances.size === 0) {
      this.ports.delete(p.key);
      // During a reload an emptied port is kept for an instance that may need it again
      // (reopening could fail); whatever is left spare is closed when the reload ends.
      if (this.reloading) this.spare.set(p.key, p);
      else p.channel.close();
    }
  }

  private closeSpares(): void {
    for (const p of this.spare.values()) p.channel.close();
    this.spare.clear();
  }

  /**
   * The first phase of a start or reload: check and open everything `config` needs that
   * is not open yet — the part that can fail (no capability, a socket that cannot be
   * bound). Throws, with nothing changed, when it cannot; else `commit` (start/reload with
   * what was opened, which cannot fail for want of a socket) or `abort` (close it again).
   */
  prepare(config: FulcrumConfig): { commit(): void; abort(): void } {
    if (this.stopped) throw new SysError(SysErrorCode.FAILED, 'VRRP is stopped');
    const first = this.config === null || this.insts.size === 0 && this.ports.size === 0 && this.watch === null;
    if (config.vrrpInstances.length > 0) {
      const lacking = this.o.host.missingCapabilities();
      if (lacking.length > 0) throw permissionError(lacking);
    }
    const opened: Port[] = [];
    try {
      for (const cfg of config.vrrpInstances) {
        const i = this.insts.get(cfg.name);
        if (i && i.port && sameIdentity(i.cfg, cfg)) continue;
        // A port sending from a vmac not made yet opens at commit, after the vmac.
        if (cfg.vmac && !cfg.vmac.xmitBase && !this.o.host.link(cfg.vmac.name)) continue;
        const at = this.portOf(cfg, config);
        if (at === null || this.ports.has(at.key) || this.spare.has(at.key)) continue;
        const p = this.openPort(cfg, at);
        opened.push(p);
        this.spare.set(at.key, p);
      }
    } catch (err: unknown) {
      for (const p of opened) {
        p.channel.close();
        this.spare.delete(p.key);
      }
      throw err;
    }
    return {
      commit: () => {
        if (first) this.start(config);
        else this.reload(config);
        this.closeSpares();
      },
      abort: () => {
        for (const p of opened) {
          p.channel.close();
          this.spare.delete(p.key);
        }
      },
    };
  }

  private removeInstance(i: Inst): void {
    this.fire(i, { type: 'shutdown' });
    this.clearTimers(i);
    this.detach(i);
    this.insts.delete(i.cfg.name);
    this.makeVmac(i.cfg, 'delete');
  }

  private clearTimers(i: Inst): void {
    if (i.timer !== null) this.o.clock.cancel(i.timer);
    if (i.garpTimer !== null) this.o.clock.cancel(i.garpTimer);
    if (i.refreshTimer !== null) this.o.clock.cancel(i.refreshTimer);
    i.timer = null;
    i.garpTimer = null;
    i.refreshTimer = null;
  }

  private fire(i: Inst, ev: FsmEvent): void {
    const now = this.o.clock.now();
    const r = step(i.fsm, i.st, ev, now);
    i.st = r.state;
    for (const e of r.effects) {
      if (e.kind === 'advert') this.advertise(i, e.priority);
      else this.transition(i, e.from, e.to, e.reason);
    }
    if (i.timer !== null) this.o.clock.cancel(i.timer);
    i.timer = null;
    if (i.st.timerAt !== null && !this.stopped) {
      const at = i.st.timerAt;
      i.timer = this.o.clock.setTimer(() => {
        i.timer = null;
        if (this.insts.get(i.cfg.name) === i) this.fire(i, { type: 'timer' });
      }, Math.max(0, at - now));
    }
  }

  private advertise(i: Inst, priority: number): void {
    const port = i.port;
    const src = i.source;
    if (!port || src === null) return;
    const dsts = i.cfg.unicastPeers.length > 0 ? i.cfg.unicastPeers.map((p) => p.address) : [this.multicastGroup(i.cfg)];
    for (const dst of dsts) {
      const payload = encodeAdvert({
        version: i.cfg.version, family: i.cfg.family, vrid: i.cfg.vrid, priority, intervalCs: intervalCs(i.cfg),
        addresses: i.cfg.virtualIpAddresses.map((v) => v.address), password: i.cfg.auth?.pass, src, dst,
      });
      try {
        port.channel.send(payload, dst);
        i.sent++;
      } catch (err: unknown) {
        publish({ type: 'error', instance: i.cfg.name, message: err instanceof Error ? err.message : String(err) });
      }
    }
  }

  private transition(i: Inst, from: VrrpStateName, to: VrrpStateName, reason: TransitionReason): void {
    i.transitions++;
    i.since = this.o.clock.now();
    i.reason = reason;
    if (to === 'MASTER') {
      i.becameMaster++;
      for (const v of instanceAddresses(i.cfg)) this.addVip(i, v);
      for (const r of i.cfg.virtualRoutes ?? []) this.virtualRoute(i, 'add', r);
      this.announceAll(i);
    } else if (from === 'MASTER' || from === 'INIT') {
      // Routes first: they may go through the addresses.
      if (from === 'MASTER') for (const r of i.cfg.virtualRoutes ?? []) this.virtualRoute(i, 'delete', r);
      // Leaving MASTER, or starting: the addresses must not be here (keepalived removes
      // leftovers from a previous run too).
      if (i.garpTimer !== null) this.o.clock.cancel(i.garpTimer);
      if (i.refreshTimer !== null) this.o.clock.cancel(i.refreshTimer);
      i.garpTimer = null;
      i.refreshTimer = null;
      for (const v of instanceAddresses(i.cfg)) this.removeVip(i, v);
    }
    publish({ type: 'transition', instance: i.cfg.name, from, to, reason, priority: i.st.priority, master: to === 'MASTER' ? i.source : i.st.masterAddress });
    const stateWord = to === 'INIT' ? 'STOP' : to;
    this.fifoLine('INSTANCE', i.cfg.name, stateWord, i.st.priority);
    this.queueNotify(i, 'INSTANCE', i.cfg.name, stateWord, i.cfg.notify);
    if (i.group && reason !== 'sync-group') {
      for (const name of i.group.group) {
        const m = this.insts.get(name);
        if (!m || m === i) continue;
        if (to === 'MASTER') this.fire(m, { type: 'sync', to: 'MASTER' });
        else if (to === 'BACKUP' && from === 'MASTER') this.fire(m, { type: 'sync', to: 'BACKUP' });
      }
    }
    if (i.group) this.groupNotify(i.group);
    this.publishHeld();
  }

  /** A sync group's scripts run once all its members agree on a state. */
  private groupNotify(g: VrrpSyncGroup): void {
    const states = g.group.map((n) => this.insts.get(n)?.st.name);
    const first = states[0];
    if (first === undefined || states.some((s) => s !== first)) return;
    const word = first === 'INIT' ? 'STOP' : first;
    if (this.groupStates.get(g.name) === word) return;
    this.groupStates.set(g.name, word);
    this.fifoLine('GROUP', g.name, word, 0);
    const lead = this.insts.get(g.group[0] ?? '');
    if (lead) this.queueNotify(lead, 'GROUP', g.name, word, g.notify);
  }

  /**
   * static_ipaddress, static_routes and static_rules: what the configuration has and the
   * host lacks is added (addresses first), what it no longer has is removed (routes first);
   * `clear` removes everything (at stop). They do not move with VRRP state. A refusal is
   * reported and the rest still applies.
   */
  private syncStatics(clear = false): void {
    const cfg = this.config;
    const addrs = new Map<string, VirtualIp>(clear ? [] : (cfg?.staticAddresses ?? []).map((a) => [`${a.dev ?? 'eth0'} ${vipKey(a)}`, a]));
    const routes = new Map<string, StaticRoute>(clear ? [] : (cfg?.staticRoutes ?? []).map((r) => [routeKey(r), r]));
    const fail = (what: string, err: unknown): void => {
      reportFailure('vrrp', FailureCode.VRRP, err, { static: what });
      publish({ type: 'error', instance: 'static', message: `${what}: ${errorMessage(err)}` });
    };
    for (const [k, r] of [...this.staticRoutes]) {
      if (routes.has(k)) continue;
      this.staticRoutes.delete(k);
      try {
        this.o.host.route('delete', r);
      } catch (err: unknown) {
        fail(`removing static ${r.kind} ${r.words.join(' ')}`, err);
      }
    }
    for (const [k, a] of [...this.staticAddrs]) {
      if (addrs.has(k)) continue;
      this.staticAddrs.delete(k);
      try {
        this.o.host.removeAddress({ ifname: a.dev ?? 'eth0', family: a.family, address: a.address, prefixLength: a.prefixLength });
      } catch (err: unknown) {
        fail(`removing static address ${a.address}`, err);
      }
    }
    for (const [k, a] of addrs) {
      if (this.staticAddrs.has(k)) continue;
      try {
        this.o.host.addAddress({ ifname: a.dev ?? 'eth0', family: a.family, address: a.address, prefixLength: a.prefixLength, label: a.label, brd: a.brd, scope: a.scope });
        this.staticAddrs.set(k, a);
      } catch (err: unknown) {
        fail(`static address ${a.address}`, err);
      }
    }
    for (const [k, r] of routes) {
      if (this.staticRoutes.has(k)) continue;
      try {
        this.o.host.route('add', r);
        this.staticRoutes.set(k, r);
      } catch (err: unknown) {
        fail(`static ${r.kind} ${r.words.join(' ')}`, err);
      }
    }
  }

  /** Open the FIFOs the configuration names (notify_fifo, vrrp_notify_fifo); close the others. */
  private syncFifos(): void {
    const g = this.config?.global;
    const want = new Set([g?.notifyFifo, g?.vrrpNotifyFifo].filter((x): x is string => x !== undefined));
    for (const [p, f] of [...this.fifos]) {
      if (want.has(p)) continue;
      f.close();
      this.fifos.delete(p);
    }
    for (const p of want) {
      if (this.fifos.has(p)) continue;
      try {
        this.fifos.set(p, (this.o.openFifo ?? openNotifyFifo)(p));
      } catch (err: unknown) {
        reportFailure('vrrp', FailureCode.VRRP, err, { fifo: p });
      }
    }
  }

  /** keepalived's FIFO line, `INSTANCE "VI_1" MASTER 100`, in every open FIFO, in order. */
  private fifoLine(kind: 'INSTANCE' | 'GROUP', name: string, state: string, priority: number): void {
    for (const f of this.fifos.values()) {
      if (!f.write(`${kind} "${name}" ${state} ${priority}`)) reportFailure('vrrp', FailureCode.VRRP, `notify FIFO ${f.path} is full (nobody reads it): a line was dropped`, { fifo: f.path, dropped: f.dropped });
    }
  }

  private queueNotify(i: Inst, kind: 'INSTANCE' | 'GROUP', name: string, state: string, n: VrrpInstance['notify']): void {
    const specific = state === 'MASTER' ? n.master : state === 'BACKUP' ? n.backup : state === 'FAULT' ? n.fault : n.stop;
    const jobs: { spec: ScriptSpec; args: string[] }[] = [];
    if (specific) jobs.push({ spec: specific, args: [] });
    if (n.any) jobs.push({ spec: n.any, args: [kind, name, state, String(i.st.priority)] });
    if (jobs.length === 0) return;
    const global: GlobalDefs | undefined = this.config?.global;
    // The chain never rejects: a runner that throws is reported and the next notify still runs.
    i.notify = i.notify.then(async () => {
      for (const j of jobs) {
        const timeoutMs = this.o.notifyTimeoutMs ?? 30_000;
        const script = [j.spec.text, ...j.args].join(' ');
        try {
          const out = await this.run(j.spec, { timeoutMs, args: j.args, defaultUser: global?.scriptUser });
          publish({ type: 'notify', instance: name, script, ok: out.exitCode === 0, outcome: describeOutcome(out, timeoutMs) });
        } catch (err: unknown) {
          reportFailure('vrrp', FailureCode.SCRIPT, err, { instance: name, script });
          publish({ type: 'notify', instance: name, script, ok: false, outcome: `cannot run: ${errorMessage(err)}` });
        }
      }
    });
  }

  /** A virtual_routes / virtual_rules entry in or out with the addresses; a refusal is reported. */
  private virtualRoute(i: Inst, op: 'add' | 'delete', r: StaticRoute): void {
    try {
      this.o.host.route(op, r);
    } catch (err: unknown) {
      reportFailure('vrrp', FailureCode.VRRP, err, { instance: i.cfg.name });
      publish({ type: 'error', instance: i.cfg.name, message: `${op === 'add' ? '' : 'removing '}virtual ${r.kind} ${r.words.join(' ')}: ${errorMessage(err)}` });
    }
  }

  private addVip(i: Inst, v: VirtualIp): void {
    const ifname = this.vipIf(i, v);
    if (ifname === undefined) return;
    try {
      this.o.host.addAddress({ ifname, family: v.family, address: v.address, prefixLength: v.prefixLength, label: v.label, brd: v.brd, scope: v.scope });
    } catch (err: unknown) {
      publish({ type: 'error', instance: i.cfg.name, message: err instanceof Error ? err.message : String(err) });
    }
  }

  private removeVip(i: Inst, v: VirtualIp): void {
    const ifname = this.vipIf(i, v);
    if (ifname === undefined) return;
    try {
      this.o.host.removeAddress({ ifname, family: v.family, address: v.address, prefixLength: v.prefixLength });
    } catch (err: unknown) {
      publish({ type: 'error', instance: i.cfg.name, message: err instanceof Error ? err.message : String(err) });
    }
  }

  private announceVip(i: Inst, v: VirtualIp, times: number): void {
    const ifname = this.vipIf(i, v);
    if (ifname === undefined) return;
    try {
      this.o.host.announce(ifname, v.family, v.address, times);
    } catch (err: unknown) {
      publish({ type: 'error', instance: i.cfg.name, message: err instanceof Error ? err.message : String(err) });
    }
  }

  /** garp_master_repeat announcements now, and as many again after garp_master_delay. */
  private announceAll(i: Inst): void {
    const vips = instanceAddresses(i.cfg);
    for (const v of vips) this.announceVip(i, v, i.cfg.garpMasterRepeat);
    if (i.garpTimer !== null) this.o.clock.cancel(i.garpTimer);
    i.garpTimer = null;
    if (i.cfg.garpMasterDelay > 0) {
      i.garpTimer = this.o.clock.setTimer(() => {
        i.garpTimer = null;
        if (i.st.name === 'MASTER' && !this.stopped) for (const v of vips) this.announceVip(i, v, i.cfg.garpMasterRepeat);
      }, i.cfg.garpMasterDelay * 1000);
    }
    this.scheduleRefresh(i);
  }

  /** garp_master_refresh: while MASTER, every N seconds, garp_master_refresh_repeat announcements of each address. */
  private scheduleRefresh(i: Inst): void {
    if (i.refreshTimer !== null) this.o.clock.cancel(i.refreshTimer);
    i.refreshTimer = null;
    const every = i.cfg.garpMasterRefresh ?? 0;
    if (every <= 0) return;
    i.refreshTimer = this.o.clock.setTimer(() => {
      i.refreshTimer = null;
      if (i.st.name !== 'MASTER' || this.stopped) return;
      for (const v of instanceAddresses(i.cfg)) this.announceVip(i, v, i.cfg.garpMasterRefreshRepeat ?? 1);
      this.scheduleRefresh(i);
    }, every * 1000);
  }

  /**
   * The VIP filter: the addresses of MASTER instances without accept mode, whose traffic the
   * host drops (keepalived's no_accept / strict mode). Applied when the set changes.
   */
  private syncFilter(): void {
    const want = new Map<string, { family: VirtualIp['family']; address: string }>();
    if (!this.stopped) {
      for (const i of this.insts.values()) {
        if (i.st.name !== 'MASTER' || i.cfg.accept) continue;
        for (const v of instanceAddresses(i.cfg)) want.set(`${v.family} ${v.address}`, { family: v.family, address: v.address });
      }
    }
    if (want.size === this.filtered.size && [...want.keys()].every((k) => this.filtered.has(k))) return;
    try {
      this.o.host.filterVips([...want.values()]);
      this.filtered = new Set(want.keys());
    } catch (err: unknown) {
      reportFailure('vrrp', FailureCode.NFT_TRANSACTION, err);
    }
  }

  private publishHeld(): void {
    this.syncFilter();
    const next = new Set<string>();
    for (const i of this.insts.values()) {
      if (i.st.name !== 'MASTER') continue;
      for (const v of instanceAddresses(i.cfg)) next.add(vipKey(v));
    }
    if (next.size === this.held.size && [...next].every((x) => this.held.has(x))) return;
    this.held = next;
    this.o.onHeldChange?.(next);
  }

  // --- receiving -------------------------------------------------------------------

  private receive(port: Port, pkt: VrrpPacketIn): void {
    if (this.stopped) return;
    let payload: Buffer;
    let env: { family: 'inet' | 'inet6'; src: string; dst: string; ttl: number | undefined };
    if (pkt.family === 'inet') {
      const d = decodeIpv4(pkt.data);
      if (!d.ok) return this.dropped(port, null, pkt.src, d);
      if (d.protocol !== VRRP_PROTOCOL) return;
      payload = d.payload;
      env = { family: 'inet', src: d.src, dst: d.dst, ttl: d.ttl };
    } else {
      payload = pkt.data;
      env = { family: 'inet6', src: pkt.src, dst: pkt.dst ?? port.group ?? D.VRRP_MCAST_GROUP6, ttl: pkt.ttl };
    }
    for (const i of port.instances.values()) if (i.source === env.src) return; // our own
    const r = decodeAdvert(payload, env);
    if (!r.ok) return this.dropped(port, payload.length >= 2 ? port.instances.get(payload[1] ?? 0) ?? null : null, env.src, r);
    const i = port.instances.get(r.advert.vrid);
    if (!i) return this.dropped(port, null, env.src, { ok: false, reason: DropReason.VRID, detail: `VRID ${r.advert.vrid} is not configured here` });
    const c = checkAdvert(r.advert, {
      version: i.cfg.version, family: i.cfg.family, intervalCs: intervalCs(i.cfg), addresses: i.cfg.virtualIpAddresses.map((v) => v.address), password: i.cfg.auth?.pass,
    });
    if (!c.ok) return this.dropped(port, i, env.src, c);
    i.received++;
    this.fire(i, { type: 'advert', priority: r.advert.priority, intervalCs: r.advert.intervalCs, src: env.src });
  }

  private dropped(port: Port, i: Inst | null, src: string, d: Drop): void {
    this.totalDrops.set(d.reason, (this.totalDrops.get(d.reason) ?? 0) + 1);
    if (i) i.drops.set(d.reason, (i.drops.get(d.reason) ?? 0) + 1);
    const key = `${i?.cfg.name ?? port.ifname}|${d.reason}|${src}`;
    const now = this.o.clock.now();
    const l = this.logged.get(key);
    if (l && now - l.at < LOG_EVERY_MS) {
      l.count++;
      return;
    }
    this.logged.set(key, { at: now, count: 0 });
    publish({ type: 'dropped', instance: i?.cfg.name ?? null, interface: port.ifname, src, reason: d.reason, detail: d.detail, count: (l?.count ?? 0) + 1 });
  }

  // --- tracking --------------------------------------------------------------------

  private linksChanged(): void {
    if (this.stopped) return;
    for (const i of this.insts.values()) {
      if (i.port) continue;
      try {
        this.attach(i);
      } catch (err: unknown) {
        publish({ type: 'error', instance: i.cfg.name, message: err instanceof Error ? err.message : String(err) });
      }
    }
    this.evaluate();
  }

  /** Keep the loops (scripts, files) the configuration still tracks, with their current definition; stop the others. */
  private keepUsed<D extends { readonly name: string }>(loops: Map<string, { def: D; timer: unknown }>, defs: readonly D[], used: ReadonlySet<string>): void {
    for (const [name, e] of [...loops]) {
      const def = defs.find((x) => x.name === name);
      if (!def || !used.has(name)) {
        this.o.clock.cancel(e.timer);
        loops.delete(name);
      } else e.def = def;
    }
  }

  /** Start, keep or stop the vrrp_script loops the configuration refers to. */
  private syncScripts(): void {
    const cfg = this.config;
    if (!cfg) return;
    const used = trackedNames(cfg, (x) => x.trackScripts);
    this.keepUsed(this.scripts, cfg.vrrpScripts, used);
    for (const def of cfg.vrrpScripts) {
      if (!used.has(def.name) || this.scripts.has(def.name)) continue;
      const s = { def, standing: initialStanding(def), timer: null as unknown, running: false };
      this.scripts.set(def.name, s);
      s.timer = this.o.clock.setTimer(() => this.runTrackScript(def.name), 0);
    }
  }

  /**
   * Start, keep or stop reading the track_file blocks the configuration refers to. A block
   * seen for the first time with init_file gets its value written when the file is absent
   * (or always, with overwrite), as keepalived does at start.
   */
  private syncFiles(): void {
    const cfg = this.config;
    if (!cfg) return;
    const used = trackedNames(cfg, (x) => x.trackFiles);
    this.keepUsed(this.files, cfg.trackFiles, used);
    const read = this.o.readFile ?? readFileOrNull;
    for (const def of cfg.trackFiles) {
      if (!used.has(def.name) || this.files.has(def.name)) continue;
      if (def.initFile && (def.initFile.overwrite || read(def.file) === null)) {
        try {
          (this.o.writeFile ?? ((p, t) => fs.writeFileSync(p, t)))(def.file, `${def.initFile.value}\n`);
        } catch (err: unknown) {
          publish({ type: 'error', instance: def.name, message: `track_file ${def.name}: cannot write init_file to ${def.file}: ${errorMessage(err)}` });
        }
      }
      const f = { def, value: parseTrackFileValue(read(def.file)) ?? 0, timer: null as unknown };
      this.files.set(def.name, f);
      f.timer = this.o.clock.setTimer(() => this.readTrackFile(def.name), this.o.trackFileMs ?? 1000);
    }
  }

  /**
   * Keep the vrrp_track_process blocks the configuration refers to (a new one is counted at
   * once: its first standing is its count, without delays, as keepalived starts), and the
   * scan loop while there are any.
   */
  private syncProcesses(): void {
    const cfg = this.config;
    if (!cfg) return;
    const used = trackedNames(cfg, (x) => x.trackProcesses);
    const defs = (cfg.trackProcesses ?? []).filter((d) => used.has(d.name));
    for (const name of [...this.procs.keys()]) if (!defs.some((d) => d.name === name)) this.procs.delete(name);
    const fresh = defs.filter((d) => !this.procs.has(d.name));
    for (const d of defs) {
      const p = this.procs.get(d.name);
      if (p) p.def = d;
    }
    if (fresh.length > 0) {
      const list = this.listProcesses(fresh);
      for (const def of fresh) {
        const n = list.filter((e) => processMatches(def, e)).length;
        this.procs.set(def.name, { def, standing: { up: n >= def.quorum && n <= def.quorumMax, since: null } });
      }
    }
    if (this.procs.size === 0) this.stopProcesses();
    else if (this.procTimer === null) this.procTimer = this.o.clock.setTimer(() => this.countProcesses(), this.o.trackProcessMs ?? 1000);
  }

  private stopProcesses(): void {
    if (this.procTimer !== null) this.o.clock.cancel(this.procTimer);
    this.procTimer = null;
  }

  private listProcesses(defs: Iterable<TrackProcess>): readonly ProcessEntry[] {
    const cmdline = [...defs].some((d) => d.fullCommand);
    try {
      return (this.o.listProcesses ?? readProcesses)({ cmdline });
    } catch (err: unknown) {
      reportFailure('vrrp', FailureCode.VRRP, err);
      return [];
    }
  }

  private countProcesses(): void {
    this.procTimer = null;
    if (this.stopped || this.procs.size === 0) return;
    const list = this.listProcesses([...this.procs.values()].map((p) => p.def));
    const now = this.o.clock.now();
    let changed = false;
    for (const [name, p] of this.procs) {
      const before = p.standing.up;
      p.standing = foldProcess(p.standing, list.filter((e) => processMatches(p.def, e)).length, p.def, now);
      if (p.standing.up !== before) {
        changed = true;
        publish({ type: 'script', script: name, ok: p.standing.up, outcome: p.standing.up ? 'track_process: quorum gained' : 'track_process: quorum lost' });
      }
    }
    if (changed) this.evaluate();
    this.procTimer = this.o.clock.setTimer(() => this.countProcesses(), this.o.trackProcessMs ?? 1000);
  }

  private readTrackFile(name: string): void {
    const f = this.files.get(name);
    if (!f || this.stopped) return;
    const v = parseTrackFileValue((this.o.readFile ?? readFileOrNull)(f.def.file));
    // An unreadable number keeps the last value (keepalived ignores the read).
    if (v !== null && v !== f.value) {
      f.value = v;
      this.evaluate();
    }
    f.timer = this.o.clock.setTimer(() => this.readTrackFile(name), this.o.trackFileMs ?? 1000);
  }

  private runTrackScript(name: string): void {
    const s = this.scripts.get(name);
    if (!s || this.stopped || s.running) return;
    s.running = true;
    const def = s.def;
    const timeoutMs = def.timeout * 1000;
    // Whatever happens to this run (a runner that throws included), the loop goes on: the
    // outcome is a failure and the next run is scheduled.
    const done = (ok: boolean, outcome: string): void => {
      s.running = false;
      if (this.stopped || this.scripts.get(name) !== s) return;
      const before = s.standing.ok;
      s.standing = foldScript(s.standing, ok, s.def);
      if (s.standing.ok !== before) {
        publish({ type: 'script', script: name, ok: s.standing.ok, outcome });
        this.evaluate();
      }
      s.timer = this.o.clock.setTimer(() => this.runTrackScript(name), s.def.interval * 1000);
    };
    let run: Promise<ScriptOutcome>;
    try {
      run = this.run(def.script, { timeoutMs, defaultUser: this.config?.global.scriptUser });
    } catch (err: unknown) {
      run = Promise.reject(err);
    }
    run.then((out) => done(out.exitCode === 0, describeOutcome(out, timeoutMs)), (err: unknown) => {
      reportFailure('vrrp', FailureCode.SCRIPT, err, { script: name });
      done(false, `cannot run: ${errorMessage(err)}`);
    });
  }

  /** Recompute every instance's priority and faults; sync group members fault together. */
  private evaluate(): void {
    const cfg = this.config;
    if (!cfg || this.stopped) return;
    const scripts = new Map([...this.scripts].map(([n, s]) => [n, s.standing.ok]));
    const scriptDefs = new Map(cfg.vrrpScripts.map((s) => [s.name, s]));
    const files = new Map([...this.files].map(([n, f]) => [n, f.value]));
    const fileDefs = new Map(cfg.trackFiles.map((f) => [f.name, f]));
    const processes = new Map([...this.procs].map(([n, p]) => [n, p.standing.up]));
    const processDefs = new Map((cfg.trackProcesses ?? []).map((p) => [p.name, p]));
    const linkCache = new Map<string, boolean>();
    const interfaceUp = (n: string): boolean => {
      let v = linkCache.get(n);
      if (v === undefined) {
        v = this.o.host.link(n)?.up ?? false;
        linkCache.set(n, v);
      }
      return v;
    };
    const verdicts = new Map<Inst, { priority: number; faults: string[] }>();
    for (const i of this.insts.values()) {
      const v = trackVerdict(i.cfg, i.group, { scripts, scriptDefs, interfaceUp, files, fileDefs, processes, processDefs });
      const faults = [...v.faults];
      if (i.source === null) faults.push(i.cfg.interface !== undefined ? `no ${i.cfg.family === 'inet' ? 'IPv4' : 'IPv6 link-local'} address on ${i.cfg.interface}` : 'no source address');
      verdicts.set(i, { priority: v.priority, faults });
    }
    for (const [i, v] of verdicts) {
      let faults = v.faults;
      if (i.group && faults.length === 0) {
        const bad = i.group.group.map((n) => this.insts.get(n)).find((m) => m && m !== i && (verdicts.get(m)?.faults.length ?? 0) > 0);
        if (bad) faults = [`sync group ${i.group.name}: ${bad.cfg.name} is in FAULT`];
      }
      const changed = v.priority !== i.st.priority || faults.join('\n') !== i.faults.join('\n');
      i.faults = faults;
      if (changed) publish({ type: 'track', instance: i.cfg.name, priority: v.priority, faults });
      // Only changes reach the state machine (an unchanged event would be a no-op step).
      if (v.priority !== i.st.priority) this.fire(i, { type: 'priority', priority: v.priority });
      if ((faults.length > 0) !== i.st.faulty) this.fire(i, { type: 'fault', faulty: faults.length > 0 });
    }
  }
}
