/**
 * RoutingDataPlane: one DataPlane over several, each service going to the plane that
 * implements its forwarding method — `lb_kind PROXY` to the userspace proxy, NAT/DR/TUN
 * to the kernel plane — so one configuration can mix them. The kernel plane is built on
 * first use: a proxy-only director never touches nftables (nor needs CAP_NET_ADMIN).
 */
import type { ForwardingMethod } from '../model/types.js';
import { SpecTable } from './table.js';
import {
  DataPlaneErrorCode, type ApplyResult, type ConnectionEntry, type DataPlane, type HeldTable, type OpFailure, type Plan, type PlanOp,
  type ServiceSpec, type ServiceStats, type SyncedFlow, type SyncInstallRefusal, type SyncInstallResult, type WorkerStatus,
} from './types.js';

export interface PlaneSlot {
  readonly methods: readonly ForwardingMethod[];
  /** The plane, built when a first service needs it (or at once when `eager`). */
  readonly make: () => DataPlane;
  /**
   * Build it with the routing plane: for a plane that takes time to start (worker threads)
   * and that a VRRP takeover must not wait for.
   */
  readonly eager?: boolean;
  /**
   * Only the services this says yes to (the XDP plane: those that chose it); a slot
   * without it takes every service of its methods that no earlier slot accepted.
   */
  readonly accepts?: (service: ServiceSpec) => boolean;
}

export class RoutingDataPlane implements DataPlane {
  readonly name: string;
  readonly methods: readonly ForwardingMethod[];
  private readonly planes: (DataPlane | null)[];
  /** Which plane holds each service (by key), and what it holds (for moves between planes). */
  private readonly owner = new Map<string, number>();
  private readonly table = new SpecTable();

  get held(): HeldTable {
    return this.table;
  }

  constructor(private readonly slots: readonly PlaneSlot[], name = 'routing') {
    this.name = name;
    this.methods = [...new Set(slots.flatMap((s) => s.methods))];
    this.planes = slots.map((s) => (s.eager ? s.make() : null));
  }

  /** The planes built so far (for stats and tests). */
  get built(): DataPlane[] {
    return this.planes.filter((p): p is DataPlane => p !== null);
  }

  /** The plane of a service (by its method and choice), or of a synchronised flow (by method alone). */
  private slotFor(method: ForwardingMethod, service?: ServiceSpec): number {
    return this.slots.findIndex((s) => s.methods.includes(method) && (s.accepts === undefined || (service !== undefined && s.accepts(service))));
  }

  private plane(i: number): DataPlane {
    let p = this.planes[i];
    if (!p) {
      p = (this.slots[i] as PlaneSlot).make();
      this.planes[i] = p;
    }
    return p;
  }

  async apply(plan: Plan): Promise<ApplyResult> {
    const applied: PlanOp[] = [];
    const failed: OpFailure[] = [];
    if (this.table.isClosed) {
      return { applied, failed: plan.ops.map((op) => ({ op, code: DataPlaneErrorCode.CLOSED, message: 'data plane is closed' })) };
    }
    // Consecutive ops for the same plane go as one plan (one kernel transaction); each plane
    // validates its own ops. A service's owner is provisional until its plane applied it.
    let batch: { i: number; ops: PlanOp[] } | null = null;
    const flush = async (): Promise<void> => {
      if (!batch) return;
      const b = batch;
      batch = null;
      const r = await this.plane(b.i).apply({ ops: b.ops });
      for (const op of r.applied) {
        this.table.commit(op);
        if (op.op === 'remove-service') this.owner.delete(op.key);
      }
      for (const f of r.failed) if (f.op.op === 'add-service' && !this.table.services.has(f.op.service.key)) this.owner.delete(f.op.service.key);
      for (const op of r.applied) applied.push(op);
      for (const f of r.failed) failed.push(f);
    };
    for (const op of plan.ops) {
      let target: number;
      if (op.op === 'add-service' || op.op === 'edit-service') {
        target = this.slotFor(op.service.method, op.service);
        if (target < 0) {
          await flush();
          failed.push({ op, code: DataPlaneErrorCode.UNSUPPORTED, message: `service ${op.service.key}: no data plane forwards with ${op.service.method.toUpperCase()}` });
          continue;
        }
        const from = this.owner.get(op.service.key);
        if (op.op === 'edit-service' && from !== undefined && from !== target) {
          await flush();
          const moved = await this.move(op, from, target);
          if (moved) failed.push(moved);
          else applied.push(op);
          continue;
        }
        if (op.op === 'add-service' && from === undefined) this.owner.set(op.service.key, target);
        target = this.owner.get(op.service.key) ?? target;
      } else {
        const key = op.op === 'remove-service' ? op.key : op.service;
        const owner = this.owner.get(key);
        if (owner === undefined) {
          await flush();
          failed.push({ op, code: DataPlaneErrorCode.NO_SERVICE, message: `no service ${key}` });
          continue;
        }
        target = owner;
      }
      if (batch && (batch as { i: number }).i !== target) await flush();
      if (!batch) batch = { i: target, ops: [] };
      (batch as { ops: PlanOp[] }).ops.push(op);
    }
    await flush();
    return { applied, failed };
  }

