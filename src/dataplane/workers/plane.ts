/**
 * WorkersDataPlane: the userspace proxy on N worker threads under one control plane.
 *
 * The control plane (this object, on the daemon's thread) holds the table — the one source
 * of truth the director diffs against — and hands out slots in the shared scheduling state
 * (shared/state.ts). Each worker runs a ProxyDataPlane that only relays: it listens with
 * SO_REUSEPORT beside the others (the kernel spreads connections, no central accept) and
 * schedules through the shared state, so connection counts, thresholds, rr/wrr positions
 * and persistence templates are those of one director.
 *
 * A plan is a two-phase transaction over the workers: every worker prepares (opens the
 * listeners the plan needs — the only part that can fail), then all commit the same ops, so
 * a reload or runtime change is in effect on every worker or on none. Counters, rates and
 * connection counts are read from the shared state (every worker publishes its counters
 * once a second); the connection table is asked of every worker.
 *
 * A worker that throws or dies is restarted without touching the others: its connections are
 * taken out of the shared counts and counted as lost, its counters folded into a base so
 * totals never go back, and the new worker is given the whole table before it listens.
 */
import { channel } from 'node:diagnostics_channel';
import { Worker } from 'node:worker_threads';
import { FailureCode, reportFailure, serialQueue, type Serial } from '../../errors/index.js';
import type { ForwardingMethod } from '../../model/types.js';
import { ServerMap } from '../../model/server-map.js';
import { DEFAULT_TUNABLES, type ProxyTunables } from '../proxy/context.js';
import { proxyRefusal } from '../proxy/plane.js';
import { allocateShared, COUNTER_FIELDS, DEFAULT_SHARED_LIMITS, SharedState, type SharedLimits } from '../shared/state.js';
import { newCounters, RateEstimator, ZERO_RATES } from '../stats.js';
import { SpecTable } from '../table.js';
import {
  DataPlaneErrorCode, type ApplyResult, type ConnectionEntry, type Counters, type DataPlane, type HeldTable, type OpFailure, type Plan, type PlanOp,
  type ServerSpec, type ServiceSpec, type ServiceStats, type SyncedFlow, type SyncInstallResult, type WorkerStatus,
} from '../types.js';
import ipaddr from 'ipaddr.js';
import { installTemplates, ParkedTemplates, templateFlows, type AdoptOutcome } from '../proxy/sync.js';
import { PersistenceTable, type TemplateStore } from '../../scheduling/persistence.js';
import { persistenceScope } from '../../scheduling/service.js';
import { makeDest } from '../../scheduling/dest.js';
import type { Dest } from '../../scheduling/types.js';
import type { FromWorker, ToWorker, WorkerInit } from './protocol.js';
import { FdRegistry } from '../../sys/reactor.js';
import { fileLimit } from '../../sys/limits.js';

export interface WorkersDataPlaneOptions {
  readonly workers: number;
  readonly tunables?: Partial<ProxyTunables>;
  readonly limits?: Partial<Omit<SharedLimits, 'workers'>>;
  /** Let tests crash a worker on purpose (FULCRUM_FAULT_INJECTION=1). */
  readonly faults?: boolean;
  /** Milliseconds a worker has to answer a phase of a plan before it is taken for dead. */
  readonly replyMs?: number;
}

interface Slot {
  readonly worker: number;
  thread: Worker | null;
  ready: boolean;
  restarts: number;
  sessions: number;
  /** Pipes its relay holds (as it last reported). */
  pipes: number;
  /** What the thread threw (its 'error' event), told with its exit: one report per crash. */
  fault: string | null;
  /** Replies awaited from this worker, by request id. */
  readonly waiting: Map<number, (m: FromWorker | null) => void>;
  /** The descriptors the running thread's relay holds (closed here when it dies). */
  fds: FdRegistry | null;
}

/** A slot handed out while a plan is prepared. */
type Taken = { readonly kind: 'service'; readonly service: string; readonly slot: number } | { readonly kind: 'dest'; readonly service: string; readonly server: string; readonly slot: number };

