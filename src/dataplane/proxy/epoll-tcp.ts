/**
 * One proxied TCP connection on the reactor (sys/reactor.ts): the same behaviour as
 * tcp.ts's `TcpConnection` over `net.Socket` — schedule, connect (retrying other servers),
 * relay with back-pressure, half-closes and resets passed on, IPVS accounting — with plain
 * non-blocking system calls on two descriptors. It is the relay every TCP service uses
 * unless `fulcrum run --relay node` asks for Node's sockets.
 *
 * Per connection: accept4, socket, setsockopt (TCP_NODELAY; the client's socket has it from
 * the listener), connect, then — as HAProxy does — one read of what the client has sent
 * already and, where there was something, its write to the real server at once: on a near
 * server the handshake is often done when connect() returns, and a write that succeeds
 * says so, so the connection is established without waiting a turn of the loop for the
 * connect's EPOLLOUT and another to read the client (those bytes are kept for a retry when
 * the connect fails). Then epoll_ctl per change of interest (3 for a request and a
 * response), a read and a write per chunk, two close — and a shutdown for the direction that
 * ends first only when the other has not ended by the end of the same batch of events (the
 * other's FIN goes with its close).
 *
 * Bulk: a direction is copied through the plane's shared read buffer until one read fills
 * it; from then on it is spliced socket → pipe → socket (two splice calls per chunk, no copy
 * into user space; about half the CPU per MiB), unless the tunables say `splice: false`.
 *
 * Back-pressure: bytes a write could not take are copied out (the read buffer is shared by
 * every connection of the plane), or stay in the pipe when spliced, and the reading side
 * stops being watched until they are written. A half-close waits for those bytes, then
 * shuts the other side's write half.
 */
import { setConnActive } from '../../scheduling/dest.js';
import { addrFold } from '../../scheduling/hash.js';
import type { Dest, FlowKey } from '../../scheduling/types.js';
import type { ConnectionEntry, ListenAddress } from '../types.js';
import { countIn, countOut } from '../stats.js';
import { tcpEntry, tcpIdleLimit, type IdleLimit, type ServerState, type ServiceRuntime, type Session, type TcpState } from './context.js';
import { proxyHeader } from './proxy-protocol.js';
import { FailureCode, reportFailure } from '../../errors/index.js';
import { EAGAIN, EINTR, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, errnoName, parseSockaddr, type FdHandler, type PeerAddress, type Reactor } from '../../sys/reactor.js';
import { endpointSockaddr } from '../../sys/raw.js';
import { recentFileLimit } from '../../sys/limits.js';

const EMFILE = 24;
const ENFILE = 23;
/** The most of a client's first bytes read before a real server accepts (HAProxy reads up to 15 KiB). */
const EARLY_MAX = 16 * 1024;
/** Bytes one splice moves at most: a default pipe's capacity (16 pages). */
const PIPE_CHUNK = 64 * 1024;

/** One side of the connection: its descriptor, what epoll watches for, and the bytes it owes. */
class Side implements FdHandler {
  fd = -1;
  /** Events registered now (-1: not in the epoll set). */
  interest = -1;
  /** Bytes read from the other side that this side's socket has not taken yet. */
  pending: Buffer | null = null;
  /**
   * The pipe the other side's bytes are spliced through to this side once the direction
   * carries bulk (−1: copied through the shared buffer), and how many bytes sit in it.
   */
  pipeR = -1;
  pipeW = -1;
  piped = 0;
  /** pipe2 failed once (out of descriptors): this direction stays copied. */
  noPipe = false;
  /** The other side ended: shut this side's write half once what it owes is written. */
  shutPending = false;
  /** End of stream read from this side. */
  eof = false;
  /** The kernel reported a hang-up: not watched while there is nothing to read from it. */
  hup = false;

  constructor(readonly conn: EpollTcpConnection, readonly client: boolean) {}

  onEvents(events: number): void {
    this.conn.onEvents(this, events);
  }

