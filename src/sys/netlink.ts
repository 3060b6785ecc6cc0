/**
 * rtnetlink through koffi: add and remove interface addresses (RTM_NEWADDR/RTM_DELADDR,
 * 30–60 µs each instead of ~3 ms for spawning `ip`), and a socket subscribed to link and
 * address changes. Message building is pure and exported for tests.
 */
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';
import { SysError, SysErrorCode, sysFailure } from './errors.js';
import { AF_INET, AF_INET6, AF_NETLINK, EAGAIN, loadLibc, MSG_DONTWAIT, SOCK_CLOEXEC, SOCK_NONBLOCK, SOCK_RAW } from './libc.js';

const NETLINK_ROUTE = 0;
const RTM_NEWADDR = 20;
const RTM_DELADDR = 21;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_REPLACE = 0x100;
const NLM_F_CREATE = 0x400;
const NLMSG_ERROR = 2;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_LABEL = 3;
const IFA_BROADCAST = 4;
const IFA_CACHEINFO = 6;
const IFA_F_NODAD = 0x02;
const RTMGRP_LINK = 0x1;
const RTMGRP_IPV4_IFADDR = 0x10;
const RTMGRP_IPV6_IFADDR = 0x100;
const EEXIST = 17;
const EADDRNOTAVAIL = 99;

/** An address on an interface, as keepalived's virtual_ipaddress lines describe it. */
export interface AddressSpec {
  readonly ifname: string;
  readonly family: Family;
  readonly address: string;
  readonly prefixLength: number;
  readonly label?: string | undefined;
  readonly brd?: string | undefined;
  readonly scope?: string | undefined;
}

const SCOPES: Record<string, number> = { global: 0, site: 200, link: 253, host: 254, nowhere: 255 };

