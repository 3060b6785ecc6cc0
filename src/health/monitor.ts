/**
 * The health monitor: runs every configured checker and server-agent probe, folds their
 * results into one observation per real server of each service, and hands changed
 * observations to the director (batched: many transitions in one turn cost one reconcile).
 *
 * A real server is alive while every one of its checkers is up and its agent (if any)
 * does not say otherwise. Its weight, in order of precedence: what the agent asks for
 * (HAProxy `weight:N`, `N%`, `drain`), the agent-load feedback (weighted schedulers), the
 * last dynamic weight a checker reported (misc_dynamic, FILE_CHECK dynamic), else the
 * configured weight.
 *
 * Reload keeps state by key: a checker whose configuration is unchanged keeps its runner
 * (state, schedule); new checkers start fresh (up, or down with alpha).
 */
import { supervise } from '../errors/index.js';
import { channel } from 'node:diagnostics_channel';
import { endpointKey, realServerKey } from '../model/keys.js';
import type { Checker as CheckerConfig, FulcrumConfig, RealServer, VirtualServer } from '../model/types.js';
import { observationKey, type Observation } from '../director/desired.js';
import { OwnedMemo } from '../model/memo.js';
import { AgentWeightFeedback } from '../scheduling/feedback.js';
import { agentEffect, foldAgent, INITIAL_AGENT_STATE, type AgentEffect, type AgentState, type AgentWord } from '../agents/reply.js';
import { probeAgent, type AgentProbeOutcome } from '../agents/probe.js';
import type { Notifier, NotifyReport } from '../notify/notifier.js';
import { ffiRawSockets, type RawSocketFactory } from '../sys/raw.js';
import type { Pinger } from './checkers/ping.js';
import { systemClock } from './clock.js';
import { createChecker, type CheckerFactory } from './factory.js';
import { CheckRunner, runnerTiming, type CheckReport } from './runner.js';
import type { Clock, ProbeResult, ProbeTarget } from './types.js';
import net from 'node:net';

/** diagnostics_channel name for HealthEvent messages. */
export const HEALTH_CHANNEL = 'fulcrum:health';
const events = channel(HEALTH_CHANNEL);

export type HealthEvent =
  /** A checker changed state, or failed (retrying or while down, with log_all_failures). */
  | { readonly type: 'check'; readonly service: string; readonly server: string; readonly checker: string; readonly up: boolean; readonly transition: 'up' | 'down' | null; readonly retrying: boolean; readonly evidence: ProbeResult }
  /** The real server's observation changed (in or out of rotation, or its weight). */
  | { readonly type: 'server'; readonly service: string; readonly server: string; readonly alive: boolean; readonly weight?: number | undefined; readonly reason: string }
  /** A server agent answered something that changed its state, or stopped answering. */
  | { readonly type: 'agent'; readonly service: string; readonly server: string; readonly reply: string; readonly words: readonly AgentWord[]; readonly effect: AgentEffect; readonly error?: string | undefined; readonly latencyMs: number }
  | { readonly type: 'notify'; readonly report: NotifyReport }
  /** Every probe's outcome (for latency metrics; not logged). */
  | { readonly type: 'probe'; readonly service: string; readonly server: string; readonly checker: string; readonly ok: boolean; readonly latencyMs: number };

/** Publish on the health channel (no work when nobody listens). */
export function publishHealth(e: HealthEvent): void {
  if (events.hasSubscribers) events.publish(e);
}

export type AgentProber = (target: ProbeTarget, send: string | undefined, timeoutMs: number) => Promise<AgentProbeOutcome>;

export interface HealthMonitorOptions {
  /** Receives changed observations, batched per turn of the event loop. */
  readonly observe: (batch: readonly { service: string; server: string; obs: Observation }[]) => void;
  readonly clock?: Clock;
  readonly createChecker?: CheckerFactory;
  readonly rawSockets?: RawSocketFactory;
  readonly probeAgent?: AgentProber;
  readonly notifier?: Notifier;
}

