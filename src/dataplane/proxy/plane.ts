/**
 * The userspace proxy data plane (`lb_kind PROXY`): TCP and UDP, IPv4 and IPv6, no
 * privileges needed. Each service owns its listeners, a ServiceScheduler (every IPVS
 * scheduler, persistence) and counters; connections hold references to their service and
 * server state, so removing either never cuts a connection — it stops new ones and lets
 * existing ones finish.
 */
import net from 'node:net';
import { channel } from 'node:diagnostics_channel';
import { formatHostPort } from '../../model/address.js';
import type { ForwardingMethod } from '../../model/types.js';
import { ServiceScheduler } from '../../scheduling/service.js';
import type { Dest } from '../../scheduling/types.js';
import { addrFold } from '../../scheduling/hash.js';
import { RateEstimator, ZERO_RATES, newCounters, zeroCounters } from '../stats.js';
import { SpecTable } from '../table.js';
import {
  DataPlaneErrorCode, type ApplyResult, type ConnectionEntry, type Counters, type DataPlane, type HeldTable, type ListenAddress,
  type OpFailure, type Plan, type PlanOp, type ServerSpec, type ServiceSpec, type ServiceStats, type SyncedFlow, type SyncInstallResult,
} from '../types.js';
import { DEFAULT_TUNABLES, type ProxyEvent, type ProxyTunables, type ServerState, type ServiceRuntime, type Session, type UdpBudget } from './context.js';
import { TcpConnection } from './tcp.js';
import { EpollTcpConnection } from './epoll-tcp.js';
import { ECONNABORTED, EAGAIN, EINTR, EPOLLIN, errnoError, reactorAvailable, Reactor, type FdHandler, type FdRegistry } from '../../sys/reactor.js';
import { ReadBufferPool } from './buffers.js';
import { UdpListener } from './udp.js';
import { nodeHasReusePort, reusePortSocket } from '../../sys/reuseport.js';
import { SharedDest, type SharedState } from '../shared/state.js';
import { makeDest } from '../../scheduling/dest.js';
import type { ServerFields } from '../../scheduling/service.js';
import { realServerKey } from '../../model/keys.js';
import { FailureCode, reportFailure } from '../../errors/index.js';
import { installTemplates, ParkedTemplates, templateFlows, type AdoptOutcome } from './sync.js';
import ipaddr from 'ipaddr.js';

/** The same address however it is spelled. */
function sameAddress(a: string, b: string): boolean {
  try {
    return ipaddr.parse(a).toString() === ipaddr.parse(b).toString();
  } catch {
    return false;
  }
}

/** diagnostics_channel name for ProxyEvent messages. */
export const PROXY_CHANNEL = 'fulcrum:proxy';
const events = channel(PROXY_CHANNEL);

export interface ProxyDataPlaneOptions {
  /** Monotonic clock in seconds (default: performance.now; in a worker, the shared clock). */
  readonly now?: () => number;
  /** The workers' shared scheduling state, when this plane is one data-plane worker. */
  readonly shared?: SharedState;
  readonly tunables?: Partial<ProxyTunables>;
  /** Random source for twos (tests). */
  readonly random?: () => number;
  /** Where a worker records the descriptors its relay opens (closed by the control plane if it dies). */
  readonly fdRegistry?: FdRegistry;
}

/**
 * One listening socket. It belongs to a service once attached; a listener opened ahead of
 * its service (phase one of a plan across workers) holds what it accepts — a short queue of
 * paused sockets, datagrams dropped — until it is attached or closed.
 */
class Listener implements FdHandler {
  target: ProxyService | null = null;
  private closed = false;
  private readonly held: net.Socket[] = [];
  /** Accepted descriptors (with their sockaddr) waiting for `attach` (the reactor's relay). */
  private readonly heldFds: { fd: number; sa: Buffer }[] = [];
  private readonly vfold: number;
  private readonly sa = Buffer.alloc(28);
  private readonly saLen = Buffer.alloc(4);
  private paused: NodeJS.Timeout | null = null;

  constructor(
    readonly l: ListenAddress,
    readonly sock:
      | { readonly kind: 'tcp'; readonly server: net.Server }
      | { readonly kind: 'udp'; readonly udp: UdpListener }
      | { readonly kind: 'epoll'; readonly fd: number; readonly reactor: Reactor },
  ) {
    this.vfold = addrFold(l.address);
    if (sock.kind === 'epoll') sock.reactor.add(sock.fd, EPOLLIN, this);
  }