  onRelayed(n: number, w: number): void {
    this.conn.onRelayed(this, n, w);
  }

  /** Bytes from the other side wait to be written here (a buffer or the pipe). */
  get owes(): boolean {
    return this.pending !== null || this.piped > 0;
  }
}

export class EpollTcpConnection implements Session {
  private readonly c: Side;
  private readonly u: Side;
  private dest: Dest | null = null;
  private server: ServerState | null = null;
  private active = false;
  private tried: Set<Dest> | null = null;
  private state: TcpState = 'SYN_SENT';
  private finished = false;
  private lastActive: number;
  private connectStarted = 0;
  private readonly flow: FlowKey;
  private peerAddr: PeerAddress | null = null;
  private readonly sticky: string;
  /** The client's first bytes, read at the first connect and not yet taken by a real server. */
  private early: Buffer | null = null;
  private earlyRead = false;

  private constructor(
    private readonly svc: ServiceRuntime,
    private readonly reactor: Reactor,
    cfd: number,
    /** The client's sockaddr as accept4 gave it (parsed when first needed). */
    private readonly sa: Buffer,
    private readonly vaddr: ListenAddress,
    vfold: number,
  ) {
    this.c = new Side(this, true);
    this.u = new Side(this, false);
    this.c.fd = cfd;
    this.lastActive = svc.coarseNow();
    const needs = svc.sched.usesClient;
    this.flow = needs
      ? { saddrFold: addrFold(this.caddr), sport: this.cport, daddrFold: vfold, dport: vaddr.port }
      : { saddrFold: 0, sport: 0, daddrFold: vfold, dport: vaddr.port };
    this.sticky = svc.sched.persistent ? this.caddr : '';
  }

  private get peer(): PeerAddress {
    return (this.peerAddr ??= parseSockaddr(this.sa) ?? { family: this.vaddr.family, address: '', port: 0 });
  }

  private get caddr(): string {
    return this.peer.address;
  }

  private get cport(): number {
    return this.peer.port;
  }

  /** Take over an accepted client descriptor; `sa` is its sockaddr (owned by the connection). */
  static accept(svc: ServiceRuntime, reactor: Reactor, fd: number, sa: Buffer, vaddr: ListenAddress, vfold: number): void {
    new EpollTcpConnection(svc, reactor, fd, sa, vaddr, vfold).start();
  }

  private start(): void {
    const svc = this.svc;
    svc.counters.conns++;
    svc.sessions.add(this);
    // The client is not watched until a real server accepts (only its first bytes are read
    // before, once; a client gone meanwhile is seen then, or at the connect timeout).
    // TCP_NODELAY comes from the listener (Linux copies it to accepted sockets).
    const d = svc.sched.schedule(this.flow, this.sticky, svc.now(), false);
    if (d === null) {
      svc.report({ type: 'no-server', service: svc.spec.key, client: { family: this.vaddr.family, address: this.caddr, port: this.cport } });
      this.closeSide(this.c, true);
      this.maybeFinish();
      return;
    }
    this.connect(d);
  }

