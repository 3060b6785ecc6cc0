/**
 * What the API, /metrics and the dashboard know beyond the data plane's counters: each real
 * server's health (in or out, since when, why — the probe's evidence), agent readings, the
 * last probe of each checker, and a bounded timeline of events (health transitions,
 * reloads, runtime changes, drains, quorum). Built by subscribing to the diagnostics
 * channels the daemon already publishes on; the fold itself (`StatusBoard.fold`) is pure
 * apart from the injected clock.
 */
import { VRRP_CHANNEL, type VrrpEvent } from '../vrrp/index.js';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { DAEMON_CHANNEL, type DaemonEvent } from '../daemon/index.js';
import { DIRECTOR_CHANNEL, type DirectorEvent } from '../director/index.js';
import { HEALTH_CHANNEL, type HealthEvent } from '../health/index.js';
import { FAILURE_CHANNEL, FailureCounts, type InternalFailure } from '../errors/index.js';
import { ServerMap } from '../model/server-map.js';

export interface CheckerStatus {
  readonly type: string;
  readonly up: boolean;
  readonly at: number;
  readonly code?: string | undefined;
  readonly status?: number | undefined;
  readonly detail?: string | undefined;
  readonly latencyMs: number;
}

export interface ServerHealth {
  alive: boolean;
  /** When it last went in or out of rotation (ms since the epoch); 0 = not since start. */
  since: number;
  reason: string;
  transitions: number;
  /** The agent's last reply and load (−1..100), if it has one. */
  agentReply?: string | undefined;
  agentLoad?: number | undefined;
  /** Last failure or transition per checker type (successes are only counted). */
  checkers: Record<string, CheckerStatus>;
}

export type TimelineKind = 'health' | 'check' | 'agent' | 'reload' | 'runtime' | 'drain' | 'quorum' | 'daemon' | 'vrrp' | 'failure' | 'sync' | 'bgp';

export interface TimelineEvent {
  readonly id: number;
  readonly at: number;
  readonly kind: TimelineKind;
  readonly severity: 'info' | 'warning' | 'error';
  readonly service?: string | undefined;
  readonly server?: string | undefined;
  readonly message: string;
  /** The probe's evidence for health events (code, status, detail, latency). */
  readonly evidence?: Readonly<Record<string, unknown>> | undefined;
}

/** Every probe, for the latency histogram. */
export type ProbeObserver = (e: { service: string; server: string; checker: string; ok: boolean; latencyMs: number }) => void;

export class StatusBoard {
  /** Health by service, then real server. */
  private readonly servers = new ServerMap<ServerHealth>();
  /** Internal failures by component and code (fulcrum_internal_failures_total). */
  readonly failures = new FailureCounts();
  /** When each component+code last reached the timeline: one entry per 10 s at most. */
  private readonly failureShown = new Map<string, number>();
  private readonly events: TimelineEvent[] = [];
  private nextId = 1;
  private readonly unsubs: (() => void)[] = [];
  onProbe: ProbeObserver | null = null;

  constructor(private readonly now: () => number = Date.now, private readonly capacity = 500) {}

  /** Subscribe to the daemon's channels; `close()` lets go. */
  attach(): this {
    const on = (name: string, fn: (m: unknown) => void): void => {
      subscribe(name, fn);
      this.unsubs.push(() => unsubscribe(name, fn));
    };
    on(HEALTH_CHANNEL, (m) => this.foldHealth(m as HealthEvent));
    on(DAEMON_CHANNEL, (m) => this.foldDaemon(m as DaemonEvent));
    on(DIRECTOR_CHANNEL, (m) => this.foldDirector(m as DirectorEvent));
    on(VRRP_CHANNEL, (m) => this.foldVrrp(m as VrrpEvent));
    on(FAILURE_CHANNEL, (m) => this.foldFailure(m as InternalFailure));
    return this;
  }

  close(): void {
    for (const u of this.unsubs.splice(0)) u();
  }

