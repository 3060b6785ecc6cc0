/**
 * The host's network, as VRRP needs it: raw protocol-112 channels, interface facts,
 * virtual addresses (netlink), gratuitous ARP / unsolicited neighbour advertisements, and
 * link-change notifications. `HostNetwork` is the boundary; `ffiHostNetwork` the real one
 * (this file), `FakeSegment` in fake-host.ts the fake.
 *
 * Receiving and sending use separate sockets (see ../shared/design/findings.md): a raw
 * socket bound to a unicast address receives no multicast, so adverts are read from an
 * unbound socket tied to the device (SO_BINDTODEVICE) that joined the group, and sent from
 * a socket bound to the source address with TTL 255, which drops everything it would
 * receive (a one-instruction BPF filter).
 */
import fs from 'node:fs';
import os from 'node:os';
import koffi from 'koffi';
import ipaddr from 'ipaddr.js';
import { execFileSync } from 'node:child_process';
import type { Family, StaticRoute } from '../model/types.js';
import { SysError, SysErrorCode, sysFailure } from './errors.js';
import {
  AF_INET, AF_INET6, AF_PACKET, EAGAIN, intOpt, IP_ADD_MEMBERSHIP, IP_MULTICAST_IF, IP_MULTICAST_LOOP, IP_MULTICAST_TTL, IP_TOS, IP_TTL,
  IPPROTO_ICMPV6, IPPROTO_IP, IPPROTO_IPV6, IPV6_HOPLIMIT, IPV6_JOIN_GROUP, IPV6_MULTICAST_HOPS, IPV6_MULTICAST_IF, IPV6_MULTICAST_LOOP,
  IPV6_PKTINFO, IPV6_RECVHOPLIMIT, IPV6_RECVPKTINFO, IPV6_TCLASS, IPV6_UNICAST_HOPS, loadLibc, SO_BINDTODEVICE, SOCK_CLOEXEC,
  SOCK_DGRAM, SOCK_NONBLOCK, SOCK_RAW, SOL_SOCKET, type Libc,
} from './libc.js';
import { sockaddr, sockaddrAddress } from './raw.js';
import { netlinkAddress, openLinkWatch, type AddressSpec } from './netlink.js';

export type { AddressSpec } from './netlink.js';

/** A received VRRP packet. IPv4: `data` is the whole datagram (header included, as the kernel gives it). */
export interface VrrpPacketIn {
  readonly family: Family;
  readonly data: Buffer;
  readonly src: string;
  /** IPv6: destination and hop limit from ancillary data; IPv4: in the header. */
  readonly dst?: string | undefined;
  readonly ttl?: number | undefined;
}

export interface VrrpChannelOptions {
  readonly family: Family;
  /** Device to receive on and send from (undefined: unicast only, any device). */
  readonly ifname?: string | undefined;
  /** Multicast group to join (undefined: unicast peers only). */
  readonly group?: string | undefined;
  /** Our source address (IPv6: link-local for multicast). */
  readonly source: string;
  /** Device to send from when it is not `ifname` (use_vmac: the virtual MAC interface). */
  readonly txIfname?: string | undefined;
}

/** use_vmac: a macvlan (private mode) named `name` on `base`, with the virtual router's MAC. */
export interface VmacSpec {
  readonly name: string;
  readonly base: string;
  readonly mac: string;
  /** The instance's family: IPv4 ones get keepalived's ARP settings; IPv6 needs none (ND is per interface). */
  readonly family: Family;
}

export interface VrrpChannel {
  send(payload: Buffer, dst: string): void;
  close(): void;
}

export interface LinkInfo {
  readonly name: string;
  readonly index: number;
  /** "aa:bb:cc:dd:ee:ff" */
  readonly mac: string;
  /** Administratively up with carrier (operstate up, or unknown for devices without one). */
  readonly up: boolean;
  readonly addresses: readonly { readonly family: Family; readonly address: string; readonly prefixLength: number }[];
}

