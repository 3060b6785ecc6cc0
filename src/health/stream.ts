/**
 * Shared plumbing for the stream checkers (TCP, HTTP, SSL, SMTP, agent): connect with a
 * deadline and local binding, and read a bounded amount of a reply. Every function gives
 * up when the probe is aborted and always destroys what it opened.
 */
import net from 'node:net';
import tls from 'node:tls';
import { abortHook, type Abortable, type ProbeTarget } from './types.js';
import { EAGAIN, EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, errnoError, loopReactor, reactorAvailable, type Reactor } from '../sys/reactor.js';
import { endpointSockaddr, sockaddr } from '../sys/raw.js';

export interface ConnectOptions {
  readonly tls?: { readonly servername?: string | undefined } | undefined;
}

/** Connect to the target (TLS when asked). Rejects with the socket error or an ABORT_ERR. */
export function connectStream(target: ProbeTarget, abort: Abortable, opts: ConnectOptions = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const hook = abortHook(abort);
    if (hook.aborted) return reject(abortError());
    const base: net.TcpNetConnectOpts = {
      host: target.address, port: target.port, family: target.family === 'inet6' ? 6 : 4,
      ...(target.bindAddress !== undefined ? { localAddress: target.bindAddress } : {}),
      ...(target.bindPort !== undefined ? { localPort: target.bindPort } : {}),
    };
    const sock: net.Socket = opts.tls
      ? tls.connect({
        ...base,
        // keepalived's SSL_GET does not verify the real server's certificate: it checks
        // that the service answers, not who it is.
        rejectUnauthorized: false,
        ...(opts.tls.servername !== undefined && !net.isIP(opts.tls.servername) ? { servername: opts.tls.servername } : {}),
      })
      : net.connect(base);
    const done = (): void => {
      unhook();
      sock.off('error', fail);
    };
    function fail(err: Error): void {
      done();
      sock.destroy();
      reject(err);
    }
    sock.once('error', fail);
    const unhook = hook.onAbort(() => fail(abortError()));
    sock.once(opts.tls ? 'secureConnect' : 'connect', () => {
      done();
      // Keep a listener so a late error (reset) never becomes an uncaught exception.
      sock.on('error', () => undefined);
      resolve(sock);
    });
  });
}

/**
 * Connect to the target and close again (TCP_CHECK), on this thread's epoll reactor: one
 * socket, connect, one epoll wake, close — no `net.Socket` (a third of the CPU per check,
 * docs/benchmarks.md). Rejects with an Error whose `code` is the errno's name, or ABORT_ERR.
 * Falls back to `net` where the reactor cannot run (a full handshake there, half-open or not).
 *
 * `halfOpen`: TCP_QUICKACK off before the connect, so the kernel holds back the handshake's
 * last ACK (to ride on data that never comes), and a reset (SO_LINGER 0) at the close once
 * the SYN-ACK made the socket writable: the real server's half-open request is dropped
 * before its application could accept it — no accept, no FIN exchange, no TIME_WAIT on
 * either side. HAProxy's layer-4 checks do this (strace of HAProxy 2.6, docs/benchmarks.md).
 */
export function probeConnect(target: ProbeTarget, abort: Abortable, opts: { readonly halfOpen?: boolean } = {}): Promise<void> {
  if (!onReactor(target)) return connectStream(target, abort).then((s) => { s.destroy(); });
  return new Promise((resolve, reject) => {
    const hook = abortHook(abort);
    if (hook.aborted) return reject(abortError());
    const r = loopReactor();
    try {
      const halfOpen = opts.halfOpen === true;
      const fd = r.connectTcp(endpointSockaddr(target), { noDelay: false, bind: bindSockaddr(target), delayAck: halfOpen });
      if (fd < 0) return reject(errnoError(`connect to ${target.address}:${target.port}`, -fd));
      let open = true;
      const finish = (errno: number | 'abort'): void => {
        if (!open) return;
        open = false;
        unhook();
        // Closed with a FIN, as keepalived closes its checks — unless half-open. A reset
        // after a completed handshake would spare only the director's TIME_WAIT socket (no
        // CPU, measured), and the real server's application would see a connection reset
        // by peer every delay_loop; a half-open probe's reset reaches no application.
        if (halfOpen && errno === 0) r.reset(fd);
        else r.close(fd);
        if (errno === 0) resolve();
        else reject(errno === 'abort' ? abortError() : errnoError(`connect to ${target.address}:${target.port}`, errno));
      };
      const unhook = hook.onAbort(() => finish('abort'));
      r.add(fd, EPOLLOUT, { onEvents: () => finish(r.socketError(fd)) });
    } catch (err: unknown) {
      reject(err instanceof Error ? err : new Error(String(err)));
    }
  });
}