/** One netlink attribute (length, type, payload, padded to 4 bytes). */
export function attr(type: number, data: Buffer): Buffer {
  const len = 4 + data.length;
  const b = Buffer.alloc((len + 3) & ~3);
  b.writeUInt16LE(len, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}

/** An RTM_NEWADDR / RTM_DELADDR request with an ack asked for. */
export function addressMessage(op: 'add' | 'remove', a: AddressSpec, ifindex: number, seq: number): Buffer {
  const v4 = a.family === 'inet';
  const bytes = Buffer.from(ipaddr.parse(a.address).toByteArray());
  const ifa = Buffer.alloc(8);
  ifa[0] = v4 ? AF_INET : AF_INET6;
  ifa[1] = a.prefixLength;
  // IPv6 VIPs skip duplicate address detection, so they answer at once (as keepalived does).
  ifa[2] = v4 ? 0 : IFA_F_NODAD;
  const scope = a.scope !== undefined ? SCOPES[a.scope] ?? Number(a.scope) : 0;
  ifa[3] = Number.isFinite(scope) ? scope : 0;
  ifa.writeUInt32LE(ifindex, 4);
  const attrs = [attr(IFA_LOCAL, bytes), attr(IFA_ADDRESS, bytes)];
  if (v4 && a.brd !== undefined) attrs.push(attr(IFA_BROADCAST, Buffer.from(ipaddr.parse(a.brd).toByteArray())));
  if (v4 && a.label !== undefined) attrs.push(attr(IFA_LABEL, Buffer.from(`${a.label}\0`)));
  if (op === 'add' && !v4 && a.prefixLength === 128) {
    // An IPv6 /128 VIP is added deprecated (preferred lifetime 0, valid forever), as
    // keepalived does: source selection (RFC 6724) then never picks it for the director's own
    // connections. Otherwise a health check to a DR real server — which holds the VIP on
    // its loopback — goes out from the VIP, the answer stays on the real server, and every
    // check times out.
    const cache = Buffer.alloc(16);
    cache.writeUInt32LE(0, 0);
    cache.writeUInt32LE(0xffffffff, 4);
    attrs.push(attr(IFA_CACHEINFO, cache));
  }
  const body = Buffer.concat([ifa, ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE(op === 'add' ? RTM_NEWADDR : RTM_DELADDR, 4);
  h.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | (op === 'add' ? NLM_F_CREATE | NLM_F_REPLACE : 0), 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, body]);
}

/** Every NLMSG_ERROR ack in `b`: sequence number → errno (0 = success). */
export function acks(b: Buffer): Map<number, number> {
  const out = new Map<number, number>();
  for (let off = 0; off + 16 <= b.length;) {
    const len = b.readUInt32LE(off);
    if (len < 16) break;
    if (b.readUInt16LE(off + 4) === NLMSG_ERROR && len >= 20) out.set(b.readUInt32LE(off + 8), -b.readInt32LE(off + 16));
    off += (len + 3) & ~3;
  }
  return out;
}

/** The errno in an NLMSG_ERROR ack for `seq` (0 = success), or null when none is in `b`. */
export function ackErrno(b: Buffer, seq: number): number | null {
  return acks(b).get(seq) ?? null;
}

/**
 * A bound netlink socket of `protocol` (rtnetlink by default), subscribed to `groups`;
 * non-blocking unless `blocking`. Failures name `what` and the capability it needs.
 */
export function netlinkSocket(what: string, o: { protocol?: number; groups?: number; blocking?: boolean } = {}): number {
  const c = loadLibc();
  const fd = c.socket(AF_NETLINK, SOCK_RAW | (o.blocking ? 0 : SOCK_NONBLOCK) | SOCK_CLOEXEC, o.protocol ?? NETLINK_ROUTE);
  if (fd < 0) throw sysFailure(what, c.errno(), 'CAP_NET_ADMIN');
  const sa = Buffer.alloc(12);
  sa.writeUInt16LE(AF_NETLINK, 0);
  sa.writeUInt32LE(o.groups ?? 0, 8);
  if (c.bind(fd, sa, sa.length) < 0) {
    const e = c.errno();
    c.close(fd);
    throw sysFailure(`${what}: bind`, e, 'CAP_NET_ADMIN');
  }
  return fd;
}

const KERNEL = ((): Buffer => {
  const to = Buffer.alloc(12);
  to.writeUInt16LE(AF_NETLINK, 0);
  return to;
})();

/** Send `msg` to the kernel on a netlink socket; a refusal names `what`. */
export function sendToKernel(fd: number, msg: Buffer, what: string): void {
  const c = loadLibc();
  if (c.sendto(fd, msg, msg.length, 0, KERNEL, KERNEL.length) < 0) throw sysFailure(what, c.errno(), 'CAP_NET_ADMIN');
}

let seq = 1;

/** Add (replace) or remove one address; "already there" and "already gone" are success. */
export function netlinkAddress(op: 'add' | 'remove', a: AddressSpec, ifindex: number): void {
  const c = loadLibc();
  const what = `${op === 'add' ? 'adding' : 'removing'} ${a.address}/${a.prefixLength} ${op === 'add' ? 'to' : 'from'} ${a.ifname}`;
  const fd = netlinkSocket(what);
  try {
    const s = seq++;
    sendToKernel(fd, addressMessage(op, a, ifindex, s), what);
    // rtnetlink handles the request inside sendto: the ack is already queued.
    const buf = Buffer.alloc(4096);
    for (let i = 0; i < 8; i++) {
      const n = c.recvfrom(fd, buf, buf.length, MSG_DONTWAIT, null, null);
      if (n < 0) {
        const e = c.errno();
        if (e === EAGAIN) throw new SysError(SysErrorCode.FAILED, `${what}: no answer from the kernel`);
        throw sysFailure(what, e, 'CAP_NET_ADMIN');
      }
      const err = ackErrno(buf.subarray(0, n), s);
      if (err === null) continue;
      if (err === 0 || (op === 'add' && err === EEXIST) || (op === 'remove' && err === EADDRNOTAVAIL)) return;
      throw sysFailure(what, err, 'CAP_NET_ADMIN');
    }
    throw new SysError(SysErrorCode.FAILED, `${what}: no acknowledgement from the kernel`);
  } finally {
    c.close(fd);
  }
}

/** Call `onChange` (coalesced to once per event-loop turn) on any link or address change. */
export function openLinkWatch(onChange: () => void): { close(): void } {
  const c = loadLibc();
  const fd = netlinkSocket('watching network links', { groups: RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR });
  const buf = Buffer.alloc(16384);
  let closed = false;
  let queued = false;
  const handle = koffi.node.poll(fd, { readable: true }, () => {
    for (let i = 0; i < 64 && !closed; i++) if (c.recvfrom(fd, buf, buf.length, MSG_DONTWAIT, null, null) < 0) break;
    if (queued || closed) return;
    queued = true;
    setImmediate(() => {
      queued = false;
      if (!closed) onChange();
    });
  });
  handle.unref();
  return {
    close() {
      if (closed) return;
      closed = true;
      handle.close();
      c.close(fd);
    },
  };
}
