/**
 * Desired state: what the data plane should hold, from the configuration, the latest
 * observations (health checks, server agents) and the director's policy state (quorum).
 * Pure — no clock, no I/O.
 *
 * Server policy, after keepalived's check/ipwrapper.c (one row per real server):
 *
 * | checkers/agent | observed      | inhibit_on_failure | in the data plane          |
 * |----------------|---------------|--------------------|----------------------------|
 * | none           | (ignored)     | —                  | yes, configured weight     |
 * | some           | none yet      | —                  | as alive, unless `alpha`   |
 * | some           | alive         | —                  | yes, observed or config weight |
 * | some           | dead          | no                 | removed                    |
 * | some           | dead          | yes                | yes, weight 0 (quiescent)  |
 *
 * Service policy (quorum, keepalived's update_quorum_state): the service is up while the
 * weight of its live servers is ≥ quorum; it goes up at quorum + hysteresis and down below
 * quorum − hysteresis. While down with a sorry_server, the live servers are taken out and
 * the sorry server (weight 1) is put in; `sorry_server_inhibit` keeps the sorry server
 * present at weight 0 while the service is up.
 */
import * as D from '../model/defaults.js';
import { endpointKey, realServerKey } from '../model/keys.js';
import { expandRange } from '../model/address.js';
import { OwnedMemo } from '../model/memo.js';
import { instanceAddresses, xdpRefusal, type Family, type FulcrumConfig, type KernelPlaneChoice, type RealServer, type VirtualServer, type VirtualServerGroup } from '../model/types.js';
import { DEFAULT_TIMEOUTS, type ListenAddress, type ServerSpec, type ServiceSpec, type Timeouts } from '../dataplane/types.js';

/** What the health checkers and agents last said about one real server of one service. */
export interface Observation {
  readonly alive: boolean;
  /** A dynamic weight (MISC_CHECK misc_dynamic, FILE_CHECK, agent feedback). */
  readonly weight?: number | undefined;
  /** The server agent's load (−1..100) for the agent scheduler. */
  readonly load?: number | undefined;
  /** An upper connection threshold from the agent (HAProxy `maxconn:N`; 0 = none). */
  readonly maxconn?: number | undefined;
}

/** Observations by `${serviceKey}|${realServerKey}`. */
export type Observations = ReadonlyMap<string, Observation>;

export function observationKey(service: string, server: string): string {
  return `${service}|${server}`;
}

export interface DesiredService {
  readonly spec: ServiceSpec;
  readonly servers: ReadonlyMap<string, ServerSpec>;
  /** Quorum state this computation used or reached. */
  readonly quorumUp: boolean;
  /** Sum of the weights of the live servers. */
  readonly liveWeight: number;
  readonly vs: VirtualServer;
}

export type Desired = ReadonlyMap<string, DesiredService>;

/** Group ranges expanded past this many addresses are refused (a typo like /8). */
export const MAX_GROUP_ADDRESSES = 4096;

export function listenAddresses(vs: VirtualServer, groups: ReadonlyMap<string, VirtualServerGroup>, vrrp: ReadonlyMap<string, string> = new Map()): ListenAddress[] {
  const ep = vs.endpoint;
  const at = (family: Family, address: string, port: number): ListenAddress => {
    const device = vrrp.get(address);
    return device === undefined ? { family, address, port } : { family, address, port, device };
  };
  if (ep.kind === 'address') return [at(ep.family, ep.address, ep.port)];
  if (ep.kind === 'fwmark') return [];
  const out: ListenAddress[] = [];
  for (const m of groups.get(ep.name)?.members ?? []) {
    if (m.kind !== 'range') continue;
    for (const a of expandRange(m.first, m.last, MAX_GROUP_ADDRESSES) ?? []) out.push(at(m.family, a, m.port));
  }
  return out;
}

/**
 * The device each VRRP-managed address goes on when its instance is MASTER: its own `dev`,
 * else the instance's interface (addresses are canonical text, as the config holds them).
 */
export function vrrpDevices(cfg: FulcrumConfig): Map<string, string> {
  const out = new Map<string, string>();
  for (const i of cfg.vrrpInstances) {
    for (const v of instanceAddresses(i)) {
      const dev = v.dev ?? i.interface;
      if (dev !== undefined && !out.has(v.address)) out.set(v.address, dev);
    }
  }
  return out;
}

/** lvs_timeouts from global_defs, ipvsadm's defaults where unset (or 0). */
export function timeoutsOf(cfg: FulcrumConfig): Timeouts {
  const t = cfg.global.lvsTimeouts;
  return {
    tcp: t.tcp || DEFAULT_TIMEOUTS.tcp,
    tcpfin: t.tcpfin || DEFAULT_TIMEOUTS.tcpfin,
    udp: t.udp || DEFAULT_TIMEOUTS.udp,
  };
}

