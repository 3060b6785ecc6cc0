/**
 * SyncDaemon: IPVS's sync daemon for Fulcrum's planes. A master reads the plane's flows
 * (DataPlane.syncExport), sends what is new, changed or due for a refresh (SyncSender) as
 * IPVS version-1 datagrams to the multicast group; a backup decodes what arrives
 * (SyncReceiver), and installs it in batches (DataPlane.syncInstall). Everything it does
 * off the wire is counted; nothing it receives can throw out of it or change anything but
 * the plane's synchronised entries.
 *
 * Roles: keepalived's `lvs_sync_daemon IF INSTANCE` follows the VRRP instance — MASTER
 * sends, any other state receives (the kernel's threads are switched the same way by
 * keepalived). Without an instance, and for `ipvsadm --start-daemon`, the roles are the
 * ones asked for (master, backup, or both).
 *
 * It runs on the control plane's loop: its reads and writes go through the plane's own
 * queue and its timers are unref'd; a failure is reported (E_SYNC_*) and the next tick
 * tries again.
 */
import type { DataPlane, Timeouts } from '../dataplane/types.js';
import { DEFAULT_TIMEOUTS } from '../dataplane/types.js';
import { errorCode, errorMessage, FailureCode, reportFailure, supervise } from '../errors/index.js';
import type { SyncListener, SyncSender as SyncSocket, SyncTransport } from '../sys/sync-socket.js';
import { encodeMessages, SYNC_DEFAULT_GROUP, SYNC_DEFAULT_MAXLEN, SYNC_DEFAULT_PORT, SYNC_DEFAULT_TTL } from './codec.js';
import { SyncReceiver, SyncSender, type ReceiveRefusal } from './engine.js';
import { toEntry } from './translate.js';
import type { SyncInstallRefusal } from '../dataplane/types.js';

export interface SyncConfig {
  readonly interface: string;
  /** Follow this VRRP instance (MASTER sends, otherwise receive). */
  readonly instance?: string | undefined;
  /** Without an instance: the roles to run. */
  readonly master?: boolean | undefined;
  readonly backup?: boolean | undefined;
  readonly syncid: number;
  readonly maxlen: number;
  readonly group: string;
  readonly port: number;
  readonly ttl: number;
  /** Resend a flow at least this often (seconds; 0: half its timeout). */
  readonly refreshSec?: number | undefined;
  /** Send a counted flow from this many packets (IPVS's sync_threshold; default SYNC_THRESHOLD). */
  readonly threshold?: number | undefined;
}

export const defaultSyncConfig = (ifname: string): SyncConfig => ({
  interface: ifname, syncid: 0, maxlen: SYNC_DEFAULT_MAXLEN, group: SYNC_DEFAULT_GROUP, port: SYNC_DEFAULT_PORT, ttl: SYNC_DEFAULT_TTL,
});

export type SyncRole = 'master' | 'backup' | 'master+backup' | 'stopped';

export interface SyncStatus {
  readonly role: SyncRole;
  readonly config: SyncConfig | null;
  readonly sent: { readonly messages: number; readonly entries: number; readonly bytes: number; readonly errors: number; readonly tracked: number };
  readonly received: { readonly messages: number; readonly entries: number; readonly bytes: number; readonly peer: string | null; readonly lastAt: number | null };
  readonly installed: number;
  readonly unchanged: number;
  readonly queued: number;
  /** Refusals by reason: wire faults, entries without a flow here, install refusals, overflow. */
  readonly refused: Readonly<Record<string, number>>;
  /** Seconds: a master's last export → last datagram sent; a backup's oldest arrival → installed. */
  readonly lag: { readonly send: number | null; readonly install: number | null };
}

export interface SyncDaemonOptions {
  readonly plane: DataPlane;
  readonly transport: SyncTransport;
  /** The VRRP state of an instance by name (null when there is no such instance). */
  readonly instanceState?: (name: string) => string | null;
  /** Seconds (wall clock, for `lastAt`; intervals only otherwise). */
  readonly now?: () => number;
  /** Milliseconds between a master's reads of the plane (default 1000). */
  readonly sendIntervalMs?: number;
  /** Milliseconds between a backup's installs (default 100). */
  readonly installIntervalMs?: number;
  readonly timeouts?: () => Timeouts;
  readonly maxPending?: number;
  /**
   * Entries per second a master sends at most (default 20,000: 0.7 MB/s, 100,000 flows in
   * 5 s — about what a backup writes into nftables per second, measured). The protocol has
   * no flow control: what a backup cannot take in time is lost until the next refresh, so
   * the master paces itself.
   */
  readonly sendRate?: number;
  /** Waits `ms` (tests pass one that returns at once). */
  readonly pause?: (ms: number) => Promise<void>;
  /** Flows per install transaction (default 2,048); the backup reads its socket between them. */
  readonly installBatch?: number;
  /** Told every role change (the daemon logs it and puts it on the timeline). */
  readonly onRole?: (from: SyncRole, to: SyncRole, config: SyncConfig | null) => void;
}

