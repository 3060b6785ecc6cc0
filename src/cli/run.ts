/**
 * `fulcrum run -f FILE`: the director in the foreground. SIGHUP reloads (only differences
 * are applied; a bad file is rejected and the running configuration stays); SIGTERM and
 * SIGINT stop gracefully (stop accepting, let connections finish for --drain-timeout
 * seconds, exit 0); a second SIGTERM/SIGINT closes what is left at once.
 */
import fs from 'node:fs';
import { ffiConntrack } from '../sys/ctnetlink.js';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Daemon, attachLogger, createLogger, publishDaemon, type LogLevel } from '../daemon/index.js';
import { createMetrics, startApi, statusView, StatusBoard, TrafficHistory, type OpenPart, type RunningApi } from '../api/index.js';
import { parseHostPort } from '../config/ipvsadm/index.js';
import { formatHostPort } from '../model/address.js';
import { FileRuntimeStore } from '../runtime/index.js';
import { ProxyDataPlane, RoutingDataPlane, WorkersDataPlane, type DataPlane } from '../dataplane/index.js';
import { NftDataPlane } from '../dataplane/nft/index.js';
import { XdpDataPlane } from '../dataplane/xdp/plane.js';
import { XDP_OBJECT, xdpUnavailable } from '../dataplane/xdp/object.js';
import { nativePumpMissing } from '../sys/native.js';
import { libBpf } from '../sys/bpf.js';
import { commandXdpHost } from '../sys/xdp-host.js';
import { commandKernelHost, commandNft, defaultNft, libNft, raiseFileLimit, systemdNotifier, watchFileLimit, type ServiceManager } from '../sys/index.js';
import { loadKeepalivedConfig, threadConfigLoader } from '../config/index.js';
import { execInNetns, NETNS_DIR, NETNS_ENV, netnsState } from '../sys/netns.js';
import { ProcessVrrpRunner } from '../vrrp/process/runner.js';
import { FailureCode, reportFailure, supervise } from '../errors/index.js';
import { DEFAULT_TUNABLES } from '../dataplane/proxy/context.js';
import type { Io } from './check.js';
import { defaultConfigFile, defaultPaths } from './paths.js';

export { defaultPaths };

export interface RunCliOptions {
  /** keepalived.conf to run; without it, the first of DEFAULT_CONFIG_FILES that exists. */
  readonly file?: string | undefined;
  readonly configId?: string | undefined;
  readonly drainTimeout: string;
  readonly logLevel: string;
  readonly workers?: string | undefined;
  readonly apiSocket?: string | undefined;
  readonly apiListen?: string | undefined;
  readonly apiTokenFile?: string | undefined;
  readonly apiOpen?: string | undefined;
  readonly stateFile?: string | undefined;
  readonly keepForwarding?: boolean | undefined;
  readonly bpfDir?: string | undefined;
  readonly nft?: string | undefined;
  readonly allowEmpty?: boolean | undefined;
  readonly udpSessions?: string | undefined;
  readonly relay?: string | undefined;
  /** false with --no-splice. */
  readonly splice?: boolean | undefined;
}

/** The built dashboard, next to the compiled sources (dist/dashboard). */
function dashboardDir(): string | null {
  const dir = fileURLToPath(new URL('../../dashboard/', import.meta.url));
  return fs.existsSync(path.join(dir, 'index.html')) ? dir : null;
}

interface ApiSettings {
  readonly socketPath: string | null;
  readonly listen: { host: string; port: number } | null;
  readonly token: string | null;
  readonly open: Set<OpenPart>;
}

/** Check the API options; a problem is one line naming the option. */
export function apiSettings(o: RunCliOptions): ApiSettings | string {
  const socketPath = o.apiSocket === 'none' ? null : o.apiSocket ?? defaultPaths().socket;
  let listen: { host: string; port: number } | null = null;
  if (o.apiListen !== undefined) {
    const hp = parseHostPort(o.apiListen);
    if (!hp || hp.port === undefined) return `--api-listen: '${o.apiListen}' is not HOST:PORT (e.g. 127.0.0.1:9180 or [::1]:9180)`;
    listen = { host: hp.address, port: hp.port };
  }
  let token: string | null = null;
  if (o.apiTokenFile !== undefined) {
    try {
      token = fs.readFileSync(o.apiTokenFile, 'utf8').trim();
    } catch (err: unknown) {
      return `--api-token-file: ${err instanceof Error ? err.message : String(err)}`;
    }
    if (token.length < 16 || /\s/.test(token)) return `--api-token-file: ${o.apiTokenFile} must hold one token of at least 16 characters, no spaces`;
  }
  if (listen && !token) return '--api-listen needs --api-token-file: requests over TCP must carry a bearer token';
  const open = new Set<OpenPart>();
  for (const part of (o.apiOpen ?? 'none').split(',').map((x) => x.trim()).filter((x) => x !== '' && x !== 'none')) {
    if (part !== 'metrics' && part !== 'dashboard') return `--api-open: '${part}' is not metrics, dashboard or none`;
    open.add(part);
  }
  return { socketPath, listen, token, open };
}

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Where a running daemon's signals come from (the process, or a test's emitter). */
export interface SignalSource {
  on(event: 'SIGHUP' | 'SIGTERM' | 'SIGINT', fn: () => void): unknown;
  removeListener(event: 'SIGHUP' | 'SIGTERM' | 'SIGINT', fn: () => void): unknown;
}

