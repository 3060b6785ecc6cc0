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
import { formatDiagnostic, formatLocation } from '../errors/index.js';
import { serviceKey } from '../model/keys.js';
import type { FulcrumConfig } from '../model/types.js';
import { Director } from '../director/index.js';
import { DataPlaneErrorCode, type DataPlane, type OpFailure } from '../dataplane/index.js';
import { HealthMonitor, publishHealth, type HealthMonitorOptions } from '../health/index.js';
import { ScriptAndMailNotifier, smtpMailer } from '../notify/index.js';
import { publishDaemon } from './events.js';

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
  private stopping: Promise<void> | null = null;
  /** The configuration in effect (for notifications' global settings). */
  private config: FulcrumConfig | null = null;

  constructor(private readonly opts: DaemonOptions) {
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

  /**
   * Load and apply the configuration. Not ok when the file has errors, needs a data plane
   * this one is not, or a listener failed for lack of privilege (that will not fix itself);
   * other refusals (an address not yet on the host) are retried every `retryMs`.
   */
  async start(): Promise<StartOutcome> {
    const { config, errors } = this.load();
    if (!config) return { ok: false, errors };
    this.config = config;
    const r = await this.director.setConfig(config);
    const fatal = r.failed.filter((f) => f.code === DataPlaneErrorCode.PERMISSION || f.code === DataPlaneErrorCode.UNSUPPORTED);
    if (fatal.length > 0) {
      await this.opts.plane.close(0);
      return { ok: false, errors: fatal.map((f) => f.message) };
    }
    this.scheduleRetry(r.failed);
    this.health.setConfig(config);
    publishDaemon({ type: 'started', services: config.virtualServers.length, plane: this.opts.plane.name });
    return { ok: true, errors: [] };
  }

  /** SIGHUP: re-read the file; keep running on the old configuration if the new one is bad. */
  async reload(): Promise<StartOutcome> {
    const { config, errors } = this.load();
    if (!config) {
      publishDaemon({ type: 'reload-rejected', errors });
      return { ok: false, errors };
    }
    this.config = config;
    const r = await this.director.setConfig(config);
    this.scheduleRetry(r.failed);
    this.health.setConfig(config);
    publishDaemon({ type: 'reloaded', ops: r.applied.length, failed: r.failed.length });
    return { ok: r.failed.length === 0, errors: r.failed.map((f) => f.message) };
  }

  /** Stop accepting, let connections finish for up to drainMs, close the rest. Idempotent. */
  stop(signal = 'stop'): Promise<void> {
    if (this.stopping) return this.stopping;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.health.stop();
    const conns = this.opts.plane.connections().length;
    // close() stops accepting before it first yields, so 'stopping' is logged once no new
    // connection can arrive.
    this.stopping = this.opts.plane.close(this.opts.drainMs).then(() => publishDaemon({ type: 'stopped' }));
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

  /** Say plainly what the configuration asks for that this build does not do (yet). */
  private noticeUnimplemented(config: FulcrumConfig): void {
    for (const rs of config.virtualServers.flatMap((vs) => vs.realServers)) {
      for (const c of rs.checkers) {
        if (!('conn' in c) || (c.conn.bindIf === undefined && c.conn.fwmark === undefined)) continue;
        const where = c.loc ? `${formatLocation(c.loc)}: ` : '';
        publishDaemon({ type: 'notice', message: `${where}${c.type} bind_if/fwmark are not supported by Fulcrum's checkers and are ignored` });
      }
    }
    if (config.vrrpInstances.length > 0) {
      publishDaemon({ type: 'notice', message: `${config.vrrpInstances.length} vrrp_instance(s) configured; VRRP is not part of this build yet and they are not run` });
    }
  }
}
