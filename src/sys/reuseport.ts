/**
 * Listening sockets several event loops can share through SO_REUSEPORT, so the kernel
 * spreads new connections (and UDP flows, by their 4-tuple) over the data-plane workers
 * with no central accept. Node ≥ 22.12 has `reusePort` in net and dgram: used where present.
 * Node 20 has not: there the socket is made here (socket, SO_REUSEADDR, SO_REUSEPORT,
 * IPV6_V6ONLY for IPv6, bind) and handed to `listen({ fd })` / `bind({ fd })`. Only plain
 * system calls: no poll handle (koffi's are not safe to tear down in a worker thread).
 */
import type { Family } from '../model/types.js';
import {
  AF_INET, AF_INET6, intOpt, IPPROTO_IPV6, IPV6_V6ONLY, loadLibc, SO_REUSEADDR, SO_REUSEPORT, SOCK_CLOEXEC, SOCK_DGRAM, SOCK_NONBLOCK, SOCK_STREAM, SOL_SOCKET,
} from './libc.js';
import { sockaddr } from './raw.js';

/** Does this Node have `reusePort` for net.Server.listen and dgram sockets (≥ 22.12, ≥ 23.1)? */
export function nodeHasReusePort(version = process.versions.node): boolean {
  const [maj = 0, min = 0] = version.split('.').map(Number);
  return maj > 23 || (maj === 23 && min >= 1) || (maj === 22 && min >= 12);
}

const ERRNO_CODE: Readonly<Record<number, string>> = { 1: 'EPERM', 13: 'EACCES', 24: 'EMFILE', 23: 'ENFILE', 98: 'EADDRINUSE', 99: 'EADDRNOTAVAIL' };

/**
 * A bound (not yet listening) socket with SO_REUSEPORT. Throws an Error whose `code` is
 * the errno's name (EADDRINUSE, EACCES, …), as Node's own listen errors carry.
 */
export function reusePortSocket(family: Family, kind: 'tcp' | 'udp', address: string, port: number): number {
  const c = loadLibc();
  const fd = c.socket(family === 'inet' ? AF_INET : AF_INET6, (kind === 'tcp' ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const fail = (what: string): never => {
    const errno = c.errno();
    if (fd >= 0) c.close(fd);
    const code = ERRNO_CODE[errno] ?? `E${errno}`;
    throw Object.assign(new Error(`${what} ${address}:${port}: ${code}`), { code, errno });
  };
  if (fd < 0) fail('socket');
  const one = intOpt(1);
  if (kind === 'tcp' && c.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, one, 4) !== 0) fail('setsockopt SO_REUSEADDR');
  if (c.setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, one, 4) !== 0) fail('setsockopt SO_REUSEPORT');
  if (family === 'inet6' && c.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, one, 4) !== 0) fail('setsockopt IPV6_V6ONLY');
  const sa = sockaddr(family, address, 0, port);
  if (c.bind(fd, sa, sa.length) !== 0) fail('bind');
  return fd;
}
