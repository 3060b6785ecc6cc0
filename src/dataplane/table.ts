/**
 * The keyed table of what a data plane holds (services → servers), with the validation
 * every plane shares: an op against a missing service or server, or adding what exists,
 * is refused with a stable code before the plane does anything.
 */
import { ownServers, type SharedServers } from '../model/shared-map.js';
import { DataPlaneErrorCode, type OpFailure, type PlanOp, type ServerSpec, type ServiceSpec } from './types.js';

/** The service an op is about (its key). */
export function opServiceKey(op: PlanOp): string {
  return op.op === 'add-service' || op.op === 'edit-service' ? op.service.key : op.op === 'remove-service' ? op.key : op.service;
}

/** A plan screened against a draft: what may be applied (already in the draft) and what not. */
export interface Screened {
  readonly draft: SpecTable;
  readonly accepted: PlanOp[];
  readonly failed: OpFailure[];
}

export interface TableEntry {
  spec: ServiceSpec;
  /** Read it, never change it: a clone may share it (SpecTable copies it before a change). */
  readonly servers: ReadonlyMap<string, ServerSpec>;
  /** See HeldTable: the same number, the same contents. */
  readonly rev: number;
}

/** An entry as the table holds it: its servers map is shared with clones until written. */
interface HeldEntry extends TableEntry, SharedServers<ServerSpec> {
  servers: ReadonlyMap<string, ServerSpec>;
  rev: number;
}

/** Revisions for every table: a fresh one for each change, copied with the entry it names. */
let revisions = 0;

export class SpecTable {
  private readonly held = new Map<string, HeldEntry>();
  readonly services: ReadonlyMap<string, TableEntry> = this.held;
  private closed = false;

  /** The plane closed: forget every entry and refuse every later op with E_DP_CLOSED. */
  close(): void {
    this.closed = true;
    this.held.clear();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * A draft: the same entries, whose server maps can change without touching this table.
   * The maps are shared until either table changes one (then it copies it first), so a
   * draft of a 1,000-server table for a one-weight plan copies one service's map, not all.
   */
  clone(): SpecTable {
    const c = new SpecTable();
    for (const [k, e] of this.held) {
      e.own = null;
      c.held.set(k, { spec: e.spec, servers: e.servers, own: null, rev: e.rev });
    }
    return c;
  }

  /** Put `key` back as `from` (a clone taken earlier) holds it, or remove it if `from` has none. */
  restore(key: string, from: SpecTable): void {
    const was = from.held.get(key);
    if (!was) {
      this.held.delete(key);
      return;
    }
    was.own = null;
    this.held.set(key, { spec: was.spec, servers: was.servers, own: null, rev: was.rev });
  }

  /** The servers of `service` to change, copied first if another table may share them. */
  private writable(service: string): Map<string, ServerSpec> | undefined {
    const e = this.held.get(service);
    if (!e) return undefined;
    e.rev = ++revisions;
    return ownServers(e);
  }

  /**
   * Screen `ops` in order against a draft of this table: each is checked by the shared rules
   * (check), then by the plane's own `refuse`; an accepted op is committed to the draft, so
   * later ops see it. This table does not change.
   */
  screen(ops: readonly PlanOp[], refuse: (op: PlanOp, draft: SpecTable) => OpFailure | null): Screened {
    const draft = this.clone();
    const accepted: PlanOp[] = [];
    const failed: OpFailure[] = [];
    for (const op of ops) {
      const f = draft.check(op) ?? refuse(op, draft);
      if (f) {
        failed.push(f);
        continue;
      }
      draft.commit(op);
      accepted.push(op);
    }
    return { draft, accepted, failed };
  }

  /** Why `op` cannot apply to the table as it is, or null when it can. */
  check(op: PlanOp): OpFailure | null {
    const fail = (code: DataPlaneErrorCode, message: string): OpFailure => ({ op, code, message });
    if (this.closed) return fail(DataPlaneErrorCode.CLOSED, 'data plane is closed');
    switch (op.op) {
      case 'add-service':
        return this.services.has(op.service.key) ? fail(DataPlaneErrorCode.EXISTS, `service ${op.service.key} already exists`) : null;
      case 'edit-service':
        return this.services.has(op.service.key) ? null : fail(DataPlaneErrorCode.NO_SERVICE, `no service ${op.service.key}`);
      case 'remove-service':
        return this.services.has(op.key) ? null : fail(DataPlaneErrorCode.NO_SERVICE, `no service ${op.key}`);
      case 'add-server':
      case 'edit-server':
      case 'remove-server':
      case 'weight':
      case 'load': {
        const s = this.services.get(op.service);
        if (!s) return fail(DataPlaneErrorCode.NO_SERVICE, `no service ${op.service}`);
        const key = op.op === 'add-server' || op.op === 'edit-server' ? op.server.key : op.key;
        const has = s.servers.has(key);
        if (op.op === 'add-server' && has) return fail(DataPlaneErrorCode.EXISTS, `real server ${key} already exists in ${op.service}`);
        if (op.op !== 'add-server' && !has) return fail(DataPlaneErrorCode.NO_SERVER, `no real server ${key} in ${op.service}`);
        return null;
      }
    }
  }

  /** Record an op that `check` accepted. */
  commit(op: PlanOp): void {
    switch (op.op) {
      case 'add-service': {
        const own = new Map<string, ServerSpec>();
        this.held.set(op.service.key, { spec: op.service, servers: own, own, rev: ++revisions });
        return;
      }
      case 'edit-service': {
        const s = this.held.get(op.service.key);
        if (s) {
          s.spec = op.service;
          s.rev = ++revisions;
        }
        return;
      }
      case 'remove-service':
        this.held.delete(op.key);
        return;
      case 'add-server':
      case 'edit-server':
        this.writable(op.service)?.set(op.server.key, op.server);
        return;
      case 'remove-server':
        this.writable(op.service)?.delete(op.key);
        return;
      case 'weight': {
        const r = this.held.get(op.service)?.servers.get(op.key);
        if (r) this.writable(op.service)?.set(op.key, { ...r, weight: op.weight });
        return;
      }
      case 'load': {
        const r = this.held.get(op.service)?.servers.get(op.key);
        if (r) this.writable(op.service)?.set(op.key, { ...r, agentLoad: Number.isNaN(op.load) ? undefined : op.load });
        return;
      }
    }
  }
}