export function serviceSpecOf(vs: VirtualServer, groups: ReadonlyMap<string, VirtualServerGroup>, timeouts: Timeouts, vrrp: ReadonlyMap<string, string> = new Map(), neighbors: readonly string[] = [], hashSeed?: number, dataplane?: KernelPlaneChoice): ServiceSpec {
  const xdp = (vs.dataplane ?? dataplane) === 'xdp' && xdpRefusal(vs.endpoint, vs.protocol, vs.method) === null;
  return {
    key: endpointKey(vs.endpoint, vs.protocol),
    endpoint: vs.endpoint,
    protocol: vs.protocol,
    listen: listenAddresses(vs, groups, vrrp),
    scheduler: vs.scheduler,
    schedFlags: vs.schedFlags,
    persistence: vs.persistence,
    method: vs.method,
    ops: vs.ops,
    ...(vs.fullnatSource !== undefined ? { snat: vs.fullnatSource } : {}),
    timeouts,
    ...(vs.announce && neighbors.length > 0 ? { arriveFrom: neighbors } : {}),
    ...(hashSeed !== undefined && hashSeed !== D.HASH_SEED ? { hashSeed } : {}),
    ...(xdp ? { plane: 'xdp' as const } : {}),
  };
}

export function serverSpecOf(rs: RealServer, weight: number, obs?: Observation): ServerSpec {
  return {
    key: realServerKey(rs), family: rs.family, address: rs.address, port: rs.port, weight, method: rs.method,
    uthreshold: obs?.maxconn ?? rs.uthreshold, lthreshold: rs.lthreshold, proxyProtocol: rs.proxyProtocol,
    agentLoad: obs?.load,
  };
}

/** Whether a real server is up, and its weight, from the table above. */
export function serverLiveness(rs: RealServer, obs: Observation | undefined): { alive: boolean; weight: number } {
  if (rs.checkers.length === 0 && rs.agent === undefined) return { alive: true, weight: rs.weight };
  if (obs === undefined) return { alive: !rs.alpha, weight: rs.weight };
  return { alive: obs.alive, weight: obs.weight ?? rs.weight };
}

/** The next quorum state from the live weight (hysteresis band around `quorum`). */
export function nextQuorumState(vs: Pick<VirtualServer, 'quorum' | 'hysteresis'>, liveWeight: number, wasUp: boolean | undefined): boolean {
  if (wasUp === undefined) return liveWeight >= vs.quorum;
  if (wasUp) return !(liveWeight < vs.quorum - vs.hysteresis);
  return liveWeight >= vs.quorum + vs.hysteresis;
}

export interface DesiredInput {
  readonly config: FulcrumConfig;
  readonly observations: Observations;
  /** Quorum state per service key from the previous computation. */
  readonly quorum: ReadonlyMap<string, boolean>;
  /** Specs kept from earlier computations (see DesiredMemo); the result is the same without it. */
  readonly memo?: DesiredMemo;
  /**
   * A number per service key that changes whenever an observation of one of its servers
   * changes (the director counts them). With it, the memo hands back a whole service's
   * result when nothing it depends on changed; without it, every service is computed.
   */
  readonly observed?: ReadonlyMap<string, number>;
}

/** What a service's spec depends on besides its VirtualServer: parts of the configuration. */
interface SpecContext {
  readonly groups: ReadonlyMap<string, VirtualServerGroup>;
  readonly timeouts: Timeouts;
  readonly vrrp: ReadonlyMap<string, string>;
  readonly neighbors: readonly string[];
}

const SERVICE_SPECS = new OwnedMemo<VirtualServer, ServiceSpec>('fulcrum.desired.service');
const SERVICE_RESULTS = new OwnedMemo<VirtualServer, { readonly observed: number; readonly was: boolean | undefined; readonly out: DesiredService }>('fulcrum.desired.result');
const SERVER_SPECS = new OwnedMemo<RealServer, { readonly weight: number; readonly obs: Observation | undefined; readonly spec: ServerSpec }>('fulcrum.desired.server');

/**
 * Specs computed before, kept by the identity of what they were computed from. A runtime
 * change replaces only the objects it touches (applyOverlay keeps every other VirtualServer
 * and RealServer as it was), so a one-weight change at 1,000 real servers computes one
 * server spec and hands the rest back unchanged — the same objects the plane holds, which
 * the keyed diff then compares by identity. Entries are kept on the configuration objects
 * (OwnedMemo: they die with them, young; a WeakMap promoted them) and belong to this memo
 * and its context; a reload, whose objects are all new, computes everything again.
 */
