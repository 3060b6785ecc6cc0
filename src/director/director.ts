/**
 * The director: owns the configuration, the observations and the quorum states, and keeps
 * the data plane equal to the desired state by applying keyed deltas. Every change
 * (reload, observation) goes through `reconcile`, one at a time.
 *
 * It asks the plane what it holds (DataPlane.held) and diffs against that: an op the plane
 * refused stays a difference and is retried on the next reconcile, and no second copy of
 * the plane's table can drift from it.
 */
import { channel } from 'node:diagnostics_channel';
import type { Family, FulcrumConfig, VirtualServer } from '../model/types.js';
import type { DataPlane, OpFailure, PlanOp, ServiceSpec } from '../dataplane/types.js';
import { computeDesired, DesiredMemo, observationKey, type Observation } from './desired.js';
import { DiffMemo, diffTables } from './plan.js';
import { serverKeysOf } from '../model/keys.js';
import { serialQueue, type Serial } from '../errors/index.js';

/** diagnostics_channel name for DirectorEvent messages. */
export const DIRECTOR_CHANNEL = 'fulcrum:director';
const events = channel(DIRECTOR_CHANNEL);

export type DirectorEvent =
  | { readonly type: 'quorum'; readonly service: string; readonly up: boolean; readonly liveWeight: number; readonly quorum: number }
  | { readonly type: 'server'; readonly service: string; readonly server: string; readonly change: 'added' | 'removed' | 'weight' | 'edited'; readonly weight?: number }
  | { readonly type: 'service'; readonly service: string; readonly change: 'added' | 'removed' | 'edited' }
  | { readonly type: 'apply-failed'; readonly failures: readonly { readonly code: string; readonly message: string }[] };

export interface ReconcileResult {
  readonly applied: readonly PlanOp[];
  readonly failed: readonly OpFailure[];
}

/** A service as the last reconcile left it: what BGP announcements are decided from. */
export interface ServiceState {
  readonly key: string;
  readonly vs: VirtualServer;
  /** Its addresses (a group's ranges expanded). */
  readonly listen: readonly { readonly family: Family; readonly address: string }[];
  readonly quorumUp: boolean;
  /** Let through the gate (VRRP: its address is held here). */
  readonly served: boolean;
  /** The data plane holds it (an apply it refused leaves this false). */
  readonly held: boolean;
}

export class Director {
  private config: FulcrumConfig | null = null;
  private states: readonly ServiceState[] = [];
  /** Told after every reconcile (the BGP announcer follows the services' states). */
  onReconciled: (() => void) | null = null;
  private readonly observations = new Map<string, Observation>();
  private readonly quorum = new Map<string, boolean>();
  private lastFailures: readonly OpFailure[] = [];
  private gate: ((spec: ServiceSpec) => boolean) | null = null;

  /** `onQuorum` is told when a service loses or regains quorum (quorum_up/quorum_down scripts). */
  constructor(readonly plane: DataPlane, private readonly onQuorum?: (vs: VirtualServer, up: boolean) => void) {}

  /** Failures of the last reconcile (ops still to retry). */
  get pendingFailures(): readonly OpFailure[] {
    return this.lastFailures;
  }

  /** Replace the configuration (start or reload) and reconcile: only differences are applied. */
  setConfig(config: FulcrumConfig): Promise<ReconcileResult> {
    return this.serial(() => {
      this.config = config;
      return this.run();
    });
  }

  /** A health/agent observation for one real server of one service. */
  observe(service: string, server: string, obs: Observation): Promise<ReconcileResult> {
    return this.serial(() => {
      this.note(service, server, obs);
      return this.run();
    });
  }

  /** Several observations at once (one reconcile for a burst of health transitions). */
  observeMany(batch: readonly { readonly service: string; readonly server: string; readonly obs: Observation }[]): Promise<ReconcileResult> {
    return this.serial(() => {
      for (const b of batch) this.note(b.service, b.server, b.obs);
      return this.run();
    });
  }

  /**
   * Which services the plane serves now (null: all). Services gated out are kept out of
   * the plane but still computed — their quorum and health go on — so they come back at
   * once: VRRP's hook, where a service on a virtual address follows MASTER/BACKUP.
   */
  setGate(gate: ((spec: ServiceSpec) => boolean) | null): Promise<ReconcileResult> {
    return this.serial(() => {
      this.gate = gate;
      return this.run();
    });
  }

  /** Every configured service as the last reconcile left it. */
  serviceStates(): readonly ServiceState[] {
    return this.states;
  }

  /** Reconcile again (e.g. to retry ops the plane refused). */
  reconcile(): Promise<ReconcileResult> {
    return this.serial(() => this.run());
  }

