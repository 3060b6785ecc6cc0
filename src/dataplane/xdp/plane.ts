/**
 * XdpDataPlane: LVS-DR and LVS-TUN (VXLAN) in an XDP program (bpf/fulcrum_xdp.c), for the
 * services that select it (`fulcrum_dataplane xdp`); the nftables plane stays the default.
 *
 * apply(plan): validate each op (the shared SpecTable rules, then what XDP can do), then
 * write only what changed, element by element: a service's map entries (one per listen
 * address), its slot table (the same tables the nftables plane uses, slots.ts), its real
 * servers (address, the device and MACs a frame to it takes). Nothing is ever reloaded
 * whole, so established flows in the program's connection table keep their real server.
 *
 * The program is loaded once per run with its maps pinned in bpffs: a new run (or a new
 * version) reuses the pinned maps — connections, templates, counters — and takes over the
 * service and real-server ids it finds there. Devices get `xdp_root`, which tail-calls the
 * balancer through a pinned one-slot program array; a new balancer is swapped in with one
 * map update, so an upgrade drops no packet, and `xdp_root` found on a device at start is
 * kept, not re-attached.
 *
 * A poll, about once a second, reads the counters and the connection table (stats,
 * `connections()`, ActiveConn/InActConn), re-deals the least-connection family's slots,
 * resolves real servers whose neighbour was unknown, and frees removed real servers whose
 * connections have ended (until then their flows keep forwarding, as IPVS's trash).
 */
import type { ForwardingMethod } from '../../model/types.js';
import type { Bpf, BpfObject } from '../../sys/bpf.js';
import type { XdpHost } from '../../sys/xdp-host.js';
import { errorMessage, FailureCode, reportFailure, serialQueue, type Serial } from '../../errors/index.js';
import { tunnelMac, tunnelVni } from '../../sys/kernel-host.js';
import { HASH_SEED } from '../../model/defaults.js';
import { newCounters, RateEstimator, zeroCounters } from '../stats.js';
import { opServiceKey, SpecTable } from '../table.js';
import {
  DataPlaneErrorCode, type ApplyResult, type ConnectionEntry, type Counters, type DataPlane, type HeldTable, type OpFailure,
  type Plan, type PlanOp, type ServerSpec, type ServiceSpec, type ServiceStats, type SyncedFlow, type SyncInstallRefusal, type SyncInstallResult,
} from '../types.js';
import { familyOf } from '../nft/planner.js';
import { slotShape, slotTable, type MemberLoad, type SlotMember } from '../nft/slots.js';
import {
  BACKEND_SIZE, BackendFlag, backendValue, CONN_KEY_SIZE, CONN_VAL_SIZE, COUNTERS_SIZE, decodeBackend, decodeConn,
  hashKind, MAX_BACKENDS, MAX_SERVICES, MAX_SLOTS, persistenceMask, ServiceFlag, serviceId, serviceKey, serviceValue, SVC_KEY_SIZE,
  SVC_VAL_SIZE, sumCounters, sumU64, u32Key, XSTATS, type ConnRecord, addressBytes, addressText, connEntry, deviceValue, templateEntry,
  SYN_TIMEOUT, TPL_KEY_SIZE, TPL_VAL_SIZE,
} from './layout.js';

export interface XdpDataPlaneOptions {
  readonly bpf: Bpf;
  readonly host: XdpHost;
  /** The compiled program (bpf/fulcrum_xdp.o). */
  readonly objectPath: string;
  /** Where maps are pinned; default /sys/fs/bpf/fulcrum. */
  readonly pinDir?: string | null;
  readonly pollMs?: number;
  /** Leave the program attached and the maps pinned on close (forwarding goes on). */
  readonly keepOnClose?: boolean;
  /** Seconds, for the rate estimators. */
  readonly now?: () => number;
  /** CLOCK_MONOTONIC in nanoseconds, the program's clock (bpf_ktime_get_ns). */
  readonly monoNs?: () => bigint;
}

const XDP_METHODS: readonly ForwardingMethod[] = ['dr', 'tun'];
const MAPS = ['services', 'slots', 'backends', 'conns', 'templates', 'svc_stats', 'be_stats', 'xstats', 'root_progs', 'devices'] as const;
type MapName = (typeof MAPS)[number];

interface ServiceState {
  spec: ServiceSpec;
  readonly id: number;
  /** The services-map keys written (hex), and the value written to them. */
  keys: Set<string>;
  value: string;
  /** The slot table written (backend ids). */
  slots: number[];
  readonly counters: Counters;
  base: Counters;
  readonly est: RateEstimator;
  /** Packets dropped for want of a (resolved) real server, since load. */
  dropped: number;
}

