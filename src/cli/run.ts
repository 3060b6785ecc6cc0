/**
 * `fulcrum run -f FILE`: the director in the foreground. SIGHUP reloads (only differences
 * are applied; a bad file is rejected and the running configuration stays); SIGTERM and
 * SIGINT stop gracefully (stop accepting, let connections finish for --drain-timeout
 * seconds, exit 0); a second SIGTERM/SIGINT closes what is left at once.
 */
import cluster from 'node:cluster';
import { Daemon, attachLogger, createLogger, type LogLevel } from '../daemon/index.js';
import { runPrimary, workerConflicts } from './workers.js';
import { ProxyDataPlane } from '../dataplane/index.js';
import type { Io } from './check.js';

export interface RunCliOptions {
  readonly file: string;
  readonly configId?: string | undefined;
  readonly drainTimeout: string;
  readonly logLevel: string;
  readonly workers?: string | undefined;
}

const LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** Where a running daemon's signals come from (the process, or a test's emitter). */
export interface SignalSource {
  on(event: 'SIGHUP' | 'SIGTERM' | 'SIGINT', fn: () => void): unknown;
  removeListener(event: 'SIGHUP' | 'SIGTERM' | 'SIGINT', fn: () => void): unknown;
}

export async function runRun(o: RunCliOptions, io: Io, signals: SignalSource = process, logFd = 1): Promise<number> {
  const drain = Number(o.drainTimeout);
  if (!Number.isFinite(drain) || drain < 0) {
    io.err(`fulcrum run: --drain-timeout: '${o.drainTimeout}' is not a number of seconds`);
    return 2;
  }
  if (!(LEVELS as readonly string[]).includes(o.logLevel)) {
    io.err(`fulcrum run: --log-level: '${o.logLevel}' is not one of ${LEVELS.join(', ')}`);
    return 2;
  }
  const workers = Number(o.workers ?? '1');
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) {
    io.err(`fulcrum run: --workers: '${o.workers}' is not a number of processes (1–64)`);
    return 2;
  }
  if (workers > 1 && cluster.isPrimary) {
    const conflicts = workerConflicts(o.file, o.configId);
    if (conflicts.length > 0) {
      for (const c of conflicts) io.err(`fulcrum run: ${c}`);
      return 1;
    }
    return runPrimary(workers, io, signals);
  }
  const log = createLogger(o.logLevel as LogLevel, logFd);
  const detach = attachLogger(log);
  const plane = new ProxyDataPlane({ tunables: { exclusive: cluster.isPrimary } });
  // Every worker checks health for its own proxy; only the first runs notify scripts and
  // sends mail, so one transition is announced once.
  const quiet = cluster.isWorker && cluster.worker?.id !== 1;
  const daemon = new Daemon({
    configFile: o.file, configId: o.configId, plane, drainMs: drain * 1000,
    ...(quiet ? { health: { notifier: { serverChanged: () => undefined, quorumChanged: () => undefined, idle: () => Promise.resolve() } } } : {}),
  });
  const started = await daemon.start();
  if (!started.ok) {
    for (const e of started.errors) io.err(`fulcrum run: ${e}`);
    io.err(`fulcrum run: not started (${o.file})`);
    detach();
    await plane.close(0);
    return 1;
  }
  process.send?.({ ready: true });
  return new Promise<number>((resolve) => {
    // Keeps the event loop alive even when no listener is open (nothing configured yet).
    const keepAlive = setInterval(() => undefined, 1 << 30);
    let stopping = false;
    const onHup = (): void => { void daemon.reload(); };
    const stop = (signal: string): void => {
      if (stopping) {
        void plane.close(0);
        return;
      }
      stopping = true;
      void daemon.stop(signal).then(() => {
        signals.removeListener('SIGHUP', onHup);
        signals.removeListener('SIGTERM', onTerm);
        signals.removeListener('SIGINT', onInt);
        clearInterval(keepAlive);
        detach();
        // A cluster worker's IPC channel would keep it alive: let go of the primary.
        if (cluster.isWorker) cluster.worker?.disconnect();
        resolve(0);
      });
    };
    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => stop('SIGINT');
    signals.on('SIGHUP', onHup);
    signals.on('SIGTERM', onTerm);
    signals.on('SIGINT', onInt);
  });
}