/**
 * A plain-TCP probe connection on the reactor (HTTP_GET, agents): write a request, read the
 * reply, close — the same contract as a `net.Socket` through `readStream`, at a fraction of
 * its CPU. TLS (SSL_GET) stays on Node's sockets.
 */
export class ReactorStream {
  private pending: Buffer | null = null;
  private onRead: (() => void) | null = null;
  /** Until the connect completes: what its first writable (or error) event does. */
  private onConnect: (() => void) | null = null;
  private open = true;
  /**
   * The events the fd is registered for. Raised as soon as someone waits for more; lowered
   * only when an event comes that no one waits for — so a probe's connect, write, read and
   * close cost one epoll_ctl MOD (for the reply), not one per step.
   */
  private mask = EPOLLOUT;
  /** Events delivered to this stream (for tests: a stream waiting on a reply is not woken). */
  wakes = 0;
  private static readonly buf = Buffer.alloc(16 * 1024);

  private constructor(private readonly r: Reactor, readonly fd: number) {}

  /**
   * Connect (resolves once the real server accepted). Rejects as `connectStream` does.
   * `requestFirst`: the caller writes one request before it reads (HTTP_GET), so, as
   * HAProxy's checks do, TCP_QUICKACK is off and the handshake's last ACK rides on the
   * request instead of going alone (one packet less per probe, and the real server
   * accepts a connection whose request is already there); TCP_NODELAY is not needed for
   * one write. Never for a protocol whose server speaks first (SMTP, agents): its accept
   * would wait for the delayed-ACK timer.
   */
  static connect(target: ProbeTarget, abort: Abortable, requestFirst = false): Promise<ReactorStream> {
    return new Promise((resolve, reject) => {
      const hook = abortHook(abort);
      if (hook.aborted) return reject(abortError());
      const r = loopReactor();
      let fd: number;
      try {
        fd = r.connectTcp(endpointSockaddr(target), { noDelay: !requestFirst, delayAck: requestFirst, bind: bindSockaddr(target) });
      } catch (err: unknown) {
        return reject(err instanceof Error ? err : new Error(String(err)));
      }
      if (fd < 0) return reject(errnoError(`connect to ${target.address}:${target.port}`, -fd));
      const s = new ReactorStream(r, fd);
      const unhook = hook.onAbort(() => {
        s.destroy();
        reject(abortError());
      });
      s.onConnect = () => {
        unhook();
        s.onConnect = null;
        const err = r.socketError(fd);
        if (err !== 0) {
          s.destroy();
          reject(errnoError(`connect to ${target.address}:${target.port}`, err));
          return;
        }
        // Still registered for EPOLLOUT: the caller writes next, and if it does not, the
        // next writable event it did not ask for lowers the mask (events()).
        resolve(s);
      };
      r.add(fd, EPOLLOUT, { onEvents: (e) => s.events(e) });
    });
  }

  private events(e: number): void {
    this.wakes++;
    if (this.onConnect !== null) {
      // The mask stays EPOLLOUT for the write that usually follows at once.
      this.onConnect();
      return;
    }
    // What fired that no one was waiting for (interest is lowered lazily, here).
    const idle = e & (EPOLLIN | EPOLLOUT) & ~this.wanted();
    if ((e & EPOLLOUT) && this.pending !== null) this.flush();
    if (this.onRead !== null && (e & (EPOLLIN | EPOLLERR | EPOLLHUP)) !== 0) this.onRead();
    if (idle !== 0 && this.open) this.setMask(this.wanted());
  }

  private wanted(): number {
    return (this.onRead !== null ? EPOLLIN : 0) | (this.pending !== null ? EPOLLOUT : 0);
  }

  private setMask(m: number): void {
    this.r.modify(this.fd, m);
    this.mask = m;
  }

  private flush(): void {
    const p = this.pending;
    if (p === null || !this.open) return;
    const w = this.r.write(this.fd, p, p.length);
    if (w === p.length) this.pending = null;
    else if (w > 0) this.pending = p.subarray(w);
    else if (w < 0 && -w !== EAGAIN) this.pending = null; // broken: the read sees the error
    this.interest();
  }

  /** Register for what is waited for now, if the fd is not registered for it yet. */
  private interest(): void {
    const want = this.wanted();
    if (this.open && (want & ~this.mask) !== 0) this.setMask(want);
  }

  /** Queue `data` (written now as far as the socket takes it, the rest when it can). */
  write(data: string | Buffer): void {
    const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    this.pending = this.pending === null ? b : Buffer.concat([this.pending, b]);
    this.flush();
  }