  private readonly serial: Serial = serialQueue();
  private readonly memo = new DesiredMemo();
  /** Per service key: bumped when an observation of one of its servers changes (the memo's key). */
  private readonly observed = new Map<string, number>();
  /** The real servers each service had at the last reconcile, by key. */
  private readonly configured = new Map<string, { readonly vs: VirtualServer; readonly servers: ReadonlySet<string> }>();
  /** Observations recorded since the last reconcile (checked against what is configured). */
  private fresh: { service: string; server: string }[] = [];
  private readonly diffMemo = new DiffMemo();

  private note(service: string, server: string, obs: Observation): void {
    this.observations.set(observationKey(service, server), obs);
    this.bumpObserved(service);
    this.fresh.push({ service, server });
  }

  private forgetObservation(service: string, server: string): void {
    if (this.observations.delete(observationKey(service, server))) this.bumpObserved(service);
  }

  private bumpObserved(service: string): void {
    this.observed.set(service, (this.observed.get(service) ?? 0) + 1);
  }

  /**
   * Forget observations of real servers no longer configured: one that comes back later
   * starts afresh (as keepalived's checker does), not with a stale verdict. Only services
   * whose objects changed are walked, and the observations recorded since the last time.
   */
  private pruneObservations(desired: ReturnType<typeof computeDesired>): void {
    for (const [key, d] of desired) {
      const had = this.configured.get(key);
      if (had?.vs === d.vs) continue;
      const servers = serverKeysOf(d.vs);
      if (had) for (const k of had.servers) if (!servers.has(k)) this.forgetObservation(key, k);
      this.configured.set(key, { vs: d.vs, servers });
    }
    for (const [key, had] of this.configured) {
      if (desired.has(key)) continue;
      for (const k of had.servers) this.forgetObservation(key, k);
      this.configured.delete(key);
    }
    const fresh = this.fresh;
    this.fresh = [];
    for (const f of fresh) if (!this.configured.get(f.service)?.servers.has(f.server)) this.forgetObservation(f.service, f.server);
  }

  private async run(): Promise<ReconcileResult> {
    if (this.config === null) return { applied: [], failed: [] };
    const desired = computeDesired({ config: this.config, observations: this.observations, quorum: this.quorum, memo: this.memo, observed: this.observed });
    for (const [key, d] of desired) {
      const was = this.quorum.get(key);
      if (was !== undefined && was !== d.quorumUp) {
        publish({ type: 'quorum', service: key, up: d.quorumUp, liveWeight: d.liveWeight, quorum: d.vs.quorum });
        this.onQuorum?.(d.vs, d.quorumUp);
      }
      this.quorum.set(key, d.quorumUp);
    }
    for (const key of [...this.quorum.keys()]) if (!desired.has(key)) this.quorum.delete(key);
    this.pruneObservations(desired);
    const gate = this.gate;
    const served = gate ? new Map([...desired].filter(([, d]) => gate(d.spec))) : desired;
    // Against what the plane says it holds: one source of truth, so an op that failed
    // halfway (a move between planes that removed but could not add) is simply re-planned.
    const plan = diffTables(this.plane.held, { services: served }, this.diffMemo);
    if (plan.ops.length === 0 && this.lastFailures.length === 0) {
      this.noteStates(desired, served);
      return { applied: [], failed: [] };
    }
    const r = await this.plane.apply(plan);
    for (const op of r.applied) publishOp(op);
    if (r.failed.length > 0) publish({ type: 'apply-failed', failures: r.failed.map((f) => ({ code: f.code, message: f.message })) });
    this.lastFailures = r.failed;
    this.noteStates(desired, served);
    return r;
  }

  private noteStates(desired: ReturnType<typeof computeDesired>, served: ReadonlyMap<string, unknown>): void {
    const held = this.plane.held.services;
    this.states = [...desired].map(([key, d]) => ({
      key, vs: d.vs, listen: d.spec.listen, quorumUp: d.quorumUp, served: served.has(key), held: held.has(key),
    }));
    this.onReconciled?.();
  }
}

function publish(e: DirectorEvent): void {
  if (events.hasSubscribers) events.publish(e);
}

function publishOp(op: PlanOp): void {
  switch (op.op) {
    case 'add-service': return publish({ type: 'service', service: op.service.key, change: 'added' });
    case 'edit-service': return publish({ type: 'service', service: op.service.key, change: 'edited' });
    case 'remove-service': return publish({ type: 'service', service: op.key, change: 'removed' });
    case 'add-server': return publish({ type: 'server', service: op.service, server: op.server.key, change: 'added', weight: op.server.weight });
    case 'edit-server': return publish({ type: 'server', service: op.service, server: op.server.key, change: 'edited', weight: op.server.weight });
    case 'remove-server': return publish({ type: 'server', service: op.service, server: op.key, change: 'removed' });
    case 'weight': return publish({ type: 'server', service: op.service, server: op.key, change: 'weight', weight: op.weight });
    case 'load': return; // agent readings are published by the health monitor
  }
}