export interface HostNetwork {
  openVrrp(o: VrrpChannelOptions, onPacket: (p: VrrpPacketIn) => void): VrrpChannel;
  /** Interface facts, or null when it does not exist. */
  link(name: string): LinkInfo | null;
  /** Add an address; already present is fine. */
  addAddress(a: AddressSpec): void;
  /** Remove an address; already absent is fine. */
  removeAddress(a: AddressSpec): void;
  /** `count` gratuitous ARPs (IPv4) or unsolicited neighbour advertisements (IPv6) for `address`, back to back. */
  announce(ifname: string, family: Family, address: string, count: number): void;
  /** Add (as its action says) or delete a static route or policy rule. Throws SysError when the kernel refuses. */
  route(op: 'add' | 'delete', r: StaticRoute): void;
  /**
   * The addresses whose traffic this host drops (an instance without accept mode holds them
   * as MASTER): the whole set each time, applied as the difference from the last one; an
   * empty set removes the table. Throws SysError when nftables refuses.
   */
  filterVips(addresses: readonly { readonly family: Family; readonly address: string }[]): void;
  /**
   * Create (up, no IPv6 address made from its MAC; for IPv4, arp_ignore on it and
   * arp_ignore/arp_filter/arp_announce on its base) or delete a virtual MAC interface. An
   * interface of that name with that MAC is taken over; one with another MAC is refused
   * (SysError), never deleted. Deleting the last one on a base puts the base's values back.
   */
  vmac(op: 'add' | 'delete', v: VmacSpec): void;
  /** `onChange` after any link or address change on the host (then read `link`). */
  watchLinks(onChange: () => void): { close(): void };
  /** Which of CAP_NET_RAW (sockets, ARP) and CAP_NET_ADMIN (addresses) this process lacks. */
  missingCapabilities(): string[];
}

const CAP_NET_ADMIN = 12;
const CAP_NET_RAW = 13;

/** Effective capabilities from /proc/self/status (CapEff), missing ones named. */
export function missingNetCapabilities(status = '/proc/self/status'): string[] {
  let eff: bigint;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(fs.readFileSync(status, 'utf8'));
    if (!m?.[1]) return [];
    eff = BigInt(`0x${m[1]}`);
  } catch {
    return []; // not Linux procfs: let the calls themselves fail with their errors
  }
  const out: string[] = [];
  if (!(eff & (1n << BigInt(CAP_NET_RAW)))) out.push('CAP_NET_RAW');
  if (!(eff & (1n << BigInt(CAP_NET_ADMIN)))) out.push('CAP_NET_ADMIN');
  return out;
}

const ETH_P_ARP = 0x0806;
const ETH_P_IPV6 = 0x86dd;

