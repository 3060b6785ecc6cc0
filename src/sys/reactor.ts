/**
 * TCP sockets without Node's `net`: non-blocking system calls through koffi on one epoll
 * set per event loop, the epoll descriptor itself watched by one libuv poll handle. The
 * proxy's relay (dataplane/proxy/epoll-tcp.ts) uses it for every TCP connection.
 *
 * Why: a proxied connection through `net.Socket` costs about 1M user-space instructions
 * (the stream machinery, event emitters, per-socket handles and their GC), 2.5× HAProxy's
 * CPU per new connection (docs/benchmarks.md, issue 18). The same work as plain system
 * calls — accept4, socket, connect, read, write, shutdown, close, with epoll_wait on a
 * level-triggered set — costs what the kernel costs plus ~0.2 µs of FFI per call, which is
 * HAProxy's cost. One uv_poll on the epoll descriptor joins it to Node's event loop, so
 * timers, messages and UDP go on beside it in the same thread.
 *
 * Every descriptor this reactor opens can be recorded in an `FdRegistry` (a bitmap in a
 * SharedArrayBuffer): when a data-plane worker thread dies, its listening and connected
 * sockets — process-wide descriptors that no Node handle owns — are closed by the control
 * plane from that registry, so a dead worker never keeps a listener that accepts nothing.
 */
import os from 'node:os';
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';
import { SysError, SysErrorCode } from './errors.js';
import {
  AF_INET, AF_INET6, IPPROTO_IPV6, IPV6_V6ONLY, SO_REUSEADDR, SO_REUSEPORT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET,
} from './libc.js';
import { sockaddr } from './raw.js';
import { nativePump, NOT_READ, type PumpCall } from './native.js';

export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
const EPOLL_EVENT_SIZE = 12; // struct epoll_event is packed on x86-64 (and 12 bytes on arm64's padding-free layout too)
const MAX_EVENTS = 256;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const TCP_QUICKACK = 12;
const SO_ERROR = 4;
const SO_LINGER = 13;
const SHUT_WR = 1;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
/** splice(2): move pages rather than copy where the kernel can; never block on the pipe. */
const SPLICE_F_MOVE = 1;
const SPLICE_F_NONBLOCK = 2;
export const EAGAIN = 11;
export const EINTR = 4;
export const EINPROGRESS = 115;
export const ECONNABORTED = 103;

/** errno numbers to their names (ECONNREFUSED, …), from Node's own table. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

/** A socket error as Node reports them: an Error whose `code` is the errno's name. */
export function errnoError(what: string, errno: number): Error & { code: string; errno: number } {
  const code = errnoName(errno);
  return Object.assign(new Error(`${what}: ${code}`), { code, errno });
}

interface Calls {
  socket(d: number, t: number, p: number): number;
  bind(fd: number, sa: Buffer, len: number): number;
  listen(fd: number, backlog: number): number;
  setsockopt(fd: number, level: number, name: number, v: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, v: Buffer, len: Buffer): number;
  getsockname(fd: number, sa: Buffer, len: Buffer): number;
  accept4(fd: number, sa: Buffer, len: Buffer, flags: number): number;
  connect(fd: number, sa: Buffer, len: number): number;
  read(fd: number, buf: Buffer, len: number): number | bigint;
  write(fd: number, buf: Buffer, len: number): number | bigint;
  shutdown(fd: number, how: number): number;
  close(fd: number): number;
  epoll_create1(flags: number): number;
  epoll_ctl(ep: number, op: number, fd: number, ev: Buffer | null): number;
  epoll_wait(ep: number, evs: Buffer, max: number, timeout: number): number;
  pipe2(fds: Buffer, flags: number): number;
  splice(fdIn: number, offIn: null, fdOut: number, offOut: null, len: number, flags: number): number | bigint;
}

let calls: Calls | null = null;

