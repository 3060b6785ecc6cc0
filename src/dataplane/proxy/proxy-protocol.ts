/**
 * HAProxy's PROXY protocol headers (https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt),
 * sent first on the connection to a real server so it learns the client's address.
 * v1 is one text line; v2 is a 16-byte binary preamble plus the addresses.
 */
import { isIPv4 } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { ProxyProtocolVersion } from '../../model/types.js';

/** The v2 signature: \r\n\r\n\0\r\nQUIT\n. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** Strip the IPv4-mapped prefix a dual-stack socket reports (`::ffff:10.0.0.1`). */
export function unmapAddress(a: string): string {
  return a.startsWith('::ffff:') && isIPv4(a.slice(7)) ? a.slice(7) : a;
}

/**
 * The header for a TCP connection from `src:sport` to `dst:dport` (the address the client
 * connected to). Both addresses must be of one family; when they are not (an IPv4 client on
 * an IPv6 listener is already unmapped), IPv4 is mapped into IPv6.
 */
export function proxyHeader(version: ProxyProtocolVersion, src: string, sport: number, dst: string, dport: number): Buffer {
  let s = unmapAddress(src);
  let d = unmapAddress(dst);
  const v4 = isIPv4(s) && isIPv4(d);
  if (!v4) {
    if (isIPv4(s)) s = `::ffff:${s}`;
    if (isIPv4(d)) d = `::ffff:${d}`;
  }
  if (version === 1) {
    return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${s} ${d} ${sport} ${dport}\r\n`, 'latin1');
  }
  const alen = v4 ? 12 : 36;
  const b = Buffer.alloc(16 + alen);
  PROXY_V2_SIGNATURE.copy(b, 0);
  b[12] = 0x21; // version 2, command PROXY
  b[13] = v4 ? 0x11 : 0x21; // AF_INET/AF_INET6 over STREAM
  b.writeUInt16BE(alen, 14);
  const sb = ipaddr.parse(s).toByteArray();
  const db = ipaddr.parse(d).toByteArray();
  b.set(sb, 16);
  b.set(db, 16 + sb.length);
  b.writeUInt16BE(sport, 16 + 2 * sb.length);
  b.writeUInt16BE(dport, 18 + 2 * sb.length);
  return b;
}

export interface ParsedProxyHeader {
  readonly version: ProxyProtocolVersion;
  readonly family: 'inet' | 'inet6';
  readonly src: string;
  readonly sport: number;
  readonly dst: string;
  readonly dport: number;
  /** Bytes the header occupied. */
  readonly length: number;
}

/**
 * Parse a header at the start of `b` (for tests and the demo real servers): the header, or
 * null when `b` does not start with one. Throws on a malformed header.
 */
export function parseProxyHeader(b: Buffer): ParsedProxyHeader | null {
  if (b.length >= 16 && b.subarray(0, 12).equals(PROXY_V2_SIGNATURE)) {
    const len = b.readUInt16BE(14);
    const fam = b[13];
    if (b[12] !== 0x21 || (fam !== 0x11 && fam !== 0x21) || b.length < 16 + len) throw new Error('malformed PROXY v2 header');
    const n = fam === 0x11 ? 4 : 16;
    const addr = (o: number): string => ipaddr.fromByteArray([...b.subarray(o, o + n)]).toString();
    return {
      version: 2, family: n === 4 ? 'inet' : 'inet6', src: addr(16), dst: addr(16 + n),
      sport: b.readUInt16BE(16 + 2 * n), dport: b.readUInt16BE(18 + 2 * n), length: 16 + len,
    };
  }
  if (b.subarray(0, 6).toString('latin1') !== 'PROXY ') return null;
  const end = b.indexOf('\r\n');
  if (end < 0 || end > 107) throw new Error('malformed PROXY v1 header');
  const [, proto, src, dst, sport, dport] = b.subarray(0, end).toString('latin1').split(' ');
  if ((proto !== 'TCP4' && proto !== 'TCP6') || !src || !dst || !sport || !dport) throw new Error('malformed PROXY v1 header');
  return { version: 1, family: proto === 'TCP4' ? 'inet' : 'inet6', src, dst, sport: Number(sport), dport: Number(dport), length: end + 2 };
}
