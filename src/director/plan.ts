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

export function diffTables(current: TableView, desired: TableView): Plan {
  const ops: PlanOp[] = [];
  for (const key of current.services.keys()) if (!desired.services.has(key)) ops.push({ op: 'remove-service', key });
  for (const [key, want] of desired.services) {
    const have = current.services.get(key);
    if (!have) ops.push({ op: 'add-service', service: want.spec });
    else if (!sameSpec(have.spec, want.spec)) ops.push({ op: 'edit-service', service: want.spec });
  }
  for (const [key, want] of desired.services) {
    const haveServers = current.services.get(key)?.servers ?? new Map<string, ServerSpec>();
    for (const sk of haveServers.keys()) if (!want.servers.has(sk)) ops.push({ op: 'remove-server', service: key, key: sk });
    const edits: PlanOp[] = [];
    for (const [sk, s] of want.servers) {
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
  return { ops };
}