  private connect(d: Dest): void {
    this.dest = d;
    this.server = this.svc.serverState(d);
    this.connectStarted = this.svc.now();
    const fd = this.reactor.connectTcp(endpointSockaddr(d));
    if (fd < 0) {
      this.u.fd = -1;
      const errno = -fd;
      if (errno === EMFILE || errno === ENFILE) {
        reportFailure('proxy', FailureCode.FD_EXHAUSTED, `connecting to a real server of ${this.svc.spec.key} failed: ${errnoName(errno)} (out of file descriptors: raise the limit, e.g. LimitNOFILE= in the unit)`, { service: this.svc.spec.key, errno: errnoName(errno) });
        this.svc.sched.finish(d, this.sticky, false, this.svc.now());
        this.dest = null;
        this.closeSide(this.c, true);
        this.maybeFinish();
        return;
      }
      // Refused at once (e.g. ENETUNREACH): as a failed connect, try another server.
      this.u.fd = -2;
      this.retry(errnoName(errno));
      return;
    }
    this.u.fd = fd;
    this.u.interest = -1;
    this.u.eof = false;
    this.u.hup = false;
    this.u.pending = null;
    this.u.shutPending = false;
    if (!this.earlyRead && !this.readEarly()) return;
    if (this.early !== null && this.server?.spec.proxyProtocol === undefined) {
      // Written at once: a write that succeeds means the real server has accepted (the
      // handshake is done), so the connection is established now, without waiting a turn
      // of the loop for the connect's EPOLLOUT and another to read the client.
      const e = this.early;
      const w = this.reactor.write(fd, e, e.length);
      if (w > 0) {
        this.early = w === e.length ? null : e.subarray(w);
        this.counted(this.c, w);
        this.established();
        return;
      }
      // Still connecting (EAGAIN): the bytes wait for the connect. Another error is the
      // connect's failure, taken by the write (SO_ERROR would now read 0).
      if (-w !== EAGAIN && -w !== EINTR) {
        this.retry(errnoName(-w));
        return;
      }
    }
    this.setInterest(this.u, EPOLLOUT);
  }

  /**
   * Read what the client has sent already, once, before a real server accepts (as HAProxy
   * does): a client usually speaks first, and its request is there when it is accepted.
   * The bytes are kept for whichever server accepts (a retry keeps them). False when the
   * client reset meanwhile: the connection is closed.
   */
  private readEarly(): boolean {
    this.earlyRead = true;
    const buf = this.reactor.buffer;
    const n = this.reactor.read(this.c.fd, buf, Math.min(buf.length, EARLY_MAX));
    if (n > 0) {
      this.early = Buffer.from(buf.subarray(0, n));
      return true;
    }
    // Nothing yet, or the client's FIN (read again once a server accepts): as before.
    if (n === 0 || -n === EAGAIN || -n === EINTR) return true;
    this.dropAttempt();
    this.closeSide(this.c, false);
    this.maybeFinish();
    return false;
  }

  /** Drop the connect attempt in progress (unaccounted); the server it was on, or null. */
  private dropAttempt(): Dest | null {
    const d = this.dest;
    if (d === null || this.u.fd === -1) return null;
    if (this.u.fd >= 0) this.reactor.close(this.u.fd);
    this.u.fd = -1;
    this.svc.sched.finish(d, this.sticky, false, this.svc.now());
    this.dest = null;
    return d;
  }

  /** The attempt on `this.dest` failed before it connected: try another server, or give up. */
  private retry(reason: string): void {
    const svc = this.svc;
    const d = this.dropAttempt();
    if (d === null) return;
    const tried = this.tried ?? (this.tried = new Set());
    tried.add(d);
    const clientGone = this.c.fd < 0;
    const next = clientGone || tried.size >= svc.tunables.connectAttempts ? null : svc.sched.reschedule(this.flow, this.sticky, svc.now(), tried, false);
    svc.report({ type: 'connect-failed', service: svc.spec.key, server: d.key, error: reason, retrying: next !== null });
    if (next === null) {
      if (!clientGone) this.closeSide(this.c, true);
      this.maybeFinish();
      return;
    }
    this.connect(next);
  }

  /** epoll events for one side. */
  onEvents(side: Side, events: number): void {
    if (side.fd < 0) return;
    if (this.state === 'SYN_SENT') {
      if (side.client) return;
      // Writable alone: connected. An error or hang-up: SO_ERROR says why.
      if ((events & (EPOLLERR | EPOLLHUP)) === 0) {
        if (events & EPOLLOUT) this.established();
        return;
      }
      const err = this.reactor.socketError(side.fd);
      if (err !== 0) this.retry(errnoName(err));
      else this.established();
      return;
    }
    const other = side.client ? this.u : this.c;
    if (events & EPOLLERR) {
      // A reset (or a failed write) on this side: the other side is reset too.
      this.closeSide(side, false);
      if (other.fd >= 0) this.closeSide(other, true);
      this.maybeFinish();
      return;
    }
    if ((events & EPOLLOUT) && side.owes && !this.flush(side)) return;
    if (events & EPOLLHUP) side.hup = true;
    if ((events & (EPOLLIN | EPOLLHUP)) && !side.eof && !other.owes && other.fd >= 0) {
      if (other.pipeW >= 0) this.splice(side, other);
      else this.relay(side, other);
    }
    if (side.fd >= 0 && other.fd >= 0) this.updateInterest();
  }

