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
import { opServiceKey, SpecTable } from '../table.js';
import {
  DataPlaneErrorCode, DEFAULT_TIMEOUTS, type ServiceSpec, type ApplyResult, type ConnectionEntry, type Counters, type DataPlane, type HeldTable,
  type OpFailure, type Plan, type PlanOp, type ServiceStats, type SyncedFlow, type SyncInstallRefusal, type SyncInstallResult, type Timeouts,
} from '../types.js';
import type { KernelHost } from '../../sys/kernel-host.js';
import { CtTcpState, type ConntrackWriter, type CtNatEntry } from '../../sys/ctnetlink.js';
import type { Nft } from '../../sys/nft.js';
import {
  backendMark, emptyModel, hex, serviceMark, MAX_SERVER_INDEX, MAX_SERVICE_ID, SERVER_BITS, SERVICE_MASK, TABLE_NAME,
  type ElementMap, type KernelModel, type TableKind,
} from './model.js';
import {
  conn6Key, DEFAULT_LIMITS, elementDelta, ingressDevice, staticSets, tableCommands, type RulesetLimits,
} from './ruleset.js';
import { slotShape } from './slots.js';
import { parseIp } from '../../model/address.js';
import { modelElements, parseConntrack, parseSets, readSet, type ElementRecord, type KernelConn } from './read.js';
import { familyOf, kindOf, mergeModel, planSync, type Backend, type Fragment, type HostQuestion, type PlaneState, type ServiceState, type SyncCommit } from './planner.js';
import { errorCode, errorMessage, FailureCode, FulcrumError, reportFailure, serialQueue, type Serial } from '../../errors/index.js';

/** An address in the configuration's one spelling (parseIp's), for matching sync flows to services. */
const addrKey = (a: string): string => parseIp(a)?.address ?? a;

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
  /** Where synchronised NAT connections are written (ctnetlink); without it NAT flows are not installed. */
  readonly conntrack?: ConntrackWriter;
}

