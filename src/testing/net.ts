/**
 * Loopback-only network helpers for tests: free ports, tiny real servers that name
 * themselves, and clients that read a whole reply. Every wait is bounded in time.
 */
import net from 'node:net';
import dgram from 'node:dgram';
import { parseProxyHeader, type ParsedProxyHeader } from '../dataplane/proxy/proxy-protocol.js';

/** A port free now; `both` = free for TCP and UDP alike (for servers like dnsmasq that bind both). */
export async function freePort(host = '127.0.0.1', type: 'tcp' | 'udp' | 'both' = 'tcp'): Promise<number> {
  if (type === 'both') {
    for (let i = 0; i < 50; i++) {
      const p = await freePort(host, 'udp');
      const srv = net.createServer();
      const ok = await new Promise<boolean>((r) => {
        srv.once('error', () => r(false));
        srv.listen(p, host, () => r(true));
      });
      if (ok) {
        await new Promise<void>((r) => srv.close(() => r()));
        return p;
      }
    }
    throw new Error('no port free for both TCP and UDP');
  }
  if (type === 'udp') {
    const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    await new Promise<void>((r) => s.bind(0, host, r));
    const p = s.address().port;
    await new Promise<void>((r) => s.close(() => r()));
    return p;
  }
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, r));
  const a = srv.address();
  await new Promise<void>((r) => srv.close(() => r()));
  if (a === null || typeof a === 'string') throw new Error('no port');
  return a.port;
}

export interface TestServer {
  readonly name: string;
  readonly port: number;
  readonly host: string;
  /** Connections accepted so far. */
  accepted: number;
  /** PROXY protocol headers seen (when `expectProxy`). */
  readonly proxyHeaders: ParsedProxyHeader[];
  /** Open sockets (to kill mid-test). */
  readonly sockets: Set<net.Socket>;
  close(): Promise<void>;
  /** Stop listening and reset every open connection, like a crashed server. */
  kill(): Promise<void>;
}

export type ServerMode =
  /** Write the name and a newline, then end. */
  | 'name'
  /** Echo every byte back; end when the client ends. */
  | 'echo'
  /** Write the name on connect, then echo (for long-lived connections). */
  | 'name-echo'
  /** Accept and never read (back-pressure tests). */
  | 'sink';

export async function startServer(name: string, opts: { host?: string; port?: number; mode?: ServerMode; expectProxy?: boolean; backlog?: number } = {}): Promise<TestServer> {
  const host = opts.host ?? '127.0.0.1';
  const mode = opts.mode ?? 'name';
  const sockets = new Set<net.Socket>();
  const proxyHeaders: ParsedProxyHeader[] = [];
  const srv = net.createServer({ allowHalfOpen: true }, (s) => {
    state.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    const serve = (first: Buffer | null): void => {
      if (mode === 'sink') {
        s.pause();
        return;
      }
      if (mode === 'name') {
        s.end(`${name}\n`);
        s.resume();
        return;
      }
      if (mode === 'name-echo') s.write(`${name}\n`);
      if (first && first.length > 0) s.write(first);
      s.on('data', (c: Buffer) => { s.write(c); });
      s.on('end', () => s.end());
    };
    if (!opts.expectProxy) {
      serve(null);
      return;
    }
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const h = parseProxyHeader(buf);
      if (h === null && buf.length < 16) return;
      s.removeListener('data', onData);
      if (h) proxyHeaders.push(h);
      serve(buf.subarray(h ? h.length : 0));
    };
    s.on('data', onData);
  });
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ port: opts.port ?? 0, host, backlog: opts.backlog ?? 511 }, () => resolve());
  });
  const a = srv.address();
  if (a === null || typeof a === 'string') throw new Error('no address');
  const state: TestServer = {
    name, host, port: a.port, accepted: 0, proxyHeaders, sockets,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => srv.close(() => r()));
    },
    kill: async () => {
      const closed = new Promise<void>((r) => srv.close(() => r()));
      for (const s of sockets) s.resetAndDestroy();
      await closed;
    },
  };
  return state;
}

/** Connect, optionally send `payload` and end, and collect everything until the server ends. */
export function fetchText(port: number, opts: { host?: string; payload?: string; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: opts.host ?? '127.0.0.1' });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`timeout reading from port ${port}`)); }, opts.timeoutMs ?? 5000);
    s.on('connect', () => { if (opts.payload !== undefined) s.end(opts.payload); });
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => { clearTimeout(timer); s.end(); resolve(Buffer.concat(chunks).toString()); });
    s.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Open a connection and resolve once it is connected (the caller owns it). */
export function openSocket(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host });
    s.once('connect', () => { s.removeListener('error', reject); resolve(s); });
    s.once('error', reject);
  });
}

/** Read from `s` until `n` bytes or a newline arrived (bounded by `timeoutMs`). */
export function readLine(s: net.Socket, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => { cleanup(); reject(new Error('timeout waiting for a line')); }, timeoutMs);
    const onData = (c: Buffer): void => {
      buf += c.toString();
      const i = buf.indexOf('\n');
      if (i >= 0) { cleanup(); resolve(buf.slice(0, i)); }
    };
    const onEnd = (): void => { cleanup(); reject(new Error(`connection ended before a line (got '${buf}')`)); };
    const onError = (e: Error): void => { cleanup(); reject(e); };
    const cleanup = (): void => {
      clearTimeout(timer);
      s.removeListener('data', onData);
      s.removeListener('end', onEnd);
      s.removeListener('error', onError);
    };
    s.on('data', onData);
    s.on('end', onEnd);
    s.on('error', onError);
  });
}

/** Resolve when `pred` holds, polling every 10 ms; reject after `timeoutMs`. */
export async function waitFor(pred: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A UDP request/response: send `msg`, await one reply. */
export function udpRequest(port: number, msg: Buffer, opts: { host?: string; timeoutMs?: number; socket?: dgram.Socket } = {}): Promise<Buffer> {
  const host = opts.host ?? '127.0.0.1';
  const s = opts.socket ?? dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { done(); reject(new Error('udp timeout')); }, opts.timeoutMs ?? 3000);
    const onMsg = (m: Buffer): void => { done(); resolve(m); };
    const done = (): void => {
      clearTimeout(timer);
      s.removeListener('message', onMsg);
      if (!opts.socket) s.close();
    };
    s.on('message', onMsg);
    s.send(msg, port, host);
  });
}