  /** See `readStream`. */
  read(abort: Abortable, consume: (chunk: Buffer) => boolean): Promise<'done' | 'end'> {
    return new Promise((resolve, reject) => {
      const hook = abortHook(abort);
      if (hook.aborted || !this.open) return reject(abortError());
      const settle = (f: () => void): void => {
        unhook();
        // Interest is lowered lazily (see `mask`): a probe closes right after its read.
        this.onRead = null;
        f();
      };
      const unhook = hook.onAbort(() => settle(() => reject(abortError())));
      this.onRead = () => {
        const buf = ReactorStream.buf;
        const n = this.r.read(this.fd, buf, buf.length);
        if (n === -EAGAIN) return;
        if (n < 0) return settle(() => reject(errnoError('read', -n)));
        if (n === 0) return settle(() => resolve('end'));
        let stop: boolean;
        try {
          stop = consume(Buffer.from(buf.subarray(0, n)));
        } catch (err: unknown) {
          return settle(() => reject(err instanceof Error ? err : new Error(String(err))));
        }
        if (stop) settle(() => resolve('done'));
      };
      this.interest();
    });
  }

  destroy(): void {
    if (!this.open) return;
    this.open = false;
    this.onRead = null;
    this.r.close(this.fd);
  }
}

/** The local sockaddr a checker binds to (bindto, bind_port), built once per target. */
const bindAddrs = new WeakMap<ProbeTarget, Buffer | null>();

function bindSockaddr(target: ProbeTarget): Buffer | undefined {
  let sa = bindAddrs.get(target);
  if (sa === undefined) {
    sa = target.bindAddress === undefined && target.bindPort === undefined
      ? null
      : sockaddr(target.family, target.bindAddress ?? (target.family === 'inet' ? '0.0.0.0' : '::'), 0, target.bindPort ?? 0);
    bindAddrs.set(target, sa);
  }
  return sa ?? undefined;
}

/** A plain-TCP probe connection: on the reactor where it runs, else Node's socket. */
export type ProbeStream = ReactorStream | net.Socket;

/** Whether a plain-TCP probe to `target` runs on the reactor (else on Node's sockets). */
function onReactor(target: ProbeTarget): boolean {
  // Node resolves scoped (link-local) addresses; the reactor's sockaddr does not.
  return reactorAvailable() && !target.address.includes('%');
}

/** A plain-TCP probe connection; `requestFirst` as in `ReactorStream.connect`. */
export function openStream(target: ProbeTarget, abort: Abortable, requestFirst = false): Promise<ProbeStream> {
  if (!onReactor(target)) return connectStream(target, abort);
  return ReactorStream.connect(target, abort, requestFirst);
}

export function abortError(): Error {
  const e = new Error('timed out') as Error & { code: string };
  e.code = 'ABORT_ERR';
  return e;
}

/**
 * Feed the socket's bytes to `consume` until it returns true (done), the peer closes, or
 * the probe is aborted. Resolves to 'done', 'end' or rejects (socket error / ABORT_ERR).
 * `consume` sees each chunk once; the caller bounds what it keeps.
 */
export function readStream(sock: ProbeStream, abort: Abortable, consume: (chunk: Buffer) => boolean): Promise<'done' | 'end'> {
  if (sock instanceof ReactorStream) return sock.read(abort, consume);
  return new Promise((resolve, reject) => {
    const hook = abortHook(abort);
    if (hook.aborted) return reject(abortError());
    const cleanup = (): void => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
      unhook();
    };
    const onData = (c: Buffer): void => {
      let stop = false;
      try {
        stop = consume(c);
      } catch (err: unknown) {
        cleanup();
        reject(err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (stop) {
        cleanup();
        sock.pause();
        resolve('done');
      }
    };
    const onEnd = (): void => { cleanup(); resolve('end'); };
    const onError = (err: Error): void => { cleanup(); reject(err); };
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onError);
    const unhook = hook.onAbort(() => { cleanup(); reject(abortError()); });
    sock.resume();
  });
}

/** Collects lines (CRLF or LF) from chunks, refusing a line longer than `maxLine` bytes. */
export class LineReader {
  private buf = '';
  constructor(private readonly maxLine = 4096) {}

  /** Add a chunk; returns complete lines (without terminators). Throws on an oversized line. */
  push(chunk: Buffer): string[] {
    this.buf += chunk.toString('latin1');
    const lines = this.buf.split('\n');
    this.buf = lines.pop() ?? '';
    if (this.buf.length > this.maxLine) throw new Error(`line longer than ${this.maxLine} bytes`);
    return lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  }
}