interface Resolved {
  readonly ifindex: number;
  readonly device: string;
  /** Whose MAC frames carry: the real server, or the gateway towards it (TUN). */
  readonly hop: string;
  readonly dmac: string;
  readonly smac: string;
  readonly source: string | null;
}

interface BackendState {
  readonly id: number;
  readonly service: string;
  spec: ServerSpec;
  trashed: boolean;
  resolved: Resolved | null;
  /** The value written (hex). */
  written: string;
  active: number;
  inactive: number;
  persistent: number;
  recent: number;
  lastConns: number;
  readonly counters: Counters;
  base: Counters;
  readonly est: RateEstimator;
}

/** A timeout in seconds → nanoseconds. */
const ns = (s: number): bigint => BigInt(Math.round(s * 1e9));

export class XdpDataPlane implements DataPlane {
  readonly name = 'xdp';
  readonly methods = XDP_METHODS;
  private readonly table = new SpecTable();
  private readonly services = new Map<string, ServiceState>();
  private readonly backends = new Map<number, BackendState>();
  private obj: BpfObject | null = null;
  private fds = new Map<MapName, number>();
  private pinDir = '';
  /** Devices with xdp_root attached (by this run or taken over): name → ifindex. */
  private readonly devices = new Map<string, number>();
  /** Ids found in pinned maps at load: service map key (hex) → id; `svcId address` → backend id. */
  private adopted: { services: Map<string, number>; backends: Map<string, number> } = { services: new Map(), backends: new Map() };
  private conns: { rec: ConnRecord; spec: ServiceSpec; server: string }[] = [];
  private xstats = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly now: () => number;
  private readonly monoNs: () => bigint;
  private polls = 0;

  constructor(private readonly o: XdpDataPlaneOptions) {
    this.now = o.now ?? (() => Date.now() / 1000);
    this.monoNs = o.monoNs ?? (() => process.hrtime.bigint());
  }

  get held(): HeldTable {
    return this.table;
  }

  /** Applies, polls and reads one at a time. */
  private readonly serial: Serial = serialQueue();

  apply(plan: Plan): Promise<ApplyResult> {
    return this.serial(() => this.applyNow(plan));
  }

  /** Why XDP cannot take `op` (beyond the shared table rules), or null. */
  private refuse(op: PlanOp, draft: SpecTable): OpFailure | null {
    const fail = (message: string): OpFailure => ({ op, code: DataPlaneErrorCode.UNSUPPORTED, message });
    if (op.op === 'add-service' || op.op === 'edit-service') {
      const s = op.service;
      if (!XDP_METHODS.includes(s.method)) return fail(`service ${s.key}: XDP forwards DR and TUN only, not ${s.method.toUpperCase()} (use the nftables plane)`);
      if (s.endpoint.kind === 'fwmark') return fail(`service ${s.key}: XDP runs before netfilter and sees no firewall mark; a fwmark service needs the nftables plane`);
      if (s.protocol === 'sctp') return fail(`service ${s.key}: the XDP program parses TCP and UDP only`);
      if (op.op === 'add-service' && draft.services.size >= MAX_SERVICES - 1) return fail(`more than ${MAX_SERVICES - 1} XDP services`);
      return null;
    }
    if (op.op === 'add-server' || op.op === 'edit-server') {
      const svc = draft.services.get(op.service);
      if (!svc) return null;
      const r = op.server;
      if (!XDP_METHODS.includes(r.method)) return fail(`real server ${r.key}: XDP forwards DR and TUN only, not ${r.method.toUpperCase()}`);
      if (r.method === 'tun' && r.family !== 'inet') return fail(`real server ${r.key}: XDP's VXLAN tunnel is IPv4 (an IPv6 TUN real server needs the nftables plane)`);
      if (r.family !== familyOf(svc.spec)) return fail(`real server ${r.key}: an ${r.family === 'inet' ? 'IPv4' : 'IPv6'} server in an ${familyOf(svc.spec) === 'inet' ? 'IPv4' : 'IPv6'} service`);
      if (op.op === 'add-server' && this.backendCount() >= MAX_BACKENDS - 1) return fail(`more than ${MAX_BACKENDS - 1} XDP real servers`);
    }
    return null;
  }

  private backendCount(): number {
    return this.backends.size;
  }

  private freeServiceId(): number {
    const used = new Set([...this.services.values()].map((s) => s.id));
    for (const id of this.adopted.services.values()) used.add(id);
    for (let id = 1; id < MAX_SERVICES; id++) if (!used.has(id)) return id;
    return 0;
  }