  /**
   * The native pump made `relay`'s read from `side` (`n`) and its write to the other side
   * (`w`) for an EPOLLIN (sys/reactor.ts `relayTo`): what follows them is the same.
   */
  onRelayed(side: Side, n: number, w: number): void {
    if (side.fd < 0) return;
    const other = side.client ? this.u : this.c;
    if (other.fd < 0) return;
    this.relayed(side, other, n, w);
    if (side.fd >= 0 && other.fd >= 0) this.updateInterest();
  }

  /** The real server accepted: count it active, send the PROXY header, relay both ways. */
  private established(): void {
    const d = this.dest;
    const srv = this.server;
    if (d === null || srv === null) return;
    setConnActive(d, false, true);
    this.active = true;
    this.state = 'ESTABLISHED';
    srv.counters.conns++;
    this.lastActive = this.svc.coarseNow();
    // The PROXY header, then what the client sent before (counted now): one write, and
    // what the socket does not take yet waits as pending. All of it is this connection's own.
    const pp = srv.spec.proxyProtocol;
    const h = pp === undefined ? null : proxyHeader(pp, this.caddr, this.cport, this.vaddr.address, this.vaddr.port);
    const e = this.early;
    this.early = null;
    if (e !== null) this.counted(this.c, e.length);
    const out = h === null ? e : e === null ? h : Buffer.concat([h, e]);
    if (out !== null) {
      const w = this.reactor.write(this.u.fd, out, out.length);
      if (w < 0 && -w !== EAGAIN && -w !== EINTR) {
        this.writeFailed(this.c, this.u);
        return;
      }
      if (w < out.length) this.u.pending = out.subarray(Math.max(0, w));
    }
    this.updateInterest();
  }

  /** One read from `from`, written on to `to` (what `to` cannot take waits in `to.pending`). */
  private relay(from: Side, to: Side): void {
    const buf = this.reactor.buffer;
    const n = this.reactor.read(from.fd, buf, buf.length);
    this.relayed(from, to, n, n > 0 ? this.reactor.write(to.fd, buf, n) : 0);
  }

  /**
   * What follows a read of `n` from `from` into the reactor's buffer and, when it read
   * bytes, their write of `w` to `to` (made here, or by the native pump).
   */
  private relayed(from: Side, to: Side, n: number, w: number): void {
    const svc = this.svc;
    const buf = this.reactor.buffer;
    if (n > 0) {
      this.counted(from, n);
      if (w === n) {
        // A read that filled the buffer: this direction carries bulk; splice it from now on.
        if (n === buf.length && svc.tunables.splice && !to.noPipe) this.openPipe(to);
        return;
      }
      if (w < 0 && -w !== EAGAIN && -w !== EINTR) {
        this.writeFailed(from, to);
        return;
      }
      to.pending = Buffer.from(buf.subarray(Math.max(0, w), n));
      return;
    }
    this.readEnded(from, to, n);
  }

  /**
   * One splice from `from` into `to`'s pipe (empty: nothing is read while `to` owes bytes),
   * then from the pipe into `to`; what `to` cannot take stays in the pipe (`to.piped`).
   * The bytes never enter user space: page references move from one socket to the other.
   */
  private splice(from: Side, to: Side): void {
    const n = this.reactor.splice(from.fd, to.pipeW, PIPE_CHUNK);
    if (n > 0) {
      this.counted(from, n);
      const w = this.reactor.splice(to.pipeR, to.fd, n);
      if (w === n) return;
      if (w < 0 && -w !== EAGAIN && -w !== EINTR) {
        this.writeFailed(from, to);
        return;
      }
      to.piped = n - Math.max(0, w);
      return;
    }
    this.readEnded(from, to, n);
  }

