/**
 * NftDataPlane: LVS-NAT, LVS-DR and LVS-TUN in the kernel, through nftables.
 *
 * apply(plan): validate each op (the shared SpecTable rules, then what the kernel can do),
 * apply the accepted ones to a draft table, turn the draft into a kernel model (model.ts)
 * and send the kernel the difference from the model it holds — one atomic transaction. If
 * nftables refuses it, the kernel is as it was, the table is unchanged and every op of
 * the plan is reported failed with E_DP_KERNEL and nft's message.
 *
 * A poll, about once a second, reads the kernel's counters and connection tables: stats
 * and `connections()` answer from it, the least-connection family's slots are re-dealt
 * from it (slots.ts balanceSlots), and removed DR/TUN real servers whose connections have
 * all ended are dropped from the forwarding maps (until then they keep forwarding, as
 * IPVS keeps a removed destination in its trash while connections use it).
 *
 * At the first transaction an existing `fulcrum` table (a previous run that stopped without
 * removing it, or crashed) is taken over, not replaced: its maps are read back, services
 * keep the ids they had, so the kernel's connection and persistence entries stay valid.
 */
import type { Family, ForwardingMethod } from '../../model/types.js';
import { addCounters, newCounters, RateEstimator, zeroCounters, ZERO_RATES } from '../stats.js';
import { SpecTable, type TableEntry } from '../table.js';
import {
  DataPlaneErrorCode, DEFAULT_TIMEOUTS, type ApplyResult, type ConnectionEntry, type Counters, type DataPlane, type HeldTable,
  type OpFailure, type Plan, type PlanOp, type ServerSpec, type ServiceSpec, type ServiceStats, type Timeouts,
} from '../types.js';
import type { KernelHost } from '../../sys/kernel-host.js';
import type { Nft } from '../../sys/nft.js';
import {
  backendMark, buildModel, emptyModel, hex, sharedKeys, sharedModel, MAX_SERVER_INDEX, MAX_SERVICE_ID, SERVER_BITS, SERVICE_MASK, TABLE_NAME,
  type ElementMap, type KernelModel, type PlaneServer, type PlaneService, type TableKind,
} from './model.js';
import {
  DEFAULT_LIMITS, demandChainCommands, elementDelta, ingressCommands, ingressDevice, staticSets, tableCommands, timeoutCommands, type RulesetLimits,
} from './ruleset.js';
import { slotShape, slotTable, type MemberLoad } from './slots.js';
import { modelElements, parseConntrack, parseSets, readSet, type ElementRecord, type KernelConn } from './read.js';
import { errorCode, FailureCode, FulcrumError, reportFailure } from '../../errors/index.js';

export interface NftDataPlaneOptions {
  readonly nft: Nft;
  readonly host: KernelHost;
  /** Milliseconds between polls of counters and connection tables (default 1000). */
  readonly pollMs?: number;
  /** Leave the tables in place on close (the kernel keeps forwarding after Fulcrum exits). */
  readonly keepOnClose?: boolean;
  readonly limits?: RulesetLimits;
  /** Seconds, for the rate estimators. */
  readonly now?: () => number;
}

const KERNEL_METHODS: readonly ForwardingMethod[] = ['nat', 'dr', 'tun'];
const kindOf = (m: ForwardingMethod): TableKind => (m === 'nat' ? 'inet' : 'netdev');
const familyOf = (s: ServiceSpec): Family => (s.endpoint.kind === 'group' ? (s.listen[0]?.family ?? 'inet') : s.endpoint.family);

interface Backend {
  readonly service: number;
  /** The key of the service it belongs to (a backend never changes service). */
  readonly serviceKey: string;
  readonly index: number;
  spec: ServerSpec;
  device: string | null;
  trashed: boolean;
  readonly counters: Counters;
  readonly base: Counters;
  readonly est: RateEstimator;
  active: number;
  inactive: number;
  recent: number;
}

interface ServiceState {
  readonly id: number;
  readonly counters: Counters;
  readonly est: RateEstimator;
  dropped: number;
  dropBase: number;
}

export class NftDataPlane implements DataPlane {
  readonly name = 'nftables';
  readonly methods = KERNEL_METHODS;
  private readonly table = new SpecTable();

