/**
 * VRRP on the wire (pure): VRRPv2 (RFC 3768) for IPv4 and VRRPv3 (RFC 5798) for IPv4 and
 * IPv6 — bytes ↔ packets, checksums, the IPv4 header a raw socket hands back, and the
 * checks a received advertisement must pass before the state machine sees it.
 *
 * Every rejection carries a stable `DropReason` (the counter it increments) and a
 * human-readable detail naming the field.
 */
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';

/** IP protocol number of VRRP. */
export const VRRP_PROTOCOL = 112;
/** RFC 5798 §5.1.1.3 / §5.1.2.3: adverts must arrive with TTL / hop limit 255. */
export const VRRP_TTL = 255;
/** Advertisement is the only VRRP packet type. */
const TYPE_ADVERT = 1;
const AUTH_NONE = 0;
const AUTH_SIMPLE = 1;
/** v2 carries 8 bytes of authentication data whatever the type. */
const V2_AUTH_LEN = 8;

/** Why a received packet was dropped (stable; the name of its counter). */
export const DropReason = {
  TRUNCATED: 'truncated',
  TTL: 'bad-ttl',
  VERSION: 'bad-version',
  TYPE: 'bad-type',
  CHECKSUM: 'bad-checksum',
  VRID: 'unknown-vrid',
  ADDRESS_COUNT: 'address-count-mismatch',
  ADDRESSES: 'address-mismatch',
  AUTH: 'auth-mismatch',
  INTERVAL: 'interval-mismatch',
} as const;
export type DropReason = (typeof DropReason)[keyof typeof DropReason];

export interface Drop {
  readonly ok: false;
  readonly reason: DropReason;
  readonly detail: string;
}

/** A decoded advertisement. */
export interface VrrpAdvert {
  readonly version: 2 | 3;
  readonly vrid: number;
  readonly priority: number;
  /** Advertisement interval in centiseconds (v2's whole seconds × 100). */
  readonly intervalCs: number;
  readonly addresses: readonly string[];
  /** v2 only: 0 none, 1 simple text password. */
  readonly authType: number;
  /** v2 only: the 8 authentication bytes. */
  readonly authData: Buffer;
}

export interface EncodeInput {
  readonly version: 2 | 3;
  readonly family: Family;
  readonly vrid: number;
  readonly priority: number;
  readonly intervalCs: number;
  readonly addresses: readonly string[];
  /** v2 PASS authentication: the password (first 8 bytes used). */
  readonly password?: string | undefined;
  /** v3 needs the IP source and destination for the pseudo-header checksum. */
  readonly src: string;
  readonly dst: string;
}

const drop = (reason: DropReason, detail: string): Drop => ({ ok: false, reason, detail });