function load(): Calls {
  if (calls) return calls;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libc.so.6');
  } catch (err: unknown) {
    throw new SysError(SysErrorCode.FAILED, `cannot load libc through koffi: ${err instanceof Error ? err.message : String(err)}`);
  }
  calls = {
    socket: lib.func('int socket(int, int, int)') as Calls['socket'],
    bind: lib.func('int bind(int, const void *, unsigned int)') as Calls['bind'],
    listen: lib.func('int listen(int, int)') as Calls['listen'],
    setsockopt: lib.func('int setsockopt(int, int, int, const void *, unsigned int)') as Calls['setsockopt'],
    getsockopt: lib.func('int getsockopt(int, int, int, void *, void *)') as Calls['getsockopt'],
    getsockname: lib.func('int getsockname(int, void *, void *)') as Calls['getsockname'],
    accept4: lib.func('int accept4(int, void *, void *, int)') as Calls['accept4'],
    connect: lib.func('int connect(int, const void *, unsigned int)') as Calls['connect'],
    read: lib.func('long read(int, void *, unsigned long)') as Calls['read'],
    write: lib.func('long write(int, const void *, unsigned long)') as Calls['write'],
    shutdown: lib.func('int shutdown(int, int)') as Calls['shutdown'],
    close: lib.func('int close(int)') as Calls['close'],
    epoll_create1: lib.func('int epoll_create1(int)') as Calls['epoll_create1'],
    epoll_ctl: lib.func('int epoll_ctl(int, int, int, void *)') as Calls['epoll_ctl'],
    epoll_wait: lib.func('int epoll_wait(int, void *, int, int)') as Calls['epoll_wait'],
    pipe2: lib.func('int pipe2(void *, int)') as Calls['pipe2'],
    splice: lib.func('long splice(int, void *, int, void *, unsigned long, unsigned int)') as Calls['splice'],
  };
  return calls;
}

/**
 * The descriptors one worker holds, as a bitmap shared with the control plane. A bit is set
 * right after the descriptor is made and cleared just before it is closed, so after the
 * worker died the control plane closes exactly what it left open (at worst one descriptor
 * being made at the instant of death leaks; none is ever closed twice).
 */
export class FdRegistry {
  private readonly bits: Int32Array;

  constructor(readonly buffer: SharedArrayBuffer) {
    this.bits = new Int32Array(buffer);
  }

  /** A registry for descriptors below `limit` (the process's RLIMIT_NOFILE). */
  static allocate(limit: number): FdRegistry {
    return new FdRegistry(new SharedArrayBuffer(Math.ceil(Math.max(1024, limit) / 32) * 4));
  }

  set(fd: number): void {
    const i = fd >>> 5;
    if (i < this.bits.length) Atomics.or(this.bits, i, 1 << (fd & 31));
  }

  clear(fd: number): void {
    const i = fd >>> 5;
    if (i < this.bits.length) Atomics.and(this.bits, i, ~(1 << (fd & 31)));
  }

  /** Every descriptor recorded. */
  held(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.bits.length; i++) {
      const w = Atomics.load(this.bits, i);
      if (w === 0) continue;
      for (let b = 0; b < 32; b++) if (w & (1 << b)) out.push(i * 32 + b);
    }
    return out;
  }

  /** Close what a dead worker left open (called by the control plane); how many. */
  closeAll(): number {
    const c = load();
    const fds = this.held();
    for (const fd of fds) {
      this.clear(fd);
      c.close(fd);
    }
    return fds.length;
  }
}

/** What an fd in the reactor is told: the epoll event bits that fired. */
export interface FdHandler {
  onEvents(events: number): void;
  /**
   * For a descriptor marked with `relayTo`: the native pump read it (`n`: bytes into the
   * reactor's `buffer`, 0 at end of stream, or −errno) and, when it read bytes, wrote them
   * to the peer (`w`: bytes, or −errno) — what the handler would have done on EPOLLIN.
   */
  onRelayed?(n: number, w: number): void;
}

/** Bytes of the reactor's read buffer (`Reactor.buffer`). */
export const RELAY_BUFFER_SIZE = 64 * 1024;

/** A parsed peer address (accept4's sockaddr). */
export interface PeerAddress {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
}

export function parseSockaddr(sa: Buffer): PeerAddress | null {
  const fam = sa.readUInt16LE(0);
  if (fam === AF_INET) return { family: 'inet', address: `${sa[4]}.${sa[5]}.${sa[6]}.${sa[7]}`, port: sa.readUInt16BE(2) };
  if (fam === AF_INET6) {
    const a = ipaddr.fromByteArray([...sa.subarray(8, 24)]) as ipaddr.IPv6;
    // A v4-mapped client of a dual-stack socket is shown as IPv4, as Node does not (but IPVS does).
    return { family: 'inet6', address: a.isIPv4MappedAddress() ? a.toIPv4Address().toString() : a.toString(), port: sa.readUInt16BE(2) };
  }
  return null;
}

