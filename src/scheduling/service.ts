/**
 * One virtual service's scheduling state: its destinations (kept by key across updates so
 * connection counts survive a reload), its scheduler, and its persistence templates.
 * `schedule()` is what a data plane calls for a new flow.
 */
import { realServerKey } from '../model/keys.js';
import type { Persistence, Protocol, RealServer, SchedFlag, ServiceEndpoint, VirtualServer } from '../model/types.js';
import { bindConn, eligible, makeDest, overhead, unbindConn } from './dest.js';
import { persistenceAddress } from '../model/address.js';
import { PersistenceTable, type TemplateStore } from './persistence.js';
import { createScheduler } from './factory.js';
import type { AnySchedulerName, Dest, FlowKey, Scheduler, SharedPosition, SharedWeights } from './types.js';

export interface ServiceSchedulerOptions {
  readonly scheduler?: AnySchedulerName;
  readonly random?: () => number;
  readonly expireQuiescentTemplate?: boolean;
  /** Where templates live (default: a PersistenceTable of this scheduler's own). */
  readonly templates?: TemplateStore;
  /** How a destination is made (default makeDest: counts in plain fields). */
  readonly makeDest?: (rs: ServerFields) => Dest;
  /** rr/wrr: a position shared with other workers. */
  readonly position?: SharedPosition;
  /** Weights another thread publishes, taken before each choice. */
  readonly weights?: SharedWeights;
}

/**
 * The scope persistence templates are keyed on: the service itself (PPC), or for a port-0
 * service (PCC) the address with port 0, or the firewall mark / group name — so a client
 * sticks to one server across every port the scope covers.
 */
export function persistenceScope(vs: Pick<VirtualServer, 'endpoint' | 'protocol'>): string {
  const ep = vs.endpoint;
  switch (ep.kind) {
    case 'address': return `${vs.protocol} ${ep.address} ${ep.port}`;
    case 'fwmark': return `fwmark ${ep.mark}`;
    case 'group': return `group ${ep.name}`;
  }
}

/** What a ServiceScheduler needs to know about its service (a VirtualServer has it all). */
export interface SchedulableService {
  readonly endpoint: ServiceEndpoint;
  readonly protocol: Protocol;
  readonly scheduler: AnySchedulerName;
  readonly schedFlags: readonly SchedFlag[];
  readonly persistence: Persistence | null;
}

export type ServerFields = Pick<RealServer, 'family' | 'address' | 'port' | 'weight' | 'uthreshold' | 'lthreshold'> & { readonly agentLoad?: number | undefined };

export class ServiceScheduler {
  readonly templates: TemplateStore;
  private sched: Scheduler;
  private list: Dest[] = [];
  private readonly byKey = new Map<string, Dest>();
  private vs: SchedulableService;
  /** persistenceScope(vs), computed once: it is part of every template key. */
  private scope: string;
  private readonly random: (() => number) | undefined;
  private readonly makeDest: (rs: ServerFields) => Dest;
  private readonly position: SharedPosition | undefined;
  private readonly weights: SharedWeights | undefined;
  /** The weights' generation last taken (NaN: take them at the next choice). */
  private weightGen = Number.NaN;

  constructor(vs: SchedulableService & { readonly realServers?: readonly ServerFields[] }, opts: ServiceSchedulerOptions = {}) {
    this.vs = vs;
    this.scope = persistenceScope(vs);
    this.random = opts.random;
    this.makeDest = opts.makeDest ?? makeDest;
    this.position = opts.position;
    this.weights = opts.weights;
    this.sched = createScheduler(opts.scheduler ?? vs.scheduler, { flags: vs.schedFlags, random: opts.random, position: opts.position });
    this.templates = opts.templates ?? new PersistenceTable({ expireQuiescentTemplate: opts.expireQuiescentTemplate ?? false });
    this.setServers(vs.realServers ?? []);
  }

  /** Does scheduling look at the client (source hashing, persistence)? Else callers need not read its address. */
  get usesClient(): boolean {
    return this.vs.persistence !== null || this.sched.name === 'sh' || this.sched.name === 'mh';
  }

  get persistent(): boolean {
    return this.vs.persistence !== null;
  }

  /** New connections that got no template because the (shared) table was full. */
  templatesRefused = 0;

  get scheduler(): Scheduler {
    return this.sched;
  }

  /**
   * The service was edited (ipvsadm -E): a new scheduler or flags replace the old one over
   * the same destinations (their connection counts kept); persistence changes apply to new
   * connections, and turning persistence off drops the templates, as IPVS does.
   */
  reconfigure(vs: SchedulableService): void {
    const flagsChanged = vs.schedFlags.join() !== this.vs.schedFlags.join();
    if (vs.scheduler !== this.vs.scheduler || flagsChanged) {
      this.sched = createScheduler(vs.scheduler, { flags: vs.schedFlags, random: this.random, position: this.position });
      this.sched.update(this.list);
    }
    if (!vs.persistence) this.templates.clear();
    this.vs = vs;
    this.scope = persistenceScope(vs);
  }

  get dests(): readonly Dest[] {
    return this.list;
  }

  /** Connection sync: the persistence templates held now (none when the service is not persistent). */
  templatesHeld(now: number): { client: string; dest: Dest; remaining: number }[] {
    return this.vs.persistence ? this.templates.held(now) : [];
  }