/** The Internet checksum (RFC 1071) of the concatenated parts. */
export function internetChecksum(parts: readonly Uint8Array[]): number {
  let sum = 0;
  let odd: number | null = null;
  for (const p of parts) {
    for (let i = 0; i < p.length; i++) {
      const b = p[i] ?? 0;
      if (odd === null) odd = b;
      else {
        sum += (odd << 8) | b;
        odd = null;
      }
    }
  }
  if (odd !== null) sum += odd << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function addrBytes(family: Family, address: string): Uint8Array {
  const a = ipaddr.parse(address);
  const want = family === 'inet' ? 'ipv4' : 'ipv6';
  if (a.kind() !== want) throw new RangeError(`${address} is not an ${family === 'inet' ? 'IPv4' : 'IPv6'} address`);
  return Uint8Array.from(a.toByteArray());
}

/** RFC 5798 §5.2.8: the pseudo-header that v3's checksum covers. */
function pseudoHeader(family: Family, src: string, dst: string, length: number): Uint8Array {
  if (family === 'inet') {
    const h = new Uint8Array(12);
    h.set(addrBytes('inet', src), 0);
    h.set(addrBytes('inet', dst), 4);
    h[9] = VRRP_PROTOCOL;
    h[10] = length >> 8;
    h[11] = length & 0xff;
    return h;
  }
  const h = new Uint8Array(40);
  h.set(addrBytes('inet6', src), 0);
  h.set(addrBytes('inet6', dst), 16);
  new DataView(h.buffer).setUint32(32, length);
  h[39] = VRRP_PROTOCOL;
  return h;
}

/** Build an advertisement's VRRP payload (the part after the IP header). */
export function encodeAdvert(x: EncodeInput): Buffer {
  if (x.version === 2 && x.family !== 'inet') throw new RangeError('VRRPv2 is IPv4 only');
  const alen = x.family === 'inet' ? 4 : 16;
  const len = 8 + alen * x.addresses.length + (x.version === 2 ? V2_AUTH_LEN : 0);
  const b = Buffer.alloc(len);
  b[0] = (x.version << 4) | TYPE_ADVERT;
  b[1] = x.vrid;
  b[2] = x.priority;
  b[3] = x.addresses.length;
  if (x.version === 2) {
    b[4] = x.password !== undefined ? AUTH_SIMPLE : AUTH_NONE;
    b[5] = Math.max(1, Math.min(255, Math.round(x.intervalCs / 100)));
  } else {
    b.writeUInt16BE(Math.max(1, Math.min(0xfff, Math.round(x.intervalCs))) & 0x0fff, 4);
  }
  x.addresses.forEach((a, i) => b.set(addrBytes(x.family, a), 8 + i * alen));
  if (x.version === 2 && x.password !== undefined) Buffer.from(x.password, 'latin1').subarray(0, V2_AUTH_LEN).copy(b, 8 + alen * x.addresses.length);
  const parts = x.version === 3 ? [pseudoHeader(x.family, x.src, x.dst, len), b] : [b];
  b.writeUInt16BE(internetChecksum(parts), 6);
  return b;
}

export interface Ipv4Datagram {
  readonly ok: true;
  readonly ttl: number;
  readonly src: string;
  readonly dst: string;
  readonly protocol: number;
  readonly payload: Buffer;
}

/** Split what an IPv4 raw socket returns into header fields and payload. */
export function decodeIpv4(d: Buffer): Ipv4Datagram | Drop {
  if (d.length < 20) return drop(DropReason.TRUNCATED, `IPv4 header: ${d.length} bytes`);
  if (d[0]! >> 4 !== 4) return drop(DropReason.VERSION, `IP version ${d[0]! >> 4}`);
  const ihl = (d[0]! & 0x0f) * 4;
  const total = d.readUInt16BE(2);
  if (ihl < 20 || d.length < ihl || total < ihl) return drop(DropReason.TRUNCATED, `IPv4 header length ${ihl}`);
  // The kernel delivers exactly the datagram; trust the shorter of the two lengths.
  const end = Math.min(total, d.length);
  return {
    ok: true,
    ttl: d[8]!,
    protocol: d[9]!,
    src: ipaddr.fromByteArray([...d.subarray(12, 16)]).toString(),
    dst: ipaddr.fromByteArray([...d.subarray(16, 20)]).toString(),
    payload: d.subarray(ihl, end),
  };
}

/** What a received packet came with besides its VRRP bytes. */
export interface Envelope {
  readonly family: Family;
  readonly src: string;
  readonly dst: string;
  /** TTL (IPv4) or hop limit (IPv6); undefined when the socket could not tell. */
  readonly ttl: number | undefined;
}

/**
 * Decode a VRRP payload: structure, version, type, TTL and checksum. Whether it belongs
 * to a configured instance and matches it is `checkAdvert`'s business.
 */
export function decodeAdvert(p: Buffer, env: Envelope): { readonly ok: true; readonly advert: VrrpAdvert } | Drop {
  if (env.ttl !== undefined && env.ttl !== VRRP_TTL) return drop(DropReason.TTL, `${env.family === 'inet' ? 'TTL' : 'hop limit'} ${env.ttl} (must be 255: a router forwarded it)`);
  if (p.length < 8) return drop(DropReason.TRUNCATED, `${p.length} bytes (the VRRP header is 8)`);
  const version = p[0]! >> 4;
  if (version !== 2 && version !== 3) return drop(DropReason.VERSION, `version ${version}`);
  if (version === 2 && env.family !== 'inet') return drop(DropReason.VERSION, 'version 2 over IPv6');
  const type = p[0]! & 0x0f;
  if (type !== TYPE_ADVERT) return drop(DropReason.TYPE, `type ${type} (only 1, advertisement, exists)`);
  const count = p[3]!;
  const alen = env.family === 'inet' ? 4 : 16;
  const need = 8 + count * alen + (version === 2 ? V2_AUTH_LEN : 0);
  if (p.length < need) return drop(DropReason.TRUNCATED, `${p.length} bytes for ${count} address(es) (need ${need})`);
  const body = p.subarray(0, need);
  const sum = version === 3 ? internetChecksum([pseudoHeader(env.family, env.src, env.dst, need), body]) : internetChecksum([body]);
  if (sum !== 0) return drop(DropReason.CHECKSUM, `checksum 0x${p.readUInt16BE(6).toString(16).padStart(4, '0')} does not verify`);
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) addresses.push(ipaddr.fromByteArray([...body.subarray(8 + i * alen, 8 + (i + 1) * alen)]).toString());
  const intervalCs = version === 2 ? p[5]! * 100 : p.readUInt16BE(4) & 0x0fff;
  return {
    ok: true,
    advert: {
      version, vrid: p[1]!, priority: p[2]!, intervalCs, addresses,
      authType: version === 2 ? p[4]! : AUTH_NONE,
      authData: version === 2 ? Buffer.from(body.subarray(need - V2_AUTH_LEN)) : Buffer.alloc(0),
    },
  };
}

