/**
 * The kernel plane's planner — pure. Given what the plane holds (PlaneState), the table it
 * should hold (the draft), which services changed, and what the host has answered so far
 * about devices, it returns either the host questions it still needs answered (a real
 * server's egress device or tunnel, the device holding an address, the route to one) or the
 * one nftables transaction to send and the state the plane moves to once the kernel took it.
 *
 * The executor (NftDataPlane.sync) asks the host, calls the planner again with the answers,
 * sends the transaction through the `Nft` boundary and commits the state — so everything that
 * decides what goes into the kernel is a function of its inputs, tested without a kernel.
 */
import type { Family, ForwardingMethod } from '../../model/types.js';
import { newCounters, RateEstimator } from '../stats.js';
import type { SpecTable } from '../table.js';
import type { Counters, ServerSpec, ServiceSpec, Timeouts } from '../types.js';
import {
  backendMark, buildModel, emptyModel, hex, sharedKeys, sharedModel, MAX_SERVER_INDEX, MAX_SERVICE_ID,
  type KernelModel, type PlaneServer, type PlaneService, type TableKind,
} from './model.js';
import { DEFAULT_LIMITS, demandChainCommands, elementDelta, ingressCommands, seededHash, tableCommands, timeoutCommands, type RulesetLimits } from './ruleset.js';
import { slotShape, slotTable, type MemberLoad } from './slots.js';

export const kindOf = (m: ForwardingMethod): TableKind => (m === 'nat' ? 'inet' : 'netdev');
export const familyOf = (s: ServiceSpec): Family => (s.endpoint.kind === 'group' ? (s.listen[0]?.family ?? 'inet') : s.endpoint.family);

export interface Backend {
  readonly service: number;
  /** The key of the service it belongs to (a backend never changes service). */
  readonly serviceKey: string;
  readonly index: number;
  spec: ServerSpec;
  device: string | null;
  trashed: boolean;
  readonly counters: Counters;
  readonly base: Counters;
  readonly est: RateEstimator;
  active: number;
  inactive: number;
  recent: number;
}

export interface ServiceState {
  readonly id: number;
  readonly counters: Counters;
  readonly est: RateEstimator;
  dropped: number;
  dropBase: number;
}

/** Each service's part of the applied model, and the ingress devices it was classified on. */
export interface Fragment {
  readonly svc: PlaneService;
  readonly model: KernelModel;
  ingress: { readonly key: string; readonly devices: readonly string[] } | null;
}

/** What the plane holds: the planner reads it and never changes it. */
export interface PlaneState {
  readonly services: ReadonlyMap<string, ServiceState>;
  /** Backends by mark (live and trashed). */
  readonly backends: ReadonlyMap<number, Backend>;
  /** Shared elements (`rs4 10.0.0.1`) → how many services use them. */
  readonly sharedRefs: ReadonlyMap<string, number>;
  readonly applied: KernelModel;
  readonly loaded: { readonly inet: boolean; readonly netdev: boolean };
  /** A leftover table's ids, while it is being taken over. */
  readonly adopted: { readonly ids: ReadonlyMap<string, number>; readonly backends: ReadonlyMap<string, number> } | null;
  readonly ingress: ReadonlySet<string>;
  readonly timeouts: Timeouts;
  readonly nextId: number;
  readonly fragments: ReadonlyMap<string, Fragment>;
  /** Adopted ids already given back to their services during this takeover. */
  readonly claimed: ReadonlySet<number>;
}

/** A question for the host: a real server's egress device (DR: the route; TUN: its tunnel), an address's device, a route. */
export type HostQuestion =
  | { readonly kind: 'egress'; readonly key: string; readonly server: ServerSpec }
  | { readonly kind: 'addr' | 'route'; readonly key: string; readonly address: string };

/** The host's answers by question key; an Error answer fails the plan. */
export type HostAnswers = ReadonlyMap<string, string | null | Error>;

export const egressKey = (r: ServerSpec): string => `egress ${r.method} ${r.address}`;
const lookKey = (kind: 'addr' | 'route', address: string): string => `${kind} ${address}`;

/** What the plane becomes once the kernel took the transaction. */
export interface SyncCommit {
  /** The whole new model (first load, takeover), or null: patch `applied` with `changed`. */
  readonly whole: KernelModel | null;
  readonly changed: readonly [KernelModel, KernelModel][];
  readonly loadedKinds: readonly TableKind[];
  readonly ingressAdded: readonly string[];
  readonly fragments: Map<string, Fragment>;
  readonly backends: Map<number, Backend>;
  readonly sharedRefs: Map<string, number>;
  readonly timeouts: Timeouts;
  readonly removed: readonly string[];
  /** Whole rebuilds forget services the draft no longer has. */
  readonly wholeRebuild: boolean;
  readonly built: readonly PlaneService[];
  readonly nextId: number;
  readonly claimed: ReadonlySet<number>;
}

