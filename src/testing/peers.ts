/**
 * Real and hostile peers for checker tests, all on loopback: system packages installed on
 * demand (the suite must set itself up on a fresh machine), self-signed certificates,
 * and servers that misbehave on purpose (silent, trickling, flooding).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { freePort } from './net.js';
import { reactorAvailable, reserveTcpPort } from '../sys/reactor.js';

/** Path of `binary`, installing Debian package `pkg` first when missing (needs root). */
export function ensureCommand(binary: string, pkg: string): string {
  return ensureFile(['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/usr/local/bin'].map((dir) => path.join(dir, binary)), pkg);
}

/** The first of `paths` that exists, installing Debian package `pkg` first when none does. */
export function ensureFile(paths: readonly string[], pkg: string): string {
  const find = (): string | null => paths.find((p) => fs.existsSync(p)) ?? null;
  const binary = paths[0] ?? pkg;
  const found = find();
  if (found) return found;
  if (process.getuid?.() !== 0) throw new Error(`${binary} is missing and installing ${pkg} needs root`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'ignore', env, timeout: 300_000 });
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'ignore', env, timeout: 300_000 });
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', pkg], { stdio: 'ignore', env, timeout: 300_000 });
  }
  const after = find();
  if (!after) throw new Error(`installed ${pkg} but ${binary} is still missing`);
  return after;
}

/**
 * A foreground, one-worker nginx whose pid, logs and temp files all live in `dir`, serving
 * `http` (the inside of its `http {}` block). Returns the command line to start it with.
 */
export function nginxCommand(dir: string, o: { http: string; connections?: number; errorLevel?: string }): { command: string; args: string[] } {
  const command = ensureCommand('nginx', 'nginx-light');
  const conf = path.join(dir, 'nginx.conf');
  fs.writeFileSync(conf, `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/error.log ${o.errorLevel ?? 'error'};
events { worker_connections ${o.connections ?? 1024}; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  ${o.http}
}
`);
  return { command, args: ['-c', conf, '-p', dir] };
}

/** A self-signed certificate for `cn` (with subjectAltName), made by openssl. */
export function selfSignedCert(dir: string, cn: string): { key: string; cert: string } {
  const openssl = ensureCommand('openssl', 'openssl');
  const key = path.join(dir, `${cn}.key`);
  const cert = path.join(dir, `${cn}.crt`);
  execFileSync(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', `subjectAltName=DNS:${cn}`], { stdio: 'ignore', timeout: 30_000 });
  return { key: fs.readFileSync(key, 'utf8'), cert: fs.readFileSync(cert, 'utf8') };
}

export interface TcpPeer {
  readonly port: number;
  close(): Promise<void>;
}

/**
 * A TCP server whose every connection is handed to `onConn` (which may ignore it). Open
 * sockets are destroyed on close so a test never waits for a hostile peer.
 */
export async function tcpPeer(onConn: (s: net.Socket) => void, host = '127.0.0.1'): Promise<TcpPeer> {
  const socks = new Set<net.Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const srv = net.createServer((s) => {
    socks.add(s);
    s.on('close', () => socks.delete(s));
    s.on('error', () => undefined);
    onConn(s);
  });
  await new Promise<void>((r) => srv.listen(0, host, r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    port,
    close: () => new Promise<void>((r) => {
      for (const t of timers) clearInterval(t);
      for (const s of socks) s.destroy();
      srv.close(() => r());
    }),
  };
}

/** Accepts and never says a word. */
export function silentPeer(host = '127.0.0.1'): Promise<TcpPeer> {
  return tcpPeer(() => undefined, host);
}

/** Sends `text` one byte every `everyMs` (at most `maxBytes` bytes), never finishing. */
export function tricklePeer(text: string, everyMs = 100): Promise<TcpPeer> {
  return tcpPeer((s) => {
    let i = 0;
    const t = setInterval(() => {
      if (s.destroyed || i >= text.length) return clearInterval(t);
      s.write(text[i++] ?? '');
    }, everyMs);
    s.on('close', () => clearInterval(t));
  });
}

/** An HTTP/1.0 200 reply announcing and streaming `bytes` of body as fast as the reader takes it. */
export function floodPeer(bytes: number): Promise<TcpPeer & { sent: () => number }> {
  let sent = 0;
  const chunk = Buffer.alloc(64 * 1024, 0x61);
  return tcpPeer((s) => {
    s.once('data', () => {
      s.write(`HTTP/1.0 200 OK\r\nContent-Length: ${bytes}\r\n\r\n`);
      const pump = (): void => {
        while (sent < bytes && !s.destroyed) {
          const part = chunk.subarray(0, Math.min(chunk.length, bytes - sent));
          sent += part.length;
          if (!s.write(part)) return void s.once('drain', pump);
        }
      };
      pump();
    });
  }).then((p) => ({ ...p, sent: () => sent }));
}

/**
 * A port nothing listens on. TCP: held bound (never listening) until this test process
 * ends, so a connection to it is always refused — a port only found free could be taken
 * by a concurrent test, or be a connect's own source port (a self-connect that succeeds).
 * UDP: found free.
 */
export function closedPort(type: 'tcp' | 'udp' = 'tcp'): Promise<number> {
  if (type === 'udp' || !reactorAvailable()) return freePort('127.0.0.1', type);
  return Promise.resolve(reserveTcpPort('127.0.0.1').port);
}

/** Start a child process and wait until `ready()` says it serves; killed on close. */
export async function startDaemonProcess(cmd: string, args: string[], ready: () => Promise<boolean>, timeoutMs = 10_000): Promise<{ child: ChildProcess; close: () => Promise<void> }> {
  // Its own process group: a daemon's workers (nginx's) die with it instead of outliving the test.
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => { stderr += c.toString(); });
  const close = (): Promise<void> => new Promise((r) => {
    const group = (): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // the group is already gone
      }
    };
    if (child.exitCode !== null || child.signalCode !== null) {
      group();
      return r();
    }
    child.once('exit', () => { group(); r(); });
    group();
  });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode}: ${stderr.trim()}`);
    if (await ready()) return { child, close };
    await new Promise((r) => setTimeout(r, 50));
  }
  await close();
  throw new Error(`${cmd} did not become ready in ${timeoutMs} ms: ${stderr.trim()}`);
}