export class DesiredMemo {
  private from: readonly unknown[] = [];
  private ctx: SpecContext | null = null;
  /** What the service and result entries belong to: a new object when the context changes. */
  private generation: object = {};

  /** The context for `cfg`, the same object while the parts it is made of are the same. */
  context(cfg: FulcrumConfig): SpecContext {
    const from = [cfg.virtualServerGroups, cfg.global, cfg.vrrpInstances, cfg.bgp];
    if (this.ctx && from.every((x, i) => x === this.from[i])) return this.ctx;
    this.from = from;
    this.generation = {};
    this.ctx = {
      groups: new Map(cfg.virtualServerGroups.map((g) => [g.name, g])),
      timeouts: timeoutsOf(cfg),
      vrrp: vrrpDevices(cfg),
      neighbors: cfg.bgp?.neighbors.map((n) => n.address) ?? [],
    };
    return this.ctx;
  }

  service(vs: VirtualServer, cfg: FulcrumConfig): ServiceSpec {
    const ctx = this.context(cfg);
    let spec = SERVICE_SPECS.get(vs, this.generation);
    if (!spec) {
      spec = serviceSpecOf(vs, ctx.groups, ctx.timeouts, ctx.vrrp, ctx.neighbors, cfg.global.hashSeed, cfg.global.dataplane);
      SERVICE_SPECS.set(vs, this.generation, spec);
    }
    return spec;
  }

  /**
   * A service's result computed before from the same service object and observations, or
   * null. The quorum state it started from may also be the one it reached: that state is a
   * fixed point of nextQuorumState for the same live weight, so the result is the same.
   */
  result(vs: VirtualServer, observed: number, was: boolean | undefined): DesiredService | null {
    const r = SERVICE_RESULTS.get(vs, this.generation);
    return r && r.observed === observed && (r.was === was || r.out.quorumUp === was) ? r.out : null;
  }

  keep(vs: VirtualServer, observed: number, was: boolean | undefined, out: DesiredService): void {
    SERVICE_RESULTS.set(vs, this.generation, { observed, was, out });
  }

  server(rs: RealServer, weight: number, obs: Observation | undefined): ServerSpec {
    const m = SERVER_SPECS.get(rs, this);
    if (m && m.weight === weight && m.obs === obs) return m.spec;
    const spec = serverSpecOf(rs, weight, obs);
    SERVER_SPECS.set(rs, this, { weight, obs, spec });
    return spec;
  }
}

export function computeDesired(input: DesiredInput): Desired {
  const cfg = input.config;
  const memo = input.memo ?? new DesiredMemo();
  const out = new Map<string, DesiredService>();
  const whole = input.memo !== undefined && input.observed !== undefined;
  for (const vs of cfg.virtualServers) {
    const spec = memo.service(vs, cfg);
    const was = input.quorum.get(spec.key);
    const observed = input.observed?.get(spec.key) ?? 0;
    const kept = whole ? memo.result(vs, observed, was) : null;
    if (kept) {
      out.set(spec.key, kept);
      continue;
    }
    const live: ServerSpec[] = [];
    const inhibited: ServerSpec[] = [];
    let liveWeight = 0;
    for (const rs of vs.realServers) {
      const obs = input.observations.size === 0 ? undefined : input.observations.get(observationKey(spec.key, realServerKey(rs)));
      const { alive, weight } = serverLiveness(rs, obs);
      if (alive) {
        live.push(memo.server(rs, weight, obs));
        liveWeight += weight;
      } else if (rs.inhibitOnFailure) {
        inhibited.push(memo.server(rs, 0, undefined));
      }
    }
    const quorumUp = nextQuorumState(vs, liveWeight, was);
    const servers = new Map<string, ServerSpec>();
    const sorry = vs.sorryServer;
    const useSorry = !quorumUp && sorry !== undefined;
    if (!useSorry) for (const s of live) servers.set(s.key, s);
    for (const s of inhibited) servers.set(s.key, s);
    if (sorry && (useSorry || sorry.inhibit)) {
      const s: ServerSpec = {
        key: realServerKey(sorry), family: sorry.family, address: sorry.address, port: sorry.port,
        weight: useSorry ? 1 : 0, method: sorry.method, uthreshold: 0, lthreshold: 0,
      };
      servers.set(s.key, s);
    }
    const result: DesiredService = { spec, servers, quorumUp, liveWeight, vs };
    if (whole) memo.keep(vs, observed, was, result);
    out.set(spec.key, result);
  }
  return out;
}