  /** An edit that changes a service's plane: remove it from one, add it (and its servers) to the other. */
  private async move(op: PlanOp & { op: 'edit-service' }, from: number, to: number): Promise<OpFailure | null> {
    const servers = [...(this.table.services.get(op.service.key)?.servers.values() ?? [])];
    const out = await this.plane(from).apply({ ops: [{ op: 'remove-service', key: op.service.key }] });
    if (out.failed.length > 0) return { ...(out.failed[0] as OpFailure), op };
    this.table.commit({ op: 'remove-service', key: op.service.key });
    this.owner.delete(op.service.key);
    const adds: PlanOp[] = [{ op: 'add-service', service: op.service }, ...servers.map((server) => ({ op: 'add-server' as const, service: op.service.key, server }))];
    const into = await this.plane(to).apply({ ops: adds });
    for (const a of into.applied) this.table.commit(a);
    if (into.failed.some((f) => f.op.op === 'add-service')) return { ...(into.failed[0] as OpFailure), op };
    this.owner.set(op.service.key, to);
    return null;
  }

  stats(): ServiceStats[] {
    return this.built.flatMap((p) => p.stats());
  }

  async syncExport(): Promise<SyncedFlow[]> {
    return (await Promise.all(this.built.map((p) => (p.syncExport ? p.syncExport() : Promise.resolve([]))))).flat();
  }

  /**
   * Each flow goes to the plane that holds its service (by protocol and address and port,
   * the service's port 0, or fwmark), else to the plane of its forwarding method; flows no
   * built plane takes are refused.
   */
  async syncInstall(flows: readonly SyncedFlow[]): Promise<SyncInstallResult> {
    const by = new Map<DataPlane, SyncedFlow[]>();
    const refused = new Map<SyncInstallRefusal, number>();
    const holder = new Map<string, number>();
    for (const [key, e] of this.table.services) {
      const i = this.owner.get(key);
      if (i === undefined) continue;
      if (e.spec.endpoint.kind === 'fwmark') holder.set(`fw|${e.spec.endpoint.mark}`, i);
      for (const l of e.spec.listen) holder.set(`${e.spec.protocol}|${l.address}|${l.port}`, i);
    }
    for (const f of flows) {
      const i = (f.fwmark !== 0 ? holder.get(`fw|${f.fwmark}`) : holder.get(`${f.protocol}|${f.virtual}|${f.vport}`) ?? holder.get(`${f.protocol}|${f.virtual}|0`))
        ?? this.slotFor(f.method);
      const p = i < 0 ? null : this.planes[i];
      if (!p?.syncInstall) {
        refused.set(p ? 'unsupported' : 'no-service', (refused.get(p ? 'unsupported' : 'no-service') ?? 0) + 1);
        continue;
      }
      let l = by.get(p);
      if (!l) by.set(p, (l = []));
      l.push(f);
    }
    let installed = 0;
    let unchanged = 0;
    for (const [p, l] of by) {
      if (!p.syncInstall) continue;
      const r = await p.syncInstall(l);
      installed += r.installed;
      unchanged += r.unchanged;
      for (const [k, n] of r.refused) refused.set(k, (refused.get(k) ?? 0) + n);
    }
    return { installed, unchanged, refused };
  }

  async connections(): Promise<ConnectionEntry[]> {
    return (await Promise.all(this.built.map((p) => p.connections()))).flat();
  }

  zero(service?: string): boolean {
    if (service === undefined) {
      for (const p of this.built) p.zero();
      return true;
    }
    const i = this.owner.get(service);
    return i === undefined ? false : this.plane(i).zero(service);
  }

  async stopAccepting(): Promise<void> {
    await Promise.all(this.built.map((p) => p.stopAccepting?.()));
  }

  workers(): WorkerStatus[] {
    return this.built.flatMap((p) => p.workers?.() ?? []);
  }

  lostConnections(): number {
    return this.built.reduce((n, p) => n + (p.lostConnections?.() ?? 0), 0);
  }

  pipes(): number {
    return this.built.reduce((n, p) => n + (p.pipes?.() ?? 0), 0);
  }

  packetCounters(): ReadonlyMap<string, number> {
    const out = new Map<string, number>();
    for (const p of this.built) for (const [k, n] of p.packetCounters?.() ?? []) out.set(k, (out.get(k) ?? 0) + n);
    return out;
  }

  /** Fault injection: crash data-plane worker `n` (false when there is none, or faults are off). */
  crashWorker(n: number): boolean {
    return this.built.some((p) => (p as { crashWorker?: (n: number) => boolean }).crashWorker?.(n) === true);
  }

  async close(drainMs: number): Promise<void> {
    this.table.close();
    await Promise.all(this.built.map((p) => p.close(drainMs)));
  }
}
