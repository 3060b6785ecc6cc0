/**
 * Raw IP sockets through koffi (libc `socket`/`sendto`/`recvfrom`), driven by a libuv
 * poll handle on a non-blocking fd drained to EAGAIN. This file and its siblings in sys/
 * are the only code that calls the kernel through the FFI; koffi is pinned to an exact
 * version because `koffi.node.poll` is marked as subject to change upstream.
 */
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';
import { SysError, SysErrorCode, sysFailure } from './errors.js';
import { AF_INET, AF_INET6, EAGAIN, loadLibc, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW, type Libc } from './libc.js';

export { SysError, SysErrorCode } from './errors.js';

/** A sockaddr_in / sockaddr_in6 for `address` (port 0: raw sockets have none; `scopeId` = interface index for link-local IPv6). */
export function sockaddr(family: Family, address: string, scopeId = 0, port = 0): Buffer {
  const bytes = ipaddr.parse(address).toByteArray();
  if (family === 'inet') {
    const sa = Buffer.alloc(16);
    sa.writeUInt16LE(AF_INET, 0);
    sa.writeUInt16BE(port, 2);
    Buffer.from(bytes).copy(sa, 4);
    return sa;
  }
  const sa = Buffer.alloc(28);
  sa.writeUInt16LE(AF_INET6, 0);
  sa.writeUInt16BE(port, 2);
  Buffer.from(bytes).copy(sa, 8);
  sa.writeUInt32LE(scopeId, 24);
  return sa;
}

/** Endpoints whose sockaddr was already built, each kept as long as its object is. */
const endpointAddrs = new WeakMap<object, Buffer>();

/**
 * The sockaddr of an endpoint that is connected to again and again (a real server, a
 * checker's target): built once per endpoint object, since parsing the address costs more
 * than the connect's own system call. connect(2) and bind(2) only read it.
 */
export function endpointSockaddr(e: { readonly family: Family; readonly address: string; readonly port: number }): Buffer {
  let sa = endpointAddrs.get(e);
  if (sa === undefined) {
    sa = sockaddr(e.family, e.address, 0, e.port);
    endpointAddrs.set(e, sa);
  }
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
      const e = this.c.errno();
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
    const c = loadLibc();
    const fd = c.socket(family === 'inet' ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    if (fd < 0) throw sysFailure(`a raw ${family === 'inet' ? 'IPv4' : 'IPv6'} socket (protocol ${protocol})`, c.errno(), 'CAP_NET_RAW');
    return new FfiRawSocket(c, fd, family, onMessage);
  },
};