/**
 * The director's data plane: the userspace proxy for `lb_kind PROXY` — on this event loop
 * with one worker, on `workers` worker threads otherwise — the XDP plane for the DR/TUN
 * services that chose it (`fulcrum_dataplane xdp`; nftables with a message when XDP cannot
 * run here), and the nftables plane for the other NAT/DR/TUN services. Kernel planes are
 * built when a first service needs them.
 */
export function directorPlane(o: {
  workers: number; keepForwarding: boolean; nft: 'lib' | 'cmd' | 'auto' | 'none'; udpSessions?: number; relay?: 'epoll' | 'node'; splice?: boolean; faults?: boolean;
  bpfDir?: string | undefined;
  /** Said once when a service asks for XDP and it cannot run here (it goes to nftables). */
  warn?: (message: string) => void;
}): DataPlane {
  const tunables = { ...(o.udpSessions !== undefined ? { udpSessionLimit: o.udpSessions } : {}), ...(o.relay !== undefined ? { relay: o.relay } : {}), ...(o.splice === false ? { splice: false } : {}) };
  const proxy = (): DataPlane => {
    const missing = o.relay === 'node' ? '' : nativePumpMissing();
    if (missing !== '') o.warn?.(`TCP relay without its native pump: ${missing}; its system calls go through the FFI one by one`);
    return o.workers > 1 ? new WorkersDataPlane({ workers: o.workers, tunables, faults: o.faults ?? false }) : new ProxyDataPlane({ tunables });
  };
  if (o.nft === 'none') return proxy();
  let xdpChecked: string | null | undefined;
  const xdpUsable = (): boolean => {
    if (xdpChecked === undefined) {
      xdpChecked = xdpUnavailable();
      if (xdpChecked !== null) o.warn?.(`fulcrum_dataplane xdp: ${xdpChecked}; those services are forwarded by nftables`);
    }
    return xdpChecked === null;
  };
  return new RoutingDataPlane([
    // Built at once: worker threads take a moment to start, and a takeover must not wait for them.
    { methods: ['proxy'], make: proxy, eager: true },
    {
      methods: ['dr', 'tun'],
      accepts: (s) => s.plane === 'xdp' && xdpUsable(),
      make: () => new XdpDataPlane({ bpf: libBpf(), host: commandXdpHost(), objectPath: XDP_OBJECT, pinDir: o.bpfDir ?? null, keepOnClose: o.keepForwarding }),
    },
    {
      methods: ['nat', 'dr', 'tun'],
      make: () => new NftDataPlane({
        nft: o.nft === 'lib' ? libNft() : o.nft === 'cmd' ? commandNft() : defaultNft(),
        host: commandKernelHost(),
        conntrack: ffiConntrack,
        keepOnClose: o.keepForwarding,
      }),
    },
  ], 'proxy+nftables+xdp');
}

/** How many data-plane workers by default: the cores this process may use. */
export function defaultWorkers(): number {
  return Math.max(1, Math.min(64, os.availableParallelism()));
}

/**
 * systemd's notifier when `$NOTIFY_SOCKET` is set (Type=notify), else null. A malformed
 * value is said once and the daemon runs on: systemd will time the start out and say so.
 */
function serviceManager(io: Io): ServiceManager | null {
  try {
    return systemdNotifier();
  } catch (err: unknown) {
    io.err(`fulcrum run: ${err instanceof Error ? err.message : String(err)}: systemd will not be told the daemon is ready`);
    return null;
  }
}

/** Tell the service manager; a failure is counted and logged, never fatal. */
function tell(manager: ServiceManager | null, fields: Readonly<Record<string, string>>): void {
  if (!manager) return;
  try {
    manager.notify(fields);
  } catch (err: unknown) {
    reportFailure('systemd', FailureCode.SD_NOTIFY, err);
  }
}

