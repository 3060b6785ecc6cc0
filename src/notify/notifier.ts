/**
 * What happens when a real server goes up or down, besides the data plane: its
 * notify_up/notify_down script, and an e-mail alert. Per real server the actions run in
 * order, one at a time (a slow script delays the next action for that server only).
 * Failures are reported, never thrown.
 */
import { FailureCode, reportFailure, supervise } from '../errors/index.js';
import type { GlobalDefs, RealServer, ScriptSpec } from '../model/types.js';
import { alertsEnabled, realServerAlert, type Mailer } from './mail.js';
import { describeOutcome, runScript } from './script.js';
import type { FifoOpener, NotifyFifo } from '../sys/fifo.js';
import { parseHostPort } from '../config/ipvsadm/parse.js';

/** keepalived's inet_sockaddrtotrio: `[10.0.0.1]:tcp:80`; a service key as FMT_VS writes it (`FWM 8`, `[group]:0`). */
export function fifoVs(service: string): string {
  const m = /^(tcp|udp|sctp) (\S+)$/.exec(service);
  const hp = m ? parseHostPort(m[2] ?? '') : null;
  if (m && hp && hp.port !== undefined) return `[${hp.address}]:${m[1] ?? ''}:${hp.port}`;
  const f = /^fwmark (\d+)/.exec(service);
  if (f) return `FWM ${f[1] ?? ''}`;
  const g = /^group (\S+)/.exec(service);
  return g ? `[${g[1] ?? ''}]:0` : service;
}

/** `RS [10.0.0.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN`: the real server with the service's protocol. */
export function fifoRs(service: string, address: string, port: number): string {
  const proto = /^(tcp|udp|sctp) /.exec(service)?.[1] ?? 'tcp';
  return `[${address}]:${proto}:${port}`;
}

export interface ServerTransition {
  readonly service: string;
  readonly server: string;
  readonly up: boolean;
  /** The evidence, in words ("status 503 not in 200-299"). */
  readonly reason: string;
}

export type NotifyReport =
  | { readonly type: 'script'; readonly service: string; readonly server: string; readonly script: string; readonly ok: boolean; readonly outcome: string }
  | { readonly type: 'mail'; readonly service: string; readonly server: string; readonly ok: boolean; readonly error?: string | undefined };

/** A virtual service lost or regained quorum. */
export interface QuorumTransition {
  readonly service: string;
  readonly up: boolean;
  readonly script?: ScriptSpec | undefined;
}

export interface Notifier {
  serverChanged(t: ServerTransition, rs: RealServer, g: GlobalDefs): void;
  /** Run quorum_up/quorum_down (in order with the service's other actions). */
  quorumChanged(t: QuorumTransition, g: GlobalDefs): void;
  /** Resolves when every queued action has finished. */
  idle(): Promise<void>;
}

/** Seconds a notify script may run before it is killed (keepalived's default script timeout). */
export const NOTIFY_TIMEOUT_MS = 30_000;

export class ScriptAndMailNotifier implements Notifier {
  private readonly queues = new Map<string, Promise<void>>();
  private readonly fifos = new Map<string, NotifyFifo | null>();

  constructor(
    private readonly mailer: (g: GlobalDefs) => Mailer | null,
    private readonly report: (r: NotifyReport) => void,
    private readonly timeoutMs = NOTIFY_TIMEOUT_MS,
    /** Opens notify_fifo / lvs_notify_fifo (the real one is sys/fifo.ts); none: no FIFO lines. */
    private readonly openFifo: FifoOpener | null = null,
  ) {}

  serverChanged(t: ServerTransition, rs: RealServer, g: GlobalDefs): void {
    // The FIFO line goes out at once, in the order the transitions happen (keepalived's).
    this.fifoLine(g, `RS ${fifoRs(t.service, rs.address, rs.port)} ${fifoVs(t.service)} ${t.up ? 'UP' : 'DOWN'}`);
    this.enqueue(`${t.service}|${t.server}`, () => this.act(t, rs, g));
  }

  /** The line in notify_fifo and lvs_notify_fifo (each opened once; one that cannot open is reported once). */
  private fifoLine(g: GlobalDefs, line: string): void {
    if (!this.openFifo) return;
    for (const p of new Set([g.notifyFifo, g.lvsNotifyFifo].filter((x): x is string => x !== undefined))) {
      let f = this.fifos.get(p);
      if (f === undefined) {
        try {
          f = this.openFifo(p);
        } catch (err: unknown) {
          reportFailure('notify', FailureCode.SCRIPT, err, { fifo: p });
          f = null;
        }
        this.fifos.set(p, f);
      }
      if (f && !f.write(line)) reportFailure('notify', FailureCode.SCRIPT, `notify FIFO ${p} is full (nobody reads it): a line was dropped`, { fifo: p, dropped: f.dropped });
    }
  }

  quorumChanged(t: QuorumTransition, g: GlobalDefs): void {
    this.fifoLine(g, `VS ${fifoVs(t.service)} ${t.up ? 'UP' : 'DOWN'}`);
    const script = t.script;
    if (!script) return;
    this.enqueue(t.service, () => this.runScript(script, t.service, '', g));
  }

  private async runScript(script: ScriptSpec, service: string, server: string, g: GlobalDefs): Promise<void> {
    const o = await runScript(script, { timeoutMs: this.timeoutMs, defaultUser: g.scriptUser });
    this.report({ type: 'script', service, server, script: script.text, ok: o.exitCode === 0, outcome: describeOutcome(o, this.timeoutMs) });
  }

  private enqueue(key: string, fn: () => Promise<void>): void {
    const prev = this.queues.get(key) ?? Promise.resolve();
    // A step that throws is reported; the queue goes on with the next transition.
    const next = prev.then(fn).catch((err: unknown) => reportFailure('notify', FailureCode.SCRIPT, err, { key }));
    this.queues.set(key, next);
    supervise('notify', next.then(() => {
      if (this.queues.get(key) === next) this.queues.delete(key);
    }));
  }

  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.all([...this.queues.values()]);
  }

  private async act(t: ServerTransition, rs: RealServer, g: GlobalDefs): Promise<void> {
    const script = t.up ? rs.notifyUp : rs.notifyDown;
    if (script) await this.runScript(script, t.service, t.server, g);
    if (alertsEnabled(g, rs.smtpAlert)) {
      const m = this.mailer(g);
      if (!m) return;
      try {
        await m.send(realServerAlert(g, t));
        this.report({ type: 'mail', service: t.service, server: t.server, ok: true });
      } catch (err: unknown) {
        this.report({ type: 'mail', service: t.service, server: t.server, ok: false, error: (err as Error).message });
      }
    }
  }
}