/** What an instance expects of the adverts it accepts. */
export interface AdvertExpectation {
  readonly version: 2 | 3;
  readonly family: Family;
  readonly intervalCs: number;
  readonly addresses: readonly string[];
  readonly password?: string | undefined;
}

/**
 * RFC 3768 §7.1 / RFC 5798 §7.1 checks against the receiving instance: version, v2
 * authentication and interval, and the address list (keepalived drops a mismatch too).
 */
export function checkAdvert(a: VrrpAdvert, want: AdvertExpectation): { readonly ok: true } | Drop {
  if (a.version !== want.version) return drop(DropReason.VERSION, `version ${a.version}, this instance speaks ${want.version}`);
  if (a.version === 2) {
    const type = want.password !== undefined ? AUTH_SIMPLE : AUTH_NONE;
    if (a.authType !== type) return drop(DropReason.AUTH, `auth type ${a.authType}, expected ${type} (${type === AUTH_SIMPLE ? 'PASS' : 'none'})`);
    if (type === AUTH_SIMPLE) {
      const mine = Buffer.alloc(V2_AUTH_LEN);
      Buffer.from(want.password ?? '', 'latin1').subarray(0, V2_AUTH_LEN).copy(mine);
      if (!mine.equals(a.authData)) return drop(DropReason.AUTH, 'password does not match');
    }
    if (a.intervalCs !== want.intervalCs) return drop(DropReason.INTERVAL, `advert interval ${a.intervalCs / 100} s, configured ${want.intervalCs / 100} s`);
  }
  if (a.addresses.length !== want.addresses.length) return drop(DropReason.ADDRESS_COUNT, `${a.addresses.length} address(es), configured ${want.addresses.length}`);
  const mine = new Set(want.addresses.map((x) => ipaddr.parse(x).toNormalizedString()));
  const other = a.addresses.find((x) => !mine.has(ipaddr.parse(x).toNormalizedString()));
  if (other !== undefined) return drop(DropReason.ADDRESSES, `address ${other} is not one of this instance's`);
  return { ok: true };
}

/** Compare two addresses as unsigned integers (RFC 5798 §6.4.3 tie-break): <0, 0, >0. */
export function compareAddresses(a: string, b: string): number {
  const x = ipaddr.parse(a).toByteArray();
  const y = ipaddr.parse(b).toByteArray();
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
  return 0;
}