  /** A TCP connection arrived (paused: nothing is read before a real server accepts). */
  connection(sock: net.Socket, vfold: number): void {
    const svc = this.target;
    if (svc) TcpConnection.accept(svc, sock, this.l, vfold);
    else if (this.held.length < 4096) this.held.push(sock);
    else sock.destroy();
  }

  /** The reactor's listening socket is readable: accept what is queued (at most 64 per turn). */
  onEvents(): void {
    if (this.sock.kind !== 'epoll' || this.closed) return;
    const { fd: lfd, reactor } = this.sock;
    for (let i = 0; i < 64; i++) {
      const fd = reactor.accept(lfd, this.sa, this.saLen);
      if (fd < 0) {
        const errno = -fd;
        if (errno === EAGAIN) return;
        if (errno === ECONNABORTED || errno === EINTR) continue;
        reportAcceptError(errnoError('accept', errno), 'tcp', this.l);
        // Out of descriptors (or memory): level-triggered epoll would report the queued
        // connection at every turn, so the listener rests 100 ms before accepting again.
        reactor.modify(lfd, 0);
        this.paused = setTimeout(() => {
          this.paused = null;
          if (!this.closed) reactor.modify(lfd, EPOLLIN);
        }, 100);
        this.paused.unref();
        return;
      }
      const sa = Buffer.from(this.sa);
      const svc = this.target;
      if (svc) EpollTcpConnection.accept(svc, reactor, fd, sa, this.l, this.vfold);
      else if (this.heldFds.length < 4096) this.heldFds.push({ fd, sa });
      else reactor.close(fd);
    }
  }

  /** Connections waiting for `attach`. */
  get waiting(): number {
    return this.held.length + this.heldFds.length;
  }

  attach(svc: ProxyService): void {
    if (this.closed) return;
    this.target = svc;
    if (this.sock.kind === 'udp') this.sock.udp.setService(svc);
    for (const s of this.held.splice(0)) if (!s.destroyed) TcpConnection.accept(svc, s, this.l, this.vfold);
    if (this.sock.kind === 'epoll') for (const h of this.heldFds.splice(0)) EpollTcpConnection.accept(svc, this.sock.reactor, h.fd, h.sa, this.l, this.vfold);
  }

  close(): void {
    this.closed = true;
    for (const s of this.held.splice(0)) s.destroy();
    if (this.paused) clearTimeout(this.paused);
    switch (this.sock.kind) {
      case 'tcp':
        this.sock.server.close();
        return;
      case 'udp':
        this.sock.udp.close();
        return;
      case 'epoll':
        for (const h of this.heldFds.splice(0)) this.sock.reactor.close(h.fd);
        this.sock.reactor.close(this.sock.fd);
        return;
    }
  }
}

function listenKey(l: ListenAddress): string {
  return formatHostPort(l.address, l.port);
}

/** Open a listening socket for `protocol` on `l` (SO_REUSEPORT when the tunables say so). */
async function openListener(l: ListenAddress, protocol: string, tunables: ProxyTunables, reactor: () => Reactor | null): Promise<Listener> {
  if (protocol === 'udp') {
    const udp = new UdpListener(null, l, tunables.reusePort);
    await udp.bind();
    return new Listener(l, { kind: 'udp', udp });
  }
  const r = reactor();
  if (r !== null) return new Listener(l, { kind: 'epoll', fd: r.listenTcp(l.family, l.address, l.port, tunables.reusePort, 4096), reactor: r });
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true, highWaterMark: tunables.highWaterMark });
  const lst = new Listener(l, { kind: 'tcp', server });
  const vfold = addrFold(l.address);
  server.on('connection', (sock: net.Socket) => lst.connection(sock, vfold));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.removeListener('error', reject);
      // Errors after listen() come from accept (EMFILE, ENFILE, ENOBUFS): the listener
      // stays open and accepts again once the cause clears; each one is reported.
      server.on('error', (err: NodeJS.ErrnoException) => reportAcceptError(err, protocol, l));
      resolve();
    };
    const common = { backlog: 4096, ipv6Only: l.family === 'inet6' };
    if (!tunables.reusePort) server.listen({ host: l.address, port: l.port, ...common }, done);
    else if (nodeHasReusePort()) server.listen({ host: l.address, port: l.port, ...common, reusePort: true } as net.ListenOptions, done);
    else {
      let fd: number;
      try {
        fd = reusePortSocket(l.family, 'tcp', l.address, l.port);
      } catch (err: unknown) {
        reject(err);
        return;
      }
      server.listen({ fd, backlog: common.backlog }, done);
    }
  });
  return lst;
}

