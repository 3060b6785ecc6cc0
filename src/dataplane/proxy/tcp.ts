/**
 * One proxied TCP connection: schedule a real server, connect (retrying other servers on
 * failure), relay both directions with back-pressure, propagate half-closes and resets.
 *
 * Accounting follows IPVS: a connection counts as inactive while connecting and active
 * once the real server accepted it; it is unbound (and its persistence template released)
 * exactly once, when both sockets are gone.
 *
 * Hot-path rules: per chunk, the counters (countIn/countOut) and a write; no timer, and no
 * allocation of our own except copying a short read out of the shared buffer.
 */
import net from 'node:net';
import { setConnActive } from '../../scheduling/dest.js';
import { addrFold } from '../../scheduling/hash.js';
import type { Dest, FlowKey } from '../../scheduling/types.js';
import type { ConnectionEntry, ListenAddress } from '../types.js';
import { countIn, countOut } from '../stats.js';
import { tcpEntry, tcpIdleLimit, type IdleLimit, type ServerState, type ServiceRuntime, type Session, type TcpState } from './context.js';
import { proxyHeader, unmapAddress } from './proxy-protocol.js';
import { FailureCode, reportFailure } from '../../errors/index.js';

export class TcpConnection implements Session {
  private up: net.Socket | null = null;
  private dest: Dest | null = null;
  private server: ServerState | null = null;
  private active = false;
  private tried: Set<Dest> | null = null;
  private state: TcpState = 'SYN_SENT';
  private clientClosed = false;
  private upClosed = true;
  private finished = false;
  /** Coarse seconds of the last byte relayed (or of the last state change). */
  private lastActive: number;
  private connectStarted = 0;
  /** This connection's own read buffer (see buffers.ts), or null while on the shared one. */
  private own: Buffer | null = null;
  /** The last read filled half a buffer or more: read into an own buffer next. */
  private bulk = false;
  private readonly flow: FlowKey;

  /** The client's address and port, read once when first needed (each read is a getpeername() call). */
  private peer: { readonly address: string; readonly port: number } | null = null;
  /** The client address persistence keys on ('' when the service is not persistent). */
  private readonly sticky: string;

  constructor(
    private readonly svc: ServiceRuntime,
    private readonly client: net.Socket,
    private readonly vaddr: ListenAddress,
    vfold: number,
  ) {
    this.lastActive = svc.coarseNow();
    // Only source hashing (sh, mh) and persistence look at the client: for the others its
    // address is not even read here (a system call per connection saved); listings, the
    // PROXY protocol and reports read it when they need it.
    const needs = svc.sched.usesClient;
    this.flow = needs
      ? { saddrFold: addrFold(this.caddr), sport: this.cport, daddrFold: vfold, dport: vaddr.port }
      : { saddrFold: 0, sport: 0, daddrFold: vfold, dport: vaddr.port };
    this.sticky = svc.sched.persistent ? this.caddr : '';
  }

  private get caddr(): string {
    return (this.peer ??= this.readPeer()).address;
  }

  private get cport(): number {
    return (this.peer ??= this.readPeer()).port;
  }

  private readPeer(): { address: string; port: number } {
    const ra = this.client.remoteAddress;
    return ra === undefined ? { address: '', port: 0 } : { address: unmapAddress(ra), port: this.client.remotePort ?? 0 };
  }

  /** Take over an accepted (paused) client socket; `vfold` is addrFold(vaddr.address). */
  static accept(svc: ServiceRuntime, client: net.Socket, vaddr: ListenAddress, vfold: number): void {
    new TcpConnection(svc, client, vaddr, vfold).start();
  }

  private start(): void {
    const svc = this.svc;
    svc.counters.conns++;
    svc.sessions.add(this);
    this.client.on('error', this.onClientError);
    this.client.on('close', this.onClientClose);
    const d = svc.sched.schedule(this.flow, this.sticky, svc.now(), false);
    if (d === null) {
      svc.report({ type: 'no-server', service: svc.spec.key, client: { family: this.vaddr.family, address: this.caddr, port: this.cport } });
      this.client.resetAndDestroy();
      return;
    }
    this.connect(d);
  }

