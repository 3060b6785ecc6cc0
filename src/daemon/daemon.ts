/**
 * The composition root: load the configuration, build the data plane, the director and the
 * health monitor (checkers and agent probes → observations → director), run VRRP through its
 * runner, and run the lifecycle — start, reload (SIGHUP), runtime changes, graceful stop.
 *
 * A reload and a runtime change are each one transaction across VRRP and the data plane:
 * the new configuration is read (off this thread, bounded) and checked; VRRP prepares what
 * it needs (sockets — the part that can fail); the director applies the difference. If a
 * step fails for a reason that will not fix itself (no privilege, a forwarding method the
 * plane lacks, a transaction the kernel refuses), the director is reconciled back to the
 * running configuration, VRRP's preparation is aborted, and the reload or change is
 * rejected — logged and counted — with everything as it was. Otherwise VRRP commits and the
 * change is in effect everywhere. Refusals that fix themselves (an address not yet on the
 * host) are retried every `retryMs`, as before.
 *
 * A runtime change is saved only once it applied, so an acknowledged change is durable and
 * a change that cannot apply is never persisted. A state file never prevents a start: an
 * unreadable one is set aside (renamed), and entries the planes cannot apply are kept but
 * not applied, and reported, like stale ones.
 */
import { DiagnosticCode, errorCode, errorMessage, FailureCode, formatDiagnostic, formatLocation, reportFailure, serialQueue, supervise, type Serial } from '../errors/index.js';
import { inProcessConfigLoader, type ConfigLoader } from '../config/index.js';
import { serviceKey } from '../model/keys.js';
import { OwnedMemo } from '../model/memo.js';
import type { BgpConfig, FulcrumConfig, VirtualServer } from '../model/types.js';
import { Director, timeoutsOf, type ReconcileResult } from '../director/index.js';
import { DataPlaneErrorCode, DEFAULT_TIMEOUTS, opServiceKey, type DataPlane, type OpFailure, type ServiceSpec } from '../dataplane/index.js';
import { systemClock } from '../health/index.js';
import { ffiHostNetwork, openNotifyFifo, readLink } from '../sys/index.js';
import { addressKey, LocalVrrpRunner, vrrpAddresses, type InstanceStatus, type VrrpNodeOptions, type VrrpRunner, type VrrpTransaction } from '../vrrp/index.js';
import { HealthMonitor, publishHealth, type HealthMonitorOptions } from '../health/index.js';
import { ScriptAndMailNotifier, smtpMailer } from '../notify/index.js';
import { VrrpMailNotifier } from '../notify/vrrp-mail.js';
import { FifoScripts } from '../notify/fifo-scripts.js';
import { ensureFifo } from '../sys/fifo.js';
import { publishDaemon } from './events.js';
import { METHOD_FLAG, serviceIdKey, type IpvsCommand } from '../config/ipvsadm/index.js';
import { formatHostPort } from '../model/address.js';
import { SyncDaemon, type SyncConfig, type SyncStatus } from '../sync/index.js';
import { udpSyncTransport, type SyncTransport } from '../sys/sync-socket.js';
import { BgpErrorCode, BgpSpeaker, type Announcer } from '../bgp/index.js';
import { LazyAnnouncer } from '../bgp/lazy.js';
import {
  applyOverlay, EMPTY_OVERLAY, ipvsView, MemoryRuntimeStore, OverlayRecorder, RuntimeErrorCode, changesTable,
  type DrainEntry, type OverlayResult, type RuntimeOverlay, type RuntimeStore,
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
  /** The notify FIFO readers (tests: a fake runner); default: real scripts and FIFOs. */
  readonly fifoScripts?: FifoScripts;
  /** Where runtime changes are kept (default: memory only — lost on exit). */
  readonly runtime?: RuntimeStore;
  /** Milliseconds between drain progress checks (default 1000). */
  readonly drainCheckMs?: number;
  /** VRRP on this event loop with this wiring (host network, clock, script runner) — tests. */
  readonly vrrp?: Partial<Omit<VrrpNodeOptions, 'onHeldChange'>>;
  /** How VRRP runs (given the held-address callback); default: on this loop with `vrrp`'s wiring. */
  readonly vrrpRunner?: (onHeld: (held: ReadonlySet<string>) => void) => VrrpRunner;
  /** Connection sync wiring (transport, intervals) — tests; the default is UDP multicast. */
  readonly sync?: { readonly transport?: SyncTransport; readonly sendIntervalMs?: number; readonly installIntervalMs?: number };
  /** The BGP speaker for a fulcrum_bgp block (tests: a fake); default GoBGP. */
  readonly announcer?: (cfg: BgpConfig) => Announcer;
  /** How the configuration file is read (default: on this thread). */
  readonly loader?: ConfigLoader;
  /** Accept a configuration with no virtual server and no VRRP instance (runtime changes only). */
  readonly allowEmpty?: boolean;
}

/** A runtime change's outcome: refused (nothing changed) or applied. */
export type ChangeOutcome =
  | { readonly ok: true; readonly ops: number; readonly failed: readonly string[] }
  | { readonly ok: false; readonly reason: string; readonly status: 'conflict' | 'not-found' | 'unavailable'; readonly index?: number };

/** A runtime change waiting for its group's commit. */
interface PendingChange {
  readonly cmds: readonly IpvsCommand[];
  readonly source: string;
  readonly text: readonly string[];
  readonly resolve: (o: ChangeOutcome) => void;
  readonly reject: (err: unknown) => void;
}

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

/** Why a service cannot run on this data plane (a method it lacks): its key and the message. */
export function planeMismatchesByService(config: FulcrumConfig, plane: DataPlane): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  for (const vs of config.virtualServers) {
    let found = MISMATCHES.get(vs, plane);
    if (!found) {
      found = serviceMismatches(vs, plane);
      MISMATCHES.set(vs, plane, found);
    }
    for (const m of found) out.push(m);
  }
  return out;
}

