/**
 * The composition root: load the configuration, build the data plane, the director and the
 * health monitor (checkers and agent probes → observations → director), and run the
 * lifecycle — start, reload (SIGHUP), graceful stop (SIGTERM/SIGINT).
 *
 * A reload re-reads the file; a configuration with errors is rejected (every error
 * logged with its file:line:col) and the running one stays. A good one is handed to the
 * director, which applies only the differences, so untouched services keep their
 * connections and listeners.
 */
import { loadKeepalivedConfig } from '../config/index.js';
import { DiagnosticCode, formatDiagnostic, formatLocation } from '../errors/index.js';
import { serviceKey } from '../model/keys.js';
import type { FulcrumConfig } from '../model/types.js';
import { Director } from '../director/index.js';
import { DataPlaneErrorCode, type DataPlane, type OpFailure, type ServiceSpec } from '../dataplane/index.js';
import { systemClock } from '../health/index.js';
import { ffiHostNetwork } from '../sys/index.js';
import { addressKey, vrrpAddresses, VrrpNode, type InstanceStatus, type VrrpNodeOptions } from '../vrrp/index.js';
import { HealthMonitor, publishHealth, type HealthMonitorOptions } from '../health/index.js';
import { ScriptAndMailNotifier, smtpMailer } from '../notify/index.js';
import { publishDaemon } from './events.js';
import { METHOD_FLAG, serviceIdKey, type IpvsCommand } from '../config/ipvsadm/index.js';
import { formatHostPort } from '../model/address.js';
import {
  applyOverlay, changesTable, EMPTY_OVERLAY, ipvsView, MemoryRuntimeStore, recordCommand,
  type OverlayResult, type RuntimeOverlay, type RuntimeStore,
} from '../runtime/index.js';

export interface DaemonOptions {
  readonly configFile: string;
  readonly configId?: string | undefined;
  readonly plane: DataPlane;
  /** Milliseconds a graceful stop lets connections finish. */
  readonly drainMs: number;
  /** Milliseconds between retries of ops the data plane refused (a VIP not yet present). */
  readonly retryMs?: number;
  /** Health-check wiring (clock, fakes) for tests; the defaults are the real ones. */
  readonly health?: Partial<Omit<HealthMonitorOptions, 'observe'>>;
  /** Where runtime changes are kept (default: memory only — lost on exit). */
  readonly runtime?: RuntimeStore;
  /** Milliseconds between drain progress checks (default 1000). */
  readonly drainCheckMs?: number;
  /** VRRP wiring (host network, clock, script runner) for tests; the defaults are the real ones. */
  readonly vrrp?: Partial<Omit<VrrpNodeOptions, 'onHeldChange'>>;
}

/** A runtime change's outcome: refused (nothing changed) or applied. */
export type ChangeOutcome =
  | { readonly ok: true; readonly ops: number; readonly failed: readonly string[] }
  | { readonly ok: false; readonly reason: string; readonly status: 'conflict' | 'not-found' | 'unavailable'; readonly index?: number };

/** A drain in progress, with what is still holding it. */
export interface DrainStatus {
  readonly service: string;
  readonly server: string;
  readonly started: number;
  readonly deadline: number;
  readonly active: number;
  readonly inactive: number;
  readonly templates: number;
}

export interface StartOutcome {
  readonly ok: boolean;
  /** Human-readable reasons when not ok (already located). */
  readonly errors: readonly string[];
}

/** Why a configuration cannot run on this data plane (method it lacks), one line per service. */
export function planeMismatches(config: FulcrumConfig, plane: DataPlane): string[] {
  const out: string[] = [];
  for (const vs of config.virtualServers) {
    const methods = new Set([vs.method, ...vs.realServers.map((r) => r.method)]);
    for (const m of methods) {
      if (plane.methods.includes(m)) continue;
      const where = vs.loc ? `${formatLocation(vs.loc)}: ` : '';
      out.push(`${where}virtual server ${serviceKey(vs)} uses ${m.toUpperCase()} forwarding, which needs the kernel (nftables) data plane; ` +
        `this director runs the ${plane.name} data plane (${plane.methods.map((x) => x.toUpperCase()).join(', ')}). Use lb_kind PROXY to run without kernel privileges.`);
    }
  }
  return out;
}