  private async applyNow(plan: Plan): Promise<ApplyResult> {
    if (this.closed || this.table.isClosed) {
      return { applied: [], failed: plan.ops.map((op) => ({ op, code: DataPlaneErrorCode.CLOSED, message: 'data plane is closed' })) };
    }
    const { accepted, failed } = this.table.screen(plan.ops, (op, draft) => this.refuse(op, draft));
    if (accepted.length === 0) return { applied: [], failed };
    try {
      await this.prepare();
      this.ensureLoaded();
    } catch (err: unknown) {
      return { applied: [], failed: [...failed, ...accepted.map((op) => ({ op, code: DataPlaneErrorCode.KERNEL, message: errorMessage(err) }))] };
    }
    const touched = new Set<string>();
    const before = this.table.clone();
    for (const op of accepted) {
      this.table.commit(op);
      touched.add(opServiceKey(op));
    }
    const kernelFailed = new Set<string>();
    for (const key of touched) {
      try {
        await this.syncService(key);
      } catch (err: unknown) {
        kernelFailed.add(key);
        // The table says what the kernel holds: this service goes back to what it was, and
        // the kernel is brought back to that (what was written of it is undone).
        this.table.restore(key, before);
        await this.syncService(key).catch((undo: unknown) => reportFailure('xdp', FailureCode.XDP, undo, { service: key, what: 'undo' }));
        reportFailure('xdp', FailureCode.XDP, err, { service: key });
        failed.push(...accepted.filter((op) => opServiceKey(op) === key).map((op) => ({ op, code: DataPlaneErrorCode.KERNEL, message: errorMessage(err) })));
      }
    }
    this.startPoll();
    return { applied: accepted.filter((op) => !kernelFailed.has(opServiceKey(op))), failed };
  }

  /** Load the program (once), pin its maps, take over what a previous run left. */
  private ensureLoaded(): void {
    if (this.obj) return;
    const bpf = this.o.bpf;
    const obj = bpf.load(this.o.objectPath, this.pinDir);
    this.obj = obj;
    for (const m of MAPS) this.fds.set(m, obj.mapFd(m));
    // The balancer goes into the root's program array: the swap is one element.
    bpf.update(this.fd('root_progs'), u32Key(0), u32Key(obj.progFd('xdp_balancer')));
    for (const e of bpf.dump(this.fd('services'), SVC_KEY_SIZE, SVC_VAL_SIZE)) {
      this.adopted.services.set(e.key.toString('hex'), serviceId(e.value));
    }
    for (let id = 1; id < MAX_BACKENDS; id++) {
      const v = bpf.lookup(this.fd('backends'), u32Key(id), BACKEND_SIZE);
      if (!v || v.readUInt8(17) === 0) continue;
      const b = decodeBackend(v);
      this.adopted.backends.set(`${b.service} ${b.address}`, id);
    }
  }

  /** Resolve the pin directory (before the first apply; bpffs mounted when needed). */
  async prepare(): Promise<void> {
    if (this.pinDir === '') this.pinDir = await this.o.host.pinDirectory(this.o.pinDir ?? null);
  }

  private fd(m: MapName): number {
    const fd = this.fds.get(m);
    if (fd === undefined) throw new Error(`map ${m} is not open`);
    return fd;
  }

  /** The live (not trashed) real servers by service and server key, built once per use. */
  private liveBackends(): Map<string, BackendState> {
    const m = new Map<string, BackendState>();
    for (const b of this.backends.values()) if (!b.trashed) m.set(`${b.service}\n${b.spec.key}`, b);
    return m;
  }

  private usedBackendIds(): Set<number> {
    const used = new Set(this.backends.keys());
    for (const id of this.adopted.backends.values()) used.add(id);
    return used;
  }