  /**
   * Connection sync: keep a template another director made — masked client `client` (as
   * persistenceAddress spells it) to the server `destKey` — for `timeout` seconds.
   */
  adoptTemplate(client: string, destKey: string, timeout: number, now: number): 'installed' | 'unchanged' | 'full' | 'no-server' | 'not-persistent' {
    if (!this.vs.persistence) return 'not-persistent';
    const d = this.byKey.get(destKey);
    if (!d || !d.available) return 'no-server';
    return this.templates.adopt(PersistenceTable.key(this.scope, client), d, timeout, now);
  }

  dest(key: string): Dest | undefined {
    return this.byKey.get(key);
  }

  /** Keyed update: same key keeps its Dest (and counts); removed ones become unavailable. */
  setServers(servers: readonly ServerFields[]): void {
    const next: Dest[] = [];
    const seen = new Set<string>();
    for (const rs of servers) {
      const key = realServerKey(rs);
      seen.add(key);
      let d = this.byKey.get(key);
      if (d) {
        d.weight = rs.weight;
        d.uthreshold = rs.uthreshold;
        d.lthreshold = rs.lthreshold;
        d.available = true;
      } else {
        d = this.makeDest(rs);
        this.byKey.set(key, d);
      }
      if (rs.agentLoad !== undefined) d.agentLoad = rs.agentLoad;
      next.push(d);
    }
    for (const [k, d] of this.byKey) {
      if (!seen.has(k)) {
        d.available = false;
        this.byKey.delete(k);
      }
    }
    this.list = next;
    this.sched.update(next);
    this.weightGen = Number.NaN;
  }

  /** Take weights published since the last choice (SharedWeights), if any changed. */
  private syncWeights(): void {
    const w = this.weights;
    if (w === undefined) return;
    const g = w.generation();
    // Unchanged, or being written (the weights before stand until the writer is done).
    if (g === this.weightGen || (g & 1) === 1) return;
    const published = this.list.map((d) => w.weightOf(d));
    // Written meanwhile: a mix of two changes; taken whole at a later choice.
    if (w.generation() !== g) return;
    this.weightGen = g;
    let changed = false;
    for (const [i, d] of this.list.entries()) {
      const x = published[i];
      if (x === undefined || x === d.weight) continue;
      d.weight = x;
      changed = true;
    }
    if (changed) this.sched.update(this.list);
  }

  /** Record a server agent's load reading (the agent scheduler reads it; others ignore it). */
  setLoad(key: string, load: number): void {
    const d = this.byKey.get(key);
    if (d) d.agentLoad = load;
  }

  /** Change one weight (e.g. agent feedback, inhibit_on_failure) and let the scheduler know. */
  setWeight(key: string, weight: number): void {
    const d = this.byKey.get(key);
    // Published weights are re-read at the next choice: they are never older than this.
    this.weightGen = Number.NaN;
    if (!d || d.weight === weight) return;
    d.weight = weight;
    this.sched.update(this.list);
  }

  /**
   * Choose a server for a new flow from `client`, honouring persistence, and account the
   * new connection (active when `active`). Returns null when no server is available.
   */
  schedule(flow: FlowKey, client: string, now: number, active = true): Dest | null {
    this.syncWeights();
    const p = this.vs.persistence;
    let d: Dest | null = null;
    let tkey = '';
    if (p) {
      tkey = PersistenceTable.key(this.scope, persistenceAddress(client, p));
      d = this.templates.lookup(tkey, now);
    }
    if (d === null) d = this.sched.pick(flow, now);
    if (d === null) return null;
    if (p && !this.templates.bind(tkey, d, p.timeout, now)) this.templatesRefused++;
    bindConn(d, active);
    return d;
  }

  /**
   * A connection scheduled by `schedule`/`reschedule` has ended: unaccount it and release
   * its persistence template so the template's timeout starts to run.
   */
  finish(d: Dest, client: string, wasActive: boolean, now: number): void {
    unbindConn(d, wasActive);
    const p = this.vs.persistence;
    if (p) this.templates.release(PersistenceTable.key(this.scope, persistenceAddress(client, p)), d, now);
  }

  /**
   * A retry for a flow whose chosen servers failed to connect (`tried`): the scheduler's
   * choice when it is not one of them, else the eligible untried server with the lowest
   * weighted overhead (as wlc would choose). A persistence template moves to the new
   * server. The caller has already unbound the failed attempt.
   */
  reschedule(flow: FlowKey, client: string, now: number, tried: ReadonlySet<Dest>, active = true): Dest | null {
    this.syncWeights();
    let d = this.sched.pick(flow, now);
    if (d !== null && tried.has(d)) {
      d = null;
      for (const c of this.list) {
        if (!eligible(c) || tried.has(c)) continue;
        if (d === null || overhead(c) * d.weight < overhead(d) * c.weight) d = c;
      }
    }
    if (d === null) return null;
    const p = this.vs.persistence;
    if (p && !this.templates.bind(PersistenceTable.key(this.scope, persistenceAddress(client, p)), d, p.timeout, now)) this.templatesRefused++;
    bindConn(d, active);
    return d;
  }
}