  /** Events after `since` (by id), oldest first. */
  timeline(since = 0, limit = this.capacity): TimelineEvent[] {
    const out = this.events.filter((e) => e.id > since);
    return out.slice(Math.max(0, out.length - limit));
  }

  health(service: string, server: string): ServerHealth | undefined {
    return this.servers.get(service, server);
  }

  private entry(service: string, server: string): ServerHealth {
    let h = this.servers.get(service, server);
    if (!h) {
      h = { alive: true, since: 0, reason: 'no checks yet', transitions: 0, checkers: {} };
      this.servers.set(service, server, h);
    }
    return h;
  }

  private push(e: Omit<TimelineEvent, 'id' | 'at'>): void {
    this.events.push({ id: this.nextId++, at: this.now(), ...e });
    if (this.events.length > this.capacity) this.events.splice(0, this.events.length - this.capacity);
  }

  foldHealth(e: HealthEvent): void {
    switch (e.type) {
      case 'probe':
        this.onProbe?.(e);
        return;
      case 'check': {
        const ev = e.evidence;
        const h = this.entry(e.service, e.server);
        h.checkers[e.checker] = { type: e.checker, up: e.up, at: this.now(), code: ev.code, status: ev.status, detail: ev.detail, latencyMs: Math.round(ev.latencyMs) };
        if (e.transition) {
          this.push({
            kind: 'check', severity: e.transition === 'down' ? 'warning' : 'info', service: e.service, server: e.server,
            message: `${e.checker} ${e.transition}${ev.detail ? `: ${ev.detail}` : ''}`,
            evidence: { checker: e.checker, code: ev.code, status: ev.status, detail: ev.detail, latencyMs: Math.round(ev.latencyMs) },
          });
        }
        return;
      }
      case 'server': {
        const h = this.entry(e.service, e.server);
        const changed = h.alive !== e.alive || h.since === 0;
        if (h.alive !== e.alive) h.transitions++;
        if (changed) h.since = this.now();
        h.alive = e.alive;
        h.reason = e.reason;
        this.push({
          kind: 'health', severity: e.alive ? 'info' : 'error', service: e.service, server: e.server,
          message: `${e.alive ? 'in rotation' : 'out of rotation'}${e.weight !== undefined ? ` (weight ${e.weight})` : ''}: ${e.reason}`,
        });
        return;
      }
      case 'agent': {
        const h = this.entry(e.service, e.server);
        h.agentReply = e.reply;
        h.agentLoad = e.effect.load;
        this.push({
          kind: 'agent', severity: e.error ? 'warning' : 'info', service: e.service, server: e.server,
          message: e.error ? `agent: no usable reply (${e.error})` : `agent said ${JSON.stringify(e.reply)}: ${e.effect.reason}`,
        });
        return;
      }
      case 'notify':
        return;
    }
  }