/**
 * What each service object was found to lack, for the plane that asked (kept on the service
 * object: OwnedMemo): configurations are immutable and a runtime change replaces only the
 * services it touches, so a change at 1,000 real servers walks one service's servers, not
 * all of them.
 */
const MISMATCHES = new OwnedMemo<VirtualServer, readonly { key: string; message: string }[]>('fulcrum.daemon.mismatches');

function serviceMismatches(vs: VirtualServer, plane: DataPlane): { key: string; message: string }[] {
  const out: { key: string; message: string }[] = [];
  const methods = new Set([vs.method, ...vs.realServers.map((r) => r.method)]);
  for (const m of methods) {
    if (plane.methods.includes(m)) continue;
    const where = vs.loc ? `${formatLocation(vs.loc)}: ` : '';
    out.push({
      key: serviceKey(vs),
      message: `${where}virtual server ${serviceKey(vs)} uses ${m.toUpperCase()} forwarding, which needs the kernel (nftables) data plane; ` +
        `this director runs the ${plane.name} data plane (${plane.methods.map((x) => x.toUpperCase()).join(', ')}). Use lb_kind PROXY to run without kernel privileges.`,
    });
  }
  return out;
}

/** Why this configuration cannot run on this data plane (method it lacks), one line per service. */
export function planeMismatches(config: FulcrumConfig, plane: DataPlane): string[] {
  return planeMismatchesByService(config, plane).map((m) => m.message);
}

/** Refusals that will not fix themselves by waiting: they reject a reload or a runtime change. */
const PERMANENT: ReadonlySet<string> = new Set([DataPlaneErrorCode.PERMISSION, DataPlaneErrorCode.UNSUPPORTED, DataPlaneErrorCode.KERNEL]);
const permanentOf = (failed: readonly OpFailure[]): OpFailure[] => failed.filter((f) => PERMANENT.has(f.code));

/** The service a refused op is about. */
const opService = (f: OpFailure): string => opServiceKey(f.op);

/** The overlay without the entries of services set aside (their changes cannot apply here). */
function withoutAside(ov: RuntimeOverlay, aside: ReadonlyMap<string, string>): RuntimeOverlay {
  if (aside.size === 0) return ov;
  return { ...ov, services: ov.services.filter((e) => !aside.has(e.key)), servers: ov.servers.filter((e) => !aside.has(e.service)) };
}

/** Service keys a runtime overlay touches. */
function overlayServices(ov: RuntimeOverlay): Set<string> {
  return new Set([...ov.services.map((e) => e.key), ...ov.servers.map((e) => e.service)]);
}

interface Running {
  readonly base: FulcrumConfig | null;
  readonly overlay: RuntimeOverlay;
  readonly config: FulcrumConfig | null;
  readonly stale: readonly string[];
  readonly aside: ReadonlyMap<string, string>;
}

export class Daemon {
  readonly director: Director;
  readonly health: HealthMonitor;
  private retryTimer: NodeJS.Timeout | null = null;
  private drainTimer: NodeJS.Timeout | null = null;
  /** Drains being removed right now: still reported until the data plane has applied the removal. */
  private finishing: readonly DrainEntry[] = [];
  private stopping: Promise<void> | null = null;
  /** The configuration file as last loaded (without runtime changes). */
  private base: FulcrumConfig | null = null;
  /** The configuration in effect: the file with the runtime overlay laid over it. */
  private config: FulcrumConfig | null = null;
  private overlay: RuntimeOverlay = EMPTY_OVERLAY;
  private staleEntries: readonly string[] = [];
  /** Services whose runtime entries are kept but not applied, with why. */
  private aside: ReadonlyMap<string, string> = new Map();
  private readonly store: RuntimeStore;
  private readonly loader: ConfigLoader;
  readonly vrrp: VrrpRunner;
  /** Set as stop() begins: VRRP's goodbye must not reopen or reshuffle services. */
  private closing = false;
  /** Runtime changes applied, and the durable commits that carried them (group commit). */
  readonly commits = { changes: 0, commits: 0, largestGroup: 0 };
  /** Changes waiting for the same commit (see change()); null once that commit has begun. */
  private openGroup: PendingChange[] | null = null;
  /** Reload outcomes since start (for metrics). */
  readonly reloads = { ok: 0, failed: 0, lastOkAt: 0, lastFailedAt: 0 };
  /** Connection sync between directors (lvs_sync_daemon / ipvsadm --start-daemon). */
  readonly sync: SyncDaemon;
  /** The sync daemon as `fulcrum adm --start-daemon` set it (over the file's), or null. */
  private syncRuntime: SyncConfig | 'stopped' | null = null;
  /** VIPs announced over BGP (fulcrum_bgp, announce bgp). */
  readonly bgp: BgpSpeaker;
  private readonly vrrpMail: VrrpMailNotifier;
  private readonly fifoScripts: FifoScripts;
  private readonly detachMail: () => void;