  /** Bring one service's kernel state to what the table says. */
  private async syncService(key: string): Promise<void> {
    const bpf = this.o.bpf;
    const entry = this.table.services.get(key);
    let st = this.services.get(key);
    if (!entry) {
      if (!st) return;
      for (const k of st.keys) bpf.delete(this.fd('services'), Buffer.from(k, 'hex'));
      this.writeSlots(st, []);
      for (const b of this.backends.values()) if (b.service === key) this.trash(b);
      this.services.delete(key);
      return;
    }
    const spec = entry.spec;
    const keys = new Map(spec.listen.map((l) => {
      const k = serviceKey(l.family, l.address, spec.protocol, l.port);
      return [k.toString('hex'), k] as const;
    }));
    if (!st) {
      let id = 0;
      for (const k of keys.keys()) id ||= this.adopted.services.get(k) ?? 0;
      if (id !== 0) for (const [k, v] of this.adopted.services) if (v === id) this.adopted.services.delete(k);
      if (id === 0) id = this.freeServiceId();
      if (id === 0) throw new Error(`no free XDP service id (${MAX_SERVICES - 1} in use)`);
      const counters = newCounters();
      st = { spec, id, keys: new Set(), value: '', slots: [], counters, base: newCounters(), est: new RateEstimator(counters, this.now()), dropped: 0 };
      this.services.set(key, st);
    }
    st.spec = spec;
    // Devices: where its VIPs arrive (the VRRP device, else the one holding or routing them).
    for (const l of spec.listen) {
      const dev = l.device ?? (await this.o.host.addressDevice(l.address)) ?? (await this.o.host.route(l.address))?.device ?? null;
      if (dev !== null) await this.attach(dev);
    }
    for (const n of spec.arriveFrom ?? []) {
      const r = await this.o.host.route(n);
      if (r) await this.attach(r.device);
    }
    // Real servers: live ones written, removed ones trashed (their flows go on).
    const live = new Set<number>();
    const held = this.liveBackends();
    for (const [rk, r] of entry.servers) {
      let b = held.get(`${key}\n${rk}`);
      if (!b) {
        const adoptedKey = `${st.id} ${r.address}`;
        let id = this.adopted.backends.get(adoptedKey) ?? 0;
        if (id !== 0) this.adopted.backends.delete(adoptedKey);
        else {
          const used = this.usedBackendIds();
          for (let i = 1; i < MAX_BACKENDS && id === 0; i++) if (!used.has(i)) id = i;
          if (id === 0) throw new Error(`no free XDP real-server id (${MAX_BACKENDS - 1} in use, removed ones included until their flows end)`);
        }
        const counters = newCounters();
        b = {
          id, service: key, spec: r, trashed: false, resolved: null, written: '', active: 0, inactive: 0, persistent: 0, recent: 0, lastConns: 0,
          counters, base: newCounters(), est: new RateEstimator(counters, this.now()),
        };
        this.backends.set(id, b);
      }
      const moved = b.spec.address !== r.address || b.spec.method !== r.method;
      b.spec = r;
      if (moved) b.resolved = null;
      if (!b.resolved) b.resolved = await this.resolve(r);
      if (b.resolved && r.method === 'dr') await this.attach(b.resolved.device);
      this.writeBackend(st, b);
      live.add(b.id);
    }
    for (const b of this.backends.values()) if (b.service === key && !b.trashed && !live.has(b.id)) this.trash(b);
    this.writeService(st, keys);
  }

  /** The service's map value and slot table, written where they differ. */
  private writeService(st: ServiceState, keys: Map<string, Buffer>): void {
    const bpf = this.o.bpf;
    const spec = st.spec;
    const members = this.members(st);
    const shape = slotShape(spec.scheduler, spec.schedFlags);
    const slots = slotTable(spec.scheduler, spec.schedFlags, members, this.loads(st));
    this.writeSlots(st, slots);
    const value = serviceValue({
      id: st.id, size: slots.length, hash: hashKind(shape.hash),
      flags: (spec.persistence ? ServiceFlag.persist : 0) | (spec.ops && spec.protocol === 'udp' ? ServiceFlag.ops : 0),
      mask: persistenceMask(familyOf(spec), spec.persistence), persistTimeout: spec.persistence?.timeout ?? 0,
      timeouts: { tcp: spec.timeouts.tcp || 900, tcpfin: spec.timeouts.tcpfin || 120, udp: spec.timeouts.udp || 300 },
      seed: spec.hashSeed ?? HASH_SEED,
    });
    const hex = value.toString('hex');
    for (const [k, buf] of keys) {
      if (st.keys.has(k) && st.value === hex) continue;
      bpf.update(this.fd('services'), buf, value);
    }
    for (const k of st.keys) if (!keys.has(k)) bpf.delete(this.fd('services'), Buffer.from(k, 'hex'));
    st.keys = new Set(keys.keys());
    st.value = hex;
  }

  private members(st: ServiceState): SlotMember[] {
    const out: SlotMember[] = [];
    for (const b of this.backends.values()) {
      if (b.service !== st.spec.key || b.trashed) continue;
      out.push({ ref: b.id, address: b.spec.address, port: b.spec.port, weight: b.spec.weight });
    }
    return out;
  }

  private loads(st: ServiceState): Map<number, MemberLoad> {
    const m = new Map<number, MemberLoad>();
    for (const b of this.backends.values()) {
      if (b.service !== st.spec.key || b.trashed) continue;
      m.set(b.id, { ref: b.id, active: b.active, inactive: b.inactive, recent: b.recent, agentLoad: b.spec.agentLoad ?? Number.NaN });
    }
    return m;
  }

  /** Write the slots that differ (a shrinking table zeroes its tail). */
  private writeSlots(st: ServiceState, slots: readonly number[]): void {
    const n = Math.max(slots.length, st.slots.length);
    for (let i = 0; i < n && i < MAX_SLOTS; i++) {
      const v = slots[i] ?? 0;
      if ((st.slots[i] ?? 0) === v) continue;
      this.o.bpf.update(this.fd('slots'), u32Key(st.id * MAX_SLOTS + i), u32Key(v));
    }
    st.slots = [...slots];
  }

