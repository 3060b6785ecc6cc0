/**
 * Connection sync for the proxy planes: only persistence templates. A proxied connection
 * is two TCP connections that end at this director, so no other director can continue it;
 * a template can move, and then a client that returns after a takeover reaches the server
 * it had. Shared by the single-loop plane and the workers plane (which keeps its templates
 * in shared memory); pure apart from the callbacks.
 */
import ipaddr from 'ipaddr.js';
import type { Dest } from '../../scheduling/types.js';
import type { ServiceSpec, SyncedFlow, SyncInstallRefusal, SyncInstallResult } from '../types.js';

/** Where a service is, as a synchronised flow names it. */
export function syncWhere(spec: ServiceSpec): { virtual: string; vport: number; fwmark: number } {
  return spec.endpoint.kind === 'fwmark'
    ? { virtual: spec.listen[0]?.address ?? '0.0.0.0', vport: 0, fwmark: spec.endpoint.mark }
    : { virtual: spec.listen[0]?.address ?? '0.0.0.0', vport: spec.listen[0]?.port ?? 0, fwmark: 0 };
}

/** The templates of one service as synchronised flows. */
export function templateFlows(spec: ServiceSpec, held: readonly { client: string; dest: Dest; remaining: number }[]): SyncedFlow[] {
  const where = syncWhere(spec);
  return held.map((h) => ({
    template: true, protocol: spec.protocol, family: h.dest.family, method: 'proxy' as const, client: h.client, cport: 0, ...where,
    server: h.dest.address, dport: h.dest.port, state: 'other' as const, timeout: Math.max(1, Math.round(h.remaining)),
  }));
}

export type AdoptOutcome = 'installed' | 'unchanged' | 'full' | 'no-server' | 'not-persistent';

/** The lookup key of a flow's service: its mark, or protocol, address and port. */
function flowWhere(f: SyncedFlow, virtual: string): string {
  return f.fwmark !== 0 ? `fw|${f.fwmark}` : `${f.protocol}|${virtual}|${f.vport}`;
}

/** The lookup keys a service answers to. */
function specWheres(s: ServiceSpec): string[] {
  const out = s.endpoint.kind === 'fwmark' ? [`fw|${s.endpoint.mark}`] : [];
  for (const l of s.listen) out.push(`${s.protocol}|${ipaddr.parse(l.address).toString()}|${l.port}`);
  return out;
}

/**
 * Templates for services this plane does not serve now — on a VRRP backup, a proxied
 * service on a VIP it does not hold is kept out of the plane — held until the service comes
 * (the takeover), then adopted before its listeners serve, or until they expire. Bounded:
 * the oldest goes first.
 */
export class ParkedTemplates {
  private readonly m = new Map<string, { flow: SyncedFlow; where: string; until: number }>();

  constructor(private readonly max = 65536) {}

  get size(): number {
    return this.m.size;
  }

  park(f: SyncedFlow, where: string, now: number): 'installed' | 'unchanged' {
    const key = `${where}|${f.client}`;
    const had = this.m.get(key);
    if (had && had.flow.server === f.server && had.flow.dport === f.dport && had.until - now > f.timeout / 2) return 'unchanged';
    this.m.delete(key);
    this.m.set(key, { flow: f, where, until: now + f.timeout });
    while (this.m.size > this.max) {
      const oldest = this.m.keys().next();
      if (oldest.done) break;
      this.m.delete(oldest.value);
    }
    return 'installed';
  }

  /** The parked templates of `spec` (taken out), each with the seconds it has left. */
  take(spec: ServiceSpec, now: number): { flow: SyncedFlow; remaining: number }[] {
    const wheres = new Set(specWheres(spec));
    const out: { flow: SyncedFlow; remaining: number }[] = [];
    for (const [k, e] of this.m) {
      if (!wheres.has(e.where)) continue;
      this.m.delete(k);
      if (e.until > now) out.push({ flow: e.flow, remaining: e.until - now });
    }
    return out;
  }

  sweep(now: number): void {
    for (const [k, e] of this.m) if (e.until <= now) this.m.delete(k);
  }
}

/**
 * Install synchronised templates: each goes to the service that listens where it names (or
 * has its mark), and is adopted there (`adopt` with the client spelled as the scheduler
 * spells it). Connections are refused as unsupported: they cannot move to this plane.
 */
export function installTemplates(
  flows: readonly SyncedFlow[], specs: Iterable<ServiceSpec>,
  adopt: (spec: ServiceSpec, client: string, server: string, dport: number, timeout: number) => AdoptOutcome,
  parked?: { readonly store: ParkedTemplates; readonly now: number },
): SyncInstallResult {
  const byWhere = new Map<string, ServiceSpec>();
  for (const s of specs) for (const w of specWheres(s)) byWhere.set(w, s);
  const refused = new Map<SyncInstallRefusal, number>();
  const refuse = (r: SyncInstallRefusal): void => { refused.set(r, (refused.get(r) ?? 0) + 1); };
  let installed = 0;
  let unchanged = 0;
  for (const f of flows) {
    if (!f.template) {
      refuse('unsupported');
      continue;
    }
    let client: string;
    let virtual: string;
    try {
      client = ipaddr.parse(f.client).toString();
      virtual = ipaddr.parse(f.virtual).toString();
    } catch {
      refuse('no-service');
      continue;
    }
    const where = flowWhere(f, virtual);
    const timeout = Math.max(1, Math.min(f.timeout, 86400 * 365));
    const spec = byWhere.get(where);
    if (!spec) {
      // Not served here now: parked for when it is (a backup's proxied VIP service).
      if (!parked) refuse('no-service');
      else if (parked.store.park({ ...f, client, virtual, timeout }, where, parked.now) === 'installed') installed++;
      else unchanged++;
      continue;
    }
    switch (adopt(spec, client, f.server, f.dport, timeout)) {
      case 'installed': installed++; break;
      case 'unchanged': unchanged++; break;
      case 'full': refuse('full'); break;
      case 'no-server': refuse('no-server'); break;
      case 'not-persistent': refuse('no-service'); break;
    }
  }
  return { installed, unchanged, refused };
}