  constructor(private readonly opts: DaemonOptions) {
    this.store = opts.runtime ?? new MemoryRuntimeStore();
    this.loader = opts.loader ?? inProcessConfigLoader;
    const notifier = opts.health?.notifier ?? new ScriptAndMailNotifier(smtpMailer, (report) => publishHealth({ type: 'notify', report }), undefined, openNotifyFifo);
    // VRRP's smtp_alert: mailed from here, off the VRRP process's loop.
    this.vrrpMail = new VrrpMailNotifier(smtpMailer, () => this.config);
    // The readers of the notify FIFOs (*_notify_fifo_script), kept running by this process.
    this.fifoScripts = opts.fifoScripts ?? new FifoScripts(ensureFifo, (e) => {
      if (e.ok) publishDaemon({ type: 'notice', message: `notify FIFO reader ${e.script} (${e.fifo}): ${e.outcome}` });
      else reportFailure('notify', FailureCode.SCRIPT, `notify FIFO reader ${e.script} (${e.fifo}): ${e.outcome}`, { fifo: e.fifo });
    });
    this.detachMail = this.vrrpMail.attach();
    this.director = new Director(opts.plane, (vs, up) => {
      if (!this.config) return;
      notifier.quorumChanged({ service: serviceKey(vs), up, script: up ? vs.quorumUp : vs.quorumDown }, this.config.global);
    });
    this.health = new HealthMonitor({
      ...opts.health,
      notifier,
      observe: (batch) => {
        if (this.stopping) return;
        supervise('director', this.director.observeMany(batch).then((r) => this.scheduleRetry(r.failed)));
      },
    });
    this.sync = new SyncDaemon({
      plane: opts.plane,
      transport: opts.sync?.transport ?? udpSyncTransport,
      instanceState: (name) => this.vrrp.status().find((i) => i.name === name)?.state ?? null,
      onRole: (from, to, c) => publishDaemon({ type: 'sync-role', from, to, interface: c?.interface ?? '', instance: c?.instance ?? null, syncid: c?.syncid ?? 0 }),
      // Version-0 entries carry no timeout: they get the configured lvs_timeouts.
      timeouts: () => (this.config ? timeoutsOf(this.config) : DEFAULT_TIMEOUTS),
      ...(opts.sync?.sendIntervalMs !== undefined ? { sendIntervalMs: opts.sync.sendIntervalMs } : {}),
      ...(opts.sync?.installIntervalMs !== undefined ? { installIntervalMs: opts.sync.installIntervalMs } : {}),
    });
    this.bgp = new BgpSpeaker({
      // gRPC and protobuf load only for a configuration with fulcrum_bgp.
      makeAnnouncer: opts.announcer ?? ((b) => new LazyAnnouncer(async () => new (await import('../sys/gobgp.js')).GoBgpAnnouncer(b.speaker.kind === 'api'
        ? { api: `${b.speaker.host.includes(':') ? `[${b.speaker.host}]` : b.speaker.host}:${b.speaker.port}` }
        : { gobgpd: b.speaker.path, log: (line) => publishDaemon({ type: 'notice', message: `gobgpd: ${line}` }) }))),
      inputs: () => ({ services: this.director.serviceStates(), instanceState: (name) => this.vrrp.status().find((i) => i.name === name)?.state ?? null }),
      onEvent: (e) => publishDaemon(e),
      linkUp: (name) => readLink(name)?.up ?? false,
    });
    // Quorum, the plane's refusals and VRRP's gate all end in a reconcile: BGP follows it.
    this.director.onReconciled = () => supervise('bgp', this.bgp.kick());
    const onHeld = (): void => {
      supervise('sync', this.sync.followRole());
      if (this.closing) return;
      supervise('director', this.director.setGate((spec) => this.served(spec)).then((r) => this.scheduleRetry(r.failed)));
    };
    this.vrrp = opts.vrrpRunner?.(onHeld) ?? new LocalVrrpRunner({
      host: opts.vrrp?.host ?? ffiHostNetwork,
      clock: opts.vrrp?.clock ?? systemClock,
      ...(opts.vrrp?.runScript ? { runScript: opts.vrrp.runScript } : {}),
      ...(opts.vrrp?.notifyTimeoutMs !== undefined ? { notifyTimeoutMs: opts.vrrp.notifyTimeoutMs } : {}),
    }, onHeld);
  }

  get plane(): DataPlane {
    return this.opts.plane;
  }