  private connect(d: Dest): void {
    this.dest = d;
    this.server = this.svc.serverState(d);
    this.upClosed = false;
    // highWaterMark is honoured by net.Socket (a stream option) though @types/node omits it.
    const opts: net.NetConnectOpts & { highWaterMark: number } = {
      host: d.address, port: d.port, noDelay: true, allowHalfOpen: true, highWaterMark: this.svc.tunables.highWaterMark,
      onread: { buffer: this.nextReadBuffer, callback: this.onUpRead },
    };
    const up = net.connect(opts);
    this.up = up;
    this.connectStarted = this.svc.now();
    up.once('connect', this.onUpConnect);
    up.on('error', this.onUpError);
    up.on('close', this.onUpClose);
  }

  /** Drop the connect attempt in progress (unaccounted); the server it was on, or null. */
  private dropAttempt(): Dest | null {
    const d = this.dest;
    const up = this.up;
    if (d === null || up === null) return null;
    up.removeListener('close', this.onUpClose);
    up.removeListener('error', this.onUpError);
    up.on('error', ignore);
    up.destroy();
    this.up = null;
    this.upClosed = true;
    this.svc.sched.finish(d, this.sticky, false, this.svc.now());
    this.dest = null;
    return d;
  }

  /** Abandon the attempt in progress and reset the client (no other server is tried). */
  private giveUp(): void {
    if (this.dropAttempt() === null) return;
    if (!this.clientClosed) this.client.resetAndDestroy();
    this.maybeFinish();
  }

  /** The attempt on `this.dest` failed before it connected: try another server, or give up. */
  private retry(reason: string): void {
    const svc = this.svc;
    const d = this.dropAttempt();
    if (d === null) return;
    const now = svc.now();
    const tried = this.tried ?? (this.tried = new Set());
    tried.add(d);
    const next = this.clientClosed || tried.size >= svc.tunables.connectAttempts
      ? null : svc.sched.reschedule(this.flow, this.sticky, now, tried, false);
    svc.report({ type: 'connect-failed', service: svc.spec.key, server: d.key, error: reason, retrying: next !== null });
    if (next === null) {
      if (!this.clientClosed) this.client.resetAndDestroy();
      this.maybeFinish();
      return;
    }
    this.connect(next);
  }

  private readonly onUpConnect = (): void => {
    const up = this.up;
    const d = this.dest;
    const srv = this.server;
    if (up === null || d === null || srv === null) return;
    if (this.clientClosed) {
      up.destroy();
      return;
    }
    setConnActive(d, false, true);
    this.active = true;
    this.state = 'ESTABLISHED';
    srv.counters.conns++;
    this.lastActive = this.svc.coarseNow();
    const client = this.client;
    const pp = srv.spec.proxyProtocol;
    if (pp !== undefined) {
      up.write(proxyHeader(pp, this.caddr, this.cport, client.localAddress ?? this.vaddr.address, client.localPort ?? this.vaddr.port));
    }
    const svcC = this.svc.counters;
    const srvC = srv.counters;
    const svc = this.svc;
    client.on('data', (chunk: Buffer) => {
      countIn(svcC, srvC, chunk.length);
      this.lastActive = svc.coarseNow();
      if (!up.write(chunk)) client.pause();
    });
    up.on('drain', () => client.resume());
    client.on('drain', () => up.resume());
    client.on('end', () => {
      this.state = this.state === 'CLOSE_WAIT' ? 'CLOSED' : 'FIN_WAIT';
      this.lastActive = svc.coarseNow();
      up.end();
    });
    up.on('end', () => {
      this.state = this.state === 'FIN_WAIT' ? 'CLOSED' : 'CLOSE_WAIT';
      this.lastActive = svc.coarseNow();
      client.end();
    });
    client.resume();
  };

