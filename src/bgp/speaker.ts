/**
 * BgpSpeaker: keeps a speaker (behind the Announcer boundary) announcing exactly the
 * routes `decideRoutes` wants, by keyed diff against what the speaker says it originates.
 *
 * Failure domain: everything here runs on the control plane's event loop, never blocks it
 * (every speaker call is awaited, one reconcile at a time, coalesced), and never stops the
 * daemon: a speaker that is missing, unreachable, crashes or refuses a path is reported
 * with a stable code, and the reconcile is retried with backoff (1 s doubling to 30 s).
 * Other routes are not held up by one the speaker refused.
 */
import { errorCode, errorMessage, reportFailure, supervise } from '../errors/index.js';
import type { BgpConfig, FulcrumConfig } from '../model/types.js';
import { decideRoutes, diffRoutes, speakerConfigOf, type AnnounceInputs, type RouteDecision } from './plan.js';
import { BgpErrorCode, type Announcer, type BgpRoute, type BgpSession, type SessionState } from './types.js';

export type BgpEvent =
  | { readonly type: 'bgp-session'; readonly neighbor: string; readonly from: SessionState; readonly to: SessionState }
  | { readonly type: 'bgp-route'; readonly prefix: string; readonly announced: boolean; readonly reason: string }
  | { readonly type: 'bgp-speaker'; readonly up: boolean; readonly name: string; readonly reason: string };

export interface BgpRouteStatus {
  readonly prefix: string;
  /** Wanted: the decision. */
  readonly wanted: boolean;
  /** What the speaker originates (as last read back). */
  readonly announced: boolean;
  readonly reason: string;
  readonly nextHop: string | null;
  readonly communities: readonly number[];
  readonly med: number | null;
  /** ms since the epoch of the last change of `announced`. */
  readonly since: number;
}

export interface BgpStatus {
  readonly enabled: boolean;
  readonly speaker: { readonly name: string; readonly up: boolean; readonly error: string | null; readonly localAs: number; readonly routerId: string } | null;
  readonly sessions: readonly BgpSession[];
  readonly routes: readonly BgpRouteStatus[];
  /** Announces and withdrawals the speaker accepted, and failures, since start. */
  readonly counters: { readonly announced: number; readonly withdrawn: number; readonly failures: number };
}

export interface BgpSpeakerOptions {
  /** A speaker for this fulcrum_bgp block (a new one when the block's speaker changes). */
  readonly makeAnnouncer: (cfg: BgpConfig) => Announcer;
  readonly inputs: () => AnnounceInputs;
  readonly onEvent?: ((e: BgpEvent) => void) | undefined;
  readonly now?: (() => number) | undefined;
  /** How often sessions are read (ms). */
  readonly pollMs?: number | undefined;
  readonly retryMs?: { readonly first: number; readonly max: number } | undefined;
  /** Whether an interface is up (administratively, with carrier), for track_interface. */
  readonly linkUp?: ((ifname: string) => boolean) | undefined;
}

const speakerKey = (b: BgpConfig): string => JSON.stringify(b.speaker);

export class BgpSpeaker {
  private config: BgpConfig | null = null;
  private full: FulcrumConfig | null = null;
  private announcer: Announcer | null = null;
  private announcerKey = '';
  private configured = '';
  private speakerUp = false;
  private speakerError: string | null = null;
  private sessionList: BgpSession[] = [];
  private held = new Map<string, BgpRoute>();
  private decisions = new Map<string, RouteDecision>();
  private readonly since = new Map<string, number>();
  private readonly counters = { announced: 0, withdrawn: 0, failures: 0 };
  private running: Promise<void> | null = null;
  private again = false;
  private withdrawing = false;
  private closed = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private pollTimer: NodeJS.Timeout | null = null;
  private backoff: number;
  /** track_interface entries found down at the last look. */
  private down: readonly string[] = [];