interface AgentEntry {
  readonly key: string;
  state: AgentState;
  /** The weight agent-load feedback settled on (weighted schedulers), if any. */
  feedbackWeight?: number | undefined;
  timer: unknown;
  stopped: boolean;
}

interface Entry {
  /** observationKey(service, server): its key in `entries`. */
  readonly key: string;
  readonly service: string;
  readonly server: string;
  /** The setConfig call that last walked it (see `generation`). */
  walked: number;
  rs: RealServer;
  vs: VirtualServer;
  readonly runners: Map<string, CheckRunner>;
  /** Dynamic weight last reported per checker key. */
  readonly weights: Map<string, number>;
  agent: AgentEntry | null;
  /** What was last handed to the director (null: nothing yet; it assumes the defaults). */
  sent: Observation | null;
  reason: string;
}

/** Key of a checker within its real server: its configuration (not its source line) and its occurrence. */
function checkerKeys(checkers: readonly CheckerConfig[]): string[] {
  const seen = new Map<string, number>();
  return checkers.map((c) => {
    const { loc: _loc, ...rest } = c;
    const k = JSON.stringify(rest);
    const n = (seen.get(k) ?? 0) + 1;
    seen.set(k, n);
    return `${k}#${n}`;
  });
}

/** A real server's entry, kept on its configuration object (owner: the monitor). */
const entryOf = new OwnedMemo<RealServer, Entry>('fulcrum.health.entry');

export class HealthMonitor {
  private readonly entries = new Map<string, Entry>();
  private readonly clock: Clock;
  private readonly factory: CheckerFactory;
  private readonly pingers = new Map<string, Pinger>();
  private readonly feedback = new AgentWeightFeedback();
  private readonly prober: AgentProber;
  private config: FulcrumConfig | null = null;
  private pending = new Map<string, { service: string; server: string; obs: Observation }>();
  private flushQueued = false;
  /** The services the last setConfig went through, with their entries' keys. */
  private seen = new Map<VirtualServer, readonly string[]>();
  /** Counts setConfig calls: an entry walked by this one has `walked` equal to it. */
  private generation = 0;
  private stopped = false;

  constructor(private readonly opts: HealthMonitorOptions) {
    this.clock = opts.clock ?? systemClock;
    this.factory = opts.createChecker ?? createChecker;
    this.prober = opts.probeAgent ?? probeAgent;
  }