/** The one-line STATUS= systemd shows in `systemctl status`. */
function statusLine(daemon: Daemon): string {
  const c = daemon.configuration;
  if (!c) return 'no configuration';
  const servers = c.virtualServers.reduce((n, vs) => n + vs.realServers.length, 0);
  return `${c.virtualServers.length} virtual server(s), ${servers} real server(s), ${c.vrrpInstances.length} VRRP instance(s)`;
}

/**
 * `net_namespace NAME` in the file: enter that namespace before anything is opened (see
 * sys/netns.ts) — this call does not return then. Null: go on here; a number: exit with it.
 * The file is read twice only when its text could name a namespace (the word, or an include).
 */
function enterNetNamespace(file: string, configId: string | undefined, io: Io): number | null {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return null; // the start reports it
  }
  if (!/net_namespace|include/.test(text)) return null;
  const name = loadKeepalivedConfig(file, configId !== undefined ? { configId } : {}).config?.global.netNamespace;
  if (name === undefined) return null;
  const state = netnsState(name);
  if (state === 'in') return null;
  if (state === 'missing') {
    io.err(`fulcrum run: net_namespace ${name}: no such network namespace (${NETNS_DIR}/${name}; ip netns add ${name} makes one)`);
    return 1;
  }
  if (process.env[NETNS_ENV] === name) {
    io.err(`fulcrum run: net_namespace ${name}: entered it, but this process is not in it`);
    return 1;
  }
  try {
    return execInNetns(name, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], process.env);
  } catch (err: unknown) {
    io.err(`fulcrum run: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
}

export async function runRun(o: RunCliOptions, io: Io, signals: SignalSource = process, logFd = 1, manager: ServiceManager | null = serviceManager(io)): Promise<number> {
  let file = o.file;
  if (file === undefined) {
    const found = defaultConfigFile((p) => fs.existsSync(p));
    io.err(`fulcrum run: ${found.said}`);
    if (found.file === null) return 2;
    file = found.file;
  }
  const drain = Number(o.drainTimeout);
  if (!Number.isFinite(drain) || drain < 0) {
    io.err(`fulcrum run: --drain-timeout: '${o.drainTimeout}' is not a number of seconds`);
    return 2;
  }
  if (!(LEVELS as readonly string[]).includes(o.logLevel)) {
    io.err(`fulcrum run: --log-level: '${o.logLevel}' is not one of ${LEVELS.join(', ')}`);
    return 2;
  }
  const api = apiSettings(o);
  if (typeof api === 'string') {
    io.err(`fulcrum run: ${api}`);
    return 2;
  }
  const entered = enterNetNamespace(file, o.configId, io);
  if (entered !== null) return entered;
  const workers = o.workers === undefined ? defaultWorkers() : Number(o.workers);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    io.err(`fulcrum run: --workers: '${o.workers}' is not a number of data-plane workers (1–64)`);
    return 2;
  }
  const log = createLogger(o.logLevel as LogLevel, logFd, { nonBlocking: true });
  const detach = attachLogger(log);
  if (o.nft !== undefined && !['lib', 'cmd', 'auto', 'none'].includes(o.nft)) {
    io.err(`fulcrum run: --nft: '${o.nft}' is not lib, cmd, auto or none`);
    return 2;
  }
  const udpSessions = Number(o.udpSessions ?? DEFAULT_TUNABLES.udpSessionLimit);
  if (!Number.isInteger(udpSessions) || udpSessions < 1) {
    io.err(`fulcrum run: --udp-sessions: '${o.udpSessions}' is not a positive number of sessions`);
    return 2;
  }
  if (o.relay !== undefined && o.relay !== 'epoll' && o.relay !== 'node') {
    io.err(`fulcrum run: --relay: '${o.relay}' is not epoll or node`);
    return 2;
  }
  const faults = process.env['FULCRUM_FAULT_INJECTION'] === '1';
  const plane = directorPlane({
    workers, keepForwarding: o.keepForwarding === true, nft: (o.nft ?? 'auto') as 'lib' | 'cmd' | 'auto' | 'none', udpSessions, faults,
    ...(o.relay !== undefined ? { relay: o.relay } : {}), ...(o.splice === false ? { splice: false } : {}),
    bpfDir: o.bpfDir, warn: (m) => io.err(`fulcrum run: ${m}`),
  });
  const daemon = new Daemon({
    configFile: file, configId: o.configId, plane, drainMs: drain * 1000,
    runtime: new FileRuntimeStore(o.stateFile ?? defaultPaths().state),
    // The file is read off this thread (bounded in time and memory); VRRP runs in its own process.
    loader: threadConfigLoader(),
    vrrpRunner: (onHeld) => new ProcessVrrpRunner(onHeld),
    allowEmpty: o.allowEmpty === true,
  });
  const board = new StatusBoard().attach();
  // A SIGHUP before the daemon is ready must not end it (the default action): remember it
  // and reload once it is.
  let earlyHup = false;
  const onEarlyHup = (): void => { earlyHup = true; };
  signals.on('SIGHUP', onEarlyHup);
  const limit = raiseFileLimit();
  if (limit && limit.after.soft !== limit.before.soft) publishDaemon({ type: 'notice', message: `file descriptor limit raised from ${limit.before.soft} to ${limit.after.soft} (the hard limit)` });
  const unwatch = watchFileLimit((open, max) => reportFailure('process', FailureCode.FD_EXHAUSTED,
    `${open} of ${max} file descriptors in use: new connections are refused (raise LimitNOFILE / ulimit -n)`, { open, limit: max }));
  const started = await daemon.start();
  if (!started.ok) {
    signals.removeListener('SIGHUP', onEarlyHup);
    unwatch();
    for (const e of started.errors) io.err(`fulcrum run: ${e}`);
    io.err(`fulcrum run: not started (${file})`);
    detach();
    board.close();
    await plane.close(0);
    return 1;
  }
  let apiServer: RunningApi | null = null;
  // The dashboard's traffic history lives here, so a page reload keeps its charts.
  // FULCRUM_HISTORY_STEP_MS (100–60000, default 5000) sets the sampling step; the window is 360 samples.
  const step = Number(process.env['FULCRUM_HISTORY_STEP_MS'] ?? 5000);
  const history = new TrafficHistory(Number.isInteger(step) && step >= 100 && step <= 60_000 ? step : 5000);
  const sampler = setInterval(() => {
    try {
      history.record(Date.now(), daemon.plane.stats());
    } catch (err: unknown) {
      reportFailure('history', FailureCode.TASK, err);
    }
  }, history.stepMs);
  sampler.unref();
  if (api.socketPath || api.listen) {
    try {
      apiServer = await startApi({
        daemon, board, history, metrics: createMetrics(() => statusView(daemon, board), board),
        socketPath: api.socketPath, listen: api.listen, token: api.token, open: api.open, dashboardDir: dashboardDir(), faults,
      });
    } catch (err: unknown) {
      signals.removeListener('SIGHUP', onEarlyHup);
      unwatch();
      clearInterval(sampler);
      io.err(`fulcrum run: ${err instanceof Error ? err.message : String(err)}`);
      await daemon.stop('api-failed');
      detach();
      board.close();
      return 1;
    }
    publishDaemon({ type: 'api', socket: apiServer.socketPath, url: apiServer.tcp ? `http://${formatHostPort(apiServer.tcp.host, apiServer.tcp.port)}/` : null });
  }
  return new Promise<number>((resolve) => {
    // Keeps the event loop alive even when no listener is open (nothing configured yet).
    const keepAlive = setInterval(() => undefined, 1 << 30);
    let stopping = false;
    // A reload reports its own outcome (reloaded / reload-rejected); anything else it throws is an internal failure.
    // systemd learns of a reload (RELOADING=1) and of its end (READY=1), taken or rejected.
    const onHup = (): void => {
      tell(manager, { RELOADING: '1', STATUS: 'reloading' });
      supervise('reload', daemon.reload().finally(() => tell(manager, { READY: '1', STATUS: statusLine(daemon) })));
    };
    const stop = (signal: string): void => {
      if (stopping) {
        supervise('stop', plane.close(0));
        return;
      }
      stopping = true;
      tell(manager, { STOPPING: '1', STATUS: `stopping (${signal})` });
      supervise('stop', Promise.all([daemon.stop(signal), apiServer?.close()]).finally(() => {
        board.close();
        signals.removeListener('SIGHUP', onHup);
        signals.removeListener('SIGTERM', onTerm);
        signals.removeListener('SIGINT', onInt);
        clearInterval(keepAlive);
        clearInterval(sampler);
        unwatch();
        detach();
        resolve(0);
      }));
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    signals.on('SIGHUP', onHup);
    signals.removeListener('SIGHUP', onEarlyHup);
    signals.on('SIGTERM', onTerm);
    signals.on('SIGINT', onInt);
    publishDaemon({ type: 'ready' });
    // Configuration applied, listeners and the API open: only now is the director ready.
    tell(manager, { READY: '1', STATUS: statusLine(daemon) });
    if (earlyHup) onHup();
  });
}