/**
 * One epoll set joined to the event loop. Level-triggered: a handler that leaves bytes
 * unread is called again at the next turn, so a busy connection cannot starve the others
 * (each handler does one bounded step per call).
 */
/**
 * What a handler threw, thrown again on the next turn. An exception must not leave the pump
 * (a native callback): koffi would swallow it and the loop would stop calling back. Thrown
 * from setImmediate it is what any bug in a handler is — an uncaught exception (in a worker:
 * its end and restart).
 */
function throwLater(err: unknown): void {
  setImmediate(() => {
    throw err;
  });
}

export class Reactor {
  private readonly c: Calls;
  private readonly ep: number;
  private readonly handlers: (FdHandler | undefined)[] = [];
  private readonly ev = Buffer.alloc(EPOLL_EVENT_SIZE);
  private readonly events = Buffer.alloc(EPOLL_EVENT_SIZE * MAX_EVENTS);
  private readonly one = Buffer.alloc(4);
  private readonly zero = Buffer.alloc(4);
  private readonly errBuf = Buffer.alloc(4);
  private readonly errLen = Buffer.alloc(4);
  private readonly linger0 = Buffer.alloc(8);
  private readonly pipeFds = Buffer.alloc(8);
  private pipesEver = 0;
  private pipesNow = 0;
  private poll: ReturnType<typeof koffi.node.poll> | null;
  private count = 0;
  private closed = false;
  /** Which pump each fd was last closed in: an event read in that pump is stale (the number may be reused already). */
  private readonly closedIn: number[] = [];
  private batch = 0;
  /** In a pump: work that waits for the end of the batch (`afterBatch`). */
  private inPump = false;
  private readonly later: (() => void)[] = [];
  /** The native pump (native/pump.c), or null: epoll_wait and every read and write through koffi. */
  private readonly native: PumpCall | null;
  /** What the native pump reports: 4 int32 per event (fd, events, read result, write result). */
  private readonly out: Buffer;
  private readonly outView: Int32Array;
  /** The native pump's struct epoll_event array, in the C compiler's own layout (16 bytes each at most). */
  private readonly nativeEvents: Buffer;
  /** peer[fd]: where the native pump writes what it reads from fd, or −1 (see `relayTo`). */
  private peerBuf = Buffer.alloc(0);
  private peer = new Int32Array(0);
  private buf: Buffer | null = null;

  constructor(private readonly registry: FdRegistry | null = null, opts: { readonly native?: boolean } = {}) {
    this.c = load();
    this.native = opts.native === false ? null : nativePump();
    this.out = Buffer.alloc(this.native === null ? 0 : 16 * MAX_EVENTS);
    this.nativeEvents = Buffer.alloc(this.native === null ? 0 : 16 * MAX_EVENTS);
    this.outView = new Int32Array(this.out.buffer, this.out.byteOffset, this.out.length / 4);
    this.one.writeInt32LE(1, 0);
    this.linger0.writeInt32LE(1, 0); // l_onoff = 1, l_linger = 0: close() sends a reset
    const ep = this.c.epoll_create1(0o2000000);
    if (ep < 0) throw new SysError(SysErrorCode.FAILED, `epoll_create1: ${errnoName(koffi.errno())}`);
    this.ep = ep;
    this.registry?.set(ep);
    this.poll = koffi.node.poll(ep, { readable: true }, () => this.pump());
    // An idle reactor does not keep the process alive; registered descriptors do.
    this.poll.unref();
    live.add(this);
  }

  /** Pipes made (`pipe`) since the reactor was: one per spliced direction of a connection. */
  get pipesMade(): number {
    return this.pipesEver;
  }

  /** Pipes made and not closed yet (`closePipe`). */
  get pipesOpen(): number {
    return this.pipesNow;
  }

  /** Descriptors registered now. */
  get size(): number {
    return this.count;
  }

  /** Whether the native pump relays for this reactor (`relayTo` has an effect). */
  get nativePump(): boolean {
    return this.native !== null;
  }