  /** Start, or reload: keep what is unchanged, stop what is gone, start what is new. */
  setConfig(config: FulcrumConfig): void {
    if (this.stopped) return;
    this.config = config;
    const walk = ++this.generation;
    // Only services whose objects changed are walked: an entry can go only with a service
    // object the last call saw and this one does not, and stays if a new object names it.
    const seen = new Map<VirtualServer, readonly string[]>();
    for (const vs of config.virtualServers) {
      // A service object the last call saw whole (applyOverlay keeps every service a runtime
      // change does not touch): its entries are as they were, nothing to do.
      const same = this.seen.get(vs);
      if (same) {
        seen.set(vs, same);
        continue;
      }
      const service = endpointKey(vs.endpoint, vs.protocol);
      const keys: string[] = [];
      for (const rs of vs.realServers) {
        // Its entry, found without making its key when this object was walked before in
        // this service (a runtime change makes a new object of one server of a service;
        // the others are walked again).
        let e = entryOf.get(rs, this);
        let fresh = false;
        if (e === undefined || e.service !== service || this.entries.get(e.key) !== e) {
          const server = realServerKey(rs);
          const key = observationKey(service, server);
          e = this.entries.get(key);
          if (!e) {
            e = { key, service, server, walked: walk, rs, vs, runners: new Map(), weights: new Map(), agent: null, sent: null, reason: 'no checks yet' };
            this.entries.set(key, e);
            fresh = true;
          }
          entryOf.set(rs, this, e);
        }
        e.walked = walk;
        keys.push(e.key);
        // The same real server object: the same checkers and agent. A new service object
        // around it (another of its servers changed) matters only to the verdict's inputs.
        if (e.rs === rs && !fresh) {
          if (e.vs !== vs) {
            const was = e.vs;
            e.vs = vs;
            if (was.scheduler !== vs.scheduler) this.evaluate(e);
          }
          continue;
        }
        e.rs = rs;
        e.vs = vs;
        this.syncRunners(e);
        this.syncAgent(e);
        this.evaluate(e);
      }
      seen.set(vs, keys);
    }
    for (const [vs, keys] of this.seen) {
      if (seen.has(vs)) continue;
      for (const key of keys) {
        const e = this.entries.get(key);
        if (e === undefined || e.walked === walk) continue;
        this.stopEntry(e);
        this.entries.delete(key);
        this.feedback.forget(key);
      }
    }
    this.seen = seen;
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries.values()) this.stopEntry(e);
    this.entries.clear();
  }

  private stopEntry(e: Entry): void {
    for (const r of e.runners.values()) r.stop();
    e.runners.clear();
    if (e.agent) this.stopAgent(e.agent);
    e.agent = null;
  }

  private syncRunners(e: Entry): void {
    const keys = checkerKeys(e.rs.checkers);
    const keep = new Set(keys);
    for (const [k, r] of e.runners) {
      if (keep.has(k)) continue;
      r.stop();
      e.runners.delete(k);
      e.weights.delete(k);
    }
    e.rs.checkers.forEach((cfg, i) => {
      const k = keys[i] ?? '';
      if (e.runners.has(k)) return;
      const config = this.config;
      if (!config) return;
      const checker = this.factory(cfg, e.rs, e.vs, { rawSockets: this.opts.rawSockets ?? ffiRawSockets, pingers: this.pingers, config });
      const r = new CheckRunner(checker, runnerTiming(cfg.timing), this.clock, (rep) => this.onCheck(e, k, cfg, rep));
      e.runners.set(k, r);
      r.start();
    });
  }

  private onCheck(e: Entry, key: string, cfg: CheckerConfig, rep: CheckReport): void {
    publishHealth({ type: 'probe', service: e.service, server: e.server, checker: cfg.type, ok: rep.result.ok, latencyMs: rep.result.latencyMs });
    if (rep.result.weight !== undefined) e.weights.set(key, rep.result.weight);
    else if (rep.result.ok) e.weights.delete(key);
    if (rep.transition !== null || (!rep.result.ok && (rep.retrying || cfg.timing.logAllFailures))) {
      publishHealth({ type: 'check', service: e.service, server: e.server, checker: cfg.type, up: rep.state.up, transition: rep.transition, retrying: rep.retrying, evidence: rep.result });
    }
    if (rep.transition !== null) e.reason = `${cfg.type} ${rep.transition}: ${rep.result.detail ?? (rep.result.ok ? 'ok' : 'failed')}`;
    this.evaluate(e);
  }

  private syncAgent(e: Entry): void {
    const a = e.rs.agent;
    const key = a ? JSON.stringify({ ...a, loc: undefined }) : '';
    if (e.agent && e.agent.key === key) return;
    if (e.agent) this.stopAgent(e.agent);
    e.agent = null;
    if (!a) return;
    const entry: AgentEntry = { key, state: INITIAL_AGENT_STATE, timer: null, stopped: false };
    e.agent = entry;
    const address = a.connectIp ?? e.rs.address;
    const target: ProbeTarget = { family: net.isIPv6(address) ? 'inet6' : 'inet', address, port: a.port };
    const run = async (): Promise<void> => {
      entry.timer = null;
      if (entry.stopped) return;
      const out = await this.prober(target, a.send, a.timeout * 1000);
      if (entry.stopped) return;
      const before = entry.state;
      entry.state = foldAgent(before, out.parse);
      // (A replaced or stopped agent entry is `stopped`, so `e` still holds this agent.)
      const base = this.checkerWeight(e) ?? e.rs.weight;
      // Each reading is fed to the smoothing once, when it arrives (not on every re-evaluation).
      if (out.parse.ok && out.parse.reply.load !== undefined && out.parse.reply.load >= 0) {
        const fb = this.feedback.observe(observationKey(e.service, e.server), base, out.parse.reply.load, e.vs.scheduler);
        if (fb !== null) entry.feedbackWeight = fb;
      }
      if (JSON.stringify(before) !== JSON.stringify(entry.state) || !out.parse.ok) {
        publishHealth({
          type: 'agent', service: e.service, server: e.server, reply: out.raw, words: out.parse.ok ? out.parse.reply.words : out.parse.words,
          effect: agentEffect(entry.state, base, a.requireResponse), latencyMs: out.latencyMs,
          ...(out.parse.ok ? {} : { error: out.parse.error }),
        });
      }
      this.evaluate(e);
    };
    // Whatever one probe does (a prober that throws included), the next is scheduled: an
    // agent loop never stops for good; a failure is reported.
    const loop = (): void => {
      supervise('agent', run().finally(() => {
        if (!entry.stopped && entry.timer === null) entry.timer = this.clock.setTimer(loop, a.interval * 1000);
      }));
    };
    entry.timer = this.clock.setTimer(loop, Math.floor(this.clock.random() * a.interval * 1000));
  }

  private stopAgent(a: AgentEntry): void {
    a.stopped = true;
    if (a.timer !== null) this.clock.cancel(a.timer);
    a.timer = null;
  }

  /** Recompute the server's observation; queue it for the director when it changed. */
  private evaluate(e: Entry): void {
    let checkersUp = true;
    let down: string | null = null;
    for (const r of e.runners.values()) {
      if (!r.state.up) {
        checkersUp = false;
        down ??= `${r.checker.type} down: ${r.last?.detail ?? 'no success yet'}`;
      }
    }
    const checkerWeight = this.checkerWeight(e);
    const base = checkerWeight ?? e.rs.weight;
    const a = e.rs.agent;
    const effect = e.agent && a ? agentEffect(e.agent.state, base, a.requireResponse) : null;
    let weight = checkerWeight;
    if (effect?.weight !== undefined) weight = effect.weight;
    else if (effect?.load !== undefined && effect.load >= 0 && AgentWeightFeedback.applies(e.vs.scheduler)) weight = e.agent?.feedbackWeight ?? weight;
    const alive = checkersUp && (effect?.alive ?? true);
    const reason = !checkersUp ? down ?? 'checker down' : effect?.reason ?? e.reason;
    const obs: Observation = {
      alive,
      ...(weight !== undefined ? { weight } : {}),
      ...(effect?.load !== undefined ? { load: effect.load } : {}),
      ...(effect?.maxconn !== undefined ? { maxconn: effect.maxconn } : {}),
    };
    // Before the first observation the director assumes alive (down with alpha).
    const prev: Observation = e.sent ?? { alive: !this.startsDown(e) };
    if (prev.alive === obs.alive && prev.weight === obs.weight && prev.load === obs.load && prev.maxconn === obs.maxconn) return;
    e.sent = obs;
    e.reason = reason;
    this.queue(e, obs);
    if (alive !== prev.alive || weight !== prev.weight) {
      publishHealth({ type: 'server', service: e.service, server: e.server, alive, weight, reason });
    }
    if (alive !== prev.alive && this.config) {
      this.opts.notifier?.serverChanged({ service: e.service, server: e.server, up: alive, reason }, e.rs, this.config.global);
    }
  }

  /** The dynamic weight the checkers last asked for (misc_dynamic, FILE_CHECK dynamic). */
  private checkerWeight(e: Entry): number | undefined {
    let w: number | undefined;
    for (const x of e.weights.values()) w = x;
    return w;
  }

  /** keepalived's alpha: the server is out until its checkers first succeed. */
  private startsDown(e: Entry): boolean {
    return e.rs.alpha && (e.rs.checkers.length > 0 || e.rs.agent !== undefined);
  }

  private queue(e: Entry, obs: Observation): void {
    this.pending.set(observationKey(e.service, e.server), { service: e.service, server: e.server, obs });
    if (this.flushQueued) return;
    this.flushQueued = true;
    setImmediate(() => {
      this.flushQueued = false;
      const batch = [...this.pending.values()];
      this.pending = new Map();
      if (batch.length > 0 && !this.stopped) this.opts.observe(batch);
    });
  }
}

