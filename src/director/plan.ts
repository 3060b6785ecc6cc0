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

/** Structural equality of plain data (specs are JSON-shaped and built in one key order). */
export function sameSpec(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
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
