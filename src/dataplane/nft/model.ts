/**
 * The kernel model: every element the nftables ruleset should hold for a set of services,
 * as a pure function of them. The plane keeps the model it last applied and sends the kernel
 * only the difference (ruleset.ts `elementDelta`), so a weight change rewrites a few slots
 * and nothing else — the dynamic maps (connections, persistence templates, counters) are
 * the kernel's own and are never part of the model.
 *
 * Marks: a service has a 20-bit id and a real server of it a 12-bit index; the kernel
 * carries `id << 12 | index` in a packet's mark (DR/TUN) or its connection's mark (NAT).
 * Index 0 means "service known, real server not chosen yet".
 */
import type { Family } from '../../model/types.js';
import type { ServerSpec, ServiceSpec } from '../types.js';

export const SERVER_BITS = 12;
export const MAX_SERVER_INDEX = (1 << SERVER_BITS) - 1;
export const MAX_SERVICE_ID = (1 << 20) - 1;
export const SERVICE_MASK = 0xfffff000;

export const serviceMark = (id: number): number => (id << SERVER_BITS) >>> 0;
export const backendMark = (id: number, index: number): number => ((id << SERVER_BITS) | index) >>> 0;
export const hex = (n: number): string => `0x${n.toString(16).padStart(8, '0')}`;

/** nftables table kinds: NAT lives in an inet table (conntrack), DR/TUN in netdev (ingress). */
export type TableKind = 'inet' | 'netdev';
export const TABLE_NAME = 'fulcrum';

export interface PlaneServer {
  readonly index: number;
  readonly spec: ServerSpec;
  /** DR/TUN: the device packets leave through towards it (a tunnel device for TUN). */
  readonly device: string | null;
  /** Removed, but connections to it remain: kept forwarding, never chosen again (IPVS's trash). */
  readonly trashed: boolean;
}

export interface PlaneService {
  readonly id: number;
  readonly spec: ServiceSpec;
  readonly family: Family;
  readonly kind: TableKind;
  readonly servers: readonly PlaneServer[];
  /** The slot table (backend marks), built by slots.ts. */
  readonly slots: readonly number[];
  /** Full NAT: the director address connections are sourced from (NAT only). */
  readonly snat: string | null;
}

/** set name → element key → value ('' for a set). */
export type ElementMap = Map<string, Map<string, string>>;

export interface KernelModel {
  readonly inet: ElementMap;
  readonly netdev: ElementMap;
  /** Chains that must exist, by table (their rules are a function of the name). */
  readonly chains: { readonly inet: Set<string>; readonly netdev: Set<string> };
}

export const emptyModel = (): KernelModel => ({ inet: new Map(), netdev: new Map(), chains: { inet: new Set(), netdev: new Set() } });

const fam = (f: Family): '4' | '6' => (f === 'inet' ? '4' : '6');

/** The chain a slot hash uses, per family (`s4_rr`, `s6_sh`, …). */
export const schedChain = (family: Family, hash: string): string => `s${fam(family)}_${hash}`;
/**
 * Persistence chains: lookup (`p4_24_360`) and refresh (`u4_24_360`); a non-contiguous
 * IPv4 mask is written as 8 hex digits (`p4_ff00ff00_360`).
 */
export const persistChains = (family: Family, p: { readonly prefixLength: number; readonly mask?: string | undefined; readonly timeout: number }): { lookup: string; refresh: string } => {
  const m = p.mask !== undefined && family === 'inet'
    ? p.mask.split('.').map((o) => Number(o).toString(16).padStart(2, '0')).join('')
    : String(p.prefixLength);
  return { lookup: `p${fam(family)}_${m}_${p.timeout}`, refresh: `u${fam(family)}_${m}_${p.timeout}` };
};
/** DR/TUN egress: `o4_eth0` forwards to `be4` through eth0. */
export const egressChain = (family: Family, device: string): string => `o${fam(family)}_${device}`;

function put(m: ElementMap, set: string, key: string, value = ''): void {
  let s = m.get(set);
  if (!s) m.set(set, (s = new Map()));
  s.set(key, value);
}

/**
 * Every element for `services`. `hashOf(service)` names its slot chain (slots.ts slotShape).
 */
export function buildModel(services: readonly PlaneService[], hashOf: (s: PlaneService) => string): KernelModel {
  const model = emptyModel();
  for (const s of services) {
    const m = s.kind === 'inet' ? model.inet : model.netdev;
    const chains = model.chains[s.kind];
    const f = fam(s.family);
    const mark = hex(serviceMark(s.id));
    const spec = s.spec;
    if (spec.endpoint.kind === 'fwmark') {
      put(m, `svcfw${f}`, hex(spec.endpoint.mark), mark);
    } else {
      for (const l of spec.listen) {
        if (l.port === 0) put(m, `svc${f}any`, `${l.address} . ${spec.protocol}`, mark);
        else put(m, `svc${f}`, `${l.address} . ${spec.protocol} . ${l.port}`, mark);
      }
    }
    const sched = schedChain(s.family, hashOf(s));
    chains.add(sched);
    put(m, 'sched', mark, `jump ${sched}`);
    if (spec.persistence) {
      const pc = persistChains(s.family, spec.persistence);
      chains.add(pc.lookup);
      chains.add(pc.refresh);
      put(m, 'pgroup', mark, `jump ${pc.lookup}`);
      put(m, 'prefresh', mark, `jump ${pc.refresh}`);
    }
    if (spec.ops) put(m, 'ops', mark);
    if (s.snat) put(m, `snat${f}`, mark, s.snat);
    s.slots.forEach((ref, i) => put(m, 'slots', `${mark} . ${i}`, hex(ref)));
    for (const r of s.servers) {
      const b = hex(backendMark(s.id, r.index));
      if (!r.trashed) put(m, 'alive', b);
      if (s.kind === 'inet') {
        // Port 0 (a PCC or firewall-mark service, or a real server without a port): keep the client's port.
        if (r.spec.port === 0 || (spec.endpoint.kind === 'address' && spec.endpoint.port === 0)) put(m, `nat${f}a`, b, r.spec.address);
        else put(m, `nat${f}`, b, `${r.spec.address} . ${r.spec.port}`);
      } else if (r.device !== null) {
        put(m, `be${f}`, b, r.spec.address);
        const eg = egressChain(s.family, r.device);
        chains.add(eg);
        put(m, 'egress', b, `goto ${eg}`);
      }
    }
  }
  return model;
}

/**
 * Elements several services can share, so not part of a service's fragment: the addresses
 * of NAT real servers (`rs4`/`rs6`), which the director must not send redirects to. The
 * plane counts each one's users and adds or deletes it when that count leaves or reaches 0.
 */
export function sharedKeys(s: PlaneService): Set<string> {
  const out = new Set<string>();
  if (s.kind === 'inet') for (const r of s.servers) out.add(`rs${fam(s.family)} ${r.spec.address}`);
  return out;
}

/** The model holding the shared elements `keys` (as sharedKeys names them). */
export function sharedModel(keys: Iterable<string>): KernelModel {
  const model = emptyModel();
  for (const k of keys) {
    const sp = k.indexOf(' ');
    put(model.inet, k.slice(0, sp), k.slice(sp + 1));
  }
  return model;
}