  /**
   * Give `to` a pipe for the bytes coming to it. While the plane's pipes hold their share of
   * the descriptor limit it keeps copying (and asks again at its next full read); a failure
   * (EMFILE) keeps it copying for good.
   */
  private openPipe(to: Side): void {
    const r = this.reactor;
    if ((r.pipesOpen + 1) * 2 > (recentFileLimit()?.soft ?? 1024) * this.svc.tunables.pipeShare) return;
    const p = r.pipe();
    if (typeof p === 'number') {
      to.noPipe = true;
      return;
    }
    to.pipeR = p[0];
    to.pipeW = p[1];
  }

  /** `n` bytes came from `from`: count them in the right direction. */
  private counted(from: Side, n: number): void {
    const svc = this.svc;
    const srv = this.server;
    if (srv !== null) {
      if (from.client) countIn(svc.counters, srv.counters, n);
      else countOut(svc.counters, srv.counters, n);
    }
    this.lastActive = svc.coarseNow();
  }

  /** `to` cannot be written (reset, broken pipe): reset `from` too. */
  private writeFailed(from: Side, to: Side): void {
    this.closeSide(to, false);
    this.closeSide(from, true);
    this.maybeFinish();
  }

  /** A read (or splice) from `from` returned `n` ≤ 0: end of stream, try again later, or a reset. */
  private readEnded(from: Side, to: Side, n: number): void {
    if (n === 0) {
      from.eof = true;
      this.lastActive = this.svc.coarseNow();
      if (from.client) this.state = this.state === 'CLOSE_WAIT' ? 'CLOSED' : 'FIN_WAIT';
      else this.state = this.state === 'FIN_WAIT' ? 'CLOSED' : 'CLOSE_WAIT';
      if (to.owes) to.shutPending = true;
      // Both directions ended and nothing is owed: maybeClose closes both now, and close()
      // sends the FIN — a shutdown first would be one more system call per connection.
      else if (!to.eof || from.owes) this.shutSoon(to);
      this.maybeClose();
      return;
    }
    if (-n === EAGAIN || -n === EINTR) return;
    // A read error (a reset): the other side is reset too.
    this.closeSide(from, false);
    this.closeSide(to, true);
    this.maybeFinish();
  }

  /**
   * Shut `to`'s write half (the FIN of the direction that ended) at the end of this batch of
   * events, unless by then `to` was closed: a server's FIN and its client's often arrive in
   * the same batch (an HTTP client closes once it has the whole response), and when the
   * client's is read there both sides close at once and the close sends the FIN — the
   * shutdown is then a system call saved per connection (HAProxy, which acts on a batch's
   * events only after polling them all, makes it about once in 150 connections).
   */
  private shutSoon(to: Side): void {
    this.reactor.afterBatch(() => {
      if (to.fd >= 0) this.reactor.shutdownWrite(to.fd);
    });
  }

  /** Write what `side` owes; false when the connection ended on an error. */
  private flush(side: Side): boolean {
    const p = side.pending;
    // Nothing is spliced into the pipe while a buffer is owed: the buffer goes first.
    const len = p !== null ? p.length : side.piped;
    if (len === 0) return true;
    const w = p !== null ? this.reactor.write(side.fd, p, len) : this.reactor.splice(side.pipeR, side.fd, len);
    if (w === len) {
      side.pending = null;
      side.piped = 0;
      if (side.shutPending) {
        side.shutPending = false;
        this.reactor.shutdownWrite(side.fd);
        this.maybeClose();
      }
      return side.fd >= 0;
    }
    if (w >= 0 || -w === EAGAIN || -w === EINTR) {
      if (w > 0) {
        if (p !== null) side.pending = p.subarray(w);
        else side.piped -= w;
      }
      return true;
    }
    const other = side.client ? this.u : this.c;
    this.closeSide(side, false);
    if (other.fd >= 0) this.closeSide(other, true);
    this.maybeFinish();
    return false;
  }

