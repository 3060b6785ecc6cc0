/**
 * Shared plumbing for the stream checkers (TCP, HTTP, SSL, SMTP, agent): connect with a
 * deadline and local binding, and read a bounded amount of a reply. Every function gives
 * up when the probe's signal aborts and always destroys what it opened.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ProbeTarget } from './types.js';

export interface ConnectOptions {
  readonly tls?: { readonly servername?: string | undefined } | undefined;
}

/** Connect to the target (TLS when asked). Rejects with the socket error or an ABORT_ERR. */
export function connectStream(target: ProbeTarget, signal: AbortSignal, opts: ConnectOptions = {}): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
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
    const onAbort = (): void => fail(abortError());
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      sock.off('error', fail);
    };
    function fail(err: Error): void {
      done();
      sock.destroy();
      reject(err);
    }
    sock.once('error', fail);
    signal.addEventListener('abort', onAbort, { once: true });
    sock.once(opts.tls ? 'secureConnect' : 'connect', () => {
      done();
      // Keep a listener so a late error (reset) never becomes an uncaught exception.
      sock.on('error', () => undefined);
      resolve(sock);
    });
  });
}

export function abortError(): Error {
  const e = new Error('timed out') as Error & { code: string };
  e.code = 'ABORT_ERR';
  return e;
}

/**
 * Feed the socket's bytes to `consume` until it returns true (done), the peer closes, or
 * the signal aborts. Resolves to 'done', 'end' or rejects (socket error / ABORT_ERR).
 * `consume` sees each chunk once; the caller bounds what it keeps.
 */
export function readStream(sock: net.Socket, signal: AbortSignal, consume: (chunk: Buffer) => boolean): Promise<'done' | 'end'> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError());
    const cleanup = (): void => {
      sock.off('data', onData);
      sock.off('end', onEnd);
      sock.off('close', onEnd);
      sock.off('error', onError);
      signal.removeEventListener('abort', onAbort);
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
    const onAbort = (): void => { cleanup(); reject(abortError()); };
    sock.on('data', onData);
    sock.once('end', onEnd);
    sock.once('close', onEnd);
    sock.once('error', onError);
    signal.addEventListener('abort', onAbort, { once: true });
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