class SlotPool {
  private readonly free: number[] = [];
  private next = 0;
  constructor(private readonly size: number) {}
  take(): number | null {
    const s = this.free.pop();
    if (s !== undefined) return s;
    return this.next < this.size ? this.next++ : null;
  }
  give(s: number): void {
    this.free.push(s);
  }
}

const NO_TEMPLATES: ReadonlyMap<number, number> = new Map();

export class WorkersDataPlane implements DataPlane {
  readonly name = 'proxy';
  readonly methods: readonly ForwardingMethod[] = ['proxy'];
  private readonly table = new SpecTable();
  /** Synchronised templates of services not served here now (see proxy/sync.ts). */
  private readonly parked = new ParkedTemplates();
  private readonly state: SharedState;
  private readonly slots: Slot[] = [];
  private readonly init: Omit<WorkerInit, 'index' | 'fds'>;
  private readonly serviceSlots: SlotPool;
  private readonly destSlots: SlotPool;
  /** Slot of each service by key, and of each real server by service, then server key. */
  private readonly serviceSlot = new Map<string, number>();
  private readonly destSlot = new ServerMap<number>();
  /** Real-server slots removed from the table whose connections have not all ended yet. */
  private readonly retiring = new Set<number>();
  /** Counters of workers that died, and the counts at the last `-Z`, by counter row. */
  private readonly base: Float64Array;
  private readonly zeroBase: Float64Array;
  /** Counters and rate estimators by counter row (dest slot, or dests + service slot). */
  private readonly rows = new Map<number, { c: Counters; est: RateEstimator; dropped: number }>();
  private nextId = 1;
  private closed = false;
  /** Set as close() begins: no worker is restarted any more. */
  private closing = false;
  private readonly timer: NodeJS.Timeout;
  /** Connections lost with workers that died. */
  private lost = 0;
  /** Plans the workers were sent (a round trip to each), and plans of weights only published in the shared state. */
  readonly plans = { sent: 0, published: 0 };

  lostConnections(): number {
    return this.lost;
  }

  /** Pipes the workers' relays hold, as they last reported (once a second). */
  pipes(): number {
    return this.slots.reduce((n, s) => n + s.pipes, 0);
  }