  private writeBackend(st: ServiceState, b: BackendState): void {
    const r = b.resolved;
    const tun = b.spec.method === 'tun';
    const value = backendValue({
      family: b.spec.family, address: b.spec.address, service: st.id,
      flags: (b.trashed ? 0 : BackendFlag.live) | (r ? BackendFlag.resolved : 0) | (tun ? BackendFlag.tun : 0),
      ifindex: r?.ifindex ?? 0, dmac: r?.dmac ?? null, smac: r?.smac ?? null,
      tunnel: tun && r?.source ? { source: r.source, vni: tunnelVni(b.spec.address), mac: tunnelMac(b.spec.address) } : undefined,
    });
    const hex = value.toString('hex');
    if (hex === b.written) return;
    this.o.bpf.update(this.fd('backends'), u32Key(b.id), value);
    b.written = hex;
  }

  private trash(b: BackendState): void {
    b.trashed = true;
    const st = this.services.get(b.service);
    if (st) this.writeBackend(st, b);
  }

  /** Where frames to a real server go: its device, MAC and ours; null until the neighbour is known. */
  private async resolve(r: ServerSpec, table?: ReadonlyMap<string, string>): Promise<Resolved | null> {
    const route = await this.o.host.route(r.address);
    if (!route) return null;
    if (r.method === 'dr' && route.gateway !== null) {
      reportFailure('xdp', FailureCode.XDP, new Error(`DR real server ${r.address} is not on a network this director is attached to (route via ${route.gateway}): DR needs the real server on the same link`));
      return null;
    }
    const link = await this.o.host.link(route.device);
    if (!link) return null;
    const hop = route.gateway ?? r.address;
    const mac = (table ?? await this.o.host.neighbours()).get(`${hop}@${route.device}`);
    if (mac === undefined) {
      await this.o.host.solicit(hop, route.device).catch((err: unknown) => reportFailure('xdp', FailureCode.XDP, err));
      return null;
    }
    return { ifindex: link.ifindex, device: route.device, hop, dmac: mac, smac: link.mac, source: route.source };
  }

  private async attach(device: string): Promise<void> {
    if (this.devices.has(device)) return;
    const link = await this.o.host.link(device);
    if (!link || !this.obj) return;
    const bpf = this.o.bpf;
    const current = bpf.xdpAttached(link.ifindex);
    if (current !== 0) {
      const name = bpf.programName(current);
      if (name !== 'xdp_root') throw new Error(`interface ${device} already runs XDP program '${name || current}'; Fulcrum will not replace another program`);
      // Ours, from a previous run: it tail-calls through the pinned array we just updated.
    }
    // The device's MAC first: the program forwards only frames addressed to it.
    bpf.update(this.fd('devices'), u32Key(link.ifindex), deviceValue(link.mac));
    if (current === 0) {
      try {
        bpf.xdpAttach(link.ifindex, this.obj.progFd('xdp_root'));
      } catch (err: unknown) {
        throw new Error(`interface ${device}: cannot run XDP in driver mode (${errorMessage(err)}); its services need fulcrum_dataplane nft`, { cause: err });
      }
    }
    this.devices.set(device, link.ifindex);
  }

  private startPoll(): void {
    if (this.timer || this.closed) return;
    const ms = this.o.pollMs ?? 1000;
    this.timer = setInterval(() => {
      void this.serial(() => this.poll()).catch((err: unknown) => reportFailure('xdp', FailureCode.XDP, err, { what: 'poll' }));
    }, ms);
    this.timer.unref();
  }