function sysfs(name: string, file: string): string | null {
  try {
    return fs.readFileSync(`/sys/class/net/${name}/${file}`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** An interface's index and MAC from sysfs alone (what sockets and netlink need), or null. */
function linkIdentity(name: string): { index: number; mac: string } | null {
  const index = sysfs(name, 'ifindex');
  return index === null ? null : { index: Number(index), mac: sysfs(name, 'address') ?? '' };
}

function requireLink(name: string): { index: number; mac: string } {
  const l = linkIdentity(name);
  if (!l) throw new SysError(SysErrorCode.NO_DEVICE, `network interface '${name}' does not exist`);
  return l;
}

/** Interface facts from the kernel (sysfs) and getifaddrs (os.networkInterfaces). */
export function readLink(name: string): LinkInfo | null {
  const id = linkIdentity(name);
  if (!id) return null;
  const oper = sysfs(name, 'operstate');
  const addrs = (os.networkInterfaces()[name] ?? []).map((a) => ({
    family: (a.family === 'IPv4' ? 'inet' : 'inet6') as Family,
    address: a.address.replace(/%.*$/, ''),
    prefixLength: Number(a.cidr?.split('/')[1] ?? (a.family === 'IPv4' ? 32 : 128)),
  }));
  return { name, ...id, up: oper === 'up' || oper === 'unknown', addresses: addrs };
}

function setopt(c: Libc, fd: number, level: number, opt: number, value: Buffer, what: string): void {
  if (c.setsockopt(fd, level, opt, value, value.length) < 0) throw sysFailure(what, c.errno(), 'CAP_NET_RAW');
}

function rawSocket(c: Libc, family: Family, proto: number, what: string): number {
  const fd = c.socket(family === 'inet' ? AF_INET : AF_INET6, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, proto);
  if (fd < 0) throw sysFailure(what, c.errno(), 'CAP_NET_RAW');
  return fd;
}

class FfiVrrpChannel implements VrrpChannel {
  private readonly rx: number;
  private tx = -1;
  private readonly poll: ReturnType<typeof koffi.node.poll>;
  private readonly buf = Buffer.alloc(65536);
  private readonly name = Buffer.alloc(28);
  private readonly control = Buffer.alloc(128);
  private readonly scope: number;
  private readonly txIndex: number;
  private closed = false;

  constructor(private readonly c: Libc, private readonly o: VrrpChannelOptions, private readonly onPacket: (p: VrrpPacketIn) => void) {
    const index = o.ifname !== undefined ? requireLink(o.ifname).index : 0;
    this.scope = index;
    this.txIndex = o.txIfname !== undefined ? requireLink(o.txIfname).index : index;
    const what = `a raw ${o.family === 'inet' ? 'IPv4' : 'IPv6'} VRRP socket (protocol 112)${o.ifname ? ` on ${o.ifname}` : ''}`;
    // Receiver: unbound, tied to the device, member of the group.
    this.rx = rawSocket(c, o.family, 112, what);
    try {
      this.setup(index, what);
    } catch (err: unknown) {
      c.close(this.rx);
      if (this.tx >= 0) c.close(this.tx);
      throw err;
    }
    this.poll = koffi.node.poll(this.rx, { readable: true }, () => this.drain());
    this.poll.unref();
  }

  private setup(index: number, what: string): void {
    const { c, o } = this;
    const v4 = o.family === 'inet';
    if (o.ifname !== undefined) setopt(c, this.rx, SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${o.ifname}\0`), `${what}: SO_BINDTODEVICE`);
    if (v4) {
      if (o.group !== undefined) {
        const mreqn = Buffer.alloc(12);
        Buffer.from(ipaddr.parse(o.group).toByteArray()).copy(mreqn, 0);
        mreqn.writeInt32LE(index, 8);
        setopt(c, this.rx, IPPROTO_IP, IP_ADD_MEMBERSHIP, mreqn, `${what}: joining ${o.group}`);
      }
    } else {
      setopt(c, this.rx, IPPROTO_IPV6, IPV6_RECVHOPLIMIT, intOpt(1), `${what}: IPV6_RECVHOPLIMIT`);
      setopt(c, this.rx, IPPROTO_IPV6, IPV6_RECVPKTINFO, intOpt(1), `${what}: IPV6_RECVPKTINFO`);
      if (o.group !== undefined) {
        const mreq = Buffer.alloc(20);
        Buffer.from(ipaddr.parse(o.group).toByteArray()).copy(mreq, 0);
        mreq.writeInt32LE(index, 16);
        setopt(c, this.rx, IPPROTO_IPV6, IPV6_JOIN_GROUP, mreq, `${what}: joining ${o.group}`);
      }
    }
    // Sender: bound to our address, TTL/hop limit 255, never loops back, receives nothing.
    this.tx = rawSocket(c, o.family, 112, what);
    if (o.txIfname !== undefined) setopt(c, this.tx, SOL_SOCKET, SO_BINDTODEVICE, Buffer.from(`${o.txIfname}\0`), `${what}: SO_BINDTODEVICE ${o.txIfname}`);
    const txIndex = this.txIndex;
    const sa = sockaddr(o.family, o.source, v4 ? 0 : ipaddr.parse(o.source).range() === 'linkLocal' ? txIndex : 0);
    if (c.bind(this.tx, sa, sa.length) < 0) {
      const e = c.errno();
      throw new SysError(SysErrorCode.FAILED, `${what}: cannot bind to ${o.source} (errno ${e}; is it on the interface?)`, e);
    }
    if (v4) {
      setopt(c, this.tx, IPPROTO_IP, IP_TTL, intOpt(255), `${what}: IP_TTL`);
      setopt(c, this.tx, IPPROTO_IP, IP_MULTICAST_TTL, intOpt(255), `${what}: IP_MULTICAST_TTL`);
      setopt(c, this.tx, IPPROTO_IP, IP_MULTICAST_LOOP, intOpt(0), `${what}: IP_MULTICAST_LOOP`);
      setopt(c, this.tx, IPPROTO_IP, IP_TOS, intOpt(0xc0), `${what}: IP_TOS`);
      if (txIndex) {
        const mreqn = Buffer.alloc(12);
        mreqn.writeInt32LE(txIndex, 8);
        setopt(c, this.tx, IPPROTO_IP, IP_MULTICAST_IF, mreqn, `${what}: IP_MULTICAST_IF`);
      }
    } else {
      setopt(c, this.tx, IPPROTO_IPV6, IPV6_UNICAST_HOPS, intOpt(255), `${what}: IPV6_UNICAST_HOPS`);
      setopt(c, this.tx, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, intOpt(255), `${what}: IPV6_MULTICAST_HOPS`);
      setopt(c, this.tx, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, intOpt(0), `${what}: IPV6_MULTICAST_LOOP`);
      setopt(c, this.tx, IPPROTO_IPV6, IPV6_TCLASS, intOpt(0xc0), `${what}: IPV6_TCLASS`);
      if (txIndex) setopt(c, this.tx, IPPROTO_IPV6, IPV6_MULTICAST_IF, intOpt(txIndex), `${what}: IPV6_MULTICAST_IF`);
    }
    // BPF "ret #0": the sending socket keeps no receive queue.
    const dropAll = Buffer.alloc(8);
    dropAll.writeUInt16LE(0x06, 0);
    if (c.attachFilter(this.tx, dropAll, 1) < 0) throw new SysError(SysErrorCode.FAILED, `${what}: SO_ATTACH_FILTER failed (errno ${c.errno()})`, c.errno());
  }

  private drain(): void {
    for (let i = 0; i < 256 && !this.closed; i++) {
      const { n, controlLen } = this.c.recvmsg(this.rx, this.buf, this.name, this.control, 0x40 /* MSG_DONTWAIT */);
      if (n < 0) return;
      const src = sockaddrAddress(this.name) ?? '';
      const data = Buffer.from(this.buf.subarray(0, n));
      if (this.o.family === 'inet') {
        this.onPacket({ family: 'inet', data, src });
        continue;
      }
      let dst: string | undefined;
      let ttl: number | undefined;
      for (let off = 0; off + 16 <= controlLen;) {
        const len = Number(this.control.readBigUInt64LE(off));
        if (len < 16) break;
        const level = this.control.readInt32LE(off + 8);
        const type = this.control.readInt32LE(off + 12);
        if (level === IPPROTO_IPV6 && type === IPV6_PKTINFO && len >= 16 + 20) dst = ipaddr.fromByteArray([...this.control.subarray(off + 16, off + 32)]).toString();
        if (level === IPPROTO_IPV6 && type === IPV6_HOPLIMIT && len >= 20) ttl = this.control.readInt32LE(off + 16);
        off += (len + 7) & ~7;
      }
      this.onPacket({ family: 'inet6', data, src, dst, ttl });
    }
  }

  send(payload: Buffer, dst: string): void {
    if (this.closed) throw new SysError(SysErrorCode.FAILED, 'VRRP channel is closed');
    const linkLocal = this.o.family === 'inet6' && ['linkLocal', 'multicast'].includes(ipaddr.parse(dst).range());
    const sa = sockaddr(this.o.family, dst, linkLocal ? this.txIndex : 0);
    if (this.c.sendto(this.tx, payload, payload.length, 0, sa, sa.length) < 0) {
      const e = this.c.errno();
      if (e === EAGAIN) return;
      throw new SysError(SysErrorCode.FAILED, `sending VRRP to ${dst}${this.o.ifname ? ` on ${this.o.ifname}` : ''}: errno ${e}`, e);
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poll.close();
    this.c.close(this.rx);
    this.c.close(this.tx);
  }
}

function macBytes(mac: string): Buffer {
  return Buffer.from(mac.split(':').map((x) => parseInt(x, 16)));
}

/** `who-has A tell A`, broadcast: what keepalived sends (RFC 5227 announcement form). */
export function gratuitousArp(mac: string, address: string): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // Ethernet
  b.writeUInt16BE(0x0800, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(1, 6); // request
  macBytes(mac).copy(b, 8);
  Buffer.from(ipaddr.parse(address).toByteArray()).copy(b, 14);
  Buffer.alloc(6, 0xff).copy(b, 18);
  Buffer.from(ipaddr.parse(address).toByteArray()).copy(b, 24);
  return b;
}

/** An unsolicited neighbour advertisement (RFC 4861 §7.2.6): Override set, target link-layer option. */
export function unsolicitedNa(mac: string, address: string): Buffer {
  const b = Buffer.alloc(32);
  b[0] = 136;
  b.writeUInt32BE(0x20000000, 4); // O flag
  Buffer.from(ipaddr.parse(address).toByteArray()).copy(b, 8);
  b[24] = 2; // target link-layer address
  b[25] = 1; // 8 bytes
  macBytes(mac).copy(b, 26);
  return b;
}

/** The nftables table of VIPs without accept mode (keepalived's `keepalived` table, by another name). */
export const VIP_FILTER_TABLE = 'fulcrum_vrrp';

/**
 * Commands that take the filter from `held` to `want` (keys `family address`): the table is
 * made afresh (dropping one a previous run left) when it is first needed, elements change by
 * difference after that, and it goes when nothing is left. Pure, for the tests.
 */
export function vipFilterCommands(held: ReadonlySet<string> | null, want: ReadonlySet<string>, table = VIP_FILTER_TABLE): string[] {
  const elem = (k: string): { set: string; addr: string } => {
    const [family, addr = ''] = k.split(' ');
    return { set: family === 'inet6' ? 'vips6' : 'vips4', addr };
  };
  if (want.size === 0) return held === null ? [] : [`delete table inet ${table}`];
  const out: string[] = [];
  if (held === null) {
    // ND must pass or the address cannot even be resolved (keepalived lets it through too).
    out.push(`add table inet ${table}`, `delete table inet ${table}`, `add table inet ${table}`,
      `add set inet ${table} vips4 { type ipv4_addr; }`, `add set inet ${table} vips6 { type ipv6_addr; }`,
      `add chain inet ${table} in { type filter hook input priority -1; policy accept; }`,
      `add chain inet ${table} out { type filter hook output priority -1; policy accept; }`,
      `add rule inet ${table} in icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`,
      `add rule inet ${table} in ip daddr @vips4 drop`, `add rule inet ${table} in ip6 daddr @vips6 drop`,
      `add rule inet ${table} out icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert } accept`,
      `add rule inet ${table} out ip saddr @vips4 drop`, `add rule inet ${table} out ip6 saddr @vips6 drop`);
  }
  const had = held ?? new Set<string>();
  for (const k of had) if (!want.has(k)) { const e = elem(k); out.push(`delete element inet ${table} ${e.set} { ${e.addr} }`); }
  for (const k of want) if (!had.has(k)) { const e = elem(k); out.push(`add element inet ${table} ${e.set} { ${e.addr} }`); }
  return out;
}

const vipFilter = {
  held: null as Set<string> | null,
  set(addresses: readonly { readonly family: Family; readonly address: string }[]): void {
    const want = new Set(addresses.map((a) => `${a.family} ${a.address}`));
    const cmds = vipFilterCommands(this.held, want);
    if (cmds.length === 0) return;
    try {
      execFileSync('nft', ['-f', '-'], { input: cmds.join('\n') + '\n', stdio: ['pipe', 'ignore', 'pipe'], timeout: 5000 });
    } catch (err: unknown) {
      const e = err as { stderr?: Buffer };
      const msg = e.stderr?.toString().trim() || (err instanceof Error ? err.message : String(err));
      throw new SysError(SysErrorCode.NFT, `the VIP filter (no_accept) could not be set: ${msg}`);
    }
    this.held = want.size === 0 ? null : want;
  },
};

function ipCommand(args: readonly string[]): void {
  try {
    execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
  } catch (err: unknown) {
    const e = err as { stderr?: Buffer };
    const msg = e.stderr?.toString().trim() || (err instanceof Error ? err.message : String(err));
    throw new SysError(/Operation not permitted/.test(msg) ? SysErrorCode.PERMISSION : SysErrorCode.FAILED, `ip ${args.join(' ')}: ${msg}`);
  }
}

function ipv4Conf(ifname: string, key: string, value?: string): string | null {
  const file = `/proc/sys/net/ipv4/conf/${ifname}/${key}`;
  try {
    if (value !== undefined) fs.writeFileSync(file, value);
    return fs.readFileSync(file, 'utf8').trim();
  } catch (err: unknown) {
    if (value !== undefined) throw new SysError(SysErrorCode.FAILED, `cannot set ${file} to ${value}: ${err instanceof Error ? err.message : String(err)}`);
    return null;
  }
}

/**
 * The virtual MAC interfaces this process made, and what their bases' arp_ignore / arp_filter
 * were before the first one (keepalived's set_interface_parameters and its reset).
 */
const vmacs = {
  made: new Map<string, string>(),
  saved: new Map<string, { arpIgnore: string | null; arpFilter: string | null; arpAnnounce: string | null }>(),
  apply(op: 'add' | 'delete', v: VmacSpec): void {
    if (op === 'delete') {
      if (!this.made.has(v.name)) return;
      this.made.delete(v.name);
      if (readLink(v.name)) ipCommand(['link', 'del', 'dev', v.name]);
      if (![...this.made.values()].includes(v.base)) {
        const s = this.saved.get(v.base);
        this.saved.delete(v.base);
        if (s && readLink(v.base)) {
          if (s.arpIgnore !== null) ipv4Conf(v.base, 'arp_ignore', s.arpIgnore);
          if (s.arpFilter !== null) ipv4Conf(v.base, 'arp_filter', s.arpFilter);
          if (s.arpAnnounce !== null) ipv4Conf(v.base, 'arp_announce', s.arpAnnounce);
        }
      }
      return;
    }
    const have = readLink(v.name);
    if (have && have.mac.toLowerCase() !== v.mac) {
      throw new SysError(SysErrorCode.FAILED, `interface ${v.name} exists with MAC ${have.mac}, not the virtual router's ${v.mac}: not taken over (use_vmac NAME chooses another name)`);
    }
    if (!have) ipCommand(['link', 'add', 'link', v.base, 'name', v.name, 'address', v.mac, 'type', 'macvlan', 'mode', 'private']);
    this.made.set(v.name, v.base);
    // No IPv6 link-local made from its MAC: it would speak (DAD, MLD) from the virtual MAC while
    // BACKUP. An IPv6 instance gives it the interface's own link-local to send adverts from.
    ipCommand(['link', 'set', 'dev', v.name, 'addrgenmode', 'none']);
    if (v.family === 'inet6') {
      ipCommand(['link', 'set', 'dev', v.name, 'up']);
      return;
    }
    // ARP for an address is answered only by the interface that has it: the VIPs, from the vmac.
    ipv4Conf(v.name, 'arp_ignore', '1');
    ipv4Conf(v.name, 'accept_local', '1');
    ipv4Conf(v.name, 'rp_filter', '0');
    if (!this.saved.has(v.base)) {
      this.saved.set(v.base, { arpIgnore: ipv4Conf(v.base, 'arp_ignore'), arpFilter: ipv4Conf(v.base, 'arp_filter'), arpAnnounce: ipv4Conf(v.base, 'arp_announce') });
    }
    ipv4Conf(v.base, 'arp_ignore', '1');
    ipv4Conf(v.base, 'arp_filter', '1');
    // Replies from a VIP may leave by the base (its route is as good as the vmac's); the ARP
    // requests they cause must not name the VIP as the sender, or the neighbour would map
    // it to the base's MAC (keepalived leaves arp_announce as it is; Fulcrum does not).
    ipv4Conf(v.base, 'arp_announce', '2');
    ipCommand(['link', 'set', 'dev', v.name, 'up']);
  },
};

export const ffiHostNetwork: HostNetwork = {
  openVrrp(o, onPacket) {
    return new FfiVrrpChannel(loadLibc(), o, onPacket);
  },
  link: readLink,
  addAddress(a) {
    netlinkAddress('add', a, requireLink(a.ifname).index);
  },
  removeAddress(a) {
    const l = linkIdentity(a.ifname);
    if (!l) return; // the interface is gone, and its addresses with it
    netlinkAddress('remove', a, l.index);
  },
  route(op, r) {
    // ip(8) speaks the whole route/rule grammar keepalived accepts; the words were checked
    // (plain words, no shell) when the file was read.
    const action = op === 'delete' ? 'del' : r.kind === 'rule' ? 'add' : r.action;
    try {
      execFileSync('ip', [r.family === 'inet6' ? '-6' : '-4', r.kind, action, ...r.words], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
    } catch (err: unknown) {
      const e = err as { stderr?: Buffer; status?: number };
      const msg = e.stderr?.toString().trim() || (err instanceof Error ? err.message : String(err));
      throw new SysError(/Operation not permitted/.test(msg) ? SysErrorCode.PERMISSION : SysErrorCode.FAILED, `ip ${r.kind} ${action} ${r.words.join(' ')}: ${msg}`);
    }
  },
  filterVips(addresses) {
    vipFilter.set(addresses);
  },
  vmac(op, v) {
    vmacs.apply(op, v);
  },
  announce(ifname, family, address, count) {
    const c = loadLibc();
    const l = requireLink(ifname);
    if (family === 'inet') {
      // Protocol 0: a send-only packet socket. One bound to a protocol hooks into the
      // receive path, and closing it waits for an RCU grace period (tens of ms) — too
      // slow at the moment of a takeover.
      const fd = c.socket(AF_PACKET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) throw sysFailure(`a packet socket for gratuitous ARP on ${ifname}`, c.errno(), 'CAP_NET_RAW');
      try {
        const ll = Buffer.alloc(20);
        ll.writeUInt16LE(AF_PACKET, 0);
        ll.writeUInt16BE(ETH_P_ARP, 2);
        ll.writeInt32LE(l.index, 4);
        ll[11] = 6;
        Buffer.alloc(6, 0xff).copy(ll, 12);
        const pkt = gratuitousArp(l.mac, address);
        for (let k = 0; k < count; k++) {
          if (c.sendto(fd, pkt, pkt.length, 0, ll, ll.length) < 0) throw sysFailure(`gratuitous ARP for ${address} on ${ifname}`, c.errno(), 'CAP_NET_RAW');
        }
      } finally {
        c.close(fd);
      }
      return;
    }
    const fd = rawSocket(c, 'inet6', IPPROTO_ICMPV6, `an ICMPv6 socket for neighbour advertisements on ${ifname}`);
    try {
      setopt(c, fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, intOpt(255), 'IPV6_MULTICAST_HOPS');
      setopt(c, fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, intOpt(l.index), 'IPV6_MULTICAST_IF');
      const pkt = unsolicitedNa(l.mac, address);
      const sa = sockaddr('inet6', 'ff02::1', l.index);
      for (let k = 0; k < count; k++) {
        if (c.sendto(fd, pkt, pkt.length, 0, sa, sa.length) < 0) throw sysFailure(`neighbour advertisement for ${address} on ${ifname}`, c.errno(), 'CAP_NET_RAW');
      }
    } finally {
      c.close(fd);
    }
  },
  watchLinks: openLinkWatch,
  missingCapabilities: () => missingNetCapabilities(),
};

/** The ethertype a gratuitous ARP or NA travels in (for tests that capture them). */
export const ANNOUNCE_ETHERTYPE = { inet: ETH_P_ARP, inet6: ETH_P_IPV6 } as const;