  constructor(private readonly o: WorkersDataPlaneOptions) {
    const limits: SharedLimits = { ...DEFAULT_SHARED_LIMITS, ...o.limits, workers: o.workers };
    this.state = new SharedState(allocateShared(limits), -1);
    this.serviceSlots = new SlotPool(limits.services);
    this.destSlots = new SlotPool(limits.dests);
    const rowsPerWorker = (limits.dests + limits.services) * COUNTER_FIELDS;
    this.base = new Float64Array(rowsPerWorker);
    this.zeroBase = new Float64Array(rowsPerWorker);
    const tunables: ProxyTunables = { ...DEFAULT_TUNABLES, ...o.tunables, reusePort: true };
    // The session cap is the whole director's: each worker gets its share.
    this.init = { buffers: this.state.buffers, tunables: { ...tunables, udpSessionLimit: Math.max(1, Math.floor(tunables.udpSessionLimit / o.workers)), pipeShare: tunables.pipeShare / o.workers }, faults: o.faults ?? false };
    for (let w = 0; w < o.workers; w++) {
      const slot: Slot = { worker: w, thread: null, ready: false, restarts: 0, sessions: 0, pipes: 0, fault: null, waiting: new Map(), fds: null };
      this.slots.push(slot);
      this.spawn(slot);
    }
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  get held(): HeldTable {
    return this.table;
  }

  /** Every worker started at construction up (or given up on after 10 s); plans wait for it. */
  ready(): Promise<void> {
    this.started ??= (async () => {
      for (let i = 0; i < 1000 && this.slots.some((s) => s.thread !== null && !s.ready); i++) await new Promise((r) => setTimeout(r, 10));
    })();
    return this.started;
  }

  private started: Promise<void> | null = null;

  private spawn(slot: Slot): void {
    // A new registry per thread: the last one's descriptors were closed when it exited. Sized
    // for the hard limit, which `fulcrum run` raises the soft one to (raiseFileLimit's cap).
    slot.fds = this.init.tunables.relay === 'epoll' ? FdRegistry.allocate(Math.min(fileLimit()?.hard ?? 65536, 1 << 20)) : null;
    const t = new Worker(new URL('./worker.js', import.meta.url), { workerData: { ...this.init, index: slot.worker, fds: slot.fds?.buffer ?? null } satisfies WorkerInit });
    slot.thread = t;
    slot.ready = false;
    slot.fault = null;
    t.on('message', (m: FromWorker) => this.fromWorker(slot, m));
    // An uncaught exception ends the thread (the worker sends it as 'fault' and exits; 'error'
    // if it died before its handler was in place): it is reported with the exit that follows
    // (which knows how many connections went with it), not as a second failure the log would fold.
    t.on('error', (err: Error) => { if (slot.thread === t) slot.fault = err.message; });
    t.once('exit', (code) => this.exited(slot, t, code));
  }

  private fromWorker(slot: Slot, m: FromWorker): void {
    switch (m.t) {
      case 'ready':
        slot.ready = true;
        return;
      case 'event':
        channel(m.channel).publish(m.message);
        return;
      case 'load':
        slot.sessions = m.sessions;
        slot.pipes = m.pipes;
        return;
      case 'fault':
        slot.fault = m.message;
        return;
      case 'prepared':
      case 'done':
      case 'connections': {
        const w = slot.waiting.get(m.id);
        slot.waiting.delete(m.id);
        w?.(m);
        return;
      }
    }
  }

  private exited(slot: Slot, t: Worker, code: number): void {
    if (slot.thread !== t) return;
    slot.thread = null;
    slot.ready = false;
    for (const w of slot.waiting.values()) w(null);
    slot.waiting.clear();
    // Its relay's sockets are process-wide descriptors no Node handle owns: a listener left
    // open would take connections nobody accepts, so they are closed here (the clients of
    // its connections see them closed, as when a Node socket's thread dies).
    slot.fds?.closeAll();
    slot.fds = null;
    if (this.closing) return;
    const lost = this.state.forgetWorker(slot.worker, this.base);
    this.lost += lost;
    slot.restarts++;
    slot.sessions = 0;
    slot.pipes = 0;
    const why = slot.fault === null ? `exited (${code})` : `failed (${slot.fault}) and exited (${code})`;
    reportFailure('workers', FailureCode.WORKER, `data-plane worker ${slot.worker} ${why} with ${lost} connection(s), which are lost; restarting it`, { worker: slot.worker, lost });
    const delay = Math.min(5000, 100 * 2 ** Math.min(6, slot.restarts - 1));
    setTimeout(() => {
      if (this.closing) return;
      this.spawn(slot);
      // The new worker gets the whole table (as one plan) before it serves anything.
      this.serial(() => this.resync(slot)).catch((err: unknown) => reportFailure('workers', FailureCode.WORKER, err));
    }, delay).unref();
  }

  private async resync(slot: Slot): Promise<void> {
    for (let i = 0; i < 500 && slot.thread && !slot.ready; i++) await new Promise((r) => setTimeout(r, 10));
    if (!slot.thread || !slot.ready) return;
    const ops: PlanOp[] = [];
    for (const e of this.table.services.values()) {
      ops.push({ op: 'add-service', service: this.withServiceSlot(e.spec) });
      for (const r of e.servers.values()) ops.push({ op: 'add-server', service: e.spec.key, server: this.withDestSlot(e.spec.key, r) });
    }
    const plan = { ops };
    const id = this.nextId++;
    const prepared = await this.ask(slot, { t: 'prepare', id, plan });
    const skip = prepared && prepared.t === 'prepared' ? prepared.failures.map((f) => f.index) : [];
    for (const i of skip) {
      const op = plan.ops[i];
      if (op?.op === 'add-service') reportFailure('workers', FailureCode.WORKER, `restarted worker ${slot.worker} cannot listen for ${op.service.key}`, { worker: slot.worker });
    }
    await this.ask(slot, { t: 'commit', id, plan, skip });
  }

  /** Send `m` and wait for the worker's answer (null: it died or did not answer within `timeoutMs`). */
  private ask(slot: Slot, m: ToWorker & { id: number }, timeoutMs = this.o.replyMs ?? 10_000): Promise<FromWorker | null> {
    const t = slot.thread;
    if (!t || !slot.ready) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        slot.waiting.delete(m.id);
        resolve(null);
      }, timeoutMs);
      slot.waiting.set(m.id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
      t.postMessage(m);
    });
  }

  /** Applies, polls and reads one at a time. */
  private readonly serial: Serial = serialQueue();

  private withServiceSlot(spec: ServiceSpec): ServiceSpec {
    const slot = this.serviceSlot.get(spec.key);
    return slot === undefined ? spec : { ...spec, slot };
  }

  private withDestSlot(service: string, r: ServerSpec): ServerSpec {
    const slot = this.destSlot.get(service, r.key);
    return slot === undefined ? r : { ...r, slot };
  }

  apply(plan: Plan): Promise<ApplyResult> {
    return this.serial(() => this.applyNow(plan));
  }

  private async applyNow(plan: Plan): Promise<ApplyResult> {
    await this.ready();
    if (this.closed) return { applied: [], failed: plan.ops.map((op) => ({ op, code: DataPlaneErrorCode.CLOSED, message: 'data plane is closed' })) };
    // A plan of weights alone (a runtime weight change) changes no key: it is checked
    // against the table as it is, without a draft whose copy of the service's servers would
    // be thrown away — and would make the table copy them again on its own write.
    if (plan.ops.every((op) => op.op === 'weight')) {
      const done = this.applyWeights(plan);
      if (done !== null) return done;
    }
    // 1. What the table accepts, in order; slots for what is new.
    const failed = new Map<number, OpFailure>();
    const taken: Taken[] = [];
    const draft = this.table.clone();
    const sent: PlanOp[] = [];
    const index: number[] = [];
    for (const [i, op] of plan.ops.entries()) {
      const f = draft.check(op) ?? proxyRefusal(op) ?? this.allocate(op, taken);
      if (f) {
        failed.set(i, f);
        continue;
      }
      draft.commit(op);
      sent.push(this.annotate(op));
      index.push(i);
    }
    if (sent.length === 0) {
      this.releaseUnused(taken);
      return { applied: [], failed: [...failed.values()] };
    }
    // What was accepted is weights alone (the plan's other ops were refused): it wakes no
    // worker either. Weights are published in the shared state, where each worker's
    // scheduler takes them before its next choice (the same instant for all of them), so a
    // weight change costs no round trip to N threads.
    const weights = this.weightsByService(sent);
    if (weights !== null) {
      const applied = this.publishWeights(plan, sent, index, weights);
      this.releaseUnused(taken);
      return { applied, failed: [...failed.values()] };
    }
    // 2. Every worker prepares; an op any of them cannot prepare is skipped by all.
    const id = this.nextId++;
    const live = this.slots.filter((s) => s.thread && s.ready);
    const wire: Plan = { ops: sent };
    // Only service ops open listeners (the part that can fail); a plan of server ops and
    // weights has nothing to prepare, so it skips that round trip.
    const opens = sent.some((op) => op.op === 'add-service' || op.op === 'edit-service');
    const answers = opens ? await Promise.all(live.map((s) => this.ask(s, { t: 'prepare', id, plan: wire }))) : [];
    const skip = new Set<number>();
    for (const a of answers) {
      if (a?.t !== 'prepared') continue;
      for (const f of a.failures) {
        if (skip.has(f.index)) continue;
        skip.add(f.index);
        failed.set(index[f.index] as number, { op: plan.ops[index[f.index] as number] as PlanOp, code: f.code, message: f.message });
      }
    }
    // What depended on a skipped op (servers of a service that could not listen) goes too.
    const final = this.table.clone();
    for (const [k, op] of sent.entries()) {
      if (skip.has(k)) continue;
      const f = final.check(op);
      if (f) {
        skip.add(k);
        failed.set(index[k] as number, { ...f, op: plan.ops[index[k] as number] as PlanOp });
        continue;
      }
      final.commit(op);
    }
    // Templates synchronised while a service was not served here go into the shared table
    // now, before any worker serves it (a takeover: returning clients find their servers).
    if (this.parked.size > 0) {
      for (const [k, op] of sent.entries()) if (!skip.has(k) && (op.op === 'add-service' || op.op === 'edit-service')) this.adoptParked(final, op.service.key);
    }
    // 3. Every worker commits the same ops. The weights they set are published first, so
    // what the shared state holds is never older than what a worker applied.
    for (const [k, op] of sent.entries()) if (!skip.has(k)) this.publishWeightOf(op);
    this.plans.sent++;
    await Promise.all(live.map((s) => this.ask(s, { t: 'commit', id, plan: wire, skip: [...skip] })));
    const applied = this.commitTable(plan, sent, index, skip);
    this.releaseUnused(taken);
    return { applied, failed: [...failed.entries()].sort((a, b) => a[0] - b[0]).map(([, f]) => f) };
  }

  /**
   * Weights only: published in the shared state (no worker is sent them) and written into
   * the table; null when a server has no shared slot (then the general path decides).
   */
  private applyWeights(plan: Plan): ApplyResult | null {
    const failed: OpFailure[] = [];
    const sent: PlanOp[] = [];
    const index: number[] = [];
    for (const [i, op] of plan.ops.entries()) {
      const f = this.table.check(op) ?? proxyRefusal(op);
      if (f) {
        failed.push(f);
        continue;
      }
      sent.push(op);
      index.push(i);
    }
    if (sent.length === 0) return { applied: [], failed };
    const weights = this.weightsByService(sent);
    if (weights === null) return null;
    return { applied: this.publishWeights(plan, sent, index, weights), failed };
  }

  /** Weights into the shared state, then the table; the plan's ops that applied. */
  private publishWeights(plan: Plan, sent: readonly PlanOp[], index: readonly number[], weights: Map<number, [number, number][]>): PlanOp[] {
    for (const [service, list] of weights) this.state.publishWeights(service, list);
    this.plans.published++;
    return this.commitTable(plan, sent, index, new Set());
  }

  /** The ops sent (all but `skip`) into this plane's table; the plan's ops that applied. */
  private commitTable(plan: Plan, sent: readonly PlanOp[], index: readonly number[], skip: ReadonlySet<number>): PlanOp[] {
    const applied: PlanOp[] = [];
    for (let k = 0; k < sent.length; k++) {
      if (skip.has(k)) continue;
      const original = plan.ops[index[k] as number] as PlanOp;
      this.table.commit(original);
      this.committed(original);
      applied.push(original);
    }
    return applied;
  }

  /** When every op is a weight of a server with slots: [dest slot, weight] pairs by service slot; else null. */
  private weightsByService(ops: readonly PlanOp[]): Map<number, [number, number][]> | null {
    const out = new Map<number, [number, number][]>();
    for (const op of ops) {
      if (op.op !== 'weight') return null;
      const dest = this.destSlot.get(op.service, op.key);
      const service = this.serviceSlot.get(op.service);
      if (dest === undefined || service === undefined) return null;
      const list = out.get(service) ?? [];
      list.push([dest, op.weight]);
      out.set(service, list);
    }
    return out;
  }

  /** Publish the weight `op` sets (a server added or edited, or a weight), if it sets one. */
  private publishWeightOf(op: PlanOp): void {
    if (op.op !== 'add-server' && op.op !== 'edit-server' && op.op !== 'weight') return;
    const key = op.op === 'weight' ? op.key : op.server.key;
    const dest = this.destSlot.get(op.service, key);
    if (dest !== undefined) this.state.publishWeight(dest, op.op === 'weight' ? op.weight : op.server.weight);
  }

  /** Slots handed out for a plan whose op did not end up in the table (skipped, refused) go back. */
  private releaseUnused(taken: readonly Taken[]): void {
    for (const t of taken) {
      if (t.kind === 'service') {
        if (this.table.services.has(t.service)) continue;
        this.serviceSlot.delete(t.service);
        this.serviceSlots.give(t.slot);
      } else {
        if (this.table.services.get(t.service)?.servers.has(t.server)) continue;
        this.destSlot.delete(t.service, t.server);
        this.destSlots.give(t.slot);
      }
    }
  }

  /** A slot for what `op` adds (null when it has one or needs none); a failure when none is left. */
  private allocate(op: PlanOp, taken: Taken[]): OpFailure | null {
    if (op.op === 'add-service' && !this.serviceSlot.has(op.service.key)) {
      const s = this.serviceSlots.take();
      if (s === null) return { op, code: DataPlaneErrorCode.UNSUPPORTED, message: `more than ${this.state.limits.services} proxied services` };
      this.state.resetService(s);
      this.serviceSlot.set(op.service.key, s);
      taken.push({ kind: 'service', service: op.service.key, slot: s });
    }
    if (op.op === 'add-server') {
      if (this.destSlot.get(op.service, op.server.key) !== undefined) return null;
      const s = this.destSlots.take();
      if (s === null) return { op, code: DataPlaneErrorCode.UNSUPPORTED, message: `more than ${this.state.limits.dests} proxied real servers` };
      // Slots in the pool are clean: fresh, or reset when they retired (resetDests).
      this.rows.delete(s);
      this.destSlot.set(op.service, op.server.key, s);
      taken.push({ kind: 'dest', service: op.service, server: op.server.key, slot: s });
    }
    return null;
  }

  /** The op as the workers need it: specs carry their shared slots. */
  private annotate(op: PlanOp): PlanOp {
    switch (op.op) {
      case 'add-service':
      case 'edit-service':
        return { ...op, service: this.withServiceSlot(op.service) };
      case 'add-server':
      case 'edit-server':
        return { ...op, server: this.withDestSlot(op.service, op.server) };
      default:
        return op;
    }
  }

  /** Bookkeeping once an op is in effect: removed servers' slots retire when idle. */
  private committed(op: PlanOp): void {
    if (op.op === 'remove-server') {
      const s = this.destSlot.delete(op.service, op.key);
      if (s !== undefined) this.retiring.add(s);
    } else if (op.op === 'remove-service') {
      for (const s of this.destSlot.service(op.key)?.values() ?? []) this.retiring.add(s);
      this.destSlot.deleteService(op.key);
      const s = this.serviceSlot.get(op.key);
      this.serviceSlot.delete(op.key);
      // A service slot is reset when taken again; its servers' slots retire on their own.
      if (s !== undefined) this.serviceSlots.give(s);
    }
  }

  /** Once a second: counters and rates from the shared state; idle retired slots freed. */
  private tick(): void {
    const now = this.state.now();
    this.parked.sweep(now);
    const idle: number[] = [];
    for (const s of [...this.retiring]) {
      const c = this.state.destCounts(s);
      if (c.active + c.inactive > 0) continue;
      this.retiring.delete(s);
      idle.push(s);
    }
    // Reset before they can be handed out again (a fresh slot is clean already).
    this.state.resetDests(idle);
    for (const s of idle) {
      this.rows.delete(s);
      this.destSlots.give(s);
    }
    for (const [row, r] of this.rows) {
      r.dropped = this.readRow(row, r.c);
      r.est.tick(now);
    }
  }

  private readRow(row: number, into: Counters): number {
    const dropped = this.state.counterSum(row, into, this.base);
    const z = row * COUNTER_FIELDS;
    into.conns -= this.zeroBase[z] as number;
    into.inPkts -= this.zeroBase[z + 1] as number;
    into.outPkts -= this.zeroBase[z + 2] as number;
    into.inBytes -= this.zeroBase[z + 3] as number;
    into.outBytes -= this.zeroBase[z + 4] as number;
    return dropped - (this.zeroBase[z + 5] as number);
  }

  /** The counters of a row, read now, with its rate estimator (made on first use). */
  private row(row: number): { c: Counters; est: RateEstimator; dropped: number } {
    let r = this.rows.get(row);
    if (!r) {
      const c = newCounters();
      const dropped = this.readRow(row, c);
      r = { c, est: new RateEstimator(c, this.state.now()), dropped };
      this.rows.set(row, r);
    } else r.dropped = this.readRow(row, r.c);
    return r;
  }

  stats(): ServiceStats[] {
    // Counting templates walks the whole shared table (~1 ms at the default 65,536 buckets):
    // only when a service keeps templates. One that stopped being persistent had its cleared.
    let persistent = false;
    for (const e of this.table.services.values()) if (e.spec.persistence) persistent = true;
    const templates = persistent ? this.state.templateCounts() : NO_TEMPLATES;
    const dests = this.state.limits.dests;
    const out: ServiceStats[] = [];
    for (const e of this.table.services.values()) {
      const ss = this.serviceSlot.get(e.spec.key);
      const svc = ss === undefined ? null : this.row(dests + ss);
      const slots = this.destSlot.service(e.spec.key);
      out.push({
        spec: e.spec,
        counters: svc ? { ...svc.c } : newCounters(),
        rates: svc ? svc.est.rates() : ZERO_RATES,
        dropped: svc?.dropped ?? 0,
        servers: [...e.servers.values()].map((spec) => {
          const ds = slots?.get(spec.key);
          if (ds === undefined) return { spec, active: 0, inactive: 0, persistent: 0, counters: newCounters(), rates: ZERO_RATES };
          const r = this.row(ds);
          const n = this.state.destCounts(ds);
          return { spec, active: n.active, inactive: n.inactive, persistent: templates.get(ds) ?? 0, counters: { ...r.c }, rates: r.est.rates() };
        }),
      });
    }
    return out;
  }

  /**
   * Connection sync: the persistence templates, read from the workers' shared table on this
   * thread (a proxied connection cannot move; see proxy/sync.ts).
   */
  syncExport(): Promise<SyncedFlow[]> {
    const now = this.state.now();
    const out: SyncedFlow[] = [];
    for (const e of this.table.services.values()) {
      const store = this.sharedTemplates(e.spec.key);
      if (store && e.spec.persistence) out.push(...templateFlows(e.spec, store.templates.held(now)));
    }
    return Promise.resolve(out);
  }

  /** Connection sync: adopt templates another director made, into the shared table (parked for services not served here now). */
  syncInstall(flows: readonly SyncedFlow[]): Promise<SyncInstallResult> {
    const now = this.state.now();
    return Promise.resolve(installTemplates(flows, [...this.table.services.values()].map((e) => e.spec), (spec, client, server, dport, timeout) => this.adoptOne(this.table, spec, client, server, dport, timeout, now), { store: this.parked, now }));
  }

  private adoptOne(table: SpecTable, spec: ServiceSpec, client: string, server: string, dport: number, timeout: number, now: number): AdoptOutcome {
    if (!spec.persistence) return 'not-persistent';
    const store = this.sharedTemplates(spec.key, table);
    const d = store ? [...store.dests.values()].find((x) => x.port === dport && ipaddr.parse(x.address).toString() === ipaddr.parse(server).toString()) : undefined;
    if (!store || !d) return 'no-server';
    return store.templates.adopt(PersistenceTable.key(persistenceScope(spec), client), d, timeout, now);
  }

  private adoptParked(table: SpecTable, service: string): void {
    const e = table.services.get(service);
    if (!e) return;
    const now = this.state.now();
    for (const { flow, remaining } of this.parked.take(e.spec, now)) this.adoptOne(table, e.spec, flow.client, flow.server, flow.dport, remaining, now);
  }

  /** A service's templates in the shared table, with its servers as Dests by slot (for this thread). */
  private sharedTemplates(service: string, table: SpecTable = this.table): { templates: TemplateStore; dests: Map<number, Dest> } | null {
    const e = table.services.get(service);
    const slot = this.serviceSlot.get(service);
    if (!e || slot === undefined) return null;
    const dests = new Map<number, Dest>();
    for (const r of e.servers.values()) {
      const ds = this.destSlot.get(service, r.key);
      if (ds !== undefined) dests.set(ds, Object.assign(makeDest(r), { slot: ds }));
    }
    return { templates: this.state.templateStore(slot, (x) => dests.get(x)), dests };
  }

  async connections(): Promise<ConnectionEntry[]> {
    const id = this.nextId++;
    const answers = await Promise.all(this.slots.map((s) => this.ask(s, { t: 'connections', id })));
    return answers.flatMap((a) => (a?.t === 'connections' ? [...a.entries] : []));
  }

  zero(service?: string): boolean {
    if (service !== undefined && !this.table.services.has(service)) return false;
    const dests = this.state.limits.dests;
    const rows: number[] = [];
    for (const e of this.table.services.values()) {
      if (service !== undefined && e.spec.key !== service) continue;
      const ss = this.serviceSlot.get(e.spec.key);
      if (ss !== undefined) rows.push(dests + ss);
      for (const r of e.servers.values()) {
        const ds = this.destSlot.get(e.spec.key, r.key);
        if (ds !== undefined) rows.push(ds);
      }
    }
    const now = this.state.now();
    const c = newCounters();
    for (const row of rows) {
      const dropped = this.state.counterSum(row, c, this.base);
      const z = row * COUNTER_FIELDS;
      this.zeroBase.set([c.conns, c.inPkts, c.outPkts, c.inBytes, c.outBytes, dropped], z);
      const r = this.rows.get(row);
      if (r) {
        r.dropped = this.readRow(row, r.c);
        r.est.zero(now);
      }
    }
    return true;
  }

  /** Each worker: alive, restarts, sessions. */
  workers(): WorkerStatus[] {
    return this.slots.map((s) => ({ index: s.worker, threadId: s.thread?.threadId ?? null, alive: s.thread !== null && s.ready, restarts: s.restarts, sessions: s.sessions }));
  }

  /** Fault injection: make worker `index` throw (only with `faults`). */
  crashWorker(index: number): boolean {
    const s = this.slots[index];
    if (!s?.thread || !this.o.faults) return false;
    s.thread.postMessage({ t: 'crash' } satisfies ToWorker);
    return true;
  }

  /** Every worker closes its listeners now (not queued behind plans): no new connection after this resolves. */
  async stopAccepting(): Promise<void> {
    this.closing = true;
    this.table.close();
    const id = this.nextId++;
    await Promise.all(this.slots.map((s) => this.ask(s, { t: 'stop-accepting', id })));
  }

  async close(drainMs: number): Promise<void> {
    if (this.closed) return;
    // A thread still starting is let finish first (bounded by ready()): terminated while it
    // loads koffi, the addon's init throws into a dying environment and aborts the process.
    await this.ready();
    await this.stopAccepting();
    clearInterval(this.timer);
    await this.serial(async () => {
      if (this.closed) return;
      this.closed = true;
      const id = this.nextId++;
      await Promise.all(this.slots.map((s) => this.ask(s, { t: 'close', id, drainMs }, drainMs + 5000).then(() => undefined)));
      await Promise.all(this.slots.map((s) => s.thread?.terminate()));
    });
  }
}
