/**
 * The XDP program's map layouts (bpf/fulcrum_xdp.c), byte for byte: pure encoders and
 * decoders, so what the plane writes is testable without a kernel. Addresses are in network
 * order (IPv4 in the first four bytes of a 16-byte field); ids and counters in host order
 * (little-endian here: x86-64 and arm64 as Debian runs them).
 */
import ipaddr from 'ipaddr.js';
import type { Family, Persistence, Protocol } from '../../model/types.js';
import type { SlotHash } from '../nft/slots.js';
import type { Timeouts } from '../types.js';

export const MAX_SERVICES = 512;
export const MAX_SLOTS = 256;
export const MAX_BACKENDS = 4096;

export const SVC_KEY_SIZE = 20;
export const SVC_VAL_SIZE = 52;
export const BACKEND_SIZE = 64;
export const CONN_KEY_SIZE = 24;
export const CONN_VAL_SIZE = 24;
export const DEVICE_SIZE = 8;
export const TPL_KEY_SIZE = 20;
export const TPL_VAL_SIZE = 16;
export const COUNTERS_SIZE = 32;

const FAM = { inet: 4, inet6: 6 } as const;
const PROTO: Readonly<Record<Protocol, number>> = { tcp: 6, udp: 17, sctp: 132 };

export const HashKind = { rr: 0, src: 1, srcPort: 2, dst: 3 } as const;
export const ServiceFlag = { persist: 1, ops: 2 } as const;
export const BackendFlag = { live: 1, resolved: 2, tun: 4 } as const;
export const ConnFlag = { closing: 1, syn: 2 } as const;
/** The program's SYN_RECV timeout (seconds): a flow that has sent only its SYN. */
export const SYN_TIMEOUT = 60;

/** The per-reason counters (xstats), by index. */
export const XSTATS = ['forwarded', 'no-server', 'no-neighbour', 'malformed', 'tx-failed', 'new'] as const;

export function hashKind(h: SlotHash): number {
  switch (h) {
    case 'rr':
      return HashKind.rr;
    case 'sh':
    case 'mh':
      return HashKind.src;
    case 'shp':
    case 'mhp':
      return HashKind.srcPort;
    case 'dh':
      return HashKind.dst;
  }
}

/** A 16-byte address field. */
export function addressBytes(address: string): Buffer {
  const b = Buffer.alloc(16);
  Buffer.from(ipaddr.parse(address).toByteArray()).copy(b);
  return b;
}

export function addressText(field: Buffer, family: Family): string {
  const bytes = [...field.subarray(0, family === 'inet' ? 4 : 16)];
  return ipaddr.fromByteArray(bytes).toString();
}

export function macBytes(mac: string): Buffer {
  const parts = mac.split(':').map((x) => parseInt(x, 16));
  if (parts.length !== 6 || parts.some((x) => !Number.isInteger(x) || x < 0 || x > 255)) throw new RangeError(`not a MAC address: ${mac}`);
  return Buffer.from(parts);
}

export function serviceKey(family: Family, address: string, protocol: Protocol, port: number): Buffer {
  const b = Buffer.alloc(SVC_KEY_SIZE);
  addressBytes(address).copy(b, 0);
  b.writeUInt16BE(port, 16);
  b.writeUInt8(PROTO[protocol], 18);
  b.writeUInt8(FAM[family], 19);
  return b;
}

export function decodeServiceKey(b: Buffer): { family: Family; address: string; protocol: number; port: number } {
  const family: Family = b.readUInt8(19) === 6 ? 'inet6' : 'inet';
  return { family, address: addressText(b.subarray(0, 16), family), protocol: b.readUInt8(18), port: b.readUInt16BE(16) };
}

/** The mask a persistence template keys on (16 bytes, network order). */
export function persistenceMask(family: Family, p: Persistence | null): Buffer {
  const b = Buffer.alloc(16);
  if (!p) return b;
  if (family === 'inet' && p.mask !== undefined) {
    addressBytes(p.mask).copy(b);
    return b;
  }
  const bits = Math.min(p.prefixLength, family === 'inet' ? 32 : 128);
  for (let i = 0; i < bits; i++) b[i >> 3] = (b[i >> 3] ?? 0) | (0x80 >> (i & 7));
  return b;
}

export interface ServiceValue {
  readonly id: number;
  readonly size: number;
  readonly hash: number;
  readonly flags: number;
  readonly mask: Buffer;
  readonly persistTimeout: number;
  readonly timeouts: Timeouts;
  /** The slot hashes' seed (`hash_seed`). */
  readonly seed: number;
}

export function serviceValue(v: ServiceValue): Buffer {
  const b = Buffer.alloc(SVC_VAL_SIZE);
  b.writeUInt32LE(v.id, 0);
  b.writeUInt32LE(v.size, 4);
  b.writeUInt32LE(v.hash, 8);
  b.writeUInt32LE(v.flags, 12);
  v.mask.copy(b, 16, 0, 16);
  b.writeUInt32LE(v.persistTimeout, 32);
  b.writeUInt32LE(v.timeouts.tcp, 36);
  b.writeUInt32LE(v.timeouts.tcpfin, 40);
  b.writeUInt32LE(v.timeouts.udp, 44);
  b.writeUInt32LE(v.seed >>> 0, 48);
  return b;
}

export function serviceId(value: Buffer): number {
  return value.readUInt32LE(0);
}