  foldDaemon(e: DaemonEvent): void {
    switch (e.type) {
      case 'started':
        return this.push({ kind: 'daemon', severity: 'info', message: `started: ${e.services} virtual service(s), ${e.plane} data plane` });
      case 'reloaded':
        return this.push({ kind: 'reload', severity: e.failed ? 'warning' : 'info', message: `configuration reloaded: ${e.ops} change(s)${e.failed ? `, ${e.failed} failed` : ''}` });
      case 'reload-rejected':
        return this.push({ kind: 'reload', severity: 'error', message: `reload rejected, running configuration kept: ${e.errors[0] ?? ''}${e.errors.length > 1 ? ` (+${e.errors.length - 1} more)` : ''}` });
      case 'runtime':
        return this.push({ kind: 'runtime', severity: 'info', message: `runtime change from ${e.source}: ${e.commands.join('; ')}` });
      case 'runtime-rejected':
        return this.push({ kind: 'runtime', severity: 'warning', message: `runtime change from ${e.source} refused: ${e.reason}` });
      case 'drain-started':
        return this.push({ kind: 'drain', severity: 'info', service: e.service, server: e.server, message: `draining until ${new Date(e.deadline).toISOString()}` });
      case 'drain-cancelled':
        return this.push({ kind: 'drain', severity: 'info', service: e.service, server: e.server, message: `drain cancelled by ${e.source}: weight ${e.weight} restored` });
      case 'drained':
        return this.push({ kind: 'drain', severity: e.outcome === 'deadline' ? 'warning' : 'info', service: e.service, server: e.server, message: `removed after draining (${e.outcome})` });
      case 'stopping':
        return this.push({ kind: 'daemon', severity: 'info', message: `stopping on ${e.signal}` });
      case 'bgp-session':
        return this.push({ kind: 'bgp', severity: e.to === 'established' ? 'info' : 'warning', message: `BGP neighbor ${e.neighbor}: ${e.from} → ${e.to}` });
      case 'bgp-route':
        return this.push({ kind: 'bgp', severity: e.announced ? 'info' : 'warning', message: `${e.announced ? 'announced' : 'withdrew'} ${e.prefix} (${e.reason})` });
      case 'bgp-speaker':
        return this.push({ kind: 'bgp', severity: e.up ? 'info' : 'error', message: `BGP speaker ${e.name} ${e.up ? 'up' : `down: ${e.reason}`}` });
      case 'sync-role':
        return this.push({ kind: 'sync', severity: 'info', message: `connection sync: ${e.from} → ${e.to} on ${e.interface}${e.instance ? ` (following ${e.instance})` : ''}` });
      case 'notice':
        return this.push({ kind: 'daemon', severity: 'warning', message: e.message });
      case 'api':
        return this.push({ kind: 'daemon', severity: 'info', message: `control API on ${[e.socket, e.url].filter(Boolean).join(' and ')}` });
      case 'stopped':
      case 'ready':
        return;
    }
  }

  foldDirector(e: DirectorEvent): void {
    if (e.type === 'quorum') {
      this.push({ kind: 'quorum', severity: e.up ? 'info' : 'error', service: e.service, message: `quorum ${e.up ? 'gained' : 'lost'}: live weight ${e.liveWeight}, quorum ${e.quorum}` });
    } else if (e.type === 'apply-failed') {
      this.push({ kind: 'daemon', severity: 'error', message: `data plane refused: ${e.failures.map((f) => f.message).join('; ')}` });
    }
  }

  /** Every failure is counted; the timeline gets one entry per component and code per 10 s. */
  foldFailure(f: InternalFailure): void {
    const at = this.now();
    this.failures.add(f, at);
    const k = `${f.component} ${f.code}`;
    if (at - (this.failureShown.get(k) ?? -Infinity) < 10_000) return;
    this.failureShown.set(k, at);
    this.push({ kind: 'failure', severity: 'error', message: `${f.component}: ${f.code}: ${f.message}` });
  }

  /** VRRP transitions, faults and refused packets (already rate-limited by the node). */
  foldVrrp(e: VrrpEvent): void {
    switch (e.type) {
      case 'transition':
        return this.push({ kind: 'vrrp', severity: e.to === 'FAULT' ? 'error' : e.from === 'MASTER' ? 'warning' : 'info',
          message: `${e.instance}: ${e.from} → ${e.to} (${e.reason}, priority ${e.priority}${e.master && e.to !== 'MASTER' ? `, master ${e.master}` : ''})` });
      case 'dropped':
        return this.push({ kind: 'vrrp', severity: 'warning', message: `${e.instance ?? e.interface ?? 'VRRP'}: dropped a packet from ${e.src}: ${e.reason} (${e.detail})` });
      case 'track':
        return this.push({ kind: 'vrrp', severity: e.faults.length > 0 ? 'error' : 'info', message: `${e.instance}: priority ${e.priority}${e.faults.length > 0 ? `, FAULT: ${e.faults.join('; ')}` : ''}` });
      case 'error':
        return this.push({ kind: 'vrrp', severity: 'error', message: `${e.instance}: ${e.message}` });
      case 'notify':
        if (!e.ok) this.push({ kind: 'vrrp', severity: 'warning', message: `${e.instance}: notify ${e.script}: ${e.outcome}` });
        return;
      case 'script':
        return;
    }
  }
}