export class SyncDaemon {
  private cfg: SyncConfig | null = null;
  private sender: SyncSender = new SyncSender();
  private receiver: SyncReceiver | null = null;
  private sock: SyncSocket | null = null;
  private listener: SyncListener | null = null;
  private role: SyncRole = 'stopped';
  private timers: NodeJS.Timeout[] = [];
  private sending = false;
  private installing = false;
  private readonly now: () => number;
  private readonly counts = { messages: 0, entries: 0, bytes: 0, errors: 0, installed: 0, unchanged: 0, receivedBytes: 0 };
  private readonly refusedInstall = new Map<SyncInstallRefusal, number>();
  private peer: string | null = null;
  private lastAt: number | null = null;
  private lag: { send: number | null; install: number | null } = { send: null, install: null };
  /** Counts from receivers of earlier configurations. */
  private readonly pastRefused = new Map<ReceiveRefusal, number>();
  private pastReceived = { messages: 0, entries: 0 };
  private changing: Promise<void> = Promise.resolve();

  constructor(private readonly o: SyncDaemonOptions) {
    this.now = o.now ?? (() => Date.now() / 1000);
  }

  /** Start, change or stop (null) the daemon. Resolves once the sockets are open. */
  configure(cfg: SyncConfig | null): Promise<void> {
    const next = this.changing.then(() => this.apply(cfg));
    this.changing = next.catch(() => undefined);
    return next;
  }

  private async apply(cfg: SyncConfig | null): Promise<void> {
    const same = cfg !== null && this.cfg !== null && JSON.stringify(cfg) === JSON.stringify(this.cfg);
    if (same) return this.roleChanged();
    this.close();
    this.cfg = cfg;
    if (!cfg) return;
    this.sender = new SyncSender({ refreshSec: cfg.refreshSec, threshold: cfg.threshold });
    this.startTimers();
    await this.roleChanged();
  }

  /** The role this configuration asks for now. */
  private wantedRole(): SyncRole {
    const c = this.cfg;
    if (!c) return 'stopped';
    if (c.instance !== undefined) return this.o.instanceState?.(c.instance) === 'MASTER' ? 'master' : 'backup';
    const m = c.master ?? true;
    const b = c.backup ?? true;
    return m && b ? 'master+backup' : m ? 'master' : b ? 'backup' : 'stopped';
  }

  /**
   * Follow the VRRP state now (the daemon calls this on every VRRP change; the install
   * timer every tick, which also retries sockets that could not be opened). Never rejects:
   * a failure is reported.
   */
  followRole(): Promise<void> {
    if (!this.cfg || this.wantedRole() === this.role) return Promise.resolve();
    const next = this.changing.then(() => this.roleChanged()).catch((err: unknown) => {
      reportFailure('sync', errorCode(err) ?? FailureCode.SYNC_SOCKET, err, { interface: this.cfg?.interface ?? '' });
    });
    this.changing = next;
    return next;
  }

  private async roleChanged(): Promise<void> {
    const c = this.cfg;
    const want = this.wantedRole();
    if (!c || want === this.role) return;
    const sends = want === 'master' || want === 'master+backup';
    const receives = want === 'backup' || want === 'master+backup';
    const o = { ifname: c.interface, group: c.group, port: c.port, ttl: c.ttl };
    if (sends && !this.sock) {
      this.sock = await this.o.transport.openSender(o);
      // A new master tells the backups everything it holds.
      this.sender.reset();
    }
    if (!sends && this.sock) {
      this.sock.close();
      this.sock = null;
    }
    if (receives && !this.listener) {
      this.receiver = new SyncReceiver({ syncid: c.syncid, timeouts: this.o.timeouts?.() ?? DEFAULT_TIMEOUTS, ...(this.o.maxPending ? { maxPending: this.o.maxPending } : {}) });
      const r = this.receiver;
      this.listener = await this.o.transport.openListener(o, (buf, from) => {
        const before = r.counts.messages;
        r.receive(buf, this.now());
        if (r.counts.messages > before) {
          this.counts.receivedBytes += buf.length;
          this.peer = from;
          this.lastAt = this.now();
        }
      });
    }
    if (!receives && this.listener) {
      this.listener.close();
      this.listener = null;
      this.retireReceiver();
    }
    const from = this.role;
    this.role = want;
    this.o.onRole?.(from, want, c);
  }

  private retireReceiver(): void {
    if (!this.receiver) return;
    this.pastReceived.messages += this.receiver.counts.messages;
    this.pastReceived.entries += this.receiver.counts.entries;
    for (const [k, n] of this.receiver.counts.refused) this.pastRefused.set(k, (this.pastRefused.get(k) ?? 0) + n);
    this.receiver = null;
  }