  constructor(private readonly o: BgpSpeakerOptions) {
    this.backoff = o.retryMs?.first ?? 1000;
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** A new configuration (start, reload, runtime change): reconcile to it. */
  setConfig(config: FulcrumConfig): Promise<void> {
    this.full = config;
    this.config = config.bgp ?? null;
    return this.kick();
  }

  /** Something the decisions depend on changed (quorum, the plane, VRRP): reconcile soon. */
  kick(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      try {
        do {
          this.again = false;
          await this.reconcile();
        } while (this.again && !this.closed);
      } finally {
        this.running = null;
      }
    })();
    return this.running;
  }

  /**
   * Withdraw every route and keep it so (a clean stop: routers move flows away while the
   * plane keeps forwarding). Resolves once the speaker has withdrawn them, or failed to.
   */
  async withdrawAll(): Promise<void> {
    this.withdrawing = true;
    await this.kick();
  }

  /** Stop: withdraw (when not done), close the speaker, stop the timers. */
  async stop(): Promise<void> {
    if (!this.withdrawing) await this.withdrawAll();
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pollTimer) clearTimeout(this.pollTimer);
    await this.running?.catch(() => undefined);
    const a = this.announcer;
    this.announcer = null;
    if (a) await a.close().catch((err: unknown) => this.fail(err, 'closing the speaker'));
  }

  status(): BgpStatus {
    const c = this.config;
    const routes: BgpRouteStatus[] = [];
    const prefixes = new Set([...this.decisions.keys(), ...this.held.keys()]);
    for (const prefix of [...prefixes].sort()) {
      const d = this.decisions.get(prefix);
      const h = this.held.get(prefix);
      const r = h ?? d?.route;
      routes.push({
        prefix, wanted: (d?.announce ?? false) && !this.withdrawing, announced: h !== undefined,
        reason: this.withdrawing ? 'the director is stopping' : d?.reason ?? 'not in the configuration',
        nextHop: r?.nextHop ?? null, communities: r?.communities ?? [], med: r?.med ?? null, since: this.since.get(prefix) ?? 0,
      });
    }
    return {
      enabled: c !== null,
      speaker: c && this.announcer ? { name: this.announcer.name, up: this.speakerUp, error: this.speakerError, localAs: c.localAs, routerId: c.routerId } : null,
      sessions: this.sessionList,
      routes,
      counters: { ...this.counters },
    };
  }

  private fail(err: unknown, what: string): void {
    this.counters.failures++;
    reportFailure('bgp', errorCode(err) ?? BgpErrorCode.SPEAKER, new Error(`${what}: ${errorMessage(err)}`, { cause: err }));
  }

  private setSpeaker(up: boolean, reason: string): void {
    const was = this.speakerUp;
    this.speakerUp = up;
    this.speakerError = up ? null : reason;
    if (was !== up && this.announcer) this.o.onEvent?.({ type: 'bgp-speaker', up, name: this.announcer.name, reason });
  }

  private async reconcile(): Promise<void> {
    const b = this.config;
    if (!b || !this.full) {
      // BGP removed from the configuration: withdraw and stop the speaker.
      if (this.announcer) {
        const a = this.announcer;
        this.announcer = null;
        this.configured = '';
        await a.close().catch((err: unknown) => this.fail(err, 'closing the speaker'));
        for (const prefix of this.held.keys()) this.o.onEvent?.({ type: 'bgp-route', prefix, announced: false, reason: 'fulcrum_bgp removed from the configuration' });
        this.held.clear();
        this.decisions.clear();
        this.sessionList = [];
      }
      return;
    }
    if (!this.announcer || this.announcerKey !== speakerKey(b)) {
      const old = this.announcer;
      this.announcer = this.o.makeAnnouncer(b);
      this.announcerKey = speakerKey(b);
      this.configured = '';
      if (old) await old.close().catch((err: unknown) => this.fail(err, 'closing the previous speaker'));
    }
    const a = this.announcer;
    this.down = this.downNow();
    const decisions = decideRoutes(this.full, { ...this.o.inputs(), downInterfaces: this.down });
    this.decisions = decisions;
    try {
      const sc = speakerConfigOf(b);
      const key = JSON.stringify(sc);
      if (this.configured !== key || !this.speakerUp) {
        await a.configure(sc);
        this.configured = key;
      }
      const held = await a.routes();
      this.setSpeaker(true, '');
      const want = this.withdrawing ? new Map([...decisions].map(([k, d]) => [k, { ...d, announce: false }])) : decisions;
      const delta = diffRoutes(held, want);
      const now = new Map(held.map((r) => [r.prefix, r]));
      let refused = 0;
      for (const prefix of delta.withdraw) {
        try {
          await a.withdraw(prefix);
          now.delete(prefix);
          this.counters.withdrawn++;
        } catch (err: unknown) {
          refused++;
          this.fail(err, `withdrawing ${prefix}`);
        }
      }
      for (const r of delta.announce) {
        try {
          await a.announce(r);
          now.set(r.prefix, r);
          this.counters.announced++;
        } catch (err: unknown) {
          refused++;
          this.fail(err, `announcing ${r.prefix}`);
        }
      }
      this.noteHeld(now, want);
      if (refused > 0) this.retry();
      else this.backoff = this.o.retryMs?.first ?? 1000;
      this.schedulePoll();
    } catch (err: unknown) {
      this.setSpeaker(false, errorMessage(err));
      this.fail(err, a.name);
      this.retry();
    }
  }

  private noteHeld(now: Map<string, BgpRoute>, want: ReadonlyMap<string, RouteDecision>): void {
    const t = this.now();
    for (const [prefix] of now) {
      if (!this.held.has(prefix)) {
        this.since.set(prefix, t);
        this.o.onEvent?.({ type: 'bgp-route', prefix, announced: true, reason: want.get(prefix)?.reason ?? '' });
      }
    }
    for (const [prefix] of this.held) {
      if (!now.has(prefix)) {
        this.since.set(prefix, t);
        this.o.onEvent?.({ type: 'bgp-route', prefix, announced: false, reason: this.withdrawing ? 'the director is stopping' : want.get(prefix)?.reason ?? 'not in the configuration' });
      }
    }
    this.held = now;
  }

  private retry(): void {
    if (this.retryTimer || this.closed) return;
    const wait = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.o.retryMs?.max ?? 30000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      supervise('bgp', this.kick());
    }, wait);
    this.retryTimer.unref();
  }

  private downNow(): string[] {
    const up = this.o.linkUp;
    return up ? (this.config?.trackInterfaces ?? []).filter((i) => !up(i)) : [];
  }

  /** Read the sessions every pollMs; a change is an event; a speaker that stopped answering is reconciled (restarted). */
  private schedulePoll(): void {
    if (this.pollTimer || this.closed) return;
    this.pollTimer = setTimeout(() => {
      this.pollTimer = null;
      supervise('bgp', this.poll());
    }, this.o.pollMs ?? 1000);
    this.pollTimer.unref();
  }

  private async poll(): Promise<void> {
    const a = this.announcer;
    if (!a || this.closed) return;
    // A tracked interface that went down or came back changes every decision.
    if (this.downNow().join(' ') !== this.down.join(' ')) await this.kick();
    try {
      const list = await a.sessions();
      const before = new Map(this.sessionList.map((s) => [s.neighbor, s.state]));
      for (const s of list) {
        const from = before.get(s.neighbor) ?? 'unknown';
        if (from !== s.state) this.o.onEvent?.({ type: 'bgp-session', neighbor: s.neighbor, from, to: s.state });
      }
      this.sessionList = list;
      // A speaker that lost its neighbours (an operator's gobgpd restarted) is configured again.
      const have = new Set(list.map((x) => x.neighbor));
      if (this.config?.neighbors.some((n) => !have.has(n.address))) {
        this.configured = '';
        await this.kick();
      }
      this.schedulePoll();
    } catch (err: unknown) {
      this.setSpeaker(false, errorMessage(err));
      this.fail(err, `reading sessions from ${a.name}`);
      this.sessionList = this.sessionList.map((s) => ({ ...s, state: 'unknown', upSince: null }));
      await this.kick();
    }
  }
}