  /**
   * The read buffer of the descriptors this reactor relays (64 KiB, made when first asked):
   * the native pump reads into it, and so does the relay itself, so a handler told
   * `onRelayed` finds the bytes where its own read would have put them. Nothing may be left
   * in it across events: what a peer did not take is copied out.
   */
  get buffer(): Buffer {
    return (this.buf ??= Buffer.allocUnsafeSlow(RELAY_BUFFER_SIZE));
  }

  /**
   * Let the native pump relay `fd`: when epoll reports it readable (EPOLLIN alone), the pump
   * reads it into `buffer` and writes what it read to `to`, and the handler is told
   * `onRelayed` instead of `onEvents`. `to` −1 ends that (the handler reads itself). No
   * effect without the native pump. The caller clears it before `to` is closed; closing
   * `fd` clears it.
   */
  relayTo(fd: number, to: number): void {
    if (this.native === null || fd < 0) return;
    if (fd >= this.peer.length) {
      if (to < 0) return;
      const grown = Buffer.alloc(Math.max(1024, 2 ** Math.ceil(Math.log2(fd + 1))) * 4, 0xff);
      this.peerBuf.copy(grown);
      this.peerBuf = grown;
      this.peer = new Int32Array(grown.buffer, grown.byteOffset, grown.length / 4);
    }
    this.peer[fd] = to;
  }

  /** Drain what epoll has ready (bounded: the rest waits for the next turn of the loop). */
  private pump(): void {
    if (this.closed) return;
    const native = this.native;
    const evs = this.events;
    const out = this.outView;
    const buf = this.peer.length === 0 ? evs : this.buffer;
    const n = native !== null
      ? native(this.ep, this.nativeEvents, MAX_EVENTS, this.peerBuf, this.peer.length, buf, this.peer.length === 0 ? 0 : buf.length, this.out)
      : this.c.epoll_wait(this.ep, evs, MAX_EVENTS, 0);
    const batch = ++this.batch;
    this.inPump = true;
    for (let i = 0; i < n; i++) {
      let fd: number;
      let events: number;
      let r = NOT_READ;
      let w = 0;
      if (native !== null) {
        const o = i * 4;
        fd = out[o] as number;
        events = (out[o + 1] as number) >>> 0;
        r = out[o + 2] as number;
        w = out[o + 3] as number;
      } else {
        const o = i * EPOLL_EVENT_SIZE;
        fd = evs.readUInt32LE(o + 4);
        events = evs.readUInt32LE(o);
      }
      // Closed (and perhaps reused) by a handler earlier in this batch: level-triggered
      // epoll reports a still-ready descriptor again next time.
      if (this.closedIn[fd] === batch) continue;
      const h = this.handlers[fd];
      if (h === undefined) continue;
      try {
        if (r === NOT_READ) h.onEvents(events);
        else h.onRelayed?.(r, w);
      } catch (err: unknown) {
        throwLater(err);
      }
    }
    this.inPump = false;
    const later = this.later;
    for (let i = 0; i < later.length; i++) {
      try {
        (later[i] as () => void)();
      } catch (err: unknown) {
        throwLater(err);
      }
    }
    later.length = 0;
  }

  /**
   * Run `fn` once every event of the current batch is handled (at once outside a batch): a
   * handler that learns one thing from one descriptor can wait to see what the batch says of
   * another before it acts.
   */
  afterBatch(fn: () => void): void {
    if (this.inPump) this.later.push(fn);
    else fn();
  }

  private ctl(op: number, fd: number, events: number): number {
    this.ev.writeUInt32LE(events, 0);
    this.ev.writeUInt32LE(fd, 4);
    this.ev.writeUInt32LE(0, 8);
    return this.c.epoll_ctl(this.ep, op, fd, this.ev);
  }

  /** Watch `fd` for `events` (0: errors and hang-ups only). */
  add(fd: number, events: number, h: FdHandler): void {
    if (this.ctl(EPOLL_CTL_ADD, fd, events) !== 0) throw errnoError('epoll_ctl ADD', koffi.errno());
    this.handlers[fd] = h;
    if (this.count++ === 0 && this.poll) this.poll.ref();
  }

  modify(fd: number, events: number): void {
    this.ctl(EPOLL_CTL_MOD, fd, events);
  }

  /** Stop watching `fd` without closing it. */
  remove(fd: number): void {
    if (this.handlers[fd] === undefined) return;
    this.ctl(EPOLL_CTL_DEL, fd, 0);
    this.forget(fd);
  }

