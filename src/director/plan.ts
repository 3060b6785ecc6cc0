/**
 * Keyed diff: what is applied now vs what is desired → the smallest Plan that gets there.
 * Services and servers are matched by key; a server whose only change is its weight gets
 * a `weight` op (the cheapest delta every plane has), one whose agent load moved a `load`
 * op, anything else an `edit-*`.
 *
 * Order: removed services first (freeing their addresses), then added/edited services,
 * then per service: removed servers, added servers, edited servers, weights.
 */
import type { HeldTable, Plan, PlanOp, ServerSpec } from '../dataplane/types.js';

/** A table of services and servers by key (what a plane holds, or what is desired). */
export type TableView = HeldTable;

/**
 * Structural equality of plain JSON-shaped data (specs), as comparing their JSON would
 * decide it — an absent key and an undefined value are the same, NaN equals NaN — without
 * building strings: a reload or a one-weight change compares every server of the table.
 * (Non-finite numbers compare as null, as JSON writes them.)
 */
export function sameSpec(a: unknown, b: unknown): boolean {
  return same(a, b, false);
}

/** A value as JSON writes it: a non-finite number is null, and so is undefined inside an array. */
function asJson(v: unknown, inArray: boolean): unknown {
  if (typeof v === 'number' && !Number.isFinite(v)) return null;
  if (v === undefined && inArray) return null;
  return v;
}

function same(a0: unknown, b0: unknown, inArray: boolean): boolean {
  const a = asJson(a0, inArray);
  const b = asJson(b0, inArray);
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i], true)) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let nx = 0;
  for (const k in x) {
    if (!Object.hasOwn(x, k) || x[k] === undefined) continue;
    nx++;
    if (!Object.hasOwn(y, k) || y[k] === undefined || !same(x[k], y[k], false)) return false;
  }
  let ny = 0;
  for (const k in y) if (Object.hasOwn(y, k) && y[k] !== undefined) ny++;
  return nx === ny;
}

/**
 * Services a diff found equal, by key: the desired entry (by identity) and the revision of
 * what the plane held then. While both are the same, the next diff skips the service
 * without looking at its servers — a one-weight change at 1,000 real servers compares one
 * service. A plane whose table has no revisions is compared in full every time.
 */
export class DiffMemo {
  readonly equal = new Map<string, { readonly want: object; readonly rev: number }>();
}

export function diffTables(current: TableView, desired: TableView, memo?: DiffMemo): Plan {
  const ops: PlanOp[] = [];
  for (const key of current.services.keys()) if (!desired.services.has(key)) ops.push({ op: 'remove-service', key });
  if (memo) for (const key of memo.equal.keys()) if (!desired.services.has(key)) memo.equal.delete(key);
  /** Found equal before, and neither side changed since: nothing to compare. */
  const skip = new Set<string>();
  /** The same service spec, on a plane with revisions: remembered if its servers are equal too. */
  const sameService = new Map<string, number>();
  for (const [key, want] of desired.services) {
    const have = current.services.get(key);
    const known = memo?.equal.get(key);
    if (known && known.want === want && have?.rev === known.rev) {
      skip.add(key);
      continue;
    }
    if (!have) ops.push({ op: 'add-service', service: want.spec });
    else if (!sameSpec(have.spec, want.spec)) ops.push({ op: 'edit-service', service: want.spec });
    else if (memo && have.rev !== undefined) sameService.set(key, have.rev);
  }
  for (const [key, want] of desired.services) {
    if (skip.has(key)) continue;
    const before = ops.length;
    diffServers(key, current.services.get(key)?.servers ?? new Map<string, ServerSpec>(), want.servers, ops);
    const rev = sameService.get(key);
    if (memo && rev !== undefined && ops.length === before) memo.equal.set(key, { want, rev });
  }
  return { ops };
}

function diffServers(key: string, haveServers: ReadonlyMap<string, ServerSpec>, wantServers: ReadonlyMap<string, ServerSpec>, ops: PlanOp[]): void {
  for (const sk of haveServers.keys()) if (!wantServers.has(sk)) ops.push({ op: 'remove-server', service: key, key: sk });
  const edits: PlanOp[] = [];
  for (const [sk, s] of wantServers) {
    const h = haveServers.get(sk);
    if (!h) ops.push({ op: 'add-server', service: key, server: s });
    else if (sameSpec(h, s)) continue;
    else if (sameSpec({ ...h, weight: s.weight, agentLoad: s.agentLoad }, s)) {
      if (h.weight !== s.weight) edits.push({ op: 'weight', service: key, key: sk, weight: s.weight });
      if (h.agentLoad !== s.agentLoad) edits.push({ op: 'load', service: key, key: sk, load: s.agentLoad ?? Number.NaN });
    } else edits.push({ op: 'edit-server', service: key, server: s });
  }
  for (const e of edits) ops.push(e);
}
