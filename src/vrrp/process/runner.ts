/**
 * ProcessVrrpRunner: VRRP in a child process (child.ts), as keepalived runs its VRRP child.
 * Advertisements and the master-down timer run on the child's own event loop, so nothing
 * the daemon does — a long reload, a 4,000-line batch, a CPU stall, relaying load — delays
 * them. The daemon keeps the last status and held addresses the child reported (reads are
 * synchronous for the API), and supervises the child: if it dies, the failure is reported
 * and a new child is started on the configuration last committed, with a growing delay.
 *
 * Why a process, not a worker thread: the raw sockets VRRP uses are watched with koffi's
 * poll handles, and tearing down a worker thread that holds one crashes the whole process
 * (measured with koffi 3.3.4) — a process boundary also contains a native crash.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { channel } from 'node:diagnostics_channel';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { FailureCode, FulcrumError, reportFailure } from '../../errors/index.js';
import type { FulcrumConfig } from '../../model/types.js';
import type { InstanceStatus } from '../node.js';
import { NO_VRRP, type VrrpRunner, type VrrpTransaction } from '../runner.js';
import type { FromChild, ToChild } from './protocol.js';

export interface ProcessVrrpOptions {
  /** Nice value for the child when the daemon may set it (root): VRRP before relaying. Default -10. */
  readonly niceness?: number;
  /** Milliseconds before the first restart after a crash (doubles up to 30 s). Default 500. */
  readonly restartMs?: number;
}

type Msg<T extends ToChild['t']> = Extract<ToChild, { t: T }>;

export class ProcessVrrpRunner implements VrrpRunner {
  private child: ChildProcess | null = null;
  private starting: Promise<ChildProcess> | null = null;
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
  private heldNow: ReadonlySet<string> = new Set();
  private statusNow: readonly InstanceStatus[] = [];
  private dropsNow: Readonly<Record<string, number>> = {};
  /** The configuration last committed: what a restarted child runs. */
  private committed: FulcrumConfig | null = null;
  private stopping = false;
  private backoffMs: number;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Children that died unasked (for tests and the status view). */
  crashes = 0;

  constructor(private readonly onHeld: (held: ReadonlySet<string>) => void, private readonly o: ProcessVrrpOptions = {}) {
    this.backoffMs = o.restartMs ?? 500;
  }

  private spawn(): Promise<ChildProcess> {
    this.starting ??= new Promise<ChildProcess>((resolve, reject) => {
      const script = fileURLToPath(new URL('./child.js', import.meta.url));
      const child = fork(script, [], { serialization: 'advanced', stdio: ['ignore', 'ignore', 'inherit', 'ipc'], execArgv: [] });
      try {
        if (child.pid !== undefined && process.getuid?.() === 0) os.setPriority(child.pid, this.o.niceness ?? -10);
      } catch {
        // Not allowed here: VRRP still runs in its own process, at the default priority.
      }
      const onEarlyExit = (code: number | null, signal: NodeJS.Signals | null): void => {
        this.starting = null;
        reject(new FulcrumError(FailureCode.WORKER, `the VRRP process exited while starting (${signal ?? code})`));
      };
      child.once('exit', onEarlyExit);
      child.on('message', (raw: unknown) => {
        const m = raw as FromChild;
        if (m.t === 'ready') {
          child.removeListener('exit', onEarlyExit);
          child.once('exit', (code, signal) => this.exited(child, code, signal));
          this.child = child;
          this.starting = null;
          resolve(child);
          return;
        }
        this.fromChild(m);
      });
    });
    return this.starting;
  }

  private fromChild(m: FromChild): void {
    switch (m.t) {
      case 'reply': {
        const w = this.waiting.get(m.id);
        this.waiting.delete(m.id);
        if (!w) return;
        if (m.ok) w.resolve();
        else w.reject(new FulcrumError(m.code, m.message));
        return;
      }
      case 'held':
        this.heldNow = new Set(m.addresses);
        this.onHeld(this.heldNow);
        return;
      case 'status':
        this.statusNow = m.status;
        this.dropsNow = m.drops;
        return;
      case 'event':
        channel(m.channel).publish(m.message);
        return;
      case 'ready':
        return;
    }
  }

  private exited(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.child === child) this.child = null;
    for (const w of this.waiting.values()) w.reject(new FulcrumError(FailureCode.WORKER, `the VRRP process exited (${signal ?? code})`));
    this.waiting.clear();
    if (this.stopping) return;
    this.crashes++;
    // It held nothing it can still vouch for; the next child starts the instances afresh
    // (removing leftover addresses first, as a start does).
    if (this.heldNow.size > 0) {
      this.heldNow = new Set();
      this.onHeld(this.heldNow);
    }
    this.statusNow = [];
    reportFailure('vrrp', FailureCode.WORKER, `the VRRP process exited unexpectedly (${signal ?? `exit ${code}`}); restarting it in ${this.backoffMs} ms`);
    const delay = this.backoffMs;
    this.backoffMs = Math.min(30_000, this.backoffMs * 2);
    this.restartTimer = setTimeout(() => {
      this.restartTimer = null;
      this.restart().catch((err: unknown) => reportFailure('vrrp', FailureCode.WORKER, err));
    }, delay);
    this.restartTimer.unref();
  }

  private async restart(): Promise<void> {
    const config = this.committed;
    if (this.stopping || config === null) return;
    const t = await this.prepare(config);
    await t.commit();
    this.backoffMs = this.o.restartMs ?? 500;
  }

  private request<T extends ToChild['t']>(child: ChildProcess, m: Msg<T>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.set(m.id, { resolve, reject });
      child.send(m, (err) => {
        if (!err) return;
        this.waiting.delete(m.id);
        reject(new FulcrumError(FailureCode.WORKER, `cannot reach the VRRP process: ${err.message}`));
      });
    });
  }

  async prepare(config: FulcrumConfig): Promise<VrrpTransaction> {
    if (this.stopping) throw new FulcrumError(FailureCode.WORKER, 'VRRP is stopping');
    if (this.child === null && this.starting === null && config.vrrpInstances.length === 0) {
      this.committed = config;
      return NO_VRRP.prepare(config);
    }
    const child = this.child ?? await this.spawn();
    const id = this.nextId++;
    await this.request(child, { t: 'prepare', id, config });
    return {
      commit: async () => {
        // Committed from the daemon's side whatever happens next: a child that dies now is
        // restarted on this configuration.
        this.committed = config;
        await this.request(child, { t: 'commit', id });
      },
      abort: () => this.request(child, { t: 'abort', id }).catch(() => undefined),
    };
  }

  held(): ReadonlySet<string> {
    return this.heldNow;
  }

  status(): InstanceStatus[] {
    return [...this.statusNow];
  }

  drops(): Readonly<Record<string, number>> {
    return this.dropsNow;
  }

  /** The child's pid (tests kill it to check supervision). */
  get pid(): number | null {
    return this.child?.pid ?? null;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const child = this.child ?? (this.starting ? await this.starting.catch(() => null) : null);
    if (!child) return;
    const gone = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    await this.request(child, { t: 'stop', id: this.nextId++ }).catch(() => undefined);
    const kill = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await gone;
    clearTimeout(kill);
  }
}