const KERNEL_METHODS: readonly ForwardingMethod[] = ['nat', 'dr', 'tun'];



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
  private timer: NodeJS.Timeout | null = null;
  private readonly now: () => number;
  private closed = false;
  private nextId = 1;
  /** Each service's part of the applied model, so a change diffs only the services it touches. */
  private fragments = new Map<string, Fragment>();
  /** Adopted ids already given back to their services during this takeover. */
  private claimed = new Set<number>();

  constructor(private readonly o: NftDataPlaneOptions) {
    this.now = o.now ?? (() => Date.now() / 1000);
  }

  /** Applies, polls and reads one at a time. */
  private readonly serial: Serial = serialQueue();

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
    const { draft, accepted, failed } = this.table.screen(plan.ops, (op, d) => this.refuse(op, d));
    if (accepted.length === 0) return { applied: [], failed };
    try {
      const dirty = new Set(accepted.map(opServiceKey));
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
   * Bring the kernel to `draft` — the executor around the pure planner (planner.ts): ask the
   * host what the planner needs (egress devices, tunnels, address and route devices), send
   * the one transaction it plans through the Nft boundary, and commit the state it planned.
   * On failure nothing moved (ids handed out are simply reused later).
   */
  private async sync(draft: SpecTable, fromPlan: boolean, dirty: ReadonlySet<string> | null = null): Promise<void> {
    if (!this.loaded.inet && !this.loaded.netdev) await this.adopt();
    // After a takeover the first delta is against what the kernel holds, whole.
    const only = this.adopted === null ? dirty : null;
    const now = this.now();
    const answers = new Map<string, string | null | Error>();
    for (let round = 0; ; round++) {
      const plan = planSync({ state: this.planeState(), draft, only, answers, now, ...(this.o.limits ? { limits: this.o.limits } : {}) });
      if ('cmds' in plan) {
        if (plan.cmds.length > 0) await this.o.nft.run(plan.cmds);
        this.commitSync(plan.commit, draft, fromPlan, now);
        return;
      }
      if (round >= 4) throw new Error('the kernel plane could not resolve the devices it needs');
      for (const q of plan.need) answers.set(q.key, await this.askHost(q));
    }
  }

  /** What the plane holds, for the planner (read only). */
  private planeState(): PlaneState {
    return {
      services: this.services, backends: this.backends, sharedRefs: this.sharedRefs, applied: this.applied, loaded: this.loaded,
      adopted: this.adopted, ingress: this.ingress, timeouts: this.timeouts, nextId: this.nextId, fragments: this.fragments, claimed: this.claimed,
    };
  }

  /** One host question; an error is an answer (the planner refuses the plan with it). */
  private async askHost(q: HostQuestion): Promise<string | null | Error> {
    try {
      switch (q.kind) {
        case 'egress':
          return q.server.method === 'tun' ? (await this.o.host.ensureTunnel(q.server.address, q.server.family)).device : await this.o.host.routeDevice(q.server.address);
        case 'addr':
          return await this.o.host.addressDevice(q.address);
        case 'route':
          return await this.o.host.routeDevice(q.address);
      }
    } catch (err: unknown) {
      return err instanceof Error ? err : new Error(String(err));
    }
  }

  /** The kernel took the transaction: move the bookkeeping to what was planned. */
  private commitSync(c: SyncCommit, draft: SpecTable, fromPlan: boolean, now: number): void {
    if (c.whole) {
      for (const kind of ['inet', 'netdev'] as const) for (const ch of this.applied.chains[kind]) c.whole.chains[kind].add(ch);
      this.applied = c.whole;
    } else {
      for (const [a, b] of c.changed) mergeModel(this.applied, a, b);
    }
    for (const kind of c.loadedKinds) this.loaded[kind] = true;
    for (const d of c.ingressAdded) this.ingress.add(d);
    this.fragments = c.fragments;
    this.backends = c.backends;
    this.sharedRefs = c.sharedRefs;
    this.timeouts = c.timeouts;
    this.nextId = c.nextId;
    this.claimed = new Set(c.claimed);
    for (const k of c.removed) this.services.delete(k);
    if (c.wholeRebuild) for (const k of [...this.services.keys()]) if (!draft.services.has(k)) this.services.delete(k);
    for (const x of c.built) {
      if (!this.services.has(x.spec.key)) {
        const counters = newCounters();
        this.services.set(x.spec.key, { id: x.id, counters, est: new RateEstimator(counters, now), dropped: 0, dropBase: 0 });
      }
    }
    if (fromPlan) {
      this.adopted = null;
      this.claimed.clear();
    }
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
        // Slot chains (`s4_mh`) are written again at the first transaction, so a table an
        // older Fulcrum left gets this version's rules (its hashes seeded).
        if (/^[puo][46]_/.test(name)) this.applied.chains[kind].add(name);
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

  /**
   * Poll about once a second; when a poll takes long (listing 100,000 connections takes
   * nft seconds), the next waits twice as long as it took, so the plane's queue stays free
   * for plans and synchronised flows at least half the time.
   */
  private startPoll(): void {
    if (this.timer || this.closed) return;
    const every = this.o.pollMs ?? 1000;
    const next = (ms: number): void => {
      this.timer = setTimeout(() => {
        const t0 = Date.now();
        // A failed poll changes nothing (see poll) and is reported; the next one tries again.
        this.serial(() => this.poll()).catch((err: unknown) => {
          this.pollFailures++;
          reportFailure('nftables', errorCode(err) ?? FailureCode.NFT_READ, err);
        }).finally(() => {
          if (!this.closed) next(Math.max(every, 2 * (Date.now() - t0)));
        });
      }, ms);
      this.timer.unref();
    };
    next(every);
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
    if (dirty.size > 0) await this.sync(this.table.clone(), false, dirty);
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
    if (this.timer) clearTimeout(this.timer);
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

  /** Flows installed from another director: element key → value and when it lapses (seconds). */
  private readonly synced = new Map<string, { value: string; until: number }>();

  /**
   * The flows for connection sync: DR/TUN entries (conn4; conn6 with its client from
   * client6/cport6) and NAT connections (conntrack) as the last poll read them, with
   * their packet counts (seen4/seen6), and the persistence templates (persist4/persist6 of
   * both tables) read now. Full-NAT connections are not exported (see docs/operations.md).
   */
  syncExport(): Promise<SyncedFlow[]> {
    return this.serial(async () => {
      if (this.closed || !this.loaded.netdev && !this.loaded.inet) return [];
      // Connections come from the last poll (reading conn4 and conntrack again would double
      // the plane's largest cost); templates, which the poll does not read, are read here.
      const persistent = (nat: boolean): boolean => [...this.table.services.values()].some((e) => e.spec.persistence !== null && (e.spec.method === 'nat') === nat);
      const none = new Map<string, ElementRecord>();
      // Each DR/TUN flow's packets (seen4/seen6), for the sender's threshold; read only when
      // the poll found such flows of that family.
      const dr = (family: Family): boolean => this.loaded.netdev && this.conns.some((c) => c.family === family && this.backends.get(c.mark)?.spec.method !== 'nat');
      const seen = {
        inet: dr('inet') ? await readSet(this.o.nft, 'netdev', 'seen4') : none,
        inet6: dr('inet6') ? await readSet(this.o.nft, 'netdev', 'seen6') : none,
      };
      const templates: [Family, ElementRecord][] = [];
      for (const [kind, nat] of [['netdev', false], ['inet', true]] as const) {
        if (!this.loaded[kind] || !persistent(nat)) continue;
        for (const [f, family] of [['4', 'inet'], ['6', 'inet6']] as const) {
          for (const r of (await readSet(this.o.nft, kind, `persist${f}`)).values()) templates.push([family, r]);
        }
      }
      const out: SyncedFlow[] = [];
      const t = this.timeouts;
      const describe = (beMark: number): { spec: ServiceSpec; b: Backend } | null => {
        const b = this.backends.get(beMark);
        const spec = b ? this.table.services.get(b.serviceKey)?.spec : undefined;
        return b && spec ? { spec, b } : null;
      };
      const where = (spec: ServiceSpec): { virtual: string; vport: number; fwmark: number } =>
        spec.endpoint.kind === 'fwmark'
          ? { virtual: '0.0.0.0', vport: 0, fwmark: spec.endpoint.mark }
          : { virtual: spec.listen[0]?.address ?? '0.0.0.0', vport: spec.listen[0]?.port ?? 0, fwmark: 0 };
      for (const c of this.conns) {
        const d = describe(c.mark);
        if (!d || !c.client) continue;
        const udp = d.spec.protocol === 'udp';
        if (d.b.spec.method !== 'nat') {
          // DR/TUN (conn4, conn6 with client6/cport6): the poll read the state from closing4/6.
          const state = udp ? 'other' as const : c.state === 'FIN_WAIT' ? 'closing' as const : 'established' as const;
          const packets = c.key !== undefined ? seen[c.family].get(c.key)?.counter?.packets : undefined;
          out.push({
            template: false, protocol: d.spec.protocol, family: c.family, method: d.b.spec.method,
            client: c.client.address, cport: c.client.port, ...where(d.spec),
            server: d.b.spec.address, dport: d.b.spec.port, state, timeout: state === 'closing' ? t.tcpfin : udp ? t.udp : t.tcp,
            ...(packets !== undefined ? { packets } : {}),
          });
          continue;
        }
        // NAT (conntrack), full NAT excepted: its source address is this director's. Half-open
        // connections are not synchronised (IPVS syncs established and closing states only).
        if (d.spec.snat || !c.virtual || !c.server) continue;
        if (!udp && !['ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT'].includes(c.state)) continue;
        const state = udp ? 'other' as const : c.state === 'ESTABLISHED' ? 'established' as const : 'closing' as const;
        out.push({
          template: false, protocol: d.spec.protocol, family: c.family, method: 'nat',
          client: c.client.address, cport: c.client.port, virtual: c.virtual.address, vport: c.virtual.port, fwmark: 0,
          server: c.server.address, dport: c.server.port, state, timeout: state === 'closing' ? t.tcpfin : udp ? t.udp : t.tcp,
        });
      }
      for (const [family, r] of templates) {
        const d = describe(Number(r.valueParts[0]));
        if (!d || d.spec.snat) continue;
        out.push({
          template: true, protocol: d.spec.protocol, family, method: d.b.spec.method,
          client: r.keyParts[1] ?? '', cport: 0, ...where(d.spec),
          server: d.b.spec.address, dport: d.b.spec.port, state: 'other', timeout: d.spec.persistence?.timeout ?? t.tcp,
        });
      }
      return out;
    });
  }

  /**
   * Install flows another director synchronised: each is matched to the local service (by
   * protocol, address and port, or fwmark) and real server (address and port) and written
   * to conn4 (and closing4) or persist4 with its timeout. A flow already held with the same
   * server and more than half its timeout left is not rewritten, so a refresh costs nothing
   * in the kernel until it matters. One transaction per call.
   *
   * nftables refuses to `add` a key it holds with another value and to `delete` one it
   * does not hold, so the plane writes from what it knows the kernel holds (what it
   * installed); when the kernel disagrees (the transaction is refused: traffic here made
   * an entry, or one lapsed), it reads the two maps once and writes again from that.
   */
  syncInstall(flows: readonly SyncedFlow[]): Promise<SyncInstallResult> {
    return this.serial(async () => {
      const refused = new Map<SyncInstallRefusal, number>();
      const refuse = (r: SyncInstallRefusal): void => { refused.set(r, (refused.get(r) ?? 0) + 1); };
      if (this.closed || !this.loaded.netdev && !this.loaded.inet) {
        for (let i = 0; i < flows.length; i++) refuse('no-service');
        return { installed: 0, unchanged: 0, refused };
      }
      const byAddr = new Map<string, number>();
      const servers = new Map<number, Map<string, number>>();
      const specs = new Map<number, ServiceSpec>();
      const families = new Map<number, Family>();
      for (const f of this.fragments.values()) {
        const sp = f.svc.spec;
        specs.set(f.svc.id, sp);
        families.set(f.svc.id, f.svc.family);
        if (sp.endpoint.kind === 'fwmark') byAddr.set(`${f.svc.family}|fw|${sp.endpoint.mark}`, f.svc.id);
        for (const l of sp.listen) byAddr.set(`${sp.protocol}|${addrKey(l.address)}|${l.port}`, f.svc.id);
        servers.set(f.svc.id, new Map(f.svc.servers.filter((x) => !x.trashed).map((x) => [`${addrKey(x.spec.address)}|${x.spec.port}`, backendMark(f.svc.id, x.index)])));
      }
      const now = this.now();
      for (const [k, e] of this.synced) if (e.until <= now) this.synced.delete(k);
      // Each flow → its element (set, key, value, timeout, closing), or a NAT connection.
      const wanted = new Map<string, { kind: TableKind; set: string; key: string; value: string; timeout: number; closing: boolean; client6?: { address: string; port: number } }>();
      const nat: CtNatEntry[] = [];
      const natIds: string[] = [];
      let natUnchanged = 0;
      for (const f of flows) {
        if (f.method === 'nat' && !f.template && !this.o.conntrack) {
          refuse('unsupported');
          continue;
        }
        const id = f.fwmark !== 0 ? byAddr.get(`${f.family}|fw|${f.fwmark}`) : byAddr.get(`${f.protocol}|${addrKey(f.virtual)}|${f.vport}`);
        if (id === undefined || families.get(id) !== f.family) {
          refuse('no-service');
          continue;
        }
        const be = servers.get(id)?.get(`${addrKey(f.server)}|${f.dport}`);
        if (be === undefined) {
          refuse('no-server');
          continue;
        }
        const svcSpec = specs.get(id);
        const timeout = Math.max(1, Math.min(Math.round(f.timeout), 86400 * 365));
        if ((f.method === 'nat') !== (svcSpec?.method === 'nat') || f.method === 'nat' && svcSpec?.snat) {
          refuse(f.method === 'nat' && svcSpec?.snat ? 'unsupported' : 'no-service');
          continue;
        }
        if (f.method === 'nat' && !f.template) {
          const ident = `ct ${f.protocol} ${f.client}:${f.cport} ${f.virtual}:${f.vport}`;
          const held = this.synced.get(ident);
          if (held && held.value === hex(be) && held.until - now > timeout / 2) {
            natUnchanged++;
            continue;
          }
          nat.push({
            family: f.family, protocol: f.protocol, client: f.client, cport: f.cport, virtual: f.virtual, vport: f.vport, server: f.server, dport: f.dport,
            mark: be, timeout, ...(f.protocol === 'tcp' ? { tcpState: f.state === 'closing' ? CtTcpState.FIN_WAIT : CtTcpState.ESTABLISHED } : {}),
          });
          natIds.push(ident);
          continue;
        }
        // NAT templates live in the inet table's persist4/6, DR/TUN ones and flows in netdev's.
        // An IPv6 flow's key is the kernel's two hashes of its client (conn6Key); its client
        // goes into client6/cport6 beside it, for listings.
        const kind: TableKind = f.method === 'nat' ? 'inet' : 'netdev';
        const v = f.family === 'inet' ? '4' : '6';
        const set = f.template ? `persist${v}` : `conn${v}`;
        const svcMark = serviceMark(id);
        const key = f.template ? `${hex(svcMark)} . ${addrKey(f.client)}` : v === '4' ? `${hex(svcMark)} . ${f.client} . ${f.cport}` : conn6Key(svcMark, f.client, f.cport);
        wanted.set(`${kind} ${set} ${key}`, {
          kind, set, key, value: hex(be), timeout, closing: f.state === 'closing',
          ...(v === '6' && !f.template ? { client6: { address: addrKey(f.client), port: f.cport } } : {}),
        });
      }
      const limit = (this.o.limits ?? DEFAULT_LIMITS).connections;
      const plan = (): { cmds: string[]; installed: number; unchanged: number; full: number; next: Map<string, { value: string; until: number }> } => {
        // One delete and one add command per set, elements comma-separated: nft parses a
        // list far faster than as many commands. Deletes come first in the transaction.
        const dels = new Map<string, string[]>();
        const adds = new Map<string, string[]>();
        const push = (m: Map<string, string[]>, set: string, el: string): void => {
          let l = m.get(set);
          if (!l) m.set(set, (l = []));
          l.push(el);
        };
        const next = new Map<string, { value: string; until: number }>();
        let installed = 0;
        let unchanged = 0;
        let full = 0;
        for (const [id, w] of wanted) {
          const held = this.synced.get(id);
          if (held && held.value === w.value && held.until - now > w.timeout / 2) {
            unchanged++;
            continue;
          }
          if (!held && this.synced.size + next.size >= limit) {
            full++;
            continue;
          }
          if (held) push(dels, `${w.kind} ${TABLE_NAME} ${w.set}`, w.key);
          push(adds, `${w.kind} ${TABLE_NAME} ${w.set}`, `${w.key} timeout ${w.timeout}s : ${w.value}`);
          if (w.closing) push(adds, `netdev ${TABLE_NAME} closing${w.client6 ? '6' : '4'}`, `${w.key} timeout ${w.timeout}s`);
          if (w.client6 && !held) {
            // No timeout of their own: the poll drops them once conn6 no longer holds the flow.
            push(adds, `netdev ${TABLE_NAME} client6`, `${w.key} : ${w.client6.address}`);
            push(adds, `netdev ${TABLE_NAME} cport6`, `${w.key} : ${w.client6.port}`);
          }
          next.set(id, { value: w.value, until: now + w.timeout });
          installed++;
        }
        const cmds = [
          ...[...dels].map(([where, els]) => `delete element ${where} { ${els.join(', ')} }`),
          ...[...adds].map(([where, els]) => `add element ${where} { ${els.join(', ')} }`),
        ];
        return { cmds, installed, unchanged, full, next };
      };
      let p = plan();
      if (p.cmds.length > 0) {
        try {
          await this.o.nft.run(p.cmds);
        } catch (first: unknown) {
          // The kernel holds something else than we knew: learn what, and write once more.
          for (const k of [...this.synced.keys()]) if (!k.startsWith('ct ')) this.synced.delete(k);
          for (const [kind, set] of [['netdev', 'conn4'], ['netdev', 'conn6'], ['netdev', 'persist4'], ['netdev', 'persist6'], ['inet', 'persist4'], ['inet', 'persist6']] as const) {
            if (!this.loaded[kind]) continue;
            for (const r of (await readSet(this.o.nft, kind, set)).values()) this.synced.set(`${kind} ${set} ${r.key}`, { value: r.value, until: now + r.expires });
          }
          p = plan();
          try {
            if (p.cmds.length > 0) await this.o.nft.run(p.cmds);
          } catch (err: unknown) {
            throw new FulcrumError(FailureCode.NFT_TRANSACTION, `installing ${p.installed} synchronised flows failed: ${errorMessage(err)} (first attempt: ${errorMessage(first)})`, { cause: err });
          }
        }
      }
      for (const [k, v] of p.next) this.synced.set(k, v);
      if (p.full > 0) refused.set('full', p.full);
      let natInstalled = 0;
      if (nat.length > 0 && this.o.conntrack) {
        const r = await this.o.conntrack.natEntries(nat);
        natInstalled = r.created + r.refreshed;
        if (r.failed > 0) {
          refused.set('kernel', (refused.get('kernel') ?? 0) + r.failed);
          reportFailure('nftables', FailureCode.SYNC_INSTALL, new Error(`ctnetlink refused ${r.failed} of ${nat.length} NAT connections (errno ${r.firstError ?? '?'})`));
        }
        // What the kernel took is known held; a refused entry is tried again at its next refresh.
        if (r.failed === 0) nat.forEach((e, i) => this.synced.set(natIds[i] as string, { value: hex(e.mark), until: now + e.timeout }));
      }
      return { installed: p.installed + natInstalled, unchanged: p.unchanged + natUnchanged, refused };
    });
  }

  private async countConnections(): Promise<number> {
    let n = 0;
    if (this.loaded.netdev) for (const f of ['4', '6']) n += (await readSet(this.o.nft, 'netdev', `conn${f}`)).size;
    if (this.loaded.inet) n += parseConntrack(await this.conntrack()).filter((c) => this.backends.has(c.mark)).length;
    return n;
  }
}