  /** Read counters and connections, re-deal dynamic slots, resolve, free the trash. */
  async poll(): Promise<void> {
    if (!this.obj || this.closed) return;
    const bpf = this.o.bpf;
    this.polls++;
    if (this.polls === 1) this.dropUnclaimed();
    const cpus = bpf.possibleCpus();
    const now = this.monoNs();
    const byId = new Map([...this.services.values()].map((s) => [s.id, s]));
    for (const b of this.backends.values()) {
      b.active = 0;
      b.inactive = 0;
      b.persistent = 0;
    }
    const conns: typeof this.conns = [];
    for (const e of bpf.dump(this.fd('conns'), CONN_KEY_SIZE, CONN_VAL_SIZE)) {
      const sid = e.key.readUInt32LE(16);
      const st = byId.get(sid);
      if (!st) continue;
      const rec = decodeConn(e.key, e.value, familyOf(st.spec));
      const limit = XdpDataPlane.limit(st.spec, rec.closing, rec.synOnly);
      if (now - rec.lastNs > ns(limit)) continue; // expired: the program reschedules it
      const b = this.backends.get(rec.backend);
      if (b) {
        if (st.spec.protocol === 'tcp' && !rec.closing && !rec.synOnly) b.active++;
        else b.inactive++;
      }
      conns.push({ rec, spec: st.spec, server: b?.spec.key ?? '' });
    }
    this.conns = conns;
    // Templates per real server (ipvsadm -L --persistent-conn), when a service has persistence.
    if ([...this.services.values()].some((s) => s.spec.persistence !== null)) {
      for (const e of bpf.dump(this.fd('templates'), TPL_KEY_SIZE, TPL_VAL_SIZE)) {
        const st = byId.get(e.key.readUInt32LE(16));
        const b = this.backends.get(e.value.readUInt32LE(0));
        if (!st?.spec.persistence || !b) continue;
        if (now - e.value.readBigUInt64LE(8) <= ns(st.spec.persistence.timeout)) b.persistent++;
      }
    }
    for (const st of this.services.values()) {
      const v = bpf.lookup(this.fd('svc_stats'), u32Key(st.id), COUNTERS_SIZE * cpus);
      if (v) {
        const c = sumCounters(v);
        setCounters(st.counters, c, st.base);
        st.dropped = c.dropped;
      }
      st.est.tick(this.now());
    }
    for (const b of this.backends.values()) {
      const v = bpf.lookup(this.fd('be_stats'), u32Key(b.id), COUNTERS_SIZE * cpus);
      if (v) {
        const c = sumCounters(v);
        b.recent = Math.max(0, c.conns - b.lastConns);
        b.lastConns = c.conns;
        setCounters(b.counters, c, b.base);
      }
      b.est.tick(this.now());
    }
    XSTATS.forEach((name, i) => {
      const v = bpf.lookup(this.fd('xstats'), u32Key(i), 8 * cpus);
      if (v) this.xstats.set(name, sumU64(v));
    });
    // Resolve what was not (route, link, neighbour); every 10 polls re-read the MACs of the
    // resolved ones (a replaced real server) — one neighbour table per poll, whatever the count.
    const refresh = this.polls % 10 === 0;
    const pending = [...this.backends.values()].filter((b) => !b.trashed && (!b.resolved || refresh));
    const table = pending.length > 0 ? await this.o.host.neighbours() : new Map<string, string>();
    for (const b of pending) {
      const st = this.services.get(b.service);
      if (!st) continue;
      if (b.resolved) {
        const mac = table.get(`${b.resolved.hop}@${b.resolved.device}`);
        if (mac === undefined || mac === b.resolved.dmac) continue;
        b.resolved = { ...b.resolved, dmac: mac };
      } else {
        b.resolved = await this.resolve(b.spec, table);
        if (!b.resolved) continue;
        if (b.spec.method === 'dr') await this.attach(b.resolved.device);
      }
      this.writeBackend(st, b);
    }
    for (const st of this.services.values()) {
      if (slotShape(st.spec.scheduler, st.spec.schedFlags).dynamic) this.writeSlots(st, slotTable(st.spec.scheduler, st.spec.schedFlags, this.members(st), this.loads(st)));
    }
    // The trash: a removed real server with no connection left is freed.
    for (const b of [...this.backends.values()]) {
      if (!b.trashed || b.active + b.inactive > 0) continue;
      bpf.update(this.fd('backends'), u32Key(b.id), Buffer.alloc(BACKEND_SIZE));
      this.backends.delete(b.id);
    }
  }

  /**
   * What a previous run left and this one's configuration no longer has: its service entries
   * (their VIPs stop being forwarded) and real servers. Done at the first poll, a second
   * after the first plan — the initial configuration can reach this plane in several plans
   * (the routing plane batches by plane), and each takes back its ids first.
   */
  private dropUnclaimed(): void {
    const bpf = this.o.bpf;
    for (const hex of this.adopted.services.keys()) bpf.delete(this.fd('services'), Buffer.from(hex, 'hex'));
    for (const id of this.adopted.backends.values()) bpf.update(this.fd('backends'), u32Key(id), Buffer.alloc(BACKEND_SIZE));
    this.adopted = { services: new Map(), backends: new Map() };
  }

  /** A flow's timeout in seconds by protocol and state (the service's, IPVS's defaults for 0). */
  private static limit(spec: ServiceSpec, closing: boolean, synOnly = false): number {
    const t = spec.timeouts;
    return spec.protocol === 'udp' ? t.udp || 300 : closing ? t.tcpfin || 120 : synOnly ? SYN_TIMEOUT : t.tcp || 900;
  }