export class Daemon {
  readonly director: Director;
  readonly health: HealthMonitor;
  private retryTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  private stopping: Promise<void> | null = null;
  /** The configuration file as last loaded (without runtime changes). */
  private base: FulcrumConfig | null = null;
  /** The configuration in effect: the file with the runtime overlay laid over it. */
  private config: FulcrumConfig | null = null;
  private overlay: RuntimeOverlay = EMPTY_OVERLAY;
  private staleEntries: readonly string[] = [];
  private readonly store: RuntimeStore;
  /** Reloads and runtime changes, one at a time, in arrival order. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The VRRP instances, once a configuration has any. */
  private vrrpNode: VrrpNode | null = null;
  /** Set as stop() begins: VRRP's goodbye must not reopen or reshuffle services. */
  private closing = false;
  /** Reload outcomes since start (for metrics). */
  readonly reloads = { ok: 0, failed: 0, lastOkAt: 0, lastFailedAt: 0 };

  constructor(private readonly opts: DaemonOptions) {
    this.store = opts.runtime ?? new MemoryRuntimeStore();
    const notifier = opts.health?.notifier ?? new ScriptAndMailNotifier(smtpMailer, (report) => publishHealth({ type: 'notify', report }));
    this.director = new Director(opts.plane, (vs, up) => {
      if (!this.config) return;
      notifier.quorumChanged({ service: serviceKey(vs), up, script: up ? vs.quorumUp : vs.quorumDown }, this.config.global);
    });
    this.health = new HealthMonitor({
      ...opts.health,
      notifier,
      observe: (batch) => {
        if (this.stopping) return;
        void this.director.observeMany(batch).then((r) => this.scheduleRetry(r.failed));
      },
    });
  }

  get plane(): DataPlane {
    return this.opts.plane;
  }