export type SyncPlan =
  | { readonly need: readonly HostQuestion[] }
  | { readonly cmds: readonly string[]; readonly commit: SyncCommit };

export interface PlanSyncInput {
  readonly state: PlaneState;
  readonly draft: SpecTable;
  /** Services to rebuild; null: every one (first load, takeover). */
  readonly only: ReadonlySet<string> | null;
  readonly answers: HostAnswers;
  /** Seconds, for new counters' estimators. */
  readonly now: number;
  readonly limits?: RulesetLimits;
}

/** How an adopted service is recognised: its first listen key (as the svc maps hold it). */
export function listenKey(spec: ServiceSpec): string {
  if (spec.endpoint.kind === 'fwmark') return `fw${hex(spec.endpoint.mark)}`;
  const l = spec.listen[0];
  if (!l) return '';
  return l.port === 0 ? `${l.address} . ${spec.protocol}` : `${l.address} . ${spec.protocol} . ${l.port}`;
}

/** into := into − before + after (element maps and chains). */
export function mergeModel(into: KernelModel, before: KernelModel, after: KernelModel): void {
  for (const kind of ['inet', 'netdev'] as const) {
    const m = into[kind];
    for (const [set, els] of before[kind]) for (const k of els.keys()) m.get(set)?.delete(k);
    for (const [set, els] of after[kind]) {
      let t = m.get(set);
      if (!t) m.set(set, (t = new Map()));
      for (const [k, v] of els) t.set(k, v);
    }
    for (const c of after.chains[kind]) into.chains[kind].add(c);
  }
}

/** What a service's ingress devices depend on: its listen addresses and its DR servers' addresses. */
function ingressKey(s: PlaneService): string {
  return [...s.spec.listen.map((l) => `${l.address}@${l.device ?? ''}`), '|', ...s.servers.filter((r) => r.spec.method === 'dr').map((r) => r.spec.address), '|', ...(s.spec.arriveFrom ?? [])].join(' ');
}

function sameTimeouts(a: Timeouts, b: Timeouts): boolean {
  return a.tcp === b.tcp && a.tcpfin === b.tcpfin && a.udp === b.udp;
}

function newBackend(service: number, serviceKey: string, index: number, spec: ServerSpec, now: number): Backend {
  const counters = newCounters();
  return {
    service, serviceKey, index, spec, device: null, trashed: false, counters, base: newCounters(), est: new RateEstimator(counters, now),
    active: 0, inactive: 0, recent: 0,
  };
}