  private startTimers(): void {
    const every = (ms: number, fn: () => Promise<void>): void => {
      // Each task never rejects; supervise reports it if one ever does.
      const t = setInterval(() => supervise('sync', fn), ms);
      t.unref();
      this.timers.push(t);
    };
    every(this.o.sendIntervalMs ?? 1000, () => this.sendTick());
    every(this.o.installIntervalMs ?? 100, () => this.installTick());
    // Roles follow VRRP; sockets that failed to open are tried again.
    every(1000, () => this.followRole());
  }

  /** A master's round: read the plane, send what is due. Never rejects. */
  async sendTick(): Promise<void> {
    const c = this.cfg;
    const sock = this.sock;
    const plane = this.o.plane;
    if (!c || !sock || this.sending || !plane.syncExport) return;
    this.sending = true;
    const t0 = this.now();
    try {
      const flows = await plane.syncExport();
      const due = this.sender.due(flows, this.now());
      if (due.length === 0) return;
      const rate = this.o.sendRate ?? 20_000;
      const pause = this.o.pause ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      // Against the clock, not per datagram: a timer that fires late is made up for.
      const start = performance.now();
      let entries = 0;
      for (const m of encodeMessages(due.map(toEntry), { syncid: c.syncid, maxlen: c.maxlen })) {
        if (this.sock !== sock) return;
        const ahead = (entries / rate) * 1000 - (performance.now() - start);
        if (ahead >= 5) await pause(ahead);
        entries += m.readUInt8(4);
        try {
          await sock.send(m);
          this.counts.messages++;
          this.counts.entries += m.readUInt8(4);
          this.counts.bytes += m.length;
        } catch (err: unknown) {
          this.counts.errors++;
          // What was not sent is sent at the next round.
          this.sender.reset();
          reportFailure('sync', FailureCode.SYNC_SEND, err, { interface: c.interface });
          return;
        }
      }
      this.lag.send = this.now() - t0;
    } catch (err: unknown) {
      reportFailure('sync', errorCode(err) ?? FailureCode.SYNC_SEND, err, { what: 'read the plane for sync' });
    } finally {
      this.sending = false;
    }
  }

  /** A backup's round: install what arrived. Never rejects. */
  async installTick(): Promise<void> {
    const r = this.receiver;
    const plane = this.o.plane;
    if (!r || this.installing || r.queued === 0) return;
    this.installing = true;
    try {
      // In batches, yielding between them so the socket is read while the plane writes.
      while (r.queued > 0 && this.receiver === r) {
        const { flows, since } = r.take(this.o.installBatch ?? 2048);
        if (!plane.syncInstall) {
          this.refusedInstall.set('unsupported', (this.refusedInstall.get('unsupported') ?? 0) + flows.length);
          continue;
        }
        try {
          const res = await plane.syncInstall(flows);
          this.counts.installed += res.installed;
          this.counts.unchanged += res.unchanged;
          for (const [k, n] of res.refused) this.refusedInstall.set(k, (this.refusedInstall.get(k) ?? 0) + n);
          if (since !== null && r.queued === 0) this.lag.install = this.now() - since;
        } catch (err: unknown) {
          reportFailure('sync', errorCode(err) ?? FailureCode.SYNC_INSTALL, err, { flows: flows.length, reason: errorMessage(err).slice(0, 200) });
          return;
        }
        await new Promise<void>((res) => setImmediate(res));
      }
    } finally {
      this.installing = false;
    }
  }

  status(): SyncStatus {
    const refused: Record<string, number> = {};
    const add = (k: string, n: number): void => { refused[k] = (refused[k] ?? 0) + n; };
    for (const [k, n] of this.pastRefused) add(k, n);
    for (const [k, n] of this.receiver?.counts.refused ?? []) add(k, n);
    for (const [k, n] of this.refusedInstall) add(k, n);
    return {
      role: this.role,
      config: this.cfg,
      sent: { messages: this.counts.messages, entries: this.counts.entries, bytes: this.counts.bytes, errors: this.counts.errors, tracked: this.sender.size },
      received: {
        messages: this.pastReceived.messages + (this.receiver?.counts.messages ?? 0),
        entries: this.pastReceived.entries + (this.receiver?.counts.entries ?? 0),
        bytes: this.counts.receivedBytes,
        peer: this.peer, lastAt: this.lastAt,
      },
      installed: this.counts.installed, unchanged: this.counts.unchanged, queued: this.receiver?.queued ?? 0,
      refused, lag: { ...this.lag },
    };
  }

  private close(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.sock?.close();
    this.sock = null;
    this.listener?.close();
    this.listener = null;
    this.retireReceiver();
    const from = this.role;
    this.role = 'stopped';
    if (from !== 'stopped') this.o.onRole?.(from, 'stopped', this.cfg);
  }

  /** Stop (the daemon's stop, `--stop-daemon`). */
  stop(): Promise<void> {
    return this.configure(null);
  }
}