  private readonly onUpError = (err: Error): void => {
    if (this.state === 'SYN_SENT') {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EMFILE' || code === 'ENFILE') {
        // Not the real server's fault, and every other server would fail the same way:
        // the process is out of descriptors. Reported (rate-limited), not retried.
        reportFailure('proxy', FailureCode.FD_EXHAUSTED, `connecting to a real server of ${this.svc.spec.key} failed: ${code} (out of file descriptors: raise the limit, e.g. LimitNOFILE= in the unit)`, { service: this.svc.spec.key, errno: code });
        this.giveUp();
        return;
      }
      this.retry(errorText(err));
      return;
    }
    // The real server reset (or the write failed): the client sees a reset too.
    if (!this.clientClosed) this.client.resetAndDestroy();
  };

  private readonly onClientError = (): void => {
    const up = this.up;
    if (up === null || this.upClosed) return;
    if (up.connecting) up.destroy();
    else up.resetAndDestroy();
  };

  /** Where the real server's socket reads next (called by Node after every read). */
  private readonly nextReadBuffer = (): Buffer => {
    const pool = this.svc.buffers;
    if (this.bulk) return this.own ?? (this.own = pool.take());
    if (this.own !== null) {
      pool.give(this.own);
      this.own = null;
    }
    return pool.shared;
  };

  /** Bytes from the real server, in `buf` (shared or own): relay them to the client. */
  private readonly onUpRead = (n: number, buf: Buffer): boolean => {
    const srv = this.server;
    if (srv === null || this.clientClosed) return true;
    countOut(this.svc.counters, srv.counters, n);
    this.lastActive = this.svc.coarseNow();
    const shared = buf === this.svc.buffers.shared;
    // Bytes in the shared buffer are copied: it must never be referenced by a pending write.
    const ok = this.client.write(shared ? Buffer.from(buf.subarray(0, n)) : buf.subarray(0, n));
    if (!shared && this.client.writableLength > 0) this.own = null; // still referenced: abandon it
    this.bulk = n * 2 >= buf.length;
    return ok;
  };

  /** The real server's socket is gone; unless it half-closed first, the client's goes too. */
  private readonly onUpClose = (): void => {
    this.upClosed = true;
    if (!this.clientClosed && this.state !== 'CLOSE_WAIT' && this.state !== 'CLOSED') this.client.destroy();
    this.maybeFinish();
  };

  /** The client's socket is gone; unless it half-closed first (or reset: onClientError), so is the server's. */
  private readonly onClientClose = (hadError: boolean): void => {
    this.clientClosed = true;
    const up = this.up;
    if (up !== null && !this.upClosed && (up.connecting || (!hadError && this.state !== 'FIN_WAIT' && this.state !== 'CLOSED'))) up.destroy();
    this.maybeFinish();
  };

  private maybeFinish(): void {
    if (this.finished || !this.clientClosed || !this.upClosed) return;
    this.finished = true;
    this.state = 'CLOSED';
    if (this.own !== null) {
      this.svc.buffers.give(this.own);
      this.own = null;
    }
    if (this.dest !== null) this.svc.sched.finish(this.dest, this.sticky, this.active, this.svc.now());
    this.svc.sessions.delete(this);
  }

  /**
   * Timeouts are checked by the plane's once-a-second sweep rather than per-socket timers,
   * so relaying a chunk never touches a timer: a connect that has not completed within the
   * connect timeout is retried elsewhere; an established connection idle for the tcp
   * timeout, or a half-closed one idle for tcpfin, is closed (ipvsadm --set semantics).
   */
  expire(now: number): void {
    const limit = this.idleLimit();
    if (limit === null || now - limit.since < limit.timeout) return;
    if (this.state !== 'SYN_SENT') this.abort();
    else if (this.up !== null) this.retry('connect timeout');
  }

  abort(): void {
    this.client.destroy();
    this.up?.destroy();
  }

  entry(now: number): ConnectionEntry {
    return tcpEntry(this.state, this.idleLimit(), now, this.vaddr, this.caddr, this.cport, this.dest);
  }

  private idleLimit(): IdleLimit | null {
    return tcpIdleLimit(this.state, this.svc, this.connectStarted, this.lastActive);
  }
}

function ignore(): void {}

function errorText(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code ?? err.message;
}
