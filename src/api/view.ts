/**
 * The daemon's state as the API, /metrics and the dashboard show it: the configuration in
 * effect joined with what the data plane holds (weights, connections, counters, rates) and
 * what the health board knows (in or out, since when, why). A real server the director took
 * out of the table (down, without inhibit_on_failure) is still listed, with why.
 */
import type { WorkerStatus } from '../dataplane/index.js';
import type { SyncStatus } from '../sync/index.js';
import type { BgpStatus } from '../bgp/index.js';
import type { InstanceStatus } from '../vrrp/index.js';
import type { Daemon, DrainStatus } from '../daemon/index.js';
import { ZERO_RATES, type Counters, type Rates, type ServerStats } from '../dataplane/index.js';
import { realServerKey, serviceKey } from '../model/keys.js';
import type { StatusBoard } from './status.js';

export type ServerState = 'up' | 'down' | 'drain' | 'quiescent' | 'pending';

export interface ServerView {
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly method: string;
  /** The weight in the data plane now (0 = no new connections); null = not in the table. */
  readonly weight: number | null;
  readonly configuredWeight: number;
  readonly state: ServerState;
  /** A drain in progress (fulcrum adm drain, the dashboard): removed once idle or at the deadline; undrain cancels it. */
  readonly draining: { readonly deadline: number; readonly started: number } | null;
  readonly sorry: boolean;
  readonly active: number;
  readonly inactive: number;
  readonly templates: number;
  readonly counters: Readonly<Counters>;
  readonly rates: Rates;
  readonly health: {
    readonly alive: boolean;
    readonly since: number;
    readonly reason: string;
    readonly transitions: number;
    readonly checkers: readonly { readonly type: string; readonly up: boolean; readonly at: number; readonly code?: string | undefined; readonly status?: number | undefined; readonly detail?: string | undefined; readonly latencyMs: number }[];
    readonly checks: readonly string[];
  };
  readonly agent: { readonly reply?: string | undefined; readonly load?: number | undefined } | null;
}

export interface ServiceView {
  readonly key: string;
  readonly protocol: string;
  readonly scheduler: string;
  readonly flags: readonly string[];
  readonly persistence: { readonly timeout: number; readonly netmask: string } | null;
  readonly method: string;
  /** In the data plane (false while refused, e.g. its VIP is not on this host). */
  readonly active: boolean;
  readonly quorum: number;
  /** Datagrams the data plane dropped (UDP). */
  readonly dropped: number;
  readonly counters: Readonly<Counters>;
  readonly rates: Rates;
  readonly servers: readonly ServerView[];
}

export type VrrpView = Omit<InstanceStatus, 'since'> & { readonly since: number };

export interface StatusView {
  readonly plane: string;
  readonly at: number;
  readonly services: readonly ServiceView[];
  /** VRRP instances as they run (`since` in ms since the epoch). */
  readonly vrrp: readonly VrrpView[];
  /** VRRP packets dropped, by reason (all instances and unknown VRIDs). */
  readonly vrrpDrops: Readonly<Record<string, number>>;
  /**
   * `changes`: entries laid over the file now; `applied`: runtime changes accepted since
   * start; `commits`: the durable saves that carried them (fewer when concurrent changes
   * were committed together).
   */
  readonly runtime: { readonly changes: number; readonly stale: readonly string[]; readonly where: string; readonly applied: number; readonly commits: number };
  readonly drains: readonly DrainStatus[];
  readonly reloads: { readonly ok: number; readonly failed: number; readonly lastOkAt: number; readonly lastFailedAt: number };
  /** The userspace proxy's worker threads (empty when it runs on the daemon's loop). */
  readonly workers: readonly WorkerStatus[];
  /** Connections lost with data-plane workers that died. */
  readonly lostConnections: number;
  /** Pipes the userspace relay holds for spliced bulk (two descriptors each). */
  readonly pipes: number;
  /** The XDP program's packets by outcome (empty without it). */
  readonly packets: Readonly<Record<string, number>>;
  /** Connection sync between directors (role 'stopped' when not configured). */
  readonly sync: SyncStatus;
  /** BGP: the speaker, its sessions and every route it can announce (enabled false without fulcrum_bgp). */
  readonly bgp: BgpStatus;
}

const NO_COUNTERS: Counters = { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };

