/**
 * One virtual service's scheduling state: its destinations (kept by key across updates so
 * connection counts survive a reload), its scheduler, and its persistence templates.
 * `schedule()` is what a data plane calls for a new flow.
 */
import { realServerKey } from '../model/keys.js';
import type { RealServer, VirtualServer } from '../model/types.js';
import { bindConn, makeDest } from './dest.js';
import { maskAddress } from '../model/address.js';
import { PersistenceTable } from './persistence.js';
import { createScheduler } from './factory.js';
import type { AnySchedulerName, Dest, FlowKey, Scheduler } from './types.js';

export interface ServiceSchedulerOptions {
  readonly scheduler?: AnySchedulerName;
  readonly random?: () => number;
  readonly expireQuiescentTemplate?: boolean;
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

export class ServiceScheduler {
  readonly scheduler: Scheduler;
  readonly templates: PersistenceTable;
  private list: Dest[] = [];
  private readonly byKey = new Map<string, Dest>();
  private readonly vs: VirtualServer;
  /** persistenceScope(vs), computed once: it is part of every template key. */
  private readonly scope: string;

  constructor(vs: VirtualServer, opts: ServiceSchedulerOptions = {}) {
    this.vs = vs;
    this.scope = persistenceScope(vs);
    this.scheduler = createScheduler(opts.scheduler ?? vs.scheduler, { flags: vs.schedFlags, random: opts.random });
    this.templates = new PersistenceTable({ expireQuiescentTemplate: opts.expireQuiescentTemplate ?? false });
    this.setServers(vs.realServers);
  }

  get dests(): readonly Dest[] {
    return this.list;
  }

  dest(key: string): Dest | undefined {
    return this.byKey.get(key);
  }

  /** Keyed update: same key keeps its Dest (and counts); removed ones become unavailable. */
  setServers(servers: readonly Pick<RealServer, 'family' | 'address' | 'port' | 'weight' | 'uthreshold' | 'lthreshold'>[]): void {
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
        d = makeDest(rs);
        this.byKey.set(key, d);
      }
      next.push(d);
    }
    for (const [k, d] of this.byKey) {
      if (!seen.has(k)) {
        d.available = false;
        this.byKey.delete(k);
      }
    }
    this.list = next;
    this.scheduler.update(next);
  }

  /** Change one weight (e.g. agent feedback, inhibit_on_failure) and let the scheduler know. */
  setWeight(key: string, weight: number): void {
    const d = this.byKey.get(key);
    if (!d || d.weight === weight) return;
    d.weight = weight;
    this.scheduler.update(this.list);
  }

  /**
   * Choose a server for a new flow from `client`, honouring persistence, and account the
   * new connection (active when `active`). Returns null when no server is available.
   */
  schedule(flow: FlowKey, client: string, now: number, active = true): Dest | null {
    const p = this.vs.persistence;
    let d: Dest | null = null;
    let tkey = '';
    if (p) {
      tkey = PersistenceTable.key(this.scope, maskAddress(client, p.prefixLength));
      d = this.templates.lookup(tkey, now);
    }
    if (d === null) d = this.scheduler.pick(flow, now);
    if (d === null) return null;
    if (p) this.templates.bind(tkey, d, p.timeout, now);
    bindConn(d, active);
    return d;
  }
}
