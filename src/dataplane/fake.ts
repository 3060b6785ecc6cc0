/**
 * A data plane that forwards nothing: it keeps the table, validates ops like every plane,
 * and lets tests set connection counts and inject failures.
 */
import type { ForwardingMethod } from '../model/types.js';
import { newCounters, ZERO_RATES } from './stats.js';
import { SpecTable } from './table.js';
import {
  DataPlaneErrorCode, type ApplyResult, type ConnectionEntry, type DataPlane, type HeldTable, type OpFailure, type Plan, type PlanOp,
  type ServiceStats,
} from './types.js';

export class FakeDataPlane implements DataPlane {
  readonly name = 'fake';
  readonly methods: readonly ForwardingMethod[] = ['nat', 'dr', 'tun', 'proxy'];
  readonly table = new SpecTable();

  get held(): HeldTable {
    return this.table;
  }
  /** Every plan applied, in order (for tests that assert on deltas). */
  readonly history: Plan[] = [];
  private readonly conns = new Map<string, { active: number; inactive: number }>();
  private failing: ((op: PlanOp) => DataPlaneErrorCode | null) | null = null;

  /** Make matching ops fail with the returned code (null = let it apply). */
  failWhen(pred: ((op: PlanOp) => DataPlaneErrorCode | null) | null): void {
    this.failing = pred;
  }

  setConnections(service: string, server: string, active: number, inactive: number): void {
    this.conns.set(`${service}|${server}`, { active, inactive });
  }

  apply(plan: Plan): Promise<ApplyResult> {
    this.history.push(plan);
    const applied: PlanOp[] = [];
    const failed: OpFailure[] = [];
    for (const op of plan.ops) {
      const injected = this.table.isClosed ? null : this.failing?.(op) ?? null;
      const f = injected !== null ? { op, code: injected, message: `injected ${injected}` } : this.table.check(op);
      if (f) {
        failed.push(f);
        continue;
      }
      this.table.commit(op);
      applied.push(op);
    }
    return Promise.resolve({ applied, failed });
  }

  stats(): ServiceStats[] {
    return [...this.table.services.values()].map((s) => ({
      spec: s.spec,
      counters: newCounters(),
      rates: ZERO_RATES,
      dropped: 0,
      servers: [...s.servers.values()].map((spec) => {
        const c = this.conns.get(`${s.spec.key}|${spec.key}`);
        return { spec, active: c?.active ?? 0, inactive: c?.inactive ?? 0, persistent: 0, counters: newCounters(), rates: ZERO_RATES };
      }),
    }));
  }

  connections(): Promise<ConnectionEntry[]> {
    return Promise.resolve(this.connectionList());
  }

  /** The connection table, now. */
  connectionList(): ConnectionEntry[] {
    return [];
  }

  /** Services zeroed, in order ('' = all). */
  readonly zeroed: string[] = [];

  zero(service?: string): boolean {
    if (service !== undefined && !this.table.services.has(service)) return false;
    this.zeroed.push(service ?? '');
    return true;
  }

  close(): Promise<void> {
    this.table.close();
    return Promise.resolve();
  }
}