  private forget(fd: number): void {
    this.closedIn[fd] = this.batch;
    if (fd < this.peer.length) this.peer[fd] = -1;
    if (this.handlers[fd] === undefined) return;
    this.handlers[fd] = undefined;
    if (--this.count === 0 && this.poll) this.poll.unref();
  }

  /** A descriptor made here: recorded for a worker's crash, marked close-on-exec. */
  private made(fd: number): number {
    if (fd >= 0) this.registry?.set(fd);
    return fd;
  }

  /** Close `fd` (it leaves the epoll set with its last reference). */
  close(fd: number): void {
    this.forget(fd);
    this.registry?.clear(fd);
    this.c.close(fd);
  }

  /** Close with a reset (SO_LINGER 0), as `socket.resetAndDestroy()` does. */
  reset(fd: number): void {
    this.c.setsockopt(fd, SOL_SOCKET, SO_LINGER, this.linger0, 8);
    this.close(fd);
  }

  /**
   * A listening TCP socket on `address`:`port` (SO_REUSEADDR; SO_REUSEPORT when asked;
   * IPv6-only for IPv6). Throws an Error whose `code` is the errno's name.
   */
  listenTcp(family: Family, address: string, port: number, reusePort: boolean, backlog: number): number {
    const c = this.c;
    const fd = this.made(c.socket(family === 'inet' ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd < 0) throw errnoError(`socket for ${address}:${port}`, koffi.errno());
    const fail = (what: string): never => {
      const errno = koffi.errno();
      this.close(fd);
      throw errnoError(`${what} ${address}:${port}`, errno);
    };
    if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, this.one, 4) !== 0) fail('setsockopt SO_REUSEADDR');
    if (reusePort && c.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, this.one, 4) !== 0) fail('setsockopt SO_REUSEPORT');
    if (family === 'inet6' && c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, this.one, 4) !== 0) fail('setsockopt IPV6_V6ONLY');
    // Accepted sockets inherit TCP_NODELAY from the listener (Linux): one call per listener, not per connection.
    if (c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.one, 4) !== 0) fail('setsockopt TCP_NODELAY');
    const sa = sockaddr(family, address, 0, port);
    if (c.bind(fd, sa, sa.length) !== 0) fail('bind');
    if (c.listen(fd, backlog) !== 0) fail('listen');
    return fd;
  }

  /**
   * Accept one connection (non-blocking, close-on-exec) with the peer's sockaddr in `sa`
   * (28 bytes); the new fd, or −errno (−EAGAIN when there is none).
   */
  accept(lfd: number, sa: Buffer, saLen: Buffer): number {
    saLen.writeUInt32LE(sa.length, 0);
    const fd = this.c.accept4(lfd, sa, saLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    return fd >= 0 ? this.made(fd) : -koffi.errno();
  }

  /**
   * Start a non-blocking connect to `sa` (TCP_NODELAY unless `noDelay` is false; from the
   * local sockaddr `bind` when given; with TCP_QUICKACK off when `delayAck`, so the
   * handshake's last ACK waits for data or the delayed-ACK timer): the fd, or −errno.
   */
  connectTcp(sa: Buffer, opts: { readonly noDelay?: boolean; readonly bind?: Buffer | undefined; readonly delayAck?: boolean } = {}): number {
    const c = this.c;
    const fd = this.made(c.socket(sa.readUInt16LE(0), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (fd < 0) return -koffi.errno();
    if (opts.noDelay !== false) c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.one, 4);
    if (opts.delayAck === true) c.setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, this.zero, 4);
    if (opts.bind !== undefined && c.bind(fd, opts.bind, opts.bind.length) !== 0) {
      const errno = koffi.errno();
      this.close(fd);
      return -errno;
    }
    if (c.connect(fd, sa, sa.length) !== 0) {
      const errno = koffi.errno();
      if (errno !== EINPROGRESS) {
        this.close(fd);
        return -errno;
      }
    }
    return fd;
  }

  /** The pending error of a socket (SO_ERROR): 0 once a connect succeeded. */
  socketError(fd: number): number {
    this.errLen.writeUInt32LE(4, 0);
    if (this.c.getsockopt(fd, SOL_SOCKET, SO_ERROR, this.errBuf, this.errLen) !== 0) return koffi.errno();
    return this.errBuf.readInt32LE(0);
  }

  /** read(2): bytes read, 0 at end of stream, or −errno. */
  read(fd: number, buf: Buffer, len: number): number {
    const n = Number(this.c.read(fd, buf, len));
    return n >= 0 ? n : -koffi.errno();
  }

  /** write(2) of `len` bytes of `buf`: bytes written, or −errno. */
  write(fd: number, buf: Buffer, len: number): number {
    const n = Number(this.c.write(fd, buf, len));
    return n >= 0 ? n : -koffi.errno();
  }

  /**
   * A non-blocking pipe (close-on-exec), as [read end, write end], or −errno: what the relay
   * splices a bulk direction through (socket → pipe → socket, no copy into user space).
   */
  pipe(): readonly [number, number] | number {
    if (this.c.pipe2(this.pipeFds, O_NONBLOCK | O_CLOEXEC) !== 0) return -koffi.errno();
    this.pipesEver++;
    this.pipesNow++;
    return [this.made(this.pipeFds.readInt32LE(0)), this.made(this.pipeFds.readInt32LE(4))];
  }

  /** Close both ends of a pipe made by `pipe`. */
  closePipe(r: number, w: number): void {
    this.close(r);
    this.close(w);
    this.pipesNow--;
  }

  /** splice(2) up to `len` bytes from `fdIn` to `fdOut` (one of them a pipe): bytes moved, 0 at end of stream, or −errno. */
  splice(fdIn: number, fdOut: number, len: number): number {
    const n = Number(this.c.splice(fdIn, null, fdOut, null, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK));
    return n >= 0 ? n : -koffi.errno();
  }

  /** Half-close: no more writes (FIN). */
  shutdownWrite(fd: number): void {
    this.c.shutdown(fd, SHUT_WR);
  }

  /** Stop watching the epoll set; the caller has closed every descriptor it registered. */
  destroy(): void {
    if (this.closed) return;
    this.halt();
    this.registry?.clear(this.ep);
    this.c.close(this.ep);
  }

  /**
   * Close the loop's handle on the epoll set, nothing else: no callback after this. The
   * descriptors stay open for whoever closes them (a dead worker's control plane).
   */
  halt(): void {
    if (this.closed) return;
    this.closed = true;
    this.poll?.close();
    this.poll = null;
    live.delete(this);
  }
}