  get held(): HeldTable {
    return this.table;
  }
  private readonly services = new Map<string, ServiceState>();
  /** Backends by mark (live and trashed). */
  private backends = new Map<number, Backend>();
  /** Shared elements (`rs4 10.0.0.1`) → how many services use them. */
  private sharedRefs = new Map<string, number>();
  private applied: KernelModel = emptyModel();
  private loaded: { inet: boolean; netdev: boolean } = { inet: false, netdev: false };
  private adopted: { ids: Map<string, number>; backends: Map<string, number> } | null = null;
  private readonly ingress = new Set<string>();
  private timeouts: Timeouts = DEFAULT_TIMEOUTS;
  private conns: KernelConn[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private closed = false;
  private nextId = 1;
  /** Each service's part of the applied model, so a change diffs only the services it touches. */
  private fragments = new Map<string, Fragment>();
  /** Adopted ids already given back to their services during this takeover. */
  private readonly claimed = new Set<number>();

  constructor(private readonly o: NftDataPlaneOptions) {
    this.now = o.now ?? (() => Date.now() / 1000);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.chain.then(fn, fn);
    this.chain = next.catch(() => undefined);
    return next;
  }

  apply(plan: Plan): Promise<ApplyResult> {
    return this.serial(() => this.applyNow(plan));
  }

  /** Why the kernel plane cannot take `op` (beyond the shared table rules), or null. */
  private refuse(op: PlanOp, draft: SpecTable): OpFailure | null {
    const fail = (message: string): OpFailure => ({ op, code: DataPlaneErrorCode.UNSUPPORTED, message });
    if (op.op === 'add-service' || op.op === 'edit-service') {
      const s = op.service;
      if (!KERNEL_METHODS.includes(s.method)) return fail(`service ${s.key}: ${s.method.toUpperCase()} is not a kernel forwarding method`);
      if (s.method === 'nat' && s.ops) return fail(`service ${s.key}: one-packet scheduling (-o) needs DR or TUN in the kernel plane (NAT goes through conntrack, which keeps flows)`);
      if (op.op === 'edit-service') {
        const old = draft.services.get(s.key);
        if (old && kindOf(old.spec.method) !== kindOf(s.method) && old.servers.size > 0) {
          return fail(`service ${s.key}: cannot switch between NAT and DR/TUN while it has real servers; remove them first`);
        }
      }
      if (op.op === 'add-service' && this.services.size + 1 > MAX_SERVICE_ID) return fail(`more than ${MAX_SERVICE_ID} kernel services`);
      return null;
    }
    if (op.op === 'add-server' || op.op === 'edit-server') {
      const svc = draft.services.get(op.service);
      if (!svc) return null;
      const r = op.server;
      if (!KERNEL_METHODS.includes(r.method)) return fail(`real server ${r.key}: ${r.method.toUpperCase()} is not a kernel forwarding method`);
      if (kindOf(r.method) !== kindOf(svc.spec.method)) {
        return fail(`real server ${r.key}: ${r.method.toUpperCase()} cannot share service ${op.service} with ${svc.spec.method.toUpperCase()} servers in the kernel plane (NAT runs in conntrack, DR/TUN at ingress)`);
      }
      if (r.family !== familyOf(svc.spec)) return fail(`real server ${r.key}: an ${r.family === 'inet' ? 'IPv4' : 'IPv6'} server in an ${familyOf(svc.spec) === 'inet' ? 'IPv4' : 'IPv6'} service`);
      if (op.op === 'add-server' && svc.servers.size >= MAX_SERVER_INDEX) return fail(`service ${op.service}: more than ${MAX_SERVER_INDEX} real servers`);
    }
    return null;
  }

  private async applyNow(plan: Plan): Promise<ApplyResult> {
    if (this.table.isClosed || this.closed) {
      return { applied: [], failed: plan.ops.map((op) => ({ op, code: DataPlaneErrorCode.CLOSED, message: 'data plane is closed' })) };
    }
    const draft = cloneTable(this.table);
    const accepted: PlanOp[] = [];
    const failed: OpFailure[] = [];
    for (const op of plan.ops) {
      const f = draft.check(op) ?? this.refuse(op, draft);
      if (f) {
        failed.push(f);
        continue;
      }
      draft.commit(op);
      accepted.push(op);
    }
    if (accepted.length === 0) return { applied: [], failed };
    try {
      const dirty = new Set(accepted.map((op) => (op.op === 'add-service' || op.op === 'edit-service' ? op.service.key : op.op === 'remove-service' ? op.key : op.service)));
      await this.sync(draft, true, dirty);
    } catch (err: unknown) {
      const message = err instanceof Error ? err.message : String(err);
      const code = (err as { code?: string }).code === 'E_SYS_PERMISSION' ? DataPlaneErrorCode.PERMISSION : DataPlaneErrorCode.KERNEL;
      return { applied: [], failed: [...failed, ...accepted.map((op) => ({ op, code, message }))] };
    }
    for (const op of accepted) this.table.commit(op);
    this.startPoll();
    return { applied: accepted, failed };
  }

  /**
   * Bring the kernel to `draft`: ids for new services and servers, egress devices, the
   * model, and one transaction with the difference. On success the plane's bookkeeping
   * moves to the draft; on failure nothing moved (ids handed out are simply reused later).
   */
  private async sync(draft: SpecTable, fromPlan: boolean, dirty: ReadonlySet<string> | null = null): Promise<void> {
    if (!this.loaded.inet && !this.loaded.netdev) await this.adopt();
    // After a takeover the first delta is against what the kernel holds, whole.
    const only = this.adopted === null ? dirty : null;
    const t0 = this.now();
    // The next fragments and backends: copies of the applied ones with the touched services
    // rebuilt (whole: every service rebuilt). Untouched services cost nothing but the copy.
    const fragments = only === null ? new Map<string, Fragment>() : new Map(this.fragments);
    const pending = only === null ? new Map<number, Backend>() : new Map(this.backends);
    const refs = only === null ? new Map<string, number>() : new Map(this.sharedRefs);
    let taken: Set<number> | null = null;
    const takenIds = (): Set<number> => (taken ??= this.idsInUse());
    const devices = new Map<string, string>();
    const built: PlaneService[] = [];
    const removed: string[] = [];
    const touchedShared = new Set<string>();
    const hashOf = (x: PlaneService): string => slotShape(x.spec.scheduler, x.spec.schedFlags).hash;
    for (const key of only ?? draft.services.keys()) {
      const old = this.fragments.get(key);
      // The service's backends as they stand (live and trashed), out of the next set until rebuilt.
      const known: Backend[] = [];
      if (old) {
        for (const r of old.svc.servers) {
          const m = backendMark(old.svc.id, r.index);
          const b = this.backends.get(m);
          if (b) known.push(b);
          pending.delete(m);
        }
        for (const k of sharedKeys(old.svc)) {
          refs.set(k, (refs.get(k) ?? 0) - 1);
          touchedShared.add(k);
        }
      }
      const entry = draft.services.get(key);
      if (!entry) {
        fragments.delete(key);
        removed.push(key);
        continue;
      }
      const spec = entry.spec;
      const id = this.services.get(key)?.id ?? this.allocateService(spec, takenIds());
      if (taken !== null) (taken as Set<number>).add(id);
      const kind = kindOf(spec.method);
      const servers: PlaneServer[] = [];
      const used = new Set<number>();
      for (const r of entry.servers.values()) {
        const prev = known.find((b) => b.spec.key === r.key && !b.trashed) ?? known.find((b) => b.spec.key === r.key);
        const index = prev?.index ?? this.allocateIndex(id, r, known, used);
        used.add(index);
        // A server keeps the device it was resolved to; a new one is resolved once per address.
        let device: string | null = null;
        if (kind === 'netdev') {
          const cacheKey = `${r.method} ${r.address}`;
          device = prev && prev.device !== null && prev.spec.method === r.method ? prev.device : devices.get(cacheKey) ?? null;
          if (device === null) {
            device = await this.egressDevice(r);
            devices.set(cacheKey, device);
          }
        }
        const b = prev ?? this.newBackend(id, key, index, r, t0);
        pending.set(backendMark(id, index), { ...b, spec: r, device, trashed: false } as Backend);
        servers.push({ index, spec: r, device, trashed: false });
      }
      // DR/TUN servers that left keep forwarding their connections until those end.
      for (const b of known) {
        if (used.has(b.index)) continue;
        if (kind !== 'netdev' || !this.hasConnections(backendMark(id, b.index))) continue;
        used.add(b.index);
        pending.set(backendMark(id, b.index), { ...b, trashed: true } as Backend);
        servers.push({ index: b.index, spec: b.spec, device: b.device, trashed: true });
      }
      const live = servers.filter((x) => !x.trashed);
      const members = live.map((x) => ({ ref: backendMark(id, x.index), address: x.spec.address, port: x.spec.port, weight: x.spec.weight }));
      const load = new Map<number, MemberLoad>();
      for (const x of live) {
        const b = this.backends.get(backendMark(id, x.index));
        if (b) load.set(backendMark(id, x.index), { ref: backendMark(id, x.index), active: b.active, inactive: b.inactive, recent: b.recent, agentLoad: x.spec.agentLoad ?? Number.NaN });
      }
      const svc: PlaneService = {
        id, spec, family: familyOf(spec), kind, servers,
        slots: slotTable(spec.scheduler, spec.schedFlags, members, load),
        snat: kind === 'inet' ? spec.snat ?? null : null,
      };
      built.push(svc);
      fragments.set(key, { svc, model: buildModel([svc], hashOf), ingress: old?.ingress ?? null });
      for (const k of sharedKeys(svc)) {
        refs.set(k, (refs.get(k) ?? 0) + 1);
        touchedShared.add(k);
      }
    }
    for (const [k, n] of refs) if (n <= 0) refs.delete(k);
    // The new whole model, and the delta: whole (first load, takeover) or per changed service.
    // Whole: a model of everything against the applied one. Per service: only the services
    // this change touched, and `applied` is patched once the kernel took the transaction.
    let whole: KernelModel | null = null;
    const changed: [KernelModel, KernelModel][] = [];
    const model = emptyModel();
    if (only === null) {
      whole = model;
      for (const f of fragments.values()) mergeModel(model, emptyModel(), f.model);
      mergeModel(model, emptyModel(), sharedModel(refs.keys()));
      changed.push([this.applied, model]);
    } else {
      for (const key of only) {
        const before = this.fragments.get(key)?.model ?? emptyModel();
        const after = fragments.get(key)?.model ?? emptyModel();
        for (const kind of ['inet', 'netdev'] as const) for (const c of after.chains[kind]) model.chains[kind].add(c);
        changed.push([before, after]);
      }
      // Shared elements: only those whose users went from none to some, or from some to none.
      const gone = [...touchedShared].filter((k) => this.sharedRefs.has(k) && !refs.has(k));
      const fresh = [...touchedShared].filter((k) => !this.sharedRefs.has(k) && refs.has(k));
      changed.push([sharedModel(gone), sharedModel(fresh)]);
    }
    const ingress = new Set<string>();
    const lookups = new Map<string, string | null>();
    for (const x of built) {
      if (x.kind !== 'netdev') continue;
      const f = fragments.get(x.spec.key) as Fragment;
      // Resolved again only when what they depend on changed (not for a weight change).
      const key = ingressKey(x);
      if (f.ingress?.key !== key) f.ingress = { key, devices: await this.ingressDevices(x, lookups) };
      for (const d of f.ingress.devices) ingress.add(d);
    }
    const first = draft.services.values().next();
    const timeouts = first.done === true ? this.timeouts : first.value.spec.timeouts;
    const cmds: string[] = [];
    const need = { inet: this.loaded.inet || built.some((x) => x.kind === 'inet'), netdev: this.loaded.netdev || built.some((x) => x.kind === 'netdev') };
    for (const kind of ['inet', 'netdev'] as const) {
      if (need[kind] && !this.loaded[kind]) cmds.push(...tableCommands(kind, timeouts, this.o.limits ?? DEFAULT_LIMITS));
      else if (kind === 'netdev' && this.loaded.netdev && !sameTimeouts(timeouts, this.timeouts)) cmds.push(...timeoutCommands(timeouts));
      for (const c of model.chains[kind]) if (!this.applied.chains[kind].has(c)) cmds.push(...demandChainCommands(kind, c));
    }
    for (const d of ingress) if (!this.ingress.has(d)) cmds.push(...ingressCommands(d));
    for (const [a, b] of changed) cmds.push(...elementDelta('inet', a.inet, b.inet), ...elementDelta('netdev', a.netdev, b.netdev));
    if (cmds.length > 0) await this.o.nft.run(cmds);
    // Committed: move the bookkeeping.
    if (whole) {
      for (const kind of ['inet', 'netdev'] as const) for (const c of this.applied.chains[kind]) whole.chains[kind].add(c);
      this.applied = whole;
    } else {
      for (const [a, b] of changed) mergeModel(this.applied, a, b);
    }
    for (const kind of ['inet', 'netdev'] as const) if (need[kind]) this.loaded[kind] = true;
    for (const d of ingress) this.ingress.add(d);
    this.fragments = fragments;
    this.backends = pending;
    this.sharedRefs = refs;
    this.timeouts = timeouts;
    for (const k of removed) this.services.delete(k);
    if (only === null) for (const k of [...this.services.keys()]) if (!draft.services.has(k)) this.services.delete(k);
    for (const x of built) {
      if (!this.services.has(x.spec.key)) {
        const counters = newCounters();
        this.services.set(x.spec.key, { id: x.id, counters, est: new RateEstimator(counters, t0), dropped: 0, dropBase: 0 });
      }
    }
    if (fromPlan) {
      this.adopted = null;
      this.claimed.clear();
    }
  }

  /** Every service id in use: services, backends still forwarding, a leftover table's. */
  private idsInUse(): Set<number> {
    const ids = new Set<number>();
    for (const x of this.services.values()) ids.add(x.id);
    for (const b of this.backends.values()) ids.add(b.service);
    for (const id of this.adopted?.ids.values() ?? []) ids.add(id);
    return ids;
  }

  /** A new service's id: the one it had in a leftover table, else the next free one. `taken` holds every id in use. */
  private allocateService(spec: ServiceSpec, taken: Set<number>): number {
    const adopted = this.adopted?.ids.get(listenKey(spec));
    if (adopted !== undefined && ![...this.services.values()].some((x) => x.id === adopted) && !this.claimed.has(adopted)) {
      this.claimed.add(adopted);
      return adopted;
    }
    for (let tries = 0; tries < MAX_SERVICE_ID; tries++) {
      const id = this.nextId;
      this.nextId = this.nextId >= MAX_SERVICE_ID ? 1 : this.nextId + 1;
      if (!taken.has(id)) return id;
    }
    throw new Error('no free service id');
  }

  private allocateIndex(id: number, r: ServerSpec, known: readonly Backend[], used: Set<number>): number {
    const adopted = this.adopted?.backends.get(`${id}|${r.address}|${r.port}`) ?? this.adopted?.backends.get(`${id}|${r.address}|`);
    const taken = new Set([...known.map((b) => b.index), ...used]);
    if (adopted !== undefined && !taken.has(adopted)) return adopted;
    for (let i = 1; i <= MAX_SERVER_INDEX; i++) if (!taken.has(i)) return i;
    throw new Error(`service id ${id}: no free real-server index`);
  }

  private newBackend(service: number, serviceKey: string, index: number, spec: ServerSpec, now: number): Backend {
    const counters = newCounters();
    return {
      service, serviceKey, index, spec, device: null, trashed: false, counters, base: newCounters(), est: new RateEstimator(counters, now),
      active: 0, inactive: 0, recent: 0,
    };
  }

  private hasConnections(mark: number): boolean {
    const b = this.backends.get(mark);
    return b !== undefined && b.active + b.inactive > 0;
  }

  private async egressDevice(r: ServerSpec): Promise<string> {
    if (r.method === 'tun') return (await this.o.host.ensureTunnel(r.address, r.family)).device;
    const dev = await this.o.host.routeDevice(r.address);
    if (dev === null) throw new Error(`real server ${r.key}: no route to it (DR needs the real server on a directly connected network)`);
    return dev;
  }

  /**
   * DR/TUN services are classified where their packets arrive: the device holding the VIP
   * and, for a VRRP address, the device VRRP puts it on; else the way to their servers.
   */
  private async ingressDevices(s: PlaneService, cache: Map<string, string | null>): Promise<string[]> {
    const look = async (kind: 'addr' | 'route', address: string): Promise<string | null> => {
      const k = `${kind} ${address}`;
      if (!cache.has(k)) cache.set(k, kind === 'addr' ? await this.o.host.addressDevice(address) : await this.o.host.routeDevice(address));
      return cache.get(k) ?? null;
    };
    const out = new Set<string>();
    for (const l of s.spec.listen) {
      const d = await look('addr', l.address);
      if (d !== null && d !== 'lo') out.add(d);
      // A VRRP address: where it will be when MASTER, held here or not.
      if (l.device !== undefined) out.add(l.device);
    }
    if (out.size === 0) {
      for (const r of s.servers) {
        if (r.spec.method !== 'dr') continue;
        const d = await look('route', r.spec.address);
        if (d !== null) out.add(d);
      }
    }
    return [...out];
  }

  /** Read an existing `fulcrum` table back (takeover): its elements become the applied model. */
  private async adopt(): Promise<void> {
    const ids = new Map<string, number>();
    const backends = new Map<string, number>();
    for (const kind of ['inet', 'netdev'] as const) {
      const tables = await this.o.nft.list(`tables ${kind}`);
      if (!tables.some((t) => (t['table'] as { name?: string } | undefined)?.name === TABLE_NAME)) continue;
      // One listing of the whole table: its chains, and the elements of every set Fulcrum
      // writes (a set an older version did not have is simply absent).
      const listing = await this.o.nft.list(`table ${kind} ${TABLE_NAME}`);
      const sets = parseSets(listing);
      const elements: ElementMap = new Map();
      for (const set of staticSets(kind)) elements.set(set, modelElements(sets.get(set) ?? new Map()));
      this.applied = kind === 'inet' ? { ...this.applied, inet: elements } : { ...this.applied, netdev: elements };
      for (const c of listing) {
        const name = (c['chain'] as { name?: string } | undefined)?.name;
        if (name === undefined) continue;
        if (/^[spuo][46]_/.test(name)) this.applied.chains[kind].add(name);
        const device = ingressDevice(name);
        if (device !== null) this.ingress.add(device);
      }
      // Reinstall the fixed chains (maps untouched) so a newer Fulcrum's rules apply.
      await this.o.nft.run(tableCommands(kind, this.timeouts, this.o.limits ?? DEFAULT_LIMITS));
      this.loaded[kind] = true;
      for (const set of ['svc4', 'svc6', 'svc4any', 'svc6any', 'svcfw4', 'svcfw6']) {
        for (const [k, v] of elements.get(set) ?? []) ids.set(`${set.startsWith('svcfw') ? 'fw' : ''}${k}`, Number(v) >>> SERVER_BITS);
      }
      for (const set of ['be4', 'be6', 'nat4', 'nat4a', 'nat6', 'nat6a']) {
        for (const [k, v] of elements.get(set) ?? []) {
          const mark = Number(k);
          const [addr, port] = v.split(' . ');
          backends.set(`${(mark & SERVICE_MASK) >>> SERVER_BITS}|${addr}|${port ?? ''}`, mark & MAX_SERVER_INDEX);
        }
      }
    }
    this.adopted = { ids, backends };
    const maxId = Math.max(0, ...ids.values());
    this.nextId = maxId + 1 > MAX_SERVICE_ID ? 1 : maxId + 1;
  }

  private startPoll(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => {
      // A failed poll changes nothing (see poll) and is reported; the next one tries again.
      this.serial(() => this.poll()).catch((err: unknown) => {
        this.pollFailures++;
        reportFailure('nftables', errorCode(err) ?? FailureCode.NFT_READ, err);
      });
    }, this.o.pollMs ?? 1000);
    this.timer.unref();
  }

