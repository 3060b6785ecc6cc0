/**
 * daemon — the composition root (`fulcrum run`): configuration → director → data plane,
 * lifecycle (start, SIGHUP reload, graceful SIGTERM/SIGINT stop), and the logging edge
 * that subscribes to every diagnostics channel.
 */
export { Daemon, planeMismatches, type ChangeOutcome, type DaemonOptions, type DrainStatus, type StartOutcome } from './daemon.js';
export { attachLogger, createLogger, type LogLevel } from './logging.js';
export { DAEMON_CHANNEL, publishDaemon, type DaemonEvent } from './events.js';