class ProxyService implements ServiceRuntime {
  readonly sched: ServiceScheduler;
  readonly counters = newCounters();
  readonly est: RateEstimator;
  readonly sessions = new Set<Session>();
  readonly listeners = new Map<string, Listener>();
  /** Server state by key; a removed server's state lives on in its connections only. */
  readonly servers = new Map<string, ServerState>();

  constructor(public spec: ServiceSpec, private readonly plane: ProxyDataPlane, random: (() => number) | undefined) {
    const st = plane.shared;
    const slot = spec.slot;
    // With workers, counts, the rr/wrr position and templates live in the shared state.
    this.sched = st && slot !== undefined
      ? new ServiceScheduler(spec, {
        random,
        position: st.position(slot),
        weights: st.sharedWeights(slot),
        templates: st.templateStore(slot, (s) => plane.destBySlot.get(s)),
        makeDest: (rs) => plane.sharedDest(st, rs),
      })
      : new ServiceScheduler(spec, { random });
    this.est = new RateEstimator(this.counters, plane.now());
  }

  get tunables(): ProxyTunables {
    return this.plane.tunables;
  }

  get buffers(): ReadBufferPool {
    return this.plane.buffers;
  }

  get udpBudget(): UdpBudget {
    return this.plane.udpBudget;
  }

  now(): number {
    return this.plane.now();
  }

  coarseNow(): number {
    return this.plane.coarse;
  }

  serverState(d: Dest): ServerState {
    const s = this.servers.get(d.key);
    if (s) return s;
    // Scheduled servers always have state; this covers a dest removed between pick and use.
    return newServerState({ key: d.key, family: d.family, address: d.address, port: d.port, weight: d.weight, method: 'proxy', uthreshold: 0, lthreshold: 0 }, this.now());
  }

  report(e: ProxyEvent): void {
    if (events.hasSubscribers) events.publish(e);
  }

  setServers(specs: Iterable<ServerSpec>): void {
    this.sched.setServers([...specs]);
  }

  /**
   * Open every listener in `ls` that is not open yet (taking one prepared for it when there
   * is). All or nothing: on the first failure the ones opened here are closed again and the
   * failure is returned. The new listeners are not attached here: each goes into `attach`,
   * and the plan attaches them once all its ops are in (a connection accepted meanwhile waits,
   * paused, rather than meet a service whose real servers are not added yet).
   */
  async openListeners(ls: readonly ListenAddress[], attach: Listener[]): Promise<{ code: DataPlaneErrorCode; message: string } | null> {
    const opened: string[] = [];
    for (const l of ls) {
      const k = listenKey(l);
      if (this.listeners.has(k)) continue;
      try {
        const lst = this.plane.takePrepared(this.spec.key, l) ?? await openListener(l, this.spec.protocol, this.tunables, this.plane.reactor);
        attach.push(lst);
        this.listeners.set(k, lst);
        opened.push(k);
      } catch (err: unknown) {
        for (const o of opened) this.closeListener(o);
        return listenFailure(l, this.spec.protocol, err);
      }
    }
    return null;
  }

  closeListener(key: string): void {
    const l = this.listeners.get(key);
    if (!l) return;
    this.listeners.delete(key);
    l.close();
  }

  /** Datagrams its UDP listeners dropped. */
  dropped(): number {
    let n = 0;
    for (const l of this.listeners.values()) if (l.sock.kind === 'udp') n += l.sock.udp.dropped;
    return n;
  }

  closeAllListeners(): void {
    for (const k of [...this.listeners.keys()]) this.closeListener(k);
  }
}

export class ProxyDataPlane implements DataPlane {
  readonly name = 'proxy';
  readonly methods: readonly ForwardingMethod[] = ['proxy'];
  readonly tunables: ProxyTunables;
  readonly buffers = new ReadBufferPool();
  readonly udpBudget: UdpBudget = { used: 0, refused: 0 };
  readonly now: () => number;
  /** Refreshed once a second (see ServiceRuntime.coarseNow). */
  coarse: number;
  private readonly table = new SpecTable();

