/**
 * Logs are an edge: the core publishes on diagnostics channels and this module subscribes,
 * turning events into structured log lines (pino, JSON, one object per line).
 */
import { VRRP_CHANNEL, type VrrpEvent } from '../vrrp/index.js';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { pino, type Logger } from 'pino';
import { DIRECTOR_CHANNEL, type DirectorEvent } from '../director/index.js';
import { PROXY_CHANNEL, type ProxyEvent } from '../dataplane/index.js';
import { DAEMON_CHANNEL, type DaemonEvent } from './events.js';
import { HEALTH_CHANNEL, type HealthEvent } from '../health/index.js';
import { FAILURE_CHANNEL, FailureCode, reportFailure, type InternalFailure } from '../errors/index.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

/** How far the daemon's log output may fall behind its reader before lines are dropped. */
export const LOG_BUFFER_BYTES = 16 * 1024 * 1024;

/**
 * A pino logger writing to `fd` (stdout by default). Synchronous for the short-lived commands.
 * The daemon's (`nonBlocking`) never waits for the reader: a synchronous write to a full pipe
 * makes sonic-boom sleep 100 ms per EAGAIN on the thread that logged — the control plane's,
 * with its API, health checks and VRRP's control. Lines queue in memory (written by libuv's
 * thread pool, flushed at exit) up to `maxBuffer` bytes; past that they are dropped, and the
 * drops are reported at most once a second as E_LOG_DROPPED with their count.
 */
export function createLogger(level: LogLevel = 'info', fd = 1, opts: { nonBlocking?: boolean; maxBuffer?: number } = {}): Logger {
  const base = { level, base: { name: 'fulcrum', pid: process.pid } };
  if (!opts.nonBlocking) return pino(base, pino.destination({ fd, sync: true }));
  const maxBuffer = opts.maxBuffer ?? LOG_BUFFER_BYTES;
  const dest = pino.destination({ fd, sync: false, maxLength: maxBuffer });
  let dropped = 0;
  let timer: NodeJS.Timeout | null = null;
  dest.on('drop', () => {
    dropped++;
    droppedTotal++;
    if (timer) return;
    // Reported later, not from inside the write that dropped (the report is a log line too).
    timer = setTimeout(() => {
      timer = null;
      const n = dropped;
      dropped = 0;
      reportFailure('log', FailureCode.LOG_DROPPED, new Error(`${n} log line(s) dropped: the reader of the log output is more than ${maxBuffer} bytes behind`), { lines: n });
    }, 1000);
    timer.unref();
  });
  return pino(base, dest);
}

let droppedTotal = 0;

/** Log lines dropped by non-blocking loggers since the process started. */
export function droppedLogLines(): number {
  return droppedTotal;
}