  /** Polls that failed (a read or the resulting transaction) since start. */
  pollFailures = 0;

  /** Drop the client entries of IPv6 flows conn6 no longer holds (they have no timeout of their own). */
  private async forgetClients(clients: ReadonlyMap<string, ElementRecord>, ports: ReadonlyMap<string, ElementRecord>, flows: ReadonlyMap<string, ElementRecord>): Promise<void> {
    const gone: ElementMap = new Map();
    for (const [set, m] of [['client6', clients], ['cport6', ports]] as const) {
      gone.set(set, new Map([...m.values()].filter((r) => !flows.has(r.key)).map((r) => [r.key, r.value])));
    }
    const cmds = elementDelta('netdev', gone, new Map());
    // A failure only leaves stale entries for the next second; it is reported.
    if (cmds.length > 0) {
      await this.o.nft.run(cmds).catch((err: unknown) => reportFailure('nftables', FailureCode.NFT_TRANSACTION, err, { what: 'forget IPv6 clients' }));
    }
  }

  /**
   * Read counters and connections; re-deal dynamic slots; forget finished trash. Runs in the
   * queue. Every read happens before anything is concluded: if one fails, the poll rejects
   * and the plane keeps what it knew (a trashed backend whose connections could not be
   * counted is never dropped on a failed read).
   */
  async poll(): Promise<void> {
    if (this.closed || this.table.services.size === 0 && this.backends.size === 0) return;
    const now = this.now();
    const counts = new Map<number, { active: number; inactive: number }>();
    const conns: KernelConn[] = [];
    const empty = new Map<string, ElementRecord>();
    if (this.loaded.netdev) {
      for (const f of ['4', '6'] as const) {
        // IPv6 keys are hashed: the client comes from client6/cport6, read before conn6 so
        // that every entry there whose flow is live is in what conn6 gives.
        const clients = f === '6' ? await readSet(this.o.nft, 'netdev', 'client6') : empty;
        const ports = f === '6' ? await readSet(this.o.nft, 'netdev', 'cport6') : empty;
        const closing = await readSet(this.o.nft, 'netdev', `closing${f}`);
        const flows = await readSet(this.o.nft, 'netdev', `conn${f}`);
        await this.forgetClients(clients, ports, flows);
        for (const r of flows.values()) {
          const mark = Number(r.valueParts[0]);
          const c = counts.get(mark) ?? { active: 0, inactive: 0 };
          const b = this.backends.get(mark);
          const udp = b !== undefined && this.table.services.get(b.serviceKey)?.spec.protocol === 'udp';
          const isClosing = closing.has(r.key);
          if (isClosing || udp) c.inactive++;
          else c.active++;
          counts.set(mark, c);
          // IPv4 keys are (service, client address, client port).
          const caddr = f === '4' ? r.keyParts[1] : clients.get(r.key)?.value;
          const cport = f === '4' ? r.keyParts[2] : ports.get(r.key)?.value;
          const family = f === '4' ? 'inet' as const : 'inet6' as const;
          const client = caddr !== undefined ? { client: { family, address: caddr, port: Number(cport ?? 0) } } : {};
          conns.push({ mark, key: r.key, state: udp ? 'UDP' : isClosing ? 'FIN_WAIT' : 'ESTABLISHED', expires: r.expires, family, ...client });
        }
      }
    }
    if (this.loaded.inet) {
      for (const c of parseConntrack(await this.conntrack())) {
        if (!this.backends.has(c.mark)) continue;
        const n = counts.get(c.mark) ?? { active: 0, inactive: 0 };
        if (c.state === 'ESTABLISHED') n.active++;
        else n.inactive++;
        counts.set(c.mark, n);
        conns.push(c);
      }
    }
    const read = async (kind: TableKind, set: string): Promise<Map<number, { packets: number; bytes: number }>> => {
      const out = new Map<number, { packets: number; bytes: number }>();
      if (!this.loaded[kind]) return out;
      for (const r of (await readSet(this.o.nft, kind, set)).values()) out.set(Number(r.key), r.counter ?? { packets: 0, bytes: 0 });
      return out;
    };
    const counter = new Map<number, Counters>();
    const nodest = new Map<number, number>();
    for (const kind of ['inet', 'netdev'] as const) {
      const conn = await read(kind, 'conns');
      const inp = await read(kind, 'pkts');
      const out = kind === 'inet' ? await read(kind, 'pktsout') : new Map<number, { packets: number; bytes: number }>();
      for (const [m, v] of await read(kind, 'nodest')) nodest.set(m & SERVICE_MASK, (nodest.get(m & SERVICE_MASK) ?? 0) + v.packets);
      for (const m of new Set([...conn.keys(), ...inp.keys(), ...out.keys()])) {
        counter.set(m, {
          conns: conn.get(m)?.packets ?? 0, inPkts: inp.get(m)?.packets ?? 0, inBytes: inp.get(m)?.bytes ?? 0,
          outPkts: out.get(m)?.packets ?? 0, outBytes: out.get(m)?.bytes ?? 0,
        });
      }
    }
    // Every read succeeded: only now does the plane's view move.
    this.conns = conns;
    const dirty = new Set<string>();
    const sums = new Map<number, Counters>();
    for (const [mark, b] of this.backends) {
      const c = counts.get(mark) ?? { active: 0, inactive: 0 };
      b.active = c.active;
      b.inactive = c.inactive;
      const raw = counter.get(mark);
      if (raw) {
        const before = b.counters.conns;
        for (const k of ['conns', 'inPkts', 'inBytes', 'outPkts', 'outBytes'] as const) b.counters[k] = Math.max(0, raw[k] - b.base[k]);
        b.recent = b.counters.conns - before;
      }
      b.est.tick(now);
      if (b.trashed && b.active + b.inactive === 0) dirty.add(b.serviceKey);
      let sum = sums.get(b.service);
      if (!sum) sums.set(b.service, (sum = newCounters()));
      addCounters(sum, b.counters);
    }
    for (const [key, st] of this.services) {
      // In place: the rate estimator holds this object.
      zeroCounters(st.counters);
      addCounters(st.counters, sums.get(st.id) ?? newCounters());
      st.est.tick(now);
      st.dropped = Math.max(0, (nodest.get(st.id << SERVER_BITS >>> 0) ?? 0) - st.dropBase);
      const spec = this.table.services.get(key)?.spec;
      if (spec && slotShape(spec.scheduler, spec.schedFlags).dynamic) dirty.add(key);
    }
    if (dirty.size > 0) await this.sync(cloneTable(this.table), false, dirty);
  }