  /**
   * Read the file (start and reload alike): warnings are published as notices; a usable
   * configuration also gets the notices about what this build does not run yet. A file
   * that defines nothing to serve is refused unless `allowEmpty`.
   */
  private async load(): Promise<{ config: FulcrumConfig | null; errors: string[] }> {
    const file = this.opts.configFile;
    const r = await this.loader.load(file, { configId: this.opts.configId });
    for (const w of r.diagnostics) if (w.severity === 'warning') publishDaemon({ type: 'notice', message: formatDiagnostic(w) });
    if (!r.ok) return { config: null, errors: r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic) };
    if (!this.opts.allowEmpty && r.config.virtualServers.length === 0 && r.config.vrrpInstances.length === 0) {
      return {
        config: null,
        errors: [formatDiagnostic({
          severity: 'error', code: DiagnosticCode.EMPTY, loc: { file, line: 1, col: 1 },
          message: 'the configuration defines no virtual_server and no vrrp_instance: refusing to run with nothing to serve (an empty or truncated file would remove every service); start with --allow-empty to run on runtime changes alone',
        })],
      };
    }
    const mismatch = planeMismatches(r.config, this.opts.plane);
    if (mismatch.length > 0) return { config: null, errors: mismatch };
    this.noticeUnimplemented(r.config);
    return { config: r.config, errors: [] };
  }

  /** Lay the runtime overlay (less what is set aside) over a file's configuration. */
  private effectiveOf(base: FulcrumConfig, overlay: RuntimeOverlay, aside: ReadonlyMap<string, string> = this.aside): OverlayResult {
    const r = applyOverlay(base, withoutAside(overlay, aside), this.opts.plane.methods[0] ?? 'proxy');
    if (aside.size === 0) return r;
    const held = [...aside].map(([k, why]) => `runtime changes of ${k} are kept but not applied: ${why}`);
    return { config: r.config, stale: [...r.stale, ...held] };
  }

  private snapshot(): Running {
    return { base: this.base, overlay: this.overlay, config: this.config, stale: this.staleEntries, aside: this.aside };
  }

  private restore(r: Running): void {
    this.base = r.base;
    this.overlay = r.overlay;
    this.config = r.config;
    this.staleEntries = r.stale;
    this.aside = r.aside;
  }

  private adopt(base: FulcrumConfig, overlay: RuntimeOverlay, eff: OverlayResult, aside: ReadonlyMap<string, string> = this.aside): void {
    this.base = base;
    this.overlay = overlay;
    this.config = eff.config;
    this.staleEntries = eff.stale;
    this.aside = aside;
  }

  /** Say which runtime changes found nothing to change in the file (at start and on reload). */
  private announceStale(): void {
    for (const m of this.staleEntries) publishDaemon({ type: 'notice', message: `${this.store.where}: ${m} (kept; drop runtime changes with \`fulcrum adm runtime --forget\`)` });
  }

  /** Reloads and runtime changes, one at a time, in arrival order. */
  private readonly serial: Serial = serialQueue();

  /** The configuration in effect (file + runtime changes), once started. */
  get configuration(): FulcrumConfig | null {
    return this.config;
  }

  /** The runtime changes in effect, and those that found nothing to change. */
  get runtime(): { readonly overlay: RuntimeOverlay; readonly stale: readonly string[]; readonly where: string; readonly commits: { readonly changes: number; readonly commits: number } } {
    return { overlay: this.overlay, stale: this.staleEntries, where: this.store.where, commits: this.commits };
  }

  /**
   * The state file's overlay. One that cannot be read is set aside (renamed, reported) and
   * the daemon starts without runtime changes: a state file never prevents a start.
   */
  private loadOverlay(): RuntimeOverlay {
    try {
      return this.store.load();
    } catch (err: unknown) {
      const moved = this.store.setAside();
      publishDaemon({ type: 'notice', message: `${errorMessage(err)}; starting without runtime changes${moved ? ` (the file was moved to ${moved})` : ''}` });
      return EMPTY_OVERLAY;
    }
  }

  /**
   * Load and apply the configuration. Not ok when the file has errors, needs a data plane
   * this one is not, VRRP cannot start, or a listener failed for lack of privilege (that
   * will not fix itself); other refusals (an address not yet on the host) are retried
   * every `retryMs`. Runtime changes that cannot apply are set aside, not fatal.
   */
  async start(): Promise<StartOutcome> {
    const { config: base, errors } = await this.load();
    if (!base) return { ok: false, errors };
    const overlay = this.loadOverlay();
    const touched = overlayServices(overlay);
    const aside = new Map<string, string>();
    // Runtime entries for services the plane cannot forward: set aside before anything runs.
    for (const m of planeMismatchesByService(applyOverlay(base, overlay, this.opts.plane.methods[0] ?? 'proxy').config, this.opts.plane)) {
      if (touched.has(m.key)) aside.set(m.key, m.message);
    }
    let eff = this.effectiveOf(base, overlay, aside);
    this.adopt(base, overlay, eff, aside);
    // Whatever fails from here leaves nothing running: no VRRP process, no listener.
    const fail = async (errors: string[], tx?: VrrpTransaction): Promise<StartOutcome> => {
      await tx?.abort();
      await this.vrrp.stop();
      await this.opts.plane.close(0);
      return { ok: false, errors };
    };
    let tx: VrrpTransaction;
    try {
      tx = await this.vrrp.prepare(eff.config);
    } catch (err: unknown) {
      return fail([errorMessage(err)]);
    }
    // Services on VRRP addresses wait for MASTER: the gate is set before anything binds.
    await this.director.setGate((spec) => this.served(spec));
    let r = await this.director.setConfig(eff.config);
    // A runtime entry the plane refuses for good is set aside and the rest applied again;
    // the file's own services failing that way stop the start, as before.
    const runtimeFatal = permanentOf(r.failed).filter((f) => touched.has(opService(f)) && !aside.has(opService(f)));
    if (runtimeFatal.length > 0) {
      for (const f of runtimeFatal) aside.set(opService(f), f.message);
      eff = this.effectiveOf(base, overlay, aside);
      this.adopt(base, overlay, eff, aside);
      r = await this.director.setConfig(eff.config);
    }
    const fatal = permanentOf(r.failed).filter((f) => f.code === DataPlaneErrorCode.PERMISSION || f.code === DataPlaneErrorCode.UNSUPPORTED);
    if (fatal.length > 0) return fail(fatal.map((f) => f.message), tx);
    try {
      await tx.commit();
    } catch (err: unknown) {
      return fail([errorMessage(err)]);
    }
    this.announceStale();
    this.scheduleRetry(r.failed);
    this.health.setConfig(eff.config);
    this.fifoScripts.set(eff.config.global);
    this.applySync();
    supervise('bgp', this.bgp.setConfig(eff.config));
    this.scheduleDrainCheck();
    publishDaemon({ type: 'started', services: eff.config.virtualServers.length, plane: this.opts.plane.name });
    return { ok: true, errors: [] };
  }

  private rejectReload(errors: readonly string[]): StartOutcome {
    this.reloads.failed++;
    this.reloads.lastFailedAt = Date.now();
    publishDaemon({ type: 'reload-rejected', errors });
    return { ok: false, errors };
  }

  /**
   * SIGHUP: re-read the file and lay the runtime changes over it again — one transaction
   * (see the file comment): in effect everywhere, or rejected with everything as it was.
   */
  reload(): Promise<StartOutcome> {
    return this.exclusive(async () => {
      if (this.stopping) return this.rejectReload(['the director is stopping']);
      const { config: base, errors } = await this.load();
      if (!base) return this.rejectReload(errors);
      const ns = this.base?.global.netNamespace;
      if (base.global.netNamespace !== ns) {
        return this.rejectReload([`net_namespace cannot change on reload (running in ${ns ?? 'the namespace it was started in'}, the file says ${base.global.netNamespace ?? 'none'}): restart fulcrum`]);
      }
      const eff = this.effectiveOf(base, this.overlay);
      const mismatch = planeMismatches(eff.config, this.opts.plane);
      if (mismatch.length > 0) return this.rejectReload(mismatch.map((m) => `with the runtime changes in ${this.store.where}: ${m}`));
      let tx: VrrpTransaction;
      try {
        tx = await this.vrrp.prepare(eff.config);
      } catch (err: unknown) {
        return this.rejectReload([`VRRP cannot take the new configuration: ${errorMessage(err)}`]);
      }
      const prev = this.snapshot();
      this.adopt(base, this.overlay, eff);
      const r = await this.director.setConfig(eff.config);
      const fatal = permanentOf(r.failed);
      if (fatal.length > 0) {
        await this.rollback(prev, 'reload');
        await tx.abort();
        return this.rejectReload(fatal.map((f) => f.message));
      }
      // The data plane took it: the reload is committed. A VRRP process that dies right now
      // is restarted on this configuration; the failure is reported, not the reload's.
      await tx.commit().catch((err: unknown) => reportFailure('vrrp', errorCode(err) ?? FailureCode.WORKER, err));
      this.announceStale();
      this.scheduleRetry(r.failed);
      this.health.setConfig(eff.config);
      this.fifoScripts.set(eff.config.global);
      this.applySync();
      supervise('bgp', this.bgp.setConfig(eff.config));
      this.reloads.ok++;
      this.reloads.lastOkAt = Date.now();
      publishDaemon({ type: 'reloaded', ops: r.applied.length, failed: r.failed.length });
      return { ok: r.failed.length === 0, errors: r.failed.map((f) => f.message) };
    });
  }

  /** Put the running state back and reconcile the plane to it (a rejected reload or change). */
  private async rollback(prev: Running, what: string): Promise<void> {
    this.restore(prev);
    if (!prev.config) return;
    const back = await this.director.setConfig(prev.config);
    const still = permanentOf(back.failed);
    if (still.length > 0) publishDaemon({ type: 'notice', message: `rolling back the ${what}: ${still.map((f) => f.message).join('; ')}` });
    this.scheduleRetry(back.failed);
  }

  /**
   * Make `overlay` the one in effect over `base` and apply it; keep it only if it applied
   * (no refusal that waiting cannot fix) and could be saved — else roll back and say why.
   * The single way a runtime change takes effect.
   */
  private async commitOverlay(base: FulcrumConfig, overlay: RuntimeOverlay, aside: ReadonlyMap<string, string> = this.aside): Promise<{ ops: number; failed: string[] } | { refused: string; status: 'conflict' | 'unavailable' }> {
    const eff = this.effectiveOf(base, overlay, aside);
    const mismatch = planeMismatches(eff.config, this.opts.plane);
    if (mismatch.length > 0) return { refused: mismatch.join('; '), status: 'conflict' };
    const prev = this.snapshot();
    this.adopt(base, overlay, eff, aside);
    // Saved while the plane applies it (the journal's flush waits off this loop), and
    // acknowledged only once both are done. A refused change was saved too: the overlay
    // in effect is saved again over it (a crash in between restarts with the refused one,
    // which the plane refuses again — never with an acknowledged change lost).
    const saved = this.store.save(overlay).then(() => null, (err: unknown) => err);
    const r: ReconcileResult = await this.director.setConfig(eff.config);
    const saveError = await saved;
    const fatal = permanentOf(r.failed);
    if (fatal.length > 0 || saveError !== null) {
      await this.rollback(prev, 'runtime change');
      if (saveError !== null) return { refused: `cannot save the runtime changes to ${this.store.where}: ${errorMessage(saveError)}`, status: 'unavailable' };
      await this.store.save(prev.overlay).catch((err: unknown) => reportFailure('runtime', RuntimeErrorCode.SAVE, err));
      return { refused: `the data plane cannot apply it: ${fatal.map((f) => f.message).join('; ')}`, status: 'conflict' };
    }
    this.scheduleRetry(r.failed);
    this.health.setConfig(eff.config);
    this.fifoScripts.set(eff.config.global);
    supervise('bgp', this.bgp.setConfig(eff.config));
    return { ops: r.applied.length, failed: r.failed.map((f) => f.message) };
  }

  /**
   * Runtime changes (ipvsadm commands), all or nothing: each is checked against the table
   * the ones before it made (ipvsadm's rules and messages) in one linear pass; if all pass,
   * the new overlay is applied through the director like a reload and saved once it
   * applied. `source` names who asked.
   *
   * Group commit: changes that arrive while another change, reload or drain is being
   * applied wait together and are committed as one — each batch checked on its own (a
   * refused batch refuses only its own commands), then one reconcile and one durable save
   * for all of them. Order is kept: a reload, drain or forget queued after a change closes
   * the group, so later changes never overtake it. Every caller still gets its answer only
   * once its change is applied and saved. If the data plane refuses the grouped change,
   * each batch is committed again alone, so one bad batch cannot take others down with it.
   */
  change(cmds: readonly IpvsCommand[], source: string, text: readonly string[] = []): Promise<ChangeOutcome> {
    return new Promise<ChangeOutcome>((resolve, reject) => {
      const pending: PendingChange = { cmds, source, text, resolve, reject };
      if (this.openGroup !== null) {
        this.openGroup.push(pending);
        return;
      }
      const group = [pending];
      this.openGroup = group;
      this.serial(() => {
        if (this.openGroup === group) this.openGroup = null;
        return this.commitGroup(group);
      }).catch((err: unknown) => {
        for (const p of group) p.reject(err);
      });
    });
  }

  /** Queue a task behind the changes already waiting; changes after it start a new group. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    this.openGroup = null;
    return this.serial(fn);
  }

  private refuseChange(p: PendingChange, reason: string, status: 'conflict' | 'not-found' | 'unavailable', index?: number): void {
    publishDaemon({ type: 'runtime-rejected', source: p.source, commands: p.text, reason });
    p.resolve({ ok: false, reason, status, ...(index !== undefined ? { index } : {}) });
  }

  /** Check one batch into `rec`; what it zeroes and the services it touches, or why not. */
  private recordBatch(rec: OverlayRecorder, cmds: readonly IpvsCommand[]):
    | { ok: true; zero: (string | undefined)[]; touched: Set<string> }
    | { ok: false; reason: string; status: 'conflict' | 'not-found'; index: number } {
    const zero: (string | undefined)[] = [];
    const touched = new Set<string>();
    for (const [i, cmd] of cmds.entries()) {
      if (cmd.op === 'zero') {
        const key = cmd.service ? serviceIdKey(cmd.service) : undefined;
        if (key !== undefined && !rec.hasService(key)) return { ok: false, reason: 'No such service', status: 'not-found', index: i };
        zero.push(key);
        continue;
      }
      if (!changesTable(cmd)) continue;
      const bad = this.methodProblem(cmd);
      if (bad) return { ok: false, reason: bad, status: 'conflict', index: i };
      const r = rec.record(cmd);
      if (!r.ok) return { ok: false, reason: r.message, status: r.code === DiagnosticCode.NOT_FOUND ? 'not-found' : 'conflict', index: i };
      if ('service' in cmd && cmd.service) touched.add(serviceIdKey(cmd.service));
    }
    return { ok: true, zero, touched };
  }

  /** Check every batch of `group`, then apply and save the accepted ones as one commit. */
  private async commitGroup(group: readonly PendingChange[]): Promise<void> {
    const base = this.base;
    if (!base || this.stopping) {
      for (const p of group) this.refuseChange(p, 'the director is not running', 'unavailable');
      return;
    }
    let rec = new OverlayRecorder(this.overlay, base, this.config ?? base);
    /** The overlay the accepted batches make (a refused batch may have recorded part of itself into `rec`). */
    let accepted = this.overlay;
    const ok: { p: PendingChange; zero: (string | undefined)[]; touched: Set<string> }[] = [];
    for (const [i, p] of group.entries()) {
      const r = this.recordBatch(rec, p.cmds);
      if (r.ok) {
        ok.push({ p, zero: r.zero, touched: r.touched });
        accepted = rec.overlay;
        continue;
      }
      this.refuseChange(p, r.reason, r.status, r.index);
      if (i < group.length - 1) rec = new OverlayRecorder(accepted, base, this.effectiveOf(base, accepted).config);
    }
    if (ok.length === 0) return;
    let ops = 0;
    let failed: readonly string[] = [];
    if (accepted !== this.overlay) {
      // A new command for a service whose runtime entries were set aside brings them back.
      const touched = new Set(ok.flatMap((a) => [...a.touched]));
      const aside = new Map([...this.aside].filter(([k]) => !touched.has(k)));
      const r = await this.commitOverlay(base, accepted, aside);
      if ('refused' in r) {
        if (ok.length === 1) {
          const only = ok[0];
          if (only) this.refuseChange(only.p, r.refused, r.status);
          return;
        }
        for (const a of ok) await this.commitGroup([a.p]);
        return;
      }
      ({ ops, failed } = r);
      this.commits.commits++;
    }
    this.commits.changes += ok.length;
    this.commits.largestGroup = Math.max(this.commits.largestGroup, ok.length);
    for (const a of ok) {
      for (const z of a.zero) this.opts.plane.zero(z);
      publishDaemon({ type: 'runtime', source: a.p.source, commands: a.p.text, ops });
      a.p.resolve({ ok: true, ops, failed });
    }
  }

  /** Drop every runtime change: back to exactly what the file says. */
  forgetRuntime(source: string): Promise<ChangeOutcome> {
    return this.exclusive(async () => {
      if (!this.base || this.stopping) return { ok: false, reason: 'the director is not running', status: 'unavailable' };
      const r = await this.commitOverlay(this.base, EMPTY_OVERLAY, new Map());
      if ('refused' in r) return { ok: false, reason: r.refused, status: r.status };
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
    return this.exclusive(async () => {
      const base = this.base;
      const eff = this.config;
      if (!base || !eff || this.stopping) return { ok: false, reason: 'the director is not running', status: 'unavailable' };
      const table = ipvsView(eff);
      const targets = table.services.filter((s) => (service === undefined || serviceIdKey(s.id) === service)
        && s.servers.some((r) => formatHostPort(r.address, r.port) === server));
      if (targets.length === 0) return { ok: false, reason: service ? 'No such destination' : `No such destination: no service has real server ${server}`, status: 'not-found' };
      const rec = new OverlayRecorder(this.overlay, base, eff);
      const now = Date.now();
      const before = new Map<string, number>();
      for (const t of targets) {
        const r0 = t.servers.find((r) => formatHostPort(r.address, r.port) === server);
        if (!r0) continue;
        // A drain of a drain keeps the weight the first one saved.
        const key = serviceIdKey(t.id);
        before.set(key, this.overlay.drains.find((d) => d.service === key && d.server === server)?.weight ?? r0.weight);
        const r = rec.record({ op: 'edit-server', service: t.id, server: { ...r0, weight: 0 }, loc: { file: source, line: 1, col: 1 } });
        if (!r.ok) return { ok: false, reason: r.message, status: 'conflict' };
      }
      const keys = new Set(targets.map((t) => serviceIdKey(t.id)));
      const recorded = rec.overlay;
      const overlay: RuntimeOverlay = {
        ...recorded,
        drains: [...recorded.drains.filter((d) => !(keys.has(d.service) && d.server === server)),
          ...[...keys].map((key) => ({ service: key, server, deadline, started: now, weight: before.get(key) ?? 1 }))],
      };
      const r = await this.commitOverlay(base, overlay);
      if ('refused' in r) return { ok: false, reason: r.refused, status: r.status };
      for (const key of keys) publishDaemon({ type: 'drain-started', service: key, server, deadline });
      this.scheduleDrainCheck();
      return { ok: true, ops: r.ops, failed: r.failed, drains: this.drains() };
    });
  }

  /**
   * Cancel drains in progress of `server` (in `service`, or in every service draining it):
   * the weight it had before the drain comes back and it is no longer removed. A server
   * that is not draining is `not-found`.
   */
  undrain(server: string, service: string | undefined, source: string): Promise<ChangeOutcome & { restored?: { service: string; weight: number }[] }> {
    return this.exclusive(async () => {
      const base = this.base;
      const eff = this.config;
      if (!base || !eff || this.stopping) return { ok: false, reason: 'the director is not running', status: 'unavailable' };
      const cancel = this.overlay.drains.filter((d) => d.server === server && (service === undefined || d.service === service));
      if (cancel.length === 0) return { ok: false, reason: `${server} is not draining${service ? ` in ${service}` : ''}`, status: 'not-found' };
      const table = new Map(ipvsView(eff).services.map((s) => [serviceIdKey(s.id), s]));
      const fileWeight = (key: string): number | undefined => ipvsView(base).services.find((s) => serviceIdKey(s.id) === key)
        ?.servers.find((r) => formatHostPort(r.address, r.port) === server)?.weight;
      const rec = new OverlayRecorder(this.overlay, base, eff);
      const restored: { service: string; weight: number }[] = [];
      for (const d of cancel) {
        const svc = table.get(d.service);
        const r0 = svc?.servers.find((r) => formatHostPort(r.address, r.port) === server);
        if (!svc || !r0) continue;
        const weight = d.weight ?? fileWeight(d.service) ?? 1;
        const r = rec.record({ op: 'edit-server', service: svc.id, server: { ...r0, weight }, loc: { file: source, line: 1, col: 1 } });
        if (!r.ok) return { ok: false, reason: r.message, status: 'conflict' };
        restored.push({ service: d.service, weight });
      }
      const recorded = rec.overlay;
      const overlay: RuntimeOverlay = { ...recorded, drains: recorded.drains.filter((d) => !cancel.includes(d)) };
      const r = await this.commitOverlay(base, overlay);
      if ('refused' in r) return { ok: false, reason: r.refused, status: r.status };
      for (const x of restored) publishDaemon({ type: 'drain-cancelled', service: x.service, server, weight: x.weight, source });
      return { ok: true, ops: r.ops, failed: r.failed, restored };
    });
  }

  /** Drains in progress with what still holds them (connections, persistence templates). */
  drains(): DrainStatus[] {
    const list = [...this.overlay.drains, ...this.finishing];
    if (list.length === 0) return [];
    const stats = this.opts.plane.stats();
    return list.map((d) => {
      const st = stats.find((s) => s.spec.key === d.service)?.servers.find((x) => x.spec.key === d.server);
      return { ...d, active: st?.active ?? 0, inactive: st?.inactive ?? 0, templates: st?.persistent ?? 0 };
    });
  }

  private scheduleDrainCheck(): void {
    if (this.drainTimer || this.stopping || this.overlay.drains.length === 0) return;
    this.drainTimer = setTimeout(() => {
      this.drainTimer = null;
      supervise('drain', this.checkDrains().finally(() => this.scheduleDrainCheck()));
    }, this.opts.drainCheckMs ?? 1000);
    this.drainTimer.unref();
  }

  /** Remove each drained server that is idle, past its deadline, or already gone. */
  private checkDrains(): Promise<void> {
    return this.exclusive(async () => {
      const base = this.base;
      const eff = this.config;
      if (!base || !eff || this.stopping || this.overlay.drains.length === 0) return;
      const now = Date.now();
      const rec = new OverlayRecorder(this.overlay, base, eff);
      const view = new Map(ipvsView(eff).services.map((s) => [serviceIdKey(s.id), s]));
      const done: { d: DrainStatus; outcome: 'idle' | 'deadline' | 'gone' }[] = [];
      for (const d of this.drains()) {
        const svc = view.get(d.service);
        const rs = svc?.servers.find((r) => formatHostPort(r.address, r.port) === d.server);
        const idle = d.active + d.inactive + d.templates === 0;
        if (rs && !idle && now < d.deadline) continue;
        const outcome = !rs ? 'gone' : idle ? 'idle' : 'deadline';
        if (svc && rs) rec.record({ op: 'delete-server', service: svc.id, server: { family: rs.family, address: rs.address, port: rs.port }, loc: { file: 'drain', line: 1, col: 1 } });
        done.push({ d, outcome });
      }
      if (done.length === 0) return;
      const finished = (x: { service: string; server: string }): boolean => done.some(({ d }) => d.service === x.service && d.server === x.server);
      const recorded = rec.overlay;
      const overlay: RuntimeOverlay = { ...recorded, drains: recorded.drains.filter((x) => !finished(x)) };
      this.finishing = this.overlay.drains.filter(finished);
      const r = await this.commitOverlay(base, overlay).finally(() => { this.finishing = []; });
      if ('refused' in r) {
        publishDaemon({ type: 'notice', message: `${r.refused}; drains stay in progress` });
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
    let conns = 0;
    for (const svc of this.opts.plane.stats()) for (const r of svc.servers) conns += r.active + r.inactive;
    // VRRP goes first: masters send priority 0 so the peer takes over within its skew.
    // close() stops accepting before it first yields, so 'stopping' is logged once no new
    // connection can arrive.
    const vrrp = this.vrrp.stop();
    supervise('sync', this.sync.stop());
    // BGP: withdraw first and keep forwarding for the grace period, so the routers move
    // the flows away before the listeners close.
    const grace = this.bgpGrace();
    // 'stopping' is published once no new connection can arrive: listeners closed (at once
    // on this loop; workers confirm it).
    const accepting = grace.then(() => this.opts.plane.stopAccepting?.());
    const announced = accepting.catch(() => undefined).then(() => publishDaemon({ type: 'stopping', signal, connections: conns, drainMs: this.opts.drainMs }));
    const closed = grace.then(() => this.opts.plane.close(this.opts.drainMs));
    this.stopping = Promise.all([vrrp, closed, announced])
      .then(async () => {
        await this.vrrpMail.idle();
        this.detachMail();
        // The writers have closed their FIFOs: the readers see the end and finish.
        await this.fifoScripts.stop();
      })
      .then(() => this.bgp.stop().catch((err: unknown) => reportFailure('bgp', errorCode(err) ?? BgpErrorCode.SPEAKER, err)))
      .then(() => {
        this.store.close?.();
        publishDaemon({ type: 'stopped' });
      });
    return this.stopping;
  }

  /** On a clean stop: withdraw every announced route, then wait fulcrum_bgp's shutdown_grace. */
  private async bgpGrace(): Promise<void> {
    const b = this.config?.bgp;
    const n = this.bgp.status().routes.filter((r) => r.announced).length;
    if (!b || n === 0) return;
    try {
      await this.bgp.withdrawAll();
    } catch (err: unknown) {
      reportFailure('bgp', errorCode(err) ?? BgpErrorCode.SPEAKER, err);
    }
    publishDaemon({ type: 'notice', message: `withdrew ${n} BGP route(s); forwarding ${b.shutdownGrace} s more before closing (shutdown_grace)` });
    await new Promise((r) => setTimeout(r, b.shutdownGrace * 1000));
  }

  private scheduleRetry(failed: readonly OpFailure[]): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (failed.length === 0 || this.stopping) return;
    this.retryTimer = setTimeout(() => {
      supervise('director', this.director.reconcile().then((r) => this.scheduleRetry(r.failed)));
    }, this.opts.retryMs ?? 5000);
    this.retryTimer.unref();
  }

  /**
   * The sync daemon as the configuration (or `--start-daemon`) asks. Sockets that cannot be
   * opened yet (the interface has no address) are reported and retried by the sync daemon;
   * they never fail a start or a reload, as keepalived carries on without its sync daemon.
   */
  private applySync(): void {
    supervise('sync', this.sync.configure(this.syncConfig()).catch((err: unknown) => reportFailure('sync', errorCode(err) ?? FailureCode.SYNC_SOCKET, err)));
  }

  /** The sync daemon's configuration: `--start-daemon`'s while it holds, else the file's. */
  private syncConfig(): SyncConfig | null {
    const g = this.config?.global;
    const file = g?.lvsSyncDaemon;
    const rt = this.syncRuntime;
    const base: SyncConfig | null = rt === 'stopped' ? null : rt ?? (file ? {
      interface: file.interface, instance: file.instance, syncid: file.syncid, maxlen: file.maxlen, group: file.group, port: file.port, ttl: file.ttl,
    } : null);
    // The file's threshold and refresh period hold for a daemon started with ipvsadm too, as
    // IPVS's sysctls do.
    return base && { ...base, refreshSec: g?.syncRefreshPeriod, threshold: g?.syncThreshold };
  }

  /**
   * `ipvsadm --start-daemon ROLE …` / `--stop-daemon ROLE`: set one role of the sync daemon
   * at run time (over the file's lvs_sync_daemon until stopped). Rejects, with the sync
   * daemon as it was, when its sockets cannot be opened.
   */
  async syncControl(action: 'start' | 'stop', role: 'master' | 'backup', cfg?: Omit<SyncConfig, 'master' | 'backup' | 'instance'>): Promise<SyncStatus> {
    const prev = this.syncRuntime;
    const cur = this.sync.status().config;
    const base = cur && cur.instance === undefined ? cur : null;
    const running = (r: 'master' | 'backup'): boolean => (base ? (r === 'master' ? base.master ?? true : base.backup ?? true) : false);
    let next: SyncConfig | 'stopped';
    if (action === 'start') {
      if (!cfg) throw new Error('--start-daemon needs --mcast-interface');
      next = { ...cfg, master: role === 'master' || running('master'), backup: role === 'backup' || running('backup') };
    } else {
      if (!base || !running(role)) throw new Error(`no ${role} sync daemon is running`);
      const master = role === 'master' ? false : running('master');
      const backup = role === 'backup' ? false : running('backup');
      next = master || backup ? { ...base, master, backup } : 'stopped';
    }
    this.syncRuntime = next;
    try {
      await this.sync.configure(this.syncConfig());
    } catch (err: unknown) {
      this.syncRuntime = prev;
      this.applySync();
      throw err;
    }
    return this.sync.status();
  }

  /** VRRP's state, one entry per instance (empty without VRRP). */
  vrrpStatus(): InstanceStatus[] {
    return this.vrrp.status();
  }

  /** VRRP packets dropped, by reason. */
  vrrpDrops(): Readonly<Record<string, number>> {
    return this.vrrp.drops();
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
    const held = this.vrrp.held();
    return spec.listen.every((l) => {
      const a = addressKey(l.address);
      return !managed.has(a) || held.has(a);
    });
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