export interface BackendValue {
  readonly family: Family;
  readonly address: string;
  readonly flags: number;
  readonly service: number;
  /** Where frames to it go: the device, its MAC, the real server's (or next tunnel hop's) MAC. */
  readonly ifindex: number;
  readonly dmac: string | null;
  readonly smac: string | null;
  /** TUN: the director's source address, the VXLAN network identifier, the tunnel device's MAC. */
  readonly tunnel?: { readonly source: string; readonly vni: number; readonly mac: string } | undefined;
}

export function backendValue(v: BackendValue): Buffer {
  const b = Buffer.alloc(BACKEND_SIZE);
  addressBytes(v.address).copy(b, 0);
  b.writeUInt8(FAM[v.family], 16);
  b.writeUInt8(v.flags, 17);
  if (v.dmac) macBytes(v.dmac).copy(b, 18);
  if (v.smac) macBytes(v.smac).copy(b, 24);
  b.writeUInt16LE(v.service, 30);
  b.writeUInt32LE(v.ifindex, 32);
  if (v.tunnel) {
    addressBytes(v.tunnel.source).copy(b, 36);
    b.writeUInt32LE(v.tunnel.vni, 52);
    macBytes(v.tunnel.mac).copy(b, 56);
  }
  return b;
}

export function decodeBackend(b: Buffer): { family: Family; address: string; flags: number; service: number } {
  const family: Family = b.readUInt8(16) === 6 ? 'inet6' : 'inet';
  return { family, address: addressText(b.subarray(0, 16), family), flags: b.readUInt8(17), service: b.readUInt16LE(30) };
}

export function u32Key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n, 0);
  return b;
}

export interface ConnRecord {
  readonly client: string;
  readonly sport: number;
  readonly service: number;
  readonly dport: number;
  readonly backend: number;
  readonly closing: boolean;
  /** Only the client's SYN seen so far (optional when writing: false). */
  readonly synOnly?: boolean;
  /** bpf_ktime_get_ns of its last packet (CLOCK_MONOTONIC). */
  readonly lastNs: bigint;
  /** Packets seen (the program stops counting at 64). */
  readonly packets: number;
}

export function decodeConn(key: Buffer, value: Buffer, family: Family): ConnRecord {
  return {
    client: addressText(key.subarray(0, 16), family),
    service: key.readUInt32LE(16),
    sport: key.readUInt16BE(20),
    dport: key.readUInt16BE(22),
    backend: value.readUInt32LE(0),
    closing: (value.readUInt32LE(4) & ConnFlag.closing) !== 0,
    synOnly: (value.readUInt32LE(4) & ConnFlag.syn) !== 0,
    lastNs: value.readBigUInt64LE(8),
    packets: Number(value.readBigUInt64LE(16)),
  };
}

/** A connection entry as the program writes it (sync installs and tests). */
export function connEntry(c: ConnRecord): { key: Buffer; value: Buffer } {
  const key = Buffer.alloc(CONN_KEY_SIZE);
  addressBytes(c.client).copy(key, 0);
  key.writeUInt32LE(c.service, 16);
  key.writeUInt16BE(c.sport, 20);
  key.writeUInt16BE(c.dport, 22);
  const value = Buffer.alloc(CONN_VAL_SIZE);
  value.writeUInt32LE(c.backend, 0);
  value.writeUInt32LE((c.closing ? ConnFlag.closing : 0) | (c.synOnly ? ConnFlag.syn : 0), 4);
  value.writeBigUInt64LE(c.lastNs, 8);
  value.writeBigUInt64LE(BigInt(c.packets), 16);
  return { key, value };
}

/** A device's entry (its MAC: frames to any other address pass to the kernel). */
export function deviceValue(mac: string): Buffer {
  const b = Buffer.alloc(DEVICE_SIZE);
  macBytes(mac).copy(b, 0);
  return b;
}

/** A persistence template entry (sync installs). */
export function templateEntry(t: { readonly client: Buffer; readonly service: number; readonly backend: number; readonly lastNs: bigint }): { key: Buffer; value: Buffer } {
  const key = Buffer.alloc(TPL_KEY_SIZE);
  t.client.copy(key, 0, 0, 16);
  key.writeUInt32LE(t.service, 16);
  const value = Buffer.alloc(TPL_VAL_SIZE);
  value.writeUInt32LE(t.backend, 0);
  value.writeBigUInt64LE(t.lastNs, 8);
  return { key, value };
}

/** A per-CPU counters value summed over CPUs (each CPU's copy is 32 bytes). */
export function sumCounters(value: Buffer): { conns: number; pkts: number; bytes: number; dropped: number } {
  let conns = 0n;
  let pkts = 0n;
  let bytes = 0n;
  let dropped = 0n;
  for (let o = 0; o + COUNTERS_SIZE <= value.length; o += COUNTERS_SIZE) {
    conns += value.readBigUInt64LE(o);
    pkts += value.readBigUInt64LE(o + 8);
    bytes += value.readBigUInt64LE(o + 16);
    dropped += value.readBigUInt64LE(o + 24);
  }
  return { conns: Number(conns), pkts: Number(pkts), bytes: Number(bytes), dropped: Number(dropped) };
}

/** A per-CPU u64 summed over CPUs. */
export function sumU64(value: Buffer): number {
  let n = 0n;
  for (let o = 0; o + 8 <= value.length; o += 8) n += value.readBigUInt64LE(o);
  return Number(n);
}
