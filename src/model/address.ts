/**
 * Address helpers over ipaddr.js: parsing into canonical text, netmask ↔ prefix length,
 * ranges. IPv4-mapped IPv6 forms are kept as IPv6 (that is what the kernel sees).
 */
import ipaddr from 'ipaddr.js';
import type { Family } from './types.js';

export interface ParsedIp {
  readonly family: Family;
  /** Canonical text: dotted quad, or RFC 5952 compressed lower-case IPv6. */
  readonly address: string;
}

/** Strict parse: four-part dotted decimal for IPv4 (no `10.1`, no octal/hex), any valid IPv6. */
export function parseIp(text: string): ParsedIp | null {
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) {
    return { family: 'inet', address: ipaddr.IPv4.parse(text).toString() };
  }
  // Zone ids (fe80::1%eth0) are not addresses a service can listen on.
  if (!text.includes('%') && ipaddr.IPv6.isValid(text)) {
    return { family: 'inet6', address: ipaddr.IPv6.parse(text).toString() };
  }
  return null;
}

export function maxPrefix(family: Family): number {
  return family === 'inet' ? 32 : 128;
}

/**
 * Prefix length of an IPv4 dotted netmask (`255.255.255.0` → 24), or null when the mask is
 * not contiguous.
 */
export function netmaskToPrefix(mask: string): number | null {
  if (!ipaddr.IPv4.isValidFourPartDecimal(mask)) return null;
  const len = ipaddr.IPv4.parse(mask).prefixLengthFromSubnetMask();
  return len;
}

export function prefixToNetmask(prefix: number): string {
  return ipaddr.IPv4.subnetMaskFromPrefixLength(prefix).toString();
}

/** Compare two addresses of the same family numerically (-1, 0, 1). */
export function compareAddresses(a: string, b: string): number {
  const x = ipaddr.parse(a).toByteArray();
  const y = ipaddr.parse(b).toByteArray();
  if (x.length !== y.length) return x.length - y.length;
  for (let i = 0; i < x.length; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** The address with every bit past `prefix` cleared (or set), as canonical text. */
function withHostBits(address: string, prefix: number, set: boolean): string {
  const bytes = ipaddr.parse(address).toByteArray();
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const i = bit >> 3;
    const m = 0x80 >> (bit & 7);
    bytes[i] = set ? (bytes[i] ?? 0) | m : (bytes[i] ?? 0) & ~m;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** The network part of an address: `maskAddress('192.168.7.200', 24)` → `192.168.7.0`. */
export function maskAddress(address: string, prefix: number): string {
  return withHostBits(address, prefix, false);
}

/** First and last address of a CIDR block. */
export function cidrBounds(address: string, prefix: number): { first: string; last: string } {
  return { first: withHostBits(address, prefix, false), last: withHostBits(address, prefix, true) };
}

/** `addr:port` with IPv6 in brackets, as ipvsadm prints it. */
export function formatHostPort(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/** The address after `address` (wrapping within its family), as canonical text. */
export function nextAddress(address: string): string {
  const bytes = ipaddr.parse(address).toByteArray();
  for (let i = bytes.length - 1; i >= 0; i--) {
    const b = (bytes[i] ?? 0) + 1;
    bytes[i] = b & 0xff;
    if (b <= 0xff) break;
  }
  return ipaddr.fromByteArray(bytes).toString();
}

/** Every address from `first` to `last` inclusive, or null when there are more than `limit`. */
export function expandRange(first: string, last: string, limit: number): string[] | null {
  const out: string[] = [];
  let a = first;
  for (;;) {
    if (out.length >= limit) return null;
    out.push(a);
    if (compareAddresses(a, last) >= 0) return out;
    a = nextAddress(a);
  }
}

const toBig = (address: string): bigint => ipaddr.parse(address).toByteArray().reduce((n, b) => (n << 8n) | BigInt(b), 0n);
function fromBig(n: bigint, bytes: number): string {
  const out = new Array<number>(bytes);
  for (let i = bytes - 1; i >= 0; i--) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return ipaddr.fromByteArray(out).toString();
}

/** The fewest CIDR blocks that cover exactly `first`..`last` (same family, first ≤ last). */
export function rangeToCidrs(first: string, last: string): { address: string; prefixLength: number }[] {
  const bytes = ipaddr.parse(first).toByteArray().length;
  const bits = bytes * 8;
  let lo = toBig(first);
  const hi = toBig(last);
  const out: { address: string; prefixLength: number }[] = [];
  while (lo <= hi) {
    // The largest block aligned at lo that does not pass hi.
    let size = 0;
    while (size < bits && (lo & ((1n << BigInt(size + 1)) - 1n)) === 0n && lo + (1n << BigInt(size + 1)) - 1n <= hi) size++;
    out.push({ address: fromBig(lo, bytes), prefixLength: bits - size });
    lo += 1n << BigInt(size);
  }
  return out;
}

/** The number of set bits of an IPv4 netmask, contiguous or not; null when it is not one. */
export function maskBits(mask: string): number | null {
  if (!ipaddr.IPv4.isValidFourPartDecimal(mask)) return null;
  return ipaddr.IPv4.parse(mask).octets.reduce((n, o) => n + (o.toString(2).match(/1/g)?.length ?? 0), 0);
}

/** `address` AND an IPv4 netmask (any bits: `10.1.2.3` & `255.0.255.0` → `10.0.2.0`). */
export function andMask(address: string, mask: string): string {
  const a = ipaddr.parse(address).toByteArray();
  const m = ipaddr.IPv4.parse(mask).octets;
  return ipaddr.fromByteArray(a.map((b, i) => b & (m[i] ?? 0))).toString();
}

/** The address a persistence template is kept under: the client masked as the service says. */
export function persistenceAddress(client: string, p: { readonly prefixLength: number; readonly mask?: string | undefined }): string {
  return p.mask !== undefined && !client.includes(':') ? andMask(client, p.mask) : maskAddress(client, p.prefixLength);
}