  get held(): HeldTable {
    return this.table;
  }
  private readonly services = new Map<string, ProxyService>();
  /** Removed services whose connections are still finishing. */
  private readonly retired = new Set<ProxyService>();
  private readonly timer: NodeJS.Timeout;
  private readonly random: (() => number) | undefined;
  private ticks = 0;
  /** Synchronised templates of services not served here now (see proxy/sync.ts). */
  private readonly parked = new ParkedTemplates();

  /** The workers' shared scheduling state (this plane runs in a worker); null in a single loop. */
  readonly shared: SharedState | null;
  /** This worker's destinations by shared slot (templates point at slots). */
  readonly destBySlot = new Map<number, Dest>();
  /** Listeners opened by `prepare`, by service and address, until a commit adopts them. */
  private readonly prepared = new Map<string, Listener>();
  private readonly fdRegistry: FdRegistry | null;
  private reactorInstance: Reactor | null = null;

  /** The epoll reactor TCP is relayed on (made with the first TCP listener); null with `relay: 'node'`. */
  readonly reactor = (): Reactor | null => {
    if (this.tunables.relay !== 'epoll') return null;
    return (this.reactorInstance ??= new Reactor(this.fdRegistry));
  };

  constructor(opts: ProxyDataPlaneOptions = {}) {
    this.shared = opts.shared ?? null;
    this.fdRegistry = opts.fdRegistry ?? null;
    this.now = opts.now ?? (this.shared ? this.shared.now : ((): number => performance.now() / 1000));
    const t = { ...DEFAULT_TUNABLES, ...opts.tunables };
    // The reactor needs Linux's epoll through koffi; elsewhere Node's sockets relay.
    this.tunables = t.relay === 'epoll' && !reactorAvailable() ? { ...t, relay: 'node' } : t;
    this.random = opts.random;
    this.coarse = this.now();
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** Once a second: the coarse clock, UDP idle expiry, rate estimators, template sweep; in a worker, its counters into the shared state. */
  tick(): void {
    const now = this.now();
    this.coarse = now;
    this.ticks++;
    for (const svc of this.allServices()) {
      for (const s of [...svc.sessions]) s.expire(now);
      svc.est.tick(now);
      for (const st of svc.servers.values()) st.est.tick(now);
      if (this.ticks % 10 === 0) svc.sched.templates.sweep(now);
    }
    for (const svc of this.retired) if (svc.sessions.size === 0) this.retired.delete(svc);
    if (this.ticks % 10 === 0) this.parked.sweep(now);
    this.publish();
  }

  /** This worker's counters into the shared state (the control plane sums the workers'). */
  publish(): void {
    const st = this.shared;
    if (!st) return;
    for (const svc of this.services.values()) {
      if (svc.spec.slot !== undefined) st.publishCounters(st.limits.dests + svc.spec.slot, svc.counters, svc.dropped());
      for (const s of svc.servers.values()) if (s.spec.slot !== undefined) st.publishCounters(s.spec.slot, s.counters);
    }
  }

  /** A destination counted in the shared state (its slot comes with its spec). */
  sharedDest(st: SharedState, rs: ServerFields): Dest {
    const slot = (rs as ServerSpec).slot;
    if (slot === undefined) return makeDest(rs);
    const d = new SharedDest(st, slot, realServerKey(rs), rs.family, rs.address, rs.port, addrFold(rs.address), rs);
    this.destBySlot.set(slot, d);
    return d;
  }

  /** A listener `prepare` opened for this service and address, handed over once. */
  takePrepared(service: string, l: ListenAddress): Listener | undefined {
    const k = `${service}|${listenKey(l)}`;
    const lst = this.prepared.get(k);
    this.prepared.delete(k);
    return lst;
  }

  /**
   * Phase one of a plan applied by several workers: open what its service ops will listen
   * on — the part that can fail — without serving yet. The failures, by op index (nothing of
   * a failed op stays open).
   */
  async prepare(plan: Plan): Promise<Map<number, { code: DataPlaneErrorCode; message: string }>> {
    const failures = new Map<number, { code: DataPlaneErrorCode; message: string }>();
    for (const [i, op] of plan.ops.entries()) {
      if (op.op !== 'add-service' && op.op !== 'edit-service') continue;
      const spec = op.service;
      if (spec.method !== 'proxy' || spec.protocol === 'sctp') continue;
      const have = this.services.get(spec.key)?.listeners;
      const opened: string[] = [];
      for (const l of spec.listen) {
        const k = `${spec.key}|${listenKey(l)}`;
        if (have?.has(listenKey(l)) || this.prepared.has(k)) continue;
        try {
          this.prepared.set(k, await openListener(l, spec.protocol, this.tunables, this.reactor));
          opened.push(k);
        } catch (err: unknown) {
          for (const o of opened) {
            this.prepared.get(o)?.close();
            this.prepared.delete(o);
          }
          failures.set(i, listenFailure(l, spec.protocol, err));
          break;
        }
      }
    }
    return failures;
  }

  /** Phase two: apply the plan but the ops in `skip`; what `prepare` opened is used or closed. */
  async commit(plan: Plan, skip: ReadonlySet<number>): Promise<ApplyResult> {
    const r = await this.apply({ ops: plan.ops.filter((_, i) => !skip.has(i)) });
    this.abort();
    return r;
  }

  /** Connections accepted by what `prepare` opened, waiting for the commit. */
  get preparedWaiting(): number {
    let n = 0;
    for (const l of this.prepared.values()) n += l.waiting;
    return n;
  }

  /** Close whatever `prepare` opened and no commit took. */
  abort(): void {
    for (const l of this.prepared.values()) l.close();
    this.prepared.clear();
  }

  private *allServices(): Iterable<ProxyService> {
    yield* this.services.values();
    yield* this.retired;
  }

  async apply(plan: Plan): Promise<ApplyResult> {
    const applied: PlanOp[] = [];
    const failed: OpFailure[] = [];
    const opened: { lst: Listener; service: string }[] = [];
    try {
      for (const op of plan.ops) {
        const attach: Listener[] = [];
        const f = this.table.check(op) ?? await this.effect(op, attach);
        for (const lst of attach) opened.push({ lst, service: op.op === 'add-service' || op.op === 'edit-service' ? op.service.key : '' });
        if (f) {
          failed.push(f);
          continue;
        }
        this.table.commit(op);
        applied.push(op);
      }
    } finally {
      // Templates synchronised while a service was not served here are adopted before its
      // listeners serve (a takeover: returning clients find their servers at once).
      if (this.parked.size > 0) {
        for (const op of applied) if (op.op === 'add-service' || op.op === 'edit-service') this.adoptParked(op.service.key);
      }
      // What was opened serves from here, with the whole plan in effect (a listener whose
      // service a later op removed is closed already; attach ignores it).
      for (const { lst, service } of opened) {
        const svc = this.services.get(service);
        if (svc) lst.attach(svc);
      }
    }
    return { applied, failed };
  }

  /** Carry out an op the table accepted; a failure leaves everything as it was. */
  private async effect(op: PlanOp, attach: Listener[]): Promise<OpFailure | null> {
    switch (op.op) {
      case 'add-service': {
        const bad = proxyRefusal(op);
        if (bad) return bad;
        const svc = new ProxyService(op.service, this, this.random);
        const failure = await svc.openListeners(op.service.listen, attach);
        if (failure) return { op, ...failure };
        this.services.set(op.service.key, svc);
        return null;
      }
      case 'edit-service': {
        const svc = this.services.get(op.service.key);
        if (!svc) return null;
        const bad = proxyRefusal(op);
        if (bad) return bad;
        const failure = await svc.openListeners(op.service.listen, attach);
        if (failure) return { op, ...failure };
        const want = new Set(op.service.listen.map(listenKey));
        for (const k of [...svc.listeners.keys()]) if (!want.has(k)) svc.closeListener(k);
        svc.spec = op.service;
        svc.sched.reconfigure(op.service);
        return null;
      }
      case 'remove-service': {
        const svc = this.services.get(op.key);
        if (!svc) return null;
        svc.closeAllListeners();
        this.services.delete(op.key);
        if (svc.sessions.size > 0) this.retired.add(svc);
        return null;
      }
      case 'add-server':
      case 'edit-server': {
        const bad = proxyRefusal(op);
        if (bad) return bad;
        const svc = this.services.get(op.service);
        const entry = this.table.services.get(op.service);
        if (!svc || !entry) return null;
        const st = svc.servers.get(op.server.key);
        if (st) st.spec = op.server;
        else svc.servers.set(op.server.key, newServerState(op.server, this.now()));
        const next = new Map(entry.servers);
        next.set(op.server.key, op.server);
        svc.setServers(next.values());
        return null;
      }
      case 'remove-server': {
        const svc = this.services.get(op.service);
        const entry = this.table.services.get(op.service);
        if (!svc || !entry) return null;
        const slot = entry.servers.get(op.key)?.slot;
        if (slot !== undefined) this.destBySlot.delete(slot);
        const next = new Map(entry.servers);
        next.delete(op.key);
        svc.servers.delete(op.key);
        svc.setServers(next.values());
        return null;
      }
      case 'weight': {
        const svc = this.services.get(op.service);
        const st = svc?.servers.get(op.key);
        if (!svc || !st) return null;
        st.spec = { ...st.spec, weight: op.weight };
        svc.sched.setWeight(op.key, op.weight);
        return null;
      }
      case 'load': {
        const svc = this.services.get(op.service);
        const st = svc?.servers.get(op.key);
        if (!svc || !st) return null;
        st.spec = { ...st.spec, agentLoad: op.load };
        svc.sched.setLoad(op.key, op.load);
        return null;
      }
    }
  }



  stats(): ServiceStats[] {
    const out: ServiceStats[] = [];
    for (const svc of this.services.values()) {
      const entry = this.table.services.get(svc.spec.key);
      if (!entry) continue;
      out.push({
        spec: svc.spec,
        counters: { ...svc.counters },
        rates: svc.est.rates(),
        dropped: svc.dropped(),
        servers: [...entry.servers.values()].map((spec) => {
          const d = svc.sched.dest(spec.key);
          const st = svc.servers.get(spec.key);
          const counters: Counters = st ? { ...st.counters } : newCounters();
          return {
            spec, active: d?.active ?? 0, inactive: d?.inactive ?? 0, persistent: d ? svc.sched.templates.countFor(d) : 0,
            counters, rates: st ? st.est.rates() : ZERO_RATES,
          };
        }),
      });
    }
    return out;
  }

  /** Connection sync: the persistence templates (connections cannot move; see proxy/sync.ts). */
  syncExport(): Promise<SyncedFlow[]> {
    const now = this.now();
    return Promise.resolve([...this.services.values()].flatMap((svc) => templateFlows(svc.spec, svc.sched.templatesHeld(now))));
  }

  /** Connection sync: adopt templates another director made (parked for services not served here now). */
  syncInstall(flows: readonly SyncedFlow[]): Promise<SyncInstallResult> {
    const now = this.now();
    return Promise.resolve(installTemplates(flows, [...this.services.values()].map((s) => s.spec), (spec, client, server, dport, timeout) => this.adoptOne(spec.key, client, server, dport, timeout, now), { store: this.parked, now }));
  }

  private adoptOne(service: string, client: string, server: string, dport: number, timeout: number, now: number): AdoptOutcome {
    const svc = this.services.get(service);
    const d = svc?.sched.dests.find((x) => x.port === dport && sameAddress(x.address, server));
    if (!svc || !d) return 'no-server';
    return svc.sched.adoptTemplate(client, d.key, timeout, now);
  }

  private adoptParked(service: string): void {
    const svc = this.services.get(service);
    if (!svc) return;
    const now = this.now();
    for (const { flow, remaining } of this.parked.take(svc.spec, now)) this.adoptOne(service, flow.client, flow.server, flow.dport, remaining, now);
  }

  zero(service?: string): boolean {
    const svcs = service === undefined ? [...this.services.values()] : [this.services.get(service)].filter((x) => x !== undefined);
    if (service !== undefined && svcs.length === 0) return false;
    const now = this.now();
    for (const svc of svcs) {
      zeroCounters(svc.counters);
      svc.est.zero(now);
      for (const st of svc.servers.values()) {
        zeroCounters(st.counters);
        st.est.zero(now);
      }
    }
    return true;
  }

  connections(): Promise<ConnectionEntry[]> {
    return Promise.resolve(this.connectionList());
  }

  /** The connection table, now. */
  connectionList(): ConnectionEntry[] {
    const now = this.coarse;
    const out: ConnectionEntry[] = [];
    for (const svc of this.allServices()) for (const s of svc.sessions) out.push(s.entry(now));
    return out;
  }

  /** Pipes the epoll relay holds now (spliced bulk directions). */
  pipes(): number {
    return this.reactorInstance?.pipesOpen ?? 0;
  }

  /** Sessions across live and retired services (for drain progress and tests). */
  get sessionCount(): number {
    let n = 0;
    for (const svc of this.allServices()) n += svc.sessions.size;
    return n;
  }

  /** Close every listener now; open connections go on (they finish or are closed by close()). */
  stopAccepting(): Promise<void> {
    if (!this.table.isClosed) {
      this.table.close();
      for (const svc of this.services.values()) {
        svc.closeAllListeners();
        this.retired.add(svc);
      }
      this.services.clear();
      this.abort();
    }
    return Promise.resolve();
  }

  async close(drainMs: number): Promise<void> {
    await this.stopAccepting();
    const deadline = Date.now() + drainMs;
    while (this.sessionCount > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
    for (const svc of this.retired) for (const s of [...svc.sessions]) s.abort();
    // Sockets close asynchronously; give them a few turns so the caller sees none left.
    for (let i = 0; i < 100 && this.sessionCount > 0; i++) await new Promise((r) => setTimeout(r, 5));
    this.retired.clear();
    clearInterval(this.timer);
    if (this.reactorInstance !== null && this.reactorInstance.size === 0) {
      this.reactorInstance.destroy();
      this.reactorInstance = null;
    }
  }
}

function newServerState(spec: ServerSpec, now: number): ServerState {
  const counters = newCounters();
  return { spec, counters, est: new RateEstimator(counters, now) };
}

function listenFailure(l: ListenAddress, protocol: string, err: unknown): { code: DataPlaneErrorCode; message: string } {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const where = `${protocol} ${formatHostPort(l.address, l.port)}`;
  switch (code) {
    case 'EACCES':
    case 'EPERM':
      return { code: DataPlaneErrorCode.PERMISSION, message: `cannot listen on ${where}: permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)` };
    case 'EADDRINUSE':
      return { code: DataPlaneErrorCode.LISTEN, message: `cannot listen on ${where}: address already in use` };
    case 'EADDRNOTAVAIL':
      return { code: DataPlaneErrorCode.LISTEN, message: `cannot listen on ${where}: the address is not on this host (a VIP is added by VRRP or by hand before the proxy can bind it)` };
    default:
      return { code: DataPlaneErrorCode.LISTEN, message: `cannot listen on ${where}: ${err instanceof Error ? err.message : String(err)}` };
  }
}

/** An error a listening socket reported after listen(): logged and counted, never fatal. */
export function reportAcceptError(err: NodeJS.ErrnoException, protocol: string, l: ListenAddress): void {
  const fd = err.code === 'EMFILE' || err.code === 'ENFILE';
  reportFailure('proxy', fd ? FailureCode.FD_EXHAUSTED : FailureCode.ACCEPT,
    `accept on ${protocol} ${formatHostPort(l.address, l.port)} failed: ${err.code ?? err.message}${fd ? ' (out of file descriptors: raise the limit, e.g. LimitNOFILE= in the unit)' : ''}`,
    { listen: formatHostPort(l.address, l.port), errno: err.code ?? '' });
}

/**
 * Why the userspace proxy cannot take `op` at all (whatever it holds), or null: a service or
 * real server forwarding in the kernel, a service not on explicit TCP/UDP addresses. Every
 * proxy plane (one loop or workers) refuses the same ops with the same words.
 */
export function proxyRefusal(op: PlanOp): OpFailure | null {
  const fail = (what: string, method: ForwardingMethod): OpFailure => ({
    op, code: DataPlaneErrorCode.UNSUPPORTED,
    message: `${what} uses ${method.toUpperCase()} forwarding, which the userspace proxy cannot do: it needs the kernel (nftables) data plane; use lb_kind PROXY to run without it`,
  });
  switch (op.op) {
    case 'add-service':
    case 'edit-service':
      if (op.service.method !== 'proxy') return fail(`service ${op.service.key}`, op.service.method);
      if (op.op === 'add-service' && (op.service.protocol === 'sctp' || op.service.listen.length === 0)) {
        return { op, code: DataPlaneErrorCode.UNSUPPORTED, message: `the userspace proxy cannot serve ${op.service.key}: it needs TCP or UDP on explicit addresses and ports` };
      }
      return null;
    case 'add-server':
    case 'edit-server':
      return op.server.method !== 'proxy' ? fail(`real server ${op.server.key}`, op.server.method) : null;
    default:
      return null;
  }
}
