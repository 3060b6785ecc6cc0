/**
 * The libc functions sys/ calls through koffi, loaded once. Every other file in sys/ gets
 * its system calls from here, so the FFI surface is listed in one place.
 */
import koffi from 'koffi';
import { SysError, SysErrorCode } from './errors.js';

export interface Libc {
  socket(domain: number, type: number, proto: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  /** setsockopt(SO_ATTACH_FILTER) with a `struct sock_fprog`. */
  attachFilter(fd: number, filter: Buffer, instructions: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrlen: number): number;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer | null, addrlen: Buffer | null): number;
  /** recvmsg with one buffer; returns the length and the control bytes the kernel filled. */
  recvmsg(fd: number, buf: Buffer, name: Buffer, control: Buffer, flags: number): { n: number; controlLen: number };
  close(fd: number): number;
  /** getrlimit/setrlimit with a 16-byte `struct rlimit` (two 64-bit values). */
  getrlimit(resource: number, rlim: Buffer): number;
  setrlimit(resource: number, rlim: Buffer): number;
  /** mkfifo(3): a named pipe (Node has no call for it). */
  mkfifo(path: string, mode: number): number;
  /** fcntl(2) with an int argument (F_GETFL, F_SETFL). */
  fcntl(fd: number, cmd: number, arg: number): number;
  /** execve(2): returns only on failure. */
  execve(path: string, argv: readonly string[], envp: readonly string[]): number;
  errno(): number;
}

let libc: Libc | null = null;

export function loadLibc(): Libc {
  if (libc) return libc;
  let lib: ReturnType<typeof koffi.load>;
  try {
    lib = koffi.load('libc.so.6');
  } catch (err: unknown) {
    throw new SysError(SysErrorCode.FAILED, `cannot load libc through koffi: ${(err as Error).message}`);
  }
  koffi.struct('fulcrum_iovec', { base: 'void *', len: 'size_t' });
  koffi.struct('fulcrum_msghdr', {
    name: 'void *', namelen: 'uint32', iov: 'fulcrum_iovec *', iovlen: 'size_t', control: 'void *', controllen: 'size_t', flags: 'int',
  });
  const fprog = koffi.struct('fulcrum_sock_fprog', { len: 'uint16', filter: 'void *' });
  const socket = lib.func('int socket(int, int, int)');
  const bind = lib.func('int bind(int, const void *addr, unsigned int len)');
  const setsockopt = lib.func('int setsockopt(int, int, int, const void *, unsigned int)');
  const setsockoptProg = lib.func('setsockopt', 'int', ['int', 'int', 'int', 'fulcrum_sock_fprog *', 'unsigned int']);
  const sendto = lib.func('long sendto(int, const void *buf, unsigned long len, int flags, const void *addr, unsigned int addrlen)');
  const recvfrom = lib.func('long recvfrom(int, void *buf, unsigned long len, int flags, void *addr, void *addrlen)');
  const recvmsg = lib.func('long recvmsg(int, _Inout_ fulcrum_msghdr *msg, int)');
  const close = lib.func('int close(int)');
  const getrlimit = lib.func('int getrlimit(int, void *rlim)');
  const setrlimit = lib.func('int setrlimit(int, const void *rlim)');
  const mkfifo = lib.func('int mkfifo(const char *path, unsigned int mode)');
  const fcntl = lib.func('int fcntl(int, int, int)');
  const execve = lib.func('int execve(const char *path, const char **argv, const char **envp)');
  libc = {
    socket: (d, t, p) => Number(socket(d, t, p)),
    bind: (fd, a, l) => Number(bind(fd, a, l)),
    setsockopt: (fd, lv, n, v, l) => Number(setsockopt(fd, lv, n, v, l)),
    attachFilter: (fd, f, count) => Number(setsockoptProg(fd, SOL_SOCKET, SO_ATTACH_FILTER, { len: count, filter: f }, koffi.sizeof(fprog))),
    sendto: (fd, b, n, f, a, al) => Number(sendto(fd, b, n, f, a, al)),
    recvfrom: (fd, b, n, f, a, al) => Number(recvfrom(fd, b, n, f, a, al)),
    recvmsg: (fd, buf, name, control, flags) => {
      const m = { name, namelen: name.length, iov: [{ base: buf, len: buf.length }], iovlen: 1, control, controllen: control.length, flags: 0 };
      const n = Number(recvmsg(fd, m, flags));
      return { n, controlLen: Number(m.controllen) };
    },
    close: (fd) => Number(close(fd)),
    getrlimit: (r, b) => Number(getrlimit(r, b)),
    setrlimit: (r, b) => Number(setrlimit(r, b)),
    mkfifo: (p, m) => Number(mkfifo(p, m)),
    fcntl: (fd, cmd, arg) => Number(fcntl(fd, cmd, arg)),
    // NULL-terminated arrays, as execve wants them.
    execve: (p, argv, envp) => Number(execve(p, [...argv, null], [...envp, null])),
    errno: () => koffi.errno(),
  };
  return libc;
}

export const AF_INET = 2;
export const AF_INET6 = 10;
export const AF_NETLINK = 16;
export const AF_PACKET = 17;
export const SOCK_STREAM = 1;
export const SOCK_DGRAM = 2;
export const SOCK_RAW = 3;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const SOL_SOCKET = 1;
export const RLIMIT_NOFILE = 7;
export const SO_REUSEADDR = 2;
export const SO_REUSEPORT = 15;
export const SO_BINDTODEVICE = 25;
export const IPV6_V6ONLY = 26;
export const SO_ATTACH_FILTER = 26;
export const IPPROTO_IP = 0;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ICMPV6 = 58;
export const IP_TOS = 1;
export const IP_TTL = 2;
export const IP_MULTICAST_IF = 32;
export const IP_MULTICAST_TTL = 33;
export const IP_MULTICAST_LOOP = 34;
export const IP_ADD_MEMBERSHIP = 35;
export const IPV6_UNICAST_HOPS = 16;
export const IPV6_MULTICAST_IF = 17;
export const IPV6_MULTICAST_HOPS = 18;
export const IPV6_MULTICAST_LOOP = 19;
export const IPV6_JOIN_GROUP = 20;
export const IPV6_RECVPKTINFO = 49;
export const IPV6_PKTINFO = 50;
export const IPV6_RECVHOPLIMIT = 51;
export const IPV6_HOPLIMIT = 52;
export const IPV6_TCLASS = 67;
export const MSG_DONTWAIT = 0x40;
export const EAGAIN = 11;
export const EPERM = 1;
export const EACCES = 13;
export const ENODEV = 19;
export const EADDRNOTAVAIL = 99;

/** A 32-bit int option value. */
export function intOpt(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(v, 0);
  return b;
}