  /**
   * The flows for connection sync: connections as the last poll read them (with their
   * packet counts: the sender holds a new one back until the sync threshold) and the
   * persistence templates, read now.
   */
  syncExport(): Promise<SyncedFlow[]> {
    return this.serial(() => {
      if (!this.obj || this.closed) return Promise.resolve([]);
      const out: SyncedFlow[] = [];
      for (const { rec, spec } of this.conns) {
        const b = this.backends.get(rec.backend);
        // A flow that has sent only its SYN is not synchronised (IPVS syncs from established).
        if (!b || spec.endpoint.kind === 'fwmark' || rec.synOnly) continue;
        const l = spec.listen.find((x) => x.port === rec.dport) ?? spec.listen[0];
        if (!l) continue;
        const state = spec.protocol === 'udp' ? 'other' as const : rec.closing ? 'closing' as const : 'established' as const;
        out.push({
          template: false, protocol: spec.protocol, family: familyOf(spec), method: b.spec.method, client: rec.client, cport: rec.sport,
          virtual: l.address, vport: rec.dport, fwmark: 0, server: b.spec.address, dport: b.spec.port, state,
          timeout: XdpDataPlane.limit(spec, rec.closing), packets: rec.packets,
        });
      }
      if ([...this.services.values()].some((s) => s.spec.persistence !== null)) {
        const byId = new Map([...this.services.values()].map((s) => [s.id, s]));
        const now = this.monoNs();
        for (const e of this.o.bpf.dump(this.fd('templates'), TPL_KEY_SIZE, TPL_VAL_SIZE)) {
          const st = byId.get(e.key.readUInt32LE(16));
          const b = this.backends.get(e.value.readUInt32LE(0));
          const l = st?.spec.listen[0];
          if (!st?.spec.persistence || !b || b.trashed || !l) continue;
          const left = st.spec.persistence.timeout - Number(now - e.value.readBigUInt64LE(8)) / 1e9;
          if (left <= 0) continue;
          out.push({
            template: true, protocol: st.spec.protocol, family: familyOf(st.spec), method: b.spec.method,
            client: addressText(e.key.subarray(0, 16), familyOf(st.spec)), cport: 0, virtual: l.address, vport: l.port, fwmark: 0,
            server: b.spec.address, dport: b.spec.port, state: 'other', timeout: st.spec.persistence.timeout,
          });
        }
      }
      return Promise.resolve(out);
    });
  }

  /**
   * Install flows another director synchronised: each matched to the local service (protocol,
   * address, port — or the service's port 0) and live real server (address, port), and
   * written to the connection or template table so that it expires after the timeout the
   * sender gave. One already held with the same server and more than half its time left is
   * not rewritten.
   */
  syncInstall(flows: readonly SyncedFlow[]): Promise<SyncInstallResult> {
    return this.serial(() => {
      const refused = new Map<SyncInstallRefusal, number>();
      const refuse = (r: SyncInstallRefusal): void => { refused.set(r, (refused.get(r) ?? 0) + 1); };
      let installed = 0;
      let unchanged = 0;
      if (!this.obj || this.closed) {
        for (let i = 0; i < flows.length; i++) refuse('no-service');
        return Promise.resolve({ installed, unchanged, refused });
      }
      const byAddr = new Map<string, ServiceState>();
      for (const st of this.services.values()) for (const l of st.spec.listen) byAddr.set(`${st.spec.protocol}|${l.address}|${l.port}`, st);
      const servers = new Map<string, BackendState>();
      for (const b of this.backends.values()) if (!b.trashed) servers.set(`${b.service}|${b.spec.address}|${b.spec.port}`, b);
      const now = this.monoNs();
      for (const f of flows) {
        if (f.method !== 'dr' && f.method !== 'tun') {
          refuse('unsupported');
          continue;
        }
        const st = byAddr.get(`${f.protocol}|${f.virtual}|${f.vport}`) ?? byAddr.get(`${f.protocol}|${f.virtual}|0`);
        if (!st) {
          refuse('no-service');
          continue;
        }
        const b = servers.get(`${st.spec.key}|${f.server}|${f.dport}`);
        if (!b) {
          refuse('no-server');
          continue;
        }
        const full = f.template ? st.spec.persistence?.timeout ?? 0 : XdpDataPlane.limit(st.spec, f.state === 'closing');
        if (full <= 0) {
          refuse('no-service');
          continue;
        }
        const timeout = Math.max(1, Math.min(f.timeout, full));
        // The entry's age makes the program expire it `timeout` seconds from now.
        const lastNs = now - ns(full - timeout);
        const e = f.template
          ? templateEntry({ client: addressBytes(f.client), service: st.id, backend: b.id, lastNs })
          : connEntry({ client: f.client, sport: f.cport, service: st.id, dport: f.vport, backend: b.id, closing: f.state === 'closing', lastNs, packets: 64 });
        const map = f.template ? 'templates' : 'conns';
        const held = this.o.bpf.lookup(this.fd(map), e.key, f.template ? TPL_VAL_SIZE : CONN_VAL_SIZE);
        if (held && held.readUInt32LE(0) === b.id && (f.template || held.readUInt32LE(4) === e.value.readUInt32LE(4))
          && ns(full) - (now - held.readBigUInt64LE(8)) > ns(timeout / 2)) {
          unchanged++;
          continue;
        }
        try {
          this.o.bpf.update(this.fd(map), e.key, e.value);
          installed++;
        } catch (err: unknown) {
          reportFailure('xdp', FailureCode.XDP, err, { what: 'sync install' });
          refuse('kernel');
        }
      }
      return Promise.resolve({ installed, unchanged, refused });
    });
  }