  /**
   * Read the file (start and reload alike): warnings are published as notices; a usable
   * configuration also gets the notices about what this build does not run yet.
   */
  private load(): { config: FulcrumConfig | null; errors: string[] } {
    const r = loadKeepalivedConfig(this.opts.configFile, this.opts.configId !== undefined ? { configId: this.opts.configId } : {});
    for (const w of r.diagnostics) if (w.severity === 'warning') publishDaemon({ type: 'notice', message: formatDiagnostic(w) });
    if (!r.ok) return { config: null, errors: r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic) };
    const mismatch = planeMismatches(r.config, this.opts.plane);
    if (mismatch.length > 0) return { config: null, errors: mismatch };
    this.noticeUnimplemented(r.config);
    return { config: r.config, errors: [] };
  }

  /** Lay the runtime overlay over a file's configuration. */
  private effectiveOf(base: FulcrumConfig, overlay: RuntimeOverlay): OverlayResult {
    return applyOverlay(base, overlay, this.opts.plane.methods[0] ?? 'proxy');
  }

  private adopt(base: FulcrumConfig, overlay: RuntimeOverlay, eff: OverlayResult): void {
    this.base = base;
    this.overlay = overlay;
    this.config = eff.config;
    this.staleEntries = eff.stale;
  }

  /** Say which runtime changes found nothing to change in the file (at start and on reload). */
  private announceStale(): void {
    for (const m of this.staleEntries) publishDaemon({ type: 'notice', message: `${this.store.where}: ${m} (kept; drop runtime changes with \`fulcrum adm runtime --forget\`)` });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.queue.then(fn, fn);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The configuration in effect (file + runtime changes), once started. */
  get configuration(): FulcrumConfig | null {
    return this.config;
  }

  /** The runtime changes in effect, and those that found nothing to change. */
  get runtime(): { readonly overlay: RuntimeOverlay; readonly stale: readonly string[]; readonly where: string } {
    return { overlay: this.overlay, stale: this.staleEntries, where: this.store.where };
  }

  /**
   * Load and apply the configuration. Not ok when the file has errors, needs a data plane
   * this one is not, or a listener failed for lack of privilege (that will not fix itself);
   * other refusals (an address not yet on the host) are retried every `retryMs`.
   */
  async start(): Promise<StartOutcome> {
    const { config: base, errors } = this.load();
    if (!base) return { ok: false, errors };
    let overlay: RuntimeOverlay;
    try {
      overlay = this.store.load();
    } catch (err: unknown) {
      return { ok: false, errors: [err instanceof Error ? err.message : String(err)] };
    }
    const eff = this.effectiveOf(base, overlay);
    const mismatch = planeMismatches(eff.config, this.opts.plane);
    if (mismatch.length > 0) return { ok: false, errors: mismatch.map((m) => `with the runtime changes in ${this.store.where}: ${m}`) };
    this.adopt(base, overlay, eff);
    this.announceStale();
    const config = eff.config;
    // Services on VRRP addresses wait for MASTER: the gate is set before anything binds.
    if (config.vrrpInstances.length > 0) await this.director.setGate((spec) => this.served(spec));
    const r = await this.director.setConfig(config);
    const fatal = r.failed.filter((f) => f.code === DataPlaneErrorCode.PERMISSION || f.code === DataPlaneErrorCode.UNSUPPORTED);
    if (fatal.length > 0) {
      await this.opts.plane.close(0);
      return { ok: false, errors: fatal.map((f) => f.message) };
    }
    const vrrpError = this.startVrrp(config);
    if (vrrpError) {
      await this.opts.plane.close(0);
      return { ok: false, errors: [vrrpError] };
    }
    this.scheduleRetry(r.failed);
    this.health.setConfig(config);
    this.scheduleDrainCheck();
    publishDaemon({ type: 'started', services: config.virtualServers.length, plane: this.opts.plane.name });
    return { ok: true, errors: [] };
  }

  /**
   * SIGHUP: re-read the file and lay the runtime changes over it again; keep running on
   * the old configuration if the new one is bad.
   */
  reload(): Promise<StartOutcome> {
    return this.serial(async () => {
      const { config: base, errors } = this.load();
      const eff = base ? this.effectiveOf(base, this.overlay) : null;
      const mismatch = eff ? planeMismatches(eff.config, this.opts.plane) : [];
      if (!base || !eff || mismatch.length > 0) {
        const all = [...errors, ...mismatch.map((m) => `with the runtime changes in ${this.store.where}: ${m}`)];
        this.reloads.failed++;
        this.reloads.lastFailedAt = Date.now();
        publishDaemon({ type: 'reload-rejected', errors: all });
        return { ok: false, errors: all };
      }
      this.adopt(base, this.overlay, eff);
      this.announceStale();
      const vrrpError = this.vrrpNode ? (this.vrrpNode.reload(eff.config), null) : this.startVrrp(eff.config);
      const r = await this.apply();
      this.reloads.ok++;
      this.reloads.lastOkAt = Date.now();
      publishDaemon({ type: 'reloaded', ops: r.ops, failed: r.failed.length });
      const failed = vrrpError ? [...r.failed, vrrpError] : r.failed;
      return { ok: failed.length === 0, errors: failed };
    });
  }

  /**
   * Save `overlay`, make it the one in effect over `base`, and apply: the single way a
   * runtime change takes effect. Nothing changes when it cannot be saved (the reason is
   * returned).
   */
  private async commitOverlay(base: FulcrumConfig, overlay: RuntimeOverlay): Promise<{ ops: number; failed: string[] } | string> {
    try {
      this.store.save(overlay);
    } catch (err: unknown) {
      return `cannot save the runtime changes to ${this.store.where}: ${err instanceof Error ? err.message : String(err)}`;
    }
    this.adopt(base, overlay, this.effectiveOf(base, overlay));
    return this.apply();
  }

  /** Hand the configuration in effect to the director and the health monitor. */
  private async apply(): Promise<{ ops: number; failed: string[] }> {
    const config = this.config;
    if (!config) return { ops: 0, failed: [] };
    const r = await this.director.setConfig(config);
    this.scheduleRetry(r.failed);
    this.health.setConfig(config);
    return { ops: r.applied.length, failed: r.failed.map((f) => f.message) };
  }

  /**
   * Runtime changes (ipvsadm commands), all or nothing: each is checked against the table
   * the ones before it made (ipvsadm's rules and messages); if all pass, the new overlay is
   * saved, then applied through the director like a reload. `source` names who asked.
   */
  change(cmds: readonly IpvsCommand[], source: string, text: readonly string[] = []): Promise<ChangeOutcome> {
    return this.serial(async () => {
      const refuse = (reason: string, status: 'conflict' | 'not-found' | 'unavailable', index?: number): ChangeOutcome => {
        publishDaemon({ type: 'runtime-rejected', source, commands: text, reason });
        return { ok: false, reason, status, ...(index !== undefined ? { index } : {}) };
      };
      const base = this.base;
      if (!base || this.stopping) return refuse('the director is not running', 'unavailable');
      let overlay = this.overlay;
      let eff = this.config ?? base;
      const zero: (string | undefined)[] = [];
      for (const [i, cmd] of cmds.entries()) {
        if (cmd.op === 'zero') {
          const key = cmd.service ? serviceIdKey(cmd.service) : undefined;
          if (key !== undefined && !ipvsView(eff).services.some((x) => serviceIdKey(x.id) === key)) return refuse('No such service', 'not-found', i);
          zero.push(key);
          continue;
        }
        if (!changesTable(cmd)) continue;
        const bad = this.methodProblem(cmd);
        if (bad) return refuse(bad, 'conflict', i);
        const r = recordCommand(overlay, base, eff, cmd);
        if (!r.ok) return refuse(r.message, r.code === DiagnosticCode.NOT_FOUND ? 'not-found' : 'conflict', i);
        overlay = r.overlay;
        eff = this.effectiveOf(base, overlay).config;
      }
      let ops = 0;
      let failed: string[] = [];
      if (overlay !== this.overlay) {
        const r = await this.commitOverlay(base, overlay);
        if (typeof r === 'string') return refuse(r, 'unavailable');
        ({ ops, failed } = r);
      }
      for (const z of zero) this.opts.plane.zero(z);
      publishDaemon({ type: 'runtime', source, commands: text, ops });
      return { ok: true, ops, failed };
    });
  }

  /** Drop every runtime change: back to exactly what the file says. */
  forgetRuntime(source: string): Promise<ChangeOutcome> {
    return this.serial(async () => {
      if (!this.base || this.stopping) return { ok: false, reason: 'the director is not running', status: 'unavailable' };
      const r = await this.commitOverlay(this.base, EMPTY_OVERLAY);
      if (typeof r === 'string') return { ok: false, reason: r, status: 'unavailable' };
      publishDaemon({ type: 'runtime', source, commands: ['forget runtime changes'], ops: r.ops });
      return { ok: true, ops: r.ops, failed: r.failed };
    });
  }

  /** The userspace proxy forwards with --proxy only; say so instead of a generic refusal. */
  private methodProblem(cmd: IpvsCommand): string | null {
    if ((cmd.op === 'add-service' || cmd.op === 'edit-service') && cmd.service.kind === 'fwmark' && this.opts.plane.methods.every((m) => m === 'proxy')) {
      return `fwmark ${cmd.service.mark}: firewall-mark services need the kernel (nftables) data plane; the ${this.opts.plane.name} data plane serves -t/-u services`;
    }
    if (cmd.op !== 'add-server' && cmd.op !== 'edit-server') return null;
    const m = cmd.server.method;
    if (this.opts.plane.methods.includes(m)) return null;
    const flag = m === 'dr' ? '-g (the default)' : METHOD_FLAG[m];
    const can = this.opts.plane.methods.map((x) => METHOD_FLAG[x]).join(', ');
    return `real server ${formatHostPort(cmd.server.address, cmd.server.port)}: forwarding ${flag} is not available on the ${this.opts.plane.name} data plane (it forwards with ${can})`;
  }

  /**
   * `fulcrum adm drain`: weight 0 for `server` in `service` (or in every service that has
   * it), then remove it once its connections and persistence templates are gone, or at
   * `deadline` (ms since the epoch), whichever comes first. Kept in the runtime overlay,
   * so a drain outlives a reload or a restart.
   */
  drain(server: string, service: string | undefined, deadline: number, source: string): Promise<ChangeOutcome & { drains?: DrainStatus[] }> {
    return this.serial(async () => {
      const base = this.base;
      const eff = this.config;
      if (!base || !eff || this.stopping) return { ok: false, reason: 'the director is not running', status: 'unavailable' };
      const table = ipvsView(eff);
      const targets = table.services.filter((s) => (service === undefined || serviceIdKey(s.id) === service)
        && s.servers.some((r) => formatHostPort(r.address, r.port) === server));
      if (targets.length === 0) return { ok: false, reason: service ? 'No such destination' : `No such destination: no service has real server ${server}`, status: 'not-found' };
      let overlay = this.overlay;
      let cur = eff;
      const now = Date.now();
      for (const t of targets) {
        const r0 = t.servers.find((r) => formatHostPort(r.address, r.port) === server);
        if (!r0) continue;
        const rec = recordCommand(overlay, base, cur, { op: 'edit-server', service: t.id, server: { ...r0, weight: 0 }, loc: { file: source, line: 1, col: 1 } });
        if (!rec.ok) return { ok: false, reason: rec.message, status: 'conflict' };
        const key = serviceIdKey(t.id);
        overlay = { ...rec.overlay, drains: [...rec.overlay.drains.filter((d) => !(d.service === key && d.server === server)), { service: key, server, deadline, started: now }] };
        cur = this.effectiveOf(base, overlay).config;
      }
      const r = await this.commitOverlay(base, overlay);
      if (typeof r === 'string') return { ok: false, reason: r, status: 'unavailable' };
      for (const t of targets) publishDaemon({ type: 'drain-started', service: serviceIdKey(t.id), server, deadline });
      this.scheduleDrainCheck();
      return { ok: true, ops: r.ops, failed: r.failed, drains: this.drains() };
    });
  }

  /** Drains in progress with what still holds them (connections, persistence templates). */
  drains(): DrainStatus[] {
    const stats = this.opts.plane.stats();
    return this.overlay.drains.map((d) => {
      const st = stats.find((s) => s.spec.key === d.service)?.servers.find((x) => x.spec.key === d.server);
      return { ...d, active: st?.active ?? 0, inactive: st?.inactive ?? 0, templates: st?.persistent ?? 0 };
    });
  }

  private scheduleDrainCheck(): void {
    if (this.drainTimer || this.stopping || this.overlay.drains.length === 0) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = null;
      void this.checkDrains().then(() => this.scheduleDrainCheck());
    }, this.opts.drainCheckMs ?? 1000);
    this.drainTimer.unref();
  }

  /** Remove each drained server that is idle, past its deadline, or already gone. */
  private checkDrains(): Promise<void> {
    return this.serial(async () => {
      const base = this.base;
      if (!base || this.stopping || this.overlay.drains.length === 0) return;
      const now = Date.now();
      let overlay = this.overlay;
      const done: { d: DrainStatus; outcome: 'idle' | 'deadline' | 'gone' }[] = [];
      for (const d of this.drains()) {
        const eff = this.effectiveOf(base, overlay).config;
        const svc = ipvsView(eff).services.find((s) => serviceIdKey(s.id) === d.service);
        const rs = svc?.servers.find((r) => formatHostPort(r.address, r.port) === d.server);
        const idle = d.active + d.inactive + d.templates === 0;
        if (rs && !idle && now < d.deadline) continue;
        const outcome = !rs ? 'gone' : idle ? 'idle' : 'deadline';
        if (svc && rs) {
          const rec = recordCommand(overlay, base, eff, { op: 'delete-server', service: svc.id, server: { family: rs.family, address: rs.address, port: rs.port }, loc: { file: 'drain', line: 1, col: 1 } });
          if (rec.ok) overlay = rec.overlay;
        }
        overlay = { ...overlay, drains: overlay.drains.filter((x) => !(x.service === d.service && x.server === d.server)) };
        done.push({ d, outcome });
      }
      if (done.length === 0) return;
      const r = await this.commitOverlay(base, overlay);
      if (typeof r === 'string') {
        publishDaemon({ type: 'notice', message: `${r}; drains stay in progress` });
        return;
      }
      for (const { d, outcome } of done) {
        publishDaemon({ type: 'drained', service: d.service, server: d.server, outcome, connections: d.active + d.inactive, templates: d.templates });
      }
    });
  }

  /** Stop accepting, let connections finish for up to drainMs, close the rest. Idempotent. */
  stop(signal = 'stop'): Promise<void> {
    if (this.stopping) return this.stopping;
    this.closing = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.health.stop();
    const conns = this.opts.plane.connections().length;
    // VRRP goes first: masters send priority 0 so the peer takes over within its skew.
    // close() stops accepting before it first yields, so 'stopping' is logged once no new
    // connection can arrive.
    const vrrp = this.vrrpNode?.stop() ?? Promise.resolve();
    this.stopping = Promise.all([vrrp, this.opts.plane.close(this.opts.drainMs)]).then(() => publishDaemon({ type: 'stopped' }));
    publishDaemon({ type: 'stopping', signal, connections: conns, drainMs: this.opts.drainMs });
    return this.stopping;
  }

  private scheduleRetry(failed: readonly OpFailure[]): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (failed.length === 0 || this.stopping) return;
    this.retryTimer = setTimeout(() => {
      void this.director.reconcile().then((r) => this.scheduleRetry(r.failed));
    }, this.opts.retryMs ?? 5000);
    this.retryTimer.unref();
  }

  /** VRRP's state, one entry per instance (empty without VRRP). */
  vrrpStatus(): InstanceStatus[] {
    return this.vrrpNode?.status() ?? [];
  }

  /** VRRP packets dropped, by reason. */
  vrrpDrops(): Readonly<Record<string, number>> {
    return this.vrrpNode?.drops() ?? {};
  }

  /**
   * Is a service served now? A proxied one not while one of its addresses belongs to a VRRP
   * instance that is not MASTER (nothing can bind an absent address). A kernel-forwarded one
   * always, as keepalived leaves IPVS services in place on BACKUP: packets reach it only
   * while this director holds the address, and a takeover waits for no transaction.
   */
  private served(spec: ServiceSpec): boolean {
    if (spec.method !== 'proxy') return true;
    const managed = vrrpAddresses(this.config);
    if (managed.size === 0) return true;
    // Before VRRP has started, no address is held.
    const held = this.vrrpNode?.heldAddresses() ?? new Set<string>();
    return spec.listen.every((l) => {
      const a = addressKey(l.address);
      return !managed.has(a) || held.has(a);
    });
  }

  /** Start VRRP when the configuration has instances; the reason it cannot, or null. */
  private startVrrp(config: FulcrumConfig): string | null {
    if (config.vrrpInstances.length === 0 || this.vrrpNode) return null;
    const node = new VrrpNode({
      host: this.opts.vrrp?.host ?? ffiHostNetwork,
      clock: this.opts.vrrp?.clock ?? systemClock,
      ...(this.opts.vrrp?.runScript ? { runScript: this.opts.vrrp.runScript } : {}),
      onHeldChange: () => {
        if (this.closing) return;
        void this.director.setGate((spec) => this.served(spec)).then((r) => this.scheduleRetry(r.failed));
      },
    });
    this.vrrpNode = node;
    try {
      node.start(config);
    } catch (err: unknown) {
      this.vrrpNode = null;
      return err instanceof Error ? err.message : String(err);
    }
    void this.director.setGate((spec) => this.served(spec)).then((r) => this.scheduleRetry(r.failed));
    return null;
  }

  /** Say plainly what the configuration asks for that this build does not do (yet). */
  private noticeUnimplemented(config: FulcrumConfig): void {
    for (const rs of config.virtualServers.flatMap((vs) => vs.realServers)) {
      for (const c of rs.checkers) {
        if (!('conn' in c) || (c.conn.bindIf === undefined && c.conn.fwmark === undefined)) continue;
        const where = c.loc ? `${formatLocation(c.loc)}: ` : '';
        publishDaemon({ type: 'notice', message: `${where}${c.type} bind_if/fwmark are not supported by Fulcrum's checkers and are ignored` });
      }
    }
  }
}
