/**
 * Raw IP sockets through koffi (libc `socket`/`sendto`/`recvfrom`), driven by a libuv
 * poll handle on a non-blocking fd drained to EAGAIN. This file and its siblings in sys/
 * are the only code that calls the kernel through the FFI; koffi is pinned to an exact
 * version because `koffi.node.poll` is marked as subject to change upstream.
 */
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';

/** Stable codes for system-adapter failures. */
export const SysErrorCode = {
  /** The operation needs a capability the process lacks (CAP_NET_RAW, CAP_NET_ADMIN). */
  PERMISSION: 'E_SYS_PERMISSION',
  /** The FFI or the call failed for another reason. */
  FAILED: 'E_SYS_FAILED',
} as const;
export type SysErrorCode = (typeof SysErrorCode)[keyof typeof SysErrorCode];

export class SysError extends Error {
  constructor(readonly code: SysErrorCode, message: string, readonly errno?: number) {
    super(message);
    this.name = 'SysError';
  }
}

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_RAW = 3;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const EAGAIN = 11;
const EPERM = 1;
const EACCES = 13;

interface Libc {
  socket(domain: number, type: number, proto: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  recvfrom(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: Buffer): number;
  close(fd: number): number;
}

let libc: Libc | null = null;

function load(): Libc {
  if (libc) return libc;
  const lib = koffi.load('libc.so.6');
  const socket = lib.func('int socket(int, int, int)');
  const sendto = lib.func('long sendto(int, const void *buf, unsigned long len, int flags, const void *addr, unsigned int addrlen)');
  const recvfrom = lib.func('long recvfrom(int, void *buf, unsigned long len, int flags, void *addr, void *addrlen)');
  const close = lib.func('int close(int)');
  libc = {
    socket: (d, t, p) => Number(socket(d, t, p)),
    sendto: (fd, b, n, f, a, al) => Number(sendto(fd, b, n, f, a, al)),
    recvfrom: (fd, b, n, f, a, al) => Number(recvfrom(fd, b, n, f, a, al)),
    close: (fd) => Number(close(fd)),
  };
  return libc;
}

/** A sockaddr_in / sockaddr_in6 for `address` (port 0: raw sockets have none). */
export function sockaddr(family: Family, address: string): Buffer {
  const bytes = ipaddr.parse(address).toByteArray();
  if (family === 'inet') {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    Buffer.from(bytes).copy(sa, 4);
    return sa;
  }
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  Buffer.from(bytes).copy(sa, 8);
  return sa;
}

/** The address in a sockaddr filled by recvfrom. */
export function sockaddrAddress(sa: Buffer): string | null {
  const fam = sa.readUInt16LE(0);
  if (fam === AF_INET) return ipaddr.fromByteArray([...sa.subarray(4, 8)]).toString();
  if (fam === AF_INET6) return ipaddr.fromByteArray([...sa.subarray(8, 24)]).toString();
  return null;
}

/** A raw socket for one IP protocol; `onMessage` sees each datagram with its source. */
export interface RawSocket {
  send(packet: Buffer, address: string): void;
  close(): void;
}

export type RawMessageHandler = (packet: Buffer, from: string) => void;

/** Opens raw sockets; the real one uses the FFI, tests may pass a fake. */
export interface RawSocketFactory {
  open(family: Family, protocol: number, onMessage: RawMessageHandler): RawSocket;
}

class FfiRawSocket implements RawSocket {
  private readonly handle: ReturnType<typeof koffi.node.poll>;
  private readonly buf = Buffer.alloc(65536);
  private readonly from = Buffer.alloc(28);
  private readonly fromLen = Buffer.alloc(4);
  private closed = false;

  constructor(private readonly c: Libc, private readonly fd: number, private readonly family: Family, onMessage: RawMessageHandler) {
    this.handle = koffi.node.poll(fd, { readable: true }, () => this.drain(onMessage));
    this.handle.unref();
  }

  private drain(onMessage: RawMessageHandler): void {
    // Bounded: a flood cannot keep the loop here forever.
    for (let i = 0; i < 256 && !this.closed; i++) {
      this.fromLen.writeUInt32LE(this.from.length, 0);
      const n = this.c.recvfrom(this.fd, this.buf, this.buf.length, 0, this.from, this.fromLen);
      if (n < 0) return;
      onMessage(Buffer.from(this.buf.subarray(0, n)), sockaddrAddress(this.from) ?? '');
    }
  }

  send(packet: Buffer, address: string): void {
    if (this.closed) throw new SysError(SysErrorCode.FAILED, 'raw socket is closed');
    const sa = sockaddr(this.family, address);
    const n = this.c.sendto(this.fd, packet, packet.length, 0, sa, sa.length);
    if (n < 0) {
      const e = koffi.errno();
      if (e === EAGAIN) return; // the kernel's buffer is full: like a lost packet
      throw new SysError(SysErrorCode.FAILED, `sendto ${address}: errno ${e}`, e);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
    this.c.close(this.fd);
  }
}

export const ffiRawSockets: RawSocketFactory = {
  open(family, protocol, onMessage) {
    let c: Libc;
    try {
      c = load();
    } catch (err: unknown) {
      throw new SysError(SysErrorCode.FAILED, `cannot load libc through koffi: ${(err as Error).message}`);
    }
    const fd = c.socket(family === 'inet' ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) {
      const e = koffi.errno();
      if (e === EPERM || e === EACCES) {
        throw new SysError(SysErrorCode.PERMISSION, `a raw ${family === 'inet' ? 'IPv4' : 'IPv6'} socket (protocol ${protocol}) needs CAP_NET_RAW: run as root or grant it (setcap cap_net_raw+ep, or AmbientCapabilities=CAP_NET_RAW in the systemd unit)`, e);
      }
      throw new SysError(SysErrorCode.FAILED, `socket(raw, protocol ${protocol}) failed: errno ${e}`, e);
    }
    return new FfiRawSocket(c, fd, family, onMessage);
  },
};