  /** Both directions ended and nothing is owed: close both (a normal close, FIN already sent). */
  private maybeClose(): void {
    if (!this.c.eof || !this.u.eof || this.c.owes || this.u.owes) return;
    this.closeSide(this.c, false);
    this.closeSide(this.u, false);
    this.maybeFinish();
  }

  /**
   * What each side should be watched for, applied where it changed; and whether the native
   * pump may relay it: while a side's bytes go to the other by a plain read and write (not
   * ended, the other owes nothing, not spliced).
   */
  private updateInterest(): void {
    const c = this.c;
    const u = this.u;
    if (c.fd < 0 || u.fd < 0) return;
    this.setInterest(c, (c.eof || u.owes ? 0 : EPOLLIN) | (c.owes ? EPOLLOUT : 0));
    this.setInterest(u, (u.eof || c.owes ? 0 : EPOLLIN) | (u.owes ? EPOLLOUT : 0));
    const r = this.reactor;
    r.relayTo(c.fd, c.eof || u.owes || u.pipeW >= 0 ? -1 : u.fd);
    r.relayTo(u.fd, u.eof || c.owes || c.pipeW >= 0 ? -1 : c.fd);
  }

  private setInterest(side: Side, events: number): void {
    if (side.interest === events) return;
    // A hung-up socket with nothing to watch leaves the set: epoll would report the hang-up
    // at every turn (it cannot be masked).
    if (events === 0 && side.hup) {
      if (side.interest !== -1) this.reactor.remove(side.fd);
      side.interest = -1;
      return;
    }
    if (side.interest === -1) this.reactor.add(side.fd, events, side);
    else this.reactor.modify(side.fd, events);
    side.interest = events;
  }

  private closeSide(side: Side, reset: boolean): void {
    if (side.fd < 0) return;
    // Nothing is relayed to a descriptor once closed (its number may be given again).
    const other = side.client ? this.u : this.c;
    this.reactor.relayTo(other.fd, -1);
    if (reset) this.reactor.reset(side.fd);
    else this.reactor.close(side.fd);
    side.fd = -1;
    side.interest = -1;
    side.pending = null;
    if (side.pipeR >= 0) {
      // Bytes still in the pipe die with the connection, as a buffer owed would.
      this.reactor.closePipe(side.pipeR, side.pipeW);
      side.pipeR = side.pipeW = -1;
    }
    side.piped = 0;
  }

  private maybeFinish(): void {
    if (this.finished || this.c.fd >= 0 || this.u.fd >= 0) return;
    this.finished = true;
    this.state = 'CLOSED';
    if (this.dest !== null) this.svc.sched.finish(this.dest, this.sticky, this.active, this.svc.now());
    this.svc.sessions.delete(this);
  }

  /** Idle and connect timeouts, checked by the plane's once-a-second sweep (as tcp.ts). */
  expire(now: number): void {
    const limit = this.idleLimit();
    if (limit === null || now - limit.since < limit.timeout) return;
    if (this.state !== 'SYN_SENT') this.abort();
    else if (this.u.fd >= 0) this.retry('connect timeout');
  }

  abort(): void {
    if (this.state === 'SYN_SENT') this.dropAttempt();
    this.closeSide(this.c, false);
    this.closeSide(this.u, false);
    this.maybeFinish();
  }

  entry(now: number): ConnectionEntry {
    return tcpEntry(this.state, this.idleLimit(), now, this.vaddr, this.caddr, this.cport, this.dest);
  }

  private idleLimit(): IdleLimit | null {
    return tcpIdleLimit(this.state, this.svc, this.connectStarted, this.lastActive);
  }
}