/** Plan bringing the kernel to `draft` (see the file comment). Throws when a host answer was an error. */
export function planSync(input: PlanSyncInput): SyncPlan {
  const { state: st, draft, only, answers, now } = input;
  const limits = input.limits ?? DEFAULT_LIMITS;
  const need = new Map<string, HostQuestion>();
  /** A host answer, or undefined (asked for) when there is none yet. */
  const answer = (q: HostQuestion): string | null | undefined => {
    if (!answers.has(q.key)) {
      need.set(q.key, q);
      return undefined;
    }
    const a = answers.get(q.key);
    if (a instanceof Error) throw a;
    return a ?? null;
  };
  // The next fragments and backends: copies of the applied ones with the touched services
  // rebuilt (whole: every service rebuilt). Untouched services cost nothing but the copy.
  const fragments = only === null ? new Map<string, Fragment>() : new Map(st.fragments);
  const pending = only === null ? new Map<number, Backend>() : new Map(st.backends);
  const refs = only === null ? new Map<string, number>() : new Map(st.sharedRefs);
  let nextId = st.nextId;
  const claimed = new Set(st.claimed);
  let taken: Set<number> | null = null;
  const takenIds = (): Set<number> => {
    if (taken) return taken;
    taken = new Set<number>();
    for (const x of st.services.values()) taken.add(x.id);
    for (const b of st.backends.values()) taken.add(b.service);
    for (const id of st.adopted?.ids.values() ?? []) taken.add(id);
    return taken;
  };
  const allocateService = (spec: ServiceSpec): number => {
    const adopted = st.adopted?.ids.get(listenKey(spec));
    if (adopted !== undefined && ![...st.services.values()].some((x) => x.id === adopted) && !claimed.has(adopted)) {
      claimed.add(adopted);
      return adopted;
    }
    const t = takenIds();
    for (let tries = 0; tries < MAX_SERVICE_ID; tries++) {
      const id = nextId;
      nextId = nextId >= MAX_SERVICE_ID ? 1 : nextId + 1;
      if (!t.has(id)) return id;
    }
    throw new Error('no free service id');
  };
  const allocateIndex = (id: number, r: ServerSpec, known: readonly Backend[], used: ReadonlySet<number>): number => {
    const adopted = st.adopted?.backends.get(`${id}|${r.address}|${r.port}`) ?? st.adopted?.backends.get(`${id}|${r.address}|`);
    const inUse = new Set([...known.map((b) => b.index), ...used]);
    if (adopted !== undefined && !inUse.has(adopted)) return adopted;
    for (let i = 1; i <= MAX_SERVER_INDEX; i++) if (!inUse.has(i)) return i;
    throw new Error(`service id ${id}: no free real-server index`);
  };
  const hasConnections = (mark: number): boolean => {
    const b = st.backends.get(mark);
    return b !== undefined && b.active + b.inactive > 0;
  };
  const built: PlaneService[] = [];
  const removed: string[] = [];
  const touchedShared = new Set<string>();
  const hashOf = (x: PlaneService): string => seededHash(slotShape(x.spec.scheduler, x.spec.schedFlags).hash, x.spec.hashSeed);
  const newIds = new Map<string, number>();
  for (const key of only ?? draft.services.keys()) {
    const old = st.fragments.get(key);
    // The service's backends as they stand (live and trashed), out of the next set until rebuilt.
    const known: Backend[] = [];
    if (old) {
      for (const r of old.svc.servers) {
        const m = backendMark(old.svc.id, r.index);
        const b = st.backends.get(m);
        if (b) known.push(b);
        pending.delete(m);
      }
      for (const k of sharedKeys(old.svc)) {
        refs.set(k, (refs.get(k) ?? 0) - 1);
        touchedShared.add(k);
      }
    }
    const entry = draft.services.get(key);
    if (!entry) {
      fragments.delete(key);
      removed.push(key);
      continue;
    }
    const spec = entry.spec;
    const id = st.services.get(key)?.id ?? newIds.get(key) ?? allocateService(spec);
    newIds.set(key, id);
    if (taken !== null) (taken as Set<number>).add(id);
    const kind = kindOf(spec.method);
    const servers: PlaneServer[] = [];
    const used = new Set<number>();
    for (const r of entry.servers.values()) {
      const prev = known.find((b) => b.spec.key === r.key && !b.trashed) ?? known.find((b) => b.spec.key === r.key);
      const index = prev?.index ?? allocateIndex(id, r, known, used);
      used.add(index);
      // A server keeps the device it was resolved to; a new one is resolved once per address.
      let device: string | null = null;
      if (kind === 'netdev') {
        device = prev && prev.device !== null && prev.spec.method === r.method ? prev.device : null;
        if (device === null) {
          const a = answer({ kind: 'egress', key: egressKey(r), server: r });
          if (a === undefined) continue;
          if (a === null) throw new Error(`real server ${r.key}: no route to it (DR needs the real server on a directly connected network)`);
          device = a;
        }
      }
      const b = prev ?? newBackend(id, key, index, r, now);
      pending.set(backendMark(id, index), { ...b, spec: r, device, trashed: false } as Backend);
      servers.push({ index, spec: r, device, trashed: false });
    }
    // DR/TUN servers that left keep forwarding their connections until those end.
    for (const b of known) {
      if (used.has(b.index)) continue;
      if (kind !== 'netdev' || !hasConnections(backendMark(id, b.index))) continue;
      used.add(b.index);
      pending.set(backendMark(id, b.index), { ...b, trashed: true } as Backend);
      servers.push({ index: b.index, spec: b.spec, device: b.device, trashed: true });
    }
    const live = servers.filter((x) => !x.trashed);
    const members = live.map((x) => ({ ref: backendMark(id, x.index), address: x.spec.address, port: x.spec.port, weight: x.spec.weight }));
    const load = new Map<number, MemberLoad>();
    for (const x of live) {
      const b = st.backends.get(backendMark(id, x.index));
      if (b) load.set(backendMark(id, x.index), { ref: backendMark(id, x.index), active: b.active, inactive: b.inactive, recent: b.recent, agentLoad: x.spec.agentLoad ?? Number.NaN });
    }
    const svc: PlaneService = {
      id, spec, family: familyOf(spec), kind, servers,
      slots: slotTable(spec.scheduler, spec.schedFlags, members, load),
      snat: kind === 'inet' ? spec.snat ?? null : null,
    };
    built.push(svc);
    fragments.set(key, { svc, model: buildModel([svc], hashOf), ingress: old?.ingress ?? null });
    for (const k of sharedKeys(svc)) {
      refs.set(k, (refs.get(k) ?? 0) + 1);
      touchedShared.add(k);
    }
  }
  // DR/TUN services are classified where their packets arrive: the device holding the VIP
  // and, for a VRRP address, the device VRRP puts it on; else the way to their servers.
  // Resolved again only when what they depend on changed (not for a weight change).
  const ingressOf = (x: PlaneService): string[] | undefined => {
    const out = new Set<string>();
    let missing = false;
    for (const l of x.spec.listen) {
      const d = answer({ kind: 'addr', key: lookKey('addr', l.address), address: l.address });
      if (d === undefined) missing = true;
      else if (d !== null && d !== 'lo') out.add(d);
      // A VRRP address: where it will be when MASTER, held here or not.
      if (l.device !== undefined) out.add(l.device);
    }
    if (missing) return undefined;
    if (out.size === 0) {
      for (const r of x.servers) {
        if (r.spec.method !== 'dr') continue;
        const d = answer({ kind: 'route', key: lookKey('route', r.spec.address), address: r.spec.address });
        if (d === undefined) missing = true;
        else if (d !== null) out.add(d);
      }
    }
    // Announced over BGP: the routers send its packets on the link towards them as well.
    for (const n of x.spec.arriveFrom ?? []) {
      const d = answer({ kind: 'route', key: lookKey('route', n), address: n });
      if (d === undefined) missing = true;
      else if (d !== null && d !== 'lo') out.add(d);
    }
    return missing ? undefined : [...out];
  };
  const ingress = new Set<string>();
  for (const x of built) {
    if (x.kind !== 'netdev') continue;
    const f = fragments.get(x.spec.key) as Fragment;
    const key = ingressKey(x);
    if (f.ingress?.key !== key) {
      const devices = ingressOf(x);
      if (devices === undefined) continue;
      f.ingress = { key, devices };
    }
    for (const d of f.ingress.devices) ingress.add(d);
  }
  if (need.size > 0) return { need: [...need.values()] };

  for (const [k, n] of refs) if (n <= 0) refs.delete(k);
  // The new whole model, and the delta: whole (first load, takeover) or per changed service.
  // Whole: a model of everything against the applied one. Per service: only the services
  // this change touched, and `applied` is patched once the kernel took the transaction.
  let whole: KernelModel | null = null;
  const changed: [KernelModel, KernelModel][] = [];
  const model = emptyModel();
  if (only === null) {
    whole = model;
    for (const f of fragments.values()) mergeModel(model, emptyModel(), f.model);
    mergeModel(model, emptyModel(), sharedModel(refs.keys()));
    changed.push([st.applied, model]);
  } else {
    for (const key of only) {
      const before = st.fragments.get(key)?.model ?? emptyModel();
      const after = fragments.get(key)?.model ?? emptyModel();
      for (const kind of ['inet', 'netdev'] as const) for (const c of after.chains[kind]) model.chains[kind].add(c);
      changed.push([before, after]);
    }
    // Shared elements: only those whose users went from none to some, or from some to none.
    const gone = [...touchedShared].filter((k) => st.sharedRefs.has(k) && !refs.has(k));
    const fresh = [...touchedShared].filter((k) => !st.sharedRefs.has(k) && refs.has(k));
    changed.push([sharedModel(gone), sharedModel(fresh)]);
  }
  const first = draft.services.values().next();
  const timeouts = first.done === true ? st.timeouts : first.value.spec.timeouts;
  const cmds: string[] = [];
  const need2 = { inet: st.loaded.inet || built.some((x) => x.kind === 'inet'), netdev: st.loaded.netdev || built.some((x) => x.kind === 'netdev') };
  for (const kind of ['inet', 'netdev'] as const) {
    if (need2[kind] && !st.loaded[kind]) for (const c of tableCommands(kind, timeouts, limits)) cmds.push(c);
    else if (kind === 'netdev' && st.loaded.netdev && !sameTimeouts(timeouts, st.timeouts)) for (const c of timeoutCommands(timeouts)) cmds.push(c);
    for (const ch of model.chains[kind]) if (!st.applied.chains[kind].has(ch)) for (const c of demandChainCommands(kind, ch)) cmds.push(c);
  }
  const ingressAdded = [...ingress].filter((d) => !st.ingress.has(d));
  for (const d of ingressAdded) for (const c of ingressCommands(d)) cmds.push(c);
  for (const [a, b] of changed) for (const c of [...elementDelta('inet', a.inet, b.inet), ...elementDelta('netdev', a.netdev, b.netdev)]) cmds.push(c);
  return {
    cmds,
    commit: {
      whole, changed, loadedKinds: (['inet', 'netdev'] as const).filter((k) => need2[k]), ingressAdded, fragments, backends: pending,
      sharedRefs: refs, timeouts, removed, wholeRebuild: only === null, built, nextId, claimed,
    },
  };
}