  /** The program's per-reason counters (forwarded, no-server, no-neighbour, …). */
  packetCounters(): ReadonlyMap<string, number> {
    return this.xstats;
  }

  stats(): ServiceStats[] {
    const out: ServiceStats[] = [];
    const held = this.liveBackends();
    for (const [key, entry] of this.table.services) {
      const st = this.services.get(key);
      const servers = [...entry.servers.values()].map((spec) => {
        const b = held.get(`${key}\n${spec.key}`);
        return {
          spec, active: b?.active ?? 0, inactive: b?.inactive ?? 0, persistent: b?.persistent ?? 0,
          counters: { ...(b?.counters ?? newCounters()) }, rates: b?.est.rates() ?? { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 },
        };
      });
      out.push({
        spec: entry.spec, servers, counters: { ...(st?.counters ?? newCounters()) },
        rates: st?.est.rates() ?? { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 }, dropped: st?.dropped ?? 0,
      });
    }
    return out;
  }

  connections(): Promise<ConnectionEntry[]> {
    const now = this.monoNs();
    return Promise.resolve(this.conns.map(({ rec, spec, server }) => {
      const l = spec.listen.find((x) => x.port === rec.dport || x.port === 0) ?? spec.listen[0];
      const limit = XdpDataPlane.limit(spec, rec.closing, rec.synOnly);
      return {
        protocol: spec.protocol,
        client: { family: familyOf(spec), address: rec.client, port: rec.sport },
        virtual: { family: familyOf(spec), address: l?.address ?? '', port: rec.dport },
        server,
        state: spec.protocol === 'udp' ? 'UDP' : rec.closing ? 'FIN_WAIT' : rec.synOnly ? 'SYN_RECV' : 'ESTABLISHED',
        expires: Math.max(0, Math.round(limit - Number(now - rec.lastNs) / 1e9)),
      };
    }));
  }

  zero(service?: string): boolean {
    const targets = service === undefined ? [...this.services.values()] : [this.services.get(service)].filter((s): s is ServiceState => s !== undefined);
    if (service !== undefined && targets.length === 0) return this.table.services.has(service);
    for (const st of targets) {
      st.base = { ...addBase(st.counters, st.base) };
      zeroCounters(st.counters);
      st.est.zero(this.now());
      for (const b of this.backends.values()) {
        if (b.service !== st.spec.key) continue;
        b.base = { ...addBase(b.counters, b.base) };
        zeroCounters(b.counters);
        b.est.zero(this.now());
      }
    }
    return true;
  }

  /** DR/TUN flows do not pass through this process: nothing to drain, `drainMs` is not waited. */
  async close(_drainMs = 0): Promise<void> {
    await this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      if (this.timer) clearInterval(this.timer);
      this.timer = null;
      this.table.close();
      if (!this.obj) return;
      const bpf = this.o.bpf;
      if (!this.o.keepOnClose) {
        for (const ifindex of this.devices.values()) {
          try {
            bpf.xdpDetach(ifindex);
          } catch (err: unknown) {
            reportFailure('xdp', FailureCode.XDP, err, { what: 'detach' });
          }
        }
        bpf.unpin(this.pinDir);
      }
      this.obj.close();
      this.obj = null;
      await Promise.resolve();
    });
  }
}

/** Counters read from the kernel (cumulative since load) minus what `ipvsadm -Z` zeroed. */
function setCounters(into: Counters, c: { conns: number; pkts: number; bytes: number }, base: Counters): void {
  into.conns = Math.max(0, c.conns - base.conns);
  into.inPkts = Math.max(0, c.pkts - base.inPkts);
  into.inBytes = Math.max(0, c.bytes - base.inBytes);
  into.outPkts = 0;
  into.outBytes = 0;
}

/** The new base after zeroing: the old base plus what was shown. */
function addBase(shown: Counters, base: Counters): Counters {
  return {
    conns: base.conns + shown.conns, inPkts: base.inPkts + shown.inPkts, outPkts: 0,
    inBytes: base.inBytes + shown.inBytes, outBytes: 0,
  };
}