export function statusView(daemon: Pick<Daemon, 'configuration' | 'plane' | 'runtime' | 'drains' | 'reloads' | 'vrrpStatus' | 'vrrpDrops' | 'sync' | 'bgp'>, board: StatusBoard, now = Date.now()): StatusView {
  const config = daemon.configuration;
  const stats = new Map(daemon.plane.stats().map((s) => [s.spec.key, s]));
  const drainList = daemon.drains();
  const drains = new Map(drainList.map((d) => [`${d.service}|${d.server}`, d]));
  const services: ServiceView[] = [];
  for (const vs of config?.virtualServers ?? []) {
    const key = serviceKey(vs);
    const st = stats.get(key);
    const inPlane = new Map<string, ServerStats>((st?.servers ?? []).map((x) => [x.spec.key, x]));
    const servers: ServerView[] = [];
    const view = (server: string, o: { address: string; port: number; method: string; configuredWeight: number; checks: readonly string[]; sorry: boolean; hasAgent: boolean }): ServerView => {
      const p = inPlane.get(server);
      inPlane.delete(server);
      const h = board.health(key, server);
      const alive = h?.alive ?? true;
      const weight = p ? p.spec.weight : null;
      const d = drains.size === 0 ? undefined : drains.get(`${key}|${server}`);
      const state: ServerState = !alive ? 'down' : d ? 'drain' : weight === null ? 'pending' : weight > 0 ? 'up' : o.configuredWeight === 0 ? 'quiescent' : 'drain';
      return {
        key: server, address: o.address, port: o.port, method: o.method, weight, configuredWeight: o.configuredWeight, state, sorry: o.sorry,
        draining: d ? { deadline: d.deadline, started: d.started } : null,
        active: p?.active ?? 0, inactive: p?.inactive ?? 0, templates: p?.persistent ?? 0,
        counters: p?.counters ?? NO_COUNTERS, rates: p?.rates ?? ZERO_RATES,
        health: {
          alive, since: h?.since ?? 0, reason: h?.reason ?? (o.checks.length > 0 ? 'no checks yet' : 'no health checks configured'),
          transitions: h?.transitions ?? 0, checkers: Object.values(h?.checkers ?? {}), checks: o.checks,
        },
        agent: o.hasAgent ? { reply: h?.agentReply, load: h?.agentLoad } : null,
      };
    };
    for (const rs of vs.realServers) {
      servers.push(view(realServerKey(rs), {
        address: rs.address, port: rs.port, method: rs.method, configuredWeight: rs.weight,
        checks: rs.checkers.map((c) => c.type), sorry: false, hasAgent: rs.agent !== undefined,
      }));
    }
    // What else the plane holds for this service: the sorry server.
    for (const [server, p] of [...inPlane]) {
      servers.push(view(server, { address: p.spec.address, port: p.spec.port, method: p.spec.method, configuredWeight: p.spec.weight, checks: [], sorry: true, hasAgent: false }));
    }
    services.push({
      key, protocol: vs.protocol, scheduler: vs.scheduler, flags: vs.schedFlags,
      persistence: vs.persistence ? { timeout: vs.persistence.timeout, netmask: vs.persistence.netmask } : null,
      method: vs.method, active: st !== undefined, quorum: vs.quorum, dropped: st?.dropped ?? 0,
      counters: st?.counters ?? NO_COUNTERS, rates: st?.rates ?? ZERO_RATES, servers,
    });
  }
  const rt = daemon.runtime;
  return {
    plane: daemon.plane.name,
    at: now,
    services,
    vrrp: daemon.vrrpStatus(),
    vrrpDrops: daemon.vrrpDrops(),
    runtime: {
      changes: rt.overlay.services.length + rt.overlay.servers.length, stale: rt.stale, where: rt.where,
      applied: rt.commits.changes, commits: rt.commits.commits,
    },
    drains: drainList,
    reloads: { ...daemon.reloads },
    workers: daemon.plane.workers?.() ?? [],
    lostConnections: daemon.plane.lostConnections?.() ?? 0,
    pipes: daemon.plane.pipes?.() ?? 0,
    packets: Object.fromEntries(daemon.plane.packetCounters?.() ?? []),
    sync: daemon.sync.status(),
    bgp: daemon.bgp.status(),
  };
}