/** Subscribe `log` to every Fulcrum channel; returns the unsubscribe function. */
export function attachLogger(log: Logger): () => void {
  const onDirector = (m: unknown): void => {
    const e = m as DirectorEvent;
    switch (e.type) {
      case 'quorum':
        if (e.up) log.info({ event: 'quorum-up', service: e.service, liveWeight: e.liveWeight, quorum: e.quorum }, `${e.service}: quorum regained`);
        else log.warn({ event: 'quorum-down', service: e.service, liveWeight: e.liveWeight, quorum: e.quorum }, `${e.service}: quorum lost`);
        return;
      case 'service':
        log.info({ event: `service-${e.change}`, service: e.service }, `${e.service}: service ${e.change}`);
        return;
      case 'server':
        log.info({ event: `server-${e.change}`, service: e.service, server: e.server, weight: e.weight },
          `${e.service}: real server ${e.server} ${e.change}${e.weight !== undefined ? ` (weight ${e.weight})` : ''}`);
        return;
      case 'apply-failed':
        for (const f of e.failures) log.error({ event: 'apply-failed', code: f.code }, f.message);
        return;
    }
  };
  const onProxy = (m: unknown): void => {
    const e = m as ProxyEvent;
    if (e.type === 'connect-failed') {
      log.warn({ event: 'connect-failed', service: e.service, server: e.server, error: e.error, retrying: e.retrying },
        `${e.service}: real server ${e.server} refused a connection (${e.error})${e.retrying ? '; retrying another' : '; giving up'}`);
    } else {
      log.warn({ event: 'no-server', service: e.service, client: e.client.address }, `${e.service}: no real server available`);
    }
  };
  const onDaemon = (m: unknown): void => {
    const e = m as DaemonEvent;
    switch (e.type) {
      case 'started':
        log.info({ event: 'started', services: e.services, plane: e.plane }, `serving ${e.services} virtual service(s) with the ${e.plane} data plane`);
        return;
      case 'reloaded':
        log.info({ event: 'reloaded', ops: e.ops, failed: e.failed }, `configuration reloaded: ${e.ops} change(s) applied${e.failed ? `, ${e.failed} failed` : ''}`);
        return;
      case 'reload-rejected':
        for (const d of e.errors) log.error({ event: 'reload-rejected' }, d);
        log.error({ event: 'reload-rejected', errors: e.errors.length }, 'configuration rejected; the running configuration stays in effect');
        return;
      case 'stopping':
        log.info({ event: 'stopping', signal: e.signal, connections: e.connections, drainMs: e.drainMs }, `stopping on ${e.signal}: draining ${e.connections} connection(s) for up to ${e.drainMs} ms`);
        return;
      case 'stopped':
        log.info({ event: 'stopped' }, 'stopped');
        return;
      case 'ready':
        log.info({ event: 'ready' }, 'ready: SIGHUP reloads, SIGTERM stops');
        return;
      case 'notice':
        log.warn({ event: 'notice' }, e.message);
        return;
      case 'api':
        log.info({ event: 'api', socket: e.socket, url: e.url }, `control API on ${[e.socket, e.url ? `${e.url} (dashboard, /metrics)` : null].filter(Boolean).join(' and ')}`);
        return;
      case 'runtime':
        log.info({ event: 'runtime', source: e.source, commands: e.commands, ops: e.ops }, `runtime change from ${e.source}: ${e.commands.join('; ')} (${e.ops} op(s) applied)`);
        return;
      case 'runtime-rejected':
        log.warn({ event: 'runtime-rejected', source: e.source, commands: e.commands }, `runtime change from ${e.source} refused: ${e.reason}`);
        return;
      case 'drain-started':
        log.info({ event: 'drain-started', service: e.service, server: e.server, deadline: new Date(e.deadline).toISOString() }, `${e.service}: draining ${e.server} (weight 0) until ${new Date(e.deadline).toISOString()}`);
        return;
      case 'bgp-session':
        (e.to === 'established' ? log.info.bind(log) : log.warn.bind(log))({ event: 'bgp-session', neighbor: e.neighbor, from: e.from, to: e.to },
          `BGP neighbor ${e.neighbor}: ${e.from} → ${e.to}`);
        return;
      case 'bgp-route':
        log.info({ event: 'bgp-route', prefix: e.prefix, announced: e.announced, reason: e.reason }, `BGP: ${e.announced ? 'announced' : 'withdrew'} ${e.prefix} (${e.reason})`);
        return;
      case 'bgp-speaker':
        (e.up ? log.info.bind(log) : log.warn.bind(log))({ event: 'bgp-speaker', up: e.up, speaker: e.name, reason: e.reason }, `BGP speaker ${e.name} is ${e.up ? 'up' : `down: ${e.reason}`}`);
        return;
      case 'sync-role':
        log.info({ event: 'sync-role', from: e.from, to: e.to, interface: e.interface, instance: e.instance, syncid: e.syncid },
          `connection sync: ${e.from} → ${e.to} on ${e.interface} (syncid ${e.syncid}${e.instance ? `, following ${e.instance}` : ''})`);
        return;
      case 'drain-cancelled':
        log.info({ event: 'drain-cancelled', service: e.service, server: e.server, weight: e.weight, source: e.source }, `${e.service}: drain of ${e.server} cancelled by ${e.source}, weight ${e.weight} restored`);
        return;
      case 'drained':
        (e.outcome === 'deadline' ? log.warn.bind(log) : log.info.bind(log))({ event: 'drained', service: e.service, server: e.server, outcome: e.outcome, connections: e.connections, templates: e.templates },
          `${e.service}: ${e.server} removed after draining (${e.outcome}${e.outcome === 'deadline' ? `: ${e.connections} connection(s), ${e.templates} template(s) left` : ''})`);
        return;
    }
  };
  const onHealth = (m: unknown): void => {
    const e = m as HealthEvent;
    switch (e.type) {
      case 'check': {
        const ev = e.evidence;
        const fields = { event: e.transition ? `check-${e.transition}` : 'check-failed', service: e.service, server: e.server, checker: e.checker, code: ev.code, status: ev.status, detail: ev.detail, latencyMs: Math.round(ev.latencyMs) };
        const text = `${e.service}: ${e.checker} on ${e.server} ${e.transition ? `is ${e.transition.toUpperCase()}` : e.retrying ? 'failed, retrying' : 'failed'}${ev.detail ? ` (${ev.detail})` : ''}`;
        if (e.transition === 'down') log.warn(fields, text);
        else if (e.transition === 'up') log.info(fields, text);
        else log.debug(fields, text);
        return;
      }
      case 'server':
        (e.alive ? log.info.bind(log) : log.warn.bind(log))({ event: e.alive ? 'server-up' : 'server-down', service: e.service, server: e.server, weight: e.weight, reason: e.reason },
          `${e.service}: real server ${e.server} ${e.alive ? 'in rotation' : 'out of rotation'}${e.weight !== undefined ? ` (weight ${e.weight})` : ''}: ${e.reason}`);
        return;
      case 'agent':
        log.info({ event: 'agent', service: e.service, server: e.server, reply: e.reply, words: e.words, error: e.error, alive: e.effect.alive, weight: e.effect.weight, load: e.effect.load },
          `${e.service}: agent on ${e.server} ${e.error ? `gave no usable reply (${e.error})` : `said ${JSON.stringify(e.reply)}: ${e.effect.reason}`}`);
        return;
      case 'probe':
        return;
      case 'notify': {
        const r = e.report;
        const what = r.type === 'script' ? `notify script ${r.script}: ${r.outcome}` : r.ok ? 'alert mail sent' : `alert mail failed: ${r.error ?? ''}`;
        (r.ok ? log.info.bind(log) : log.error.bind(log))({ event: `notify-${r.type}`, service: r.service, server: r.server, ok: r.ok }, `${r.service}: ${r.server}: ${what}`);
        return;
      }
    }
  };
  const onVrrp = (m: unknown): void => {
    const e = m as VrrpEvent;
    switch (e.type) {
      case 'transition':
        (e.to === 'FAULT' ? log.warn.bind(log) : log.info.bind(log))({ event: 'vrrp-transition', instance: e.instance, from: e.from, to: e.to, reason: e.reason, priority: e.priority, master: e.master },
          `VRRP ${e.instance}: ${e.from} → ${e.to} (${e.reason}; priority ${e.priority}${e.master && e.to !== 'MASTER' ? `; master ${e.master}` : ''})`);
        return;
      case 'dropped':
        log.warn({ event: 'vrrp-dropped', instance: e.instance, interface: e.interface, src: e.src, reason: e.reason, count: e.count },
          `VRRP${e.instance ? ` ${e.instance}` : ''}: dropped a packet from ${e.src}${e.interface ? ` on ${e.interface}` : ''}: ${e.reason}: ${e.detail}${e.count > 1 ? ` (${e.count} since the last report)` : ''}`);
        return;
      case 'track':
        (e.faults.length > 0 ? log.warn.bind(log) : log.info.bind(log))({ event: 'vrrp-track', instance: e.instance, priority: e.priority, faults: e.faults },
          `VRRP ${e.instance}: priority ${e.priority}${e.faults.length > 0 ? `; FAULT: ${e.faults.join('; ')}` : ''}`);
        return;
      case 'script':
        (e.ok ? log.info.bind(log) : log.warn.bind(log))({ event: 'vrrp-script', script: e.script, ok: e.ok }, `vrrp_script ${e.script} ${e.ok ? 'succeeds' : 'fails'} (${e.outcome})`);
        return;
      case 'notify':
        (e.ok ? log.info.bind(log) : log.error.bind(log))({ event: 'vrrp-notify', instance: e.instance, script: e.script, ok: e.ok }, `VRRP ${e.instance}: notify ${e.script}: ${e.outcome}`);
        return;
      case 'error':
        log.error({ event: 'vrrp-error', instance: e.instance }, `VRRP ${e.instance}: ${e.message}`);
        return;
    }
  };
  // Internal failures: every one is counted (status board); the log gets the first of each
  // component and code, then at most one line per 10 s with how many were not logged.
  const shown = new Map<string, { at: number; suppressed: number }>();
  const onFailure = (m: unknown): void => {
    const f = m as InternalFailure;
    const k = `${f.component} ${f.code}`;
    const now = Date.now();
    const s = shown.get(k);
    if (s && now - s.at < 10_000) {
      s.suppressed++;
      return;
    }
    const suppressed = s?.suppressed ?? 0;
    shown.set(k, { at: now, suppressed: 0 });
    log.error({ event: 'internal-failure', component: f.component, code: f.code, ...f.detail, ...(suppressed > 0 ? { suppressed } : {}) },
      `${f.component}: ${f.message}${suppressed > 0 ? ` (${suppressed} more like it since the last report)` : ''}`);
  };
  subscribe(FAILURE_CHANNEL, onFailure);
  subscribe(VRRP_CHANNEL, onVrrp);
  subscribe(HEALTH_CHANNEL, onHealth);
  subscribe(DIRECTOR_CHANNEL, onDirector);
  subscribe(PROXY_CHANNEL, onProxy);
  subscribe(DAEMON_CHANNEL, onDaemon);
  return () => {
    unsubscribe(FAILURE_CHANNEL, onFailure);
    unsubscribe(VRRP_CHANNEL, onVrrp);
    unsubscribe(HEALTH_CHANNEL, onHealth);
    unsubscribe(DIRECTOR_CHANNEL, onDirector);
    unsubscribe(PROXY_CHANNEL, onProxy);
    unsubscribe(DAEMON_CHANNEL, onDaemon);
  };
}