/** This thread's reactors whose loop handle is open. */
const live = new Set<Reactor>();

/**
 * Close every reactor's loop handle in this thread. A worker thread must do this before it
 * ends on an error: a koffi poll callback that fires while the thread is being torn down
 * cannot enter JavaScript and aborts the whole process (koffi 3.3, Node 20 and 24).
 */
export function haltReactors(): void {
  for (const r of [...live]) r.halt();
}

/**
 * A TCP port on `address` that refuses every connection, for as long as it is held: bound
 * and never listened on, so no other socket can listen on it or be given it as a source
 * port (a port merely found free can be, and then a "dead" real server answers).
 */
export function reserveTcpPort(address = '127.0.0.1'): { readonly port: number; close(): void } {
  const c = load();
  const family: Family = address.includes(':') ? 'inet6' : 'inet';
  const fd = c.socket(family === 'inet' ? AF_INET : AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw errnoError('socket', koffi.errno());
  const sa = sockaddr(family, address, 0, 0);
  const len = Buffer.alloc(4);
  len.writeUInt32LE(sa.length, 0);
  if (c.bind(fd, sa, sa.length) !== 0 || c.getsockname(fd, sa, len) !== 0) {
    const errno = koffi.errno();
    c.close(fd);
    throw errnoError(`bind ${address}`, errno);
  }
  let open = true;
  return {
    port: sa.readUInt16BE(2),
    close: () => {
      if (open) c.close(fd);
      open = false;
    },
  };
}

let threadReactor: Reactor | null = null;

/** This thread's reactor for short-lived sockets (health probes), made when first asked. */
export function loopReactor(): Reactor {
  return (threadReactor ??= new Reactor());
}

/** Whether the reactor can run here (koffi loads libc, epoll exists): Linux. */
export function reactorAvailable(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    load();
    return true;
  } catch {
    return false;
  }
}