  /** The conntrack table's text; a failed read rejects (E_CONNTRACK_READ). */
  private async conntrack(): Promise<string> {
    try {
      return await this.o.host.conntrack();
    } catch (err: unknown) {
      throw new FulcrumError(FailureCode.CONNTRACK_READ, `reading the conntrack table failed: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }

  stats(): ServiceStats[] {
    return [...this.table.services.values()].map((entry) => {
      const st = this.services.get(entry.spec.key);
      // The live backend of each real server, by the index its service's fragment gave it.
      const live = new Map<string, Backend>();
      const frag = this.fragments.get(entry.spec.key);
      for (const r of frag?.svc.servers ?? []) {
        const b = r.trashed ? undefined : this.backends.get(backendMark(frag?.svc.id ?? 0, r.index));
        if (b) live.set(r.spec.key, b);
      }
      return {
        spec: entry.spec,
        counters: st?.counters ?? newCounters(),
        rates: st?.est.rates() ?? ZERO_RATES,
        dropped: st?.dropped ?? 0,
        servers: [...entry.servers.values()].map((spec) => {
          const b = live.get(spec.key);
          return {
            spec, active: b?.active ?? 0, inactive: b?.inactive ?? 0, persistent: 0,
            counters: b?.counters ?? newCounters(), rates: b?.est.rates() ?? ZERO_RATES,
          };
        }),
      };
    });
  }

  connections(): Promise<ConnectionEntry[]> {
    return Promise.resolve(this.connectionList());
  }

  /** The connection table, now. */
  connectionList(): ConnectionEntry[] {
    const out: ConnectionEntry[] = [];
    for (const c of this.conns) {
      const b = this.backends.get(c.mark);
      if (!b) continue;
      const spec = this.table.services.get(b.serviceKey)?.spec;
      const virtual = c.virtual ?? spec?.listen[0] ?? { family: b.spec.family, address: '', port: 0 };
      out.push({
        protocol: spec?.protocol ?? 'tcp',
        client: c.client ?? { family: b.spec.family, address: '', port: 0 },
        virtual,
        server: b.spec.key,
        state: c.state,
        expires: c.expires,
      });
    }
    return out;
  }

  zero(service?: string): boolean {
    if (service !== undefined && !this.table.services.has(service)) return false;
    const now = this.now();
    for (const b of this.backends.values()) {
      if (service !== undefined && b.serviceKey !== service) continue;
      addCounters(b.base, b.counters);
      zeroCounters(b.counters);
      b.est.zero(now);
    }
    for (const [key, st] of this.services) {
      if (service !== undefined && key !== service) continue;
      st.dropBase += st.dropped;
      st.dropped = 0;
      zeroCounters(st.counters);
      st.est.zero(now);
    }
    return true;
  }

  close(drainMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return this.serial(async () => {
      // Forward what is in flight for up to drainMs (new flows too: with VRRP, traffic has
      // already moved to the new master), then remove the tables.
      const until = Date.now() + drainMs;
      while (drainMs > 0 && Date.now() < until) {
        // A count that cannot be read is not "none left": keep forwarding until the deadline.
        const left = await this.countConnections().catch((err: unknown) => {
          reportFailure('nftables', errorCode(err) ?? FailureCode.NFT_READ, err);
          return -1;
        });
        if (left === 0) break;
        await new Promise((r) => setTimeout(r, Math.min(500, Math.max(0, until - Date.now()))));
      }
      const tunnels = new Set([...this.backends.values()].filter((b) => b.spec.method === 'tun' && b.device).map((b) => b.device as string));
      this.table.close();
      this.services.clear();
      this.backends.clear();
      if (this.o.keepOnClose) return;
      const cmds: string[] = [];
      for (const kind of ['inet', 'netdev'] as const) if (this.loaded[kind]) cmds.push(`delete table ${kind} ${TABLE_NAME}`);
      if (cmds.length > 0) await this.o.nft.run(cmds).catch((err: unknown) => reportFailure('nftables', FailureCode.NFT_TRANSACTION, err, { what: 'delete tables at stop' }));
      for (const t of tunnels) await this.o.host.removeTunnel(t).catch((err: unknown) => reportFailure('nftables', errorCode(err) ?? FailureCode.TASK, err, { what: `remove tunnel ${t}` }));
    });
  }

  private async countConnections(): Promise<number> {
    let n = 0;
    if (this.loaded.netdev) for (const f of ['4', '6']) n += (await readSet(this.o.nft, 'netdev', `conn${f}`)).size;
    if (this.loaded.inet) n += parseConntrack(await this.conntrack()).filter((c) => this.backends.has(c.mark)).length;
    return n;
  }
}

/** into := into − before + after (element maps and chains). */
function mergeModel(into: KernelModel, before: KernelModel, after: KernelModel): void {
  for (const kind of ['inet', 'netdev'] as const) {
    const m = into[kind];
    for (const [set, els] of before[kind]) for (const k of els.keys()) m.get(set)?.delete(k);
    for (const [set, els] of after[kind]) {
      let t = m.get(set);
      if (!t) m.set(set, (t = new Map()));
      for (const [k, v] of els) t.set(k, v);
    }
    for (const c of after.chains[kind]) into.chains[kind].add(c);
  }
}

/** Each service's part of the applied model, and the ingress devices it was classified on. */
interface Fragment {
  readonly svc: PlaneService;
  readonly model: KernelModel;
  ingress: { readonly key: string; readonly devices: readonly string[] } | null;
}

/** What a service's ingress devices depend on: its listen addresses and its DR servers' addresses. */
function ingressKey(s: PlaneService): string {
  return [...s.spec.listen.map((l) => `${l.address}@${l.device ?? ''}`), '|', ...s.servers.filter((r) => r.spec.method === 'dr').map((r) => r.spec.address)].join(' ');
}

function sameTimeouts(a: Timeouts, b: Timeouts): boolean {
  return a.tcp === b.tcp && a.tcpfin === b.tcpfin && a.udp === b.udp;
}

/** How an adopted service is recognised: its first listen key (as the svc maps hold it). */
function listenKey(spec: ServiceSpec): string {
  if (spec.endpoint.kind === 'fwmark') return `fw${hex(spec.endpoint.mark)}`;
  const l = spec.listen[0];
  if (!l) return '';
  return l.port === 0 ? `${l.address} . ${spec.protocol}` : `${l.address} . ${spec.protocol} . ${l.port}`;
}

function cloneTable(t: SpecTable): SpecTable {
  const c = new SpecTable();
  for (const [k, e] of t.services) c.services.set(k, { spec: e.spec, servers: new Map(e.servers) } satisfies TableEntry);
  return c;
}
