/**
 * A set's elements read straight from nf_tables over netlink (NFT_MSG_GETSETELEM, dumped),
 * for the kernel plane's large dynamic maps. libnftables builds an expression tree per
 * element and prints JSON: 100,000 connection entries take it 4–10 s of CPU; the raw dump
 * parsed here takes a fraction of that. The request and the parsing are pure and exported
 * for tests; only `dumpSetElements` makes system calls (blocking, bounded by a receive
 * timeout; the kernel produces a dump as it is read).
 */
import { SysError, SysErrorCode, sysFailure } from './errors.js';
import { attr, netlinkSocket, sendToKernel } from './netlink.js';
import { loadLibc, SOL_SOCKET } from './libc.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_NFTABLES = 10;
const NFT_MSG_GETSETELEM = 13;
const NFT_MSG_NEWSETELEM = 12;
const NLM_F_REQUEST = 0x1;
const NLM_F_DUMP = 0x300;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLA_TYPE_MASK = 0x3fff;
const NFTA_SET_ELEM_LIST_TABLE = 1;
const NFTA_SET_ELEM_LIST_SET = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS = 3;
const NFTA_LIST_ELEM = 1;
const NFTA_SET_ELEM_KEY = 1;
const NFTA_SET_ELEM_DATA = 2;
const NFTA_SET_ELEM_EXPIRATION = 5;
const NFTA_SET_ELEM_EXPR = 7;
const NFTA_SET_ELEM_EXPRESSIONS = 11;
const NFTA_DATA_VALUE = 1;
const NFTA_EXPR_NAME = 1;
const NFTA_EXPR_DATA = 2;
const NFTA_COUNTER_BYTES = 1;
const NFTA_COUNTER_PACKETS = 2;
const SO_RCVTIMEO = 20;
const SO_RCVBUF = 8;
const ENOENT = 2;

export const NFPROTO = { inet: 1, netdev: 5 } as const;

/** One element as the kernel holds it: key and value bytes as stored (registers of 4 bytes). */
export interface RawElement {
  readonly key: Buffer;
  readonly data: Buffer | null;
  /** Milliseconds until it expires (0: no timeout). */
  readonly expiresMs: number;
  readonly counter: { readonly packets: number; readonly bytes: number } | null;
}


/** The dump request for one set. */
export function setElementsRequest(family: keyof typeof NFPROTO, table: string, set: string, seq: number): Buffer {
  const body = Buffer.concat([
    Buffer.from([NFPROTO[family], 0, 0, 0]),
    attr(NFTA_SET_ELEM_LIST_TABLE, Buffer.from(`${table}\0`)),
    attr(NFTA_SET_ELEM_LIST_SET, Buffer.from(`${set}\0`)),
  ]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM, 4);
  h.writeUInt16LE(NLM_F_REQUEST | NLM_F_DUMP, 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, body]);
}

/** Each attribute of `b` from `at` to `end`: (type, payload). */
function* attrs(b: Buffer, at: number, end: number): Generator<[number, Buffer]> {
  while (at + 4 <= end) {
    const len = b.readUInt16LE(at);
    if (len < 4 || at + len > end) return;
    yield [b.readUInt16LE(at + 2) & NLA_TYPE_MASK, b.subarray(at + 4, at + len)];
    at += (len + 3) & ~3;
  }
}

const first = (b: Buffer, type: number): Buffer | undefined => {
  for (const [t, v] of attrs(b, 0, b.length)) if (t === type) return v;
  return undefined;
};

function counterOf(expr: Buffer): RawElement['counter'] {
  if (first(expr, NFTA_EXPR_NAME)?.toString('latin1').replace(/\0.*$/, '') !== 'counter') return null;
  const data = first(expr, NFTA_EXPR_DATA);
  if (!data) return null;
  const u64 = (v: Buffer | undefined): number => (v && v.length >= 8 ? Number(v.readBigUInt64BE(0)) : 0);
  return { bytes: u64(first(data, NFTA_COUNTER_BYTES)), packets: u64(first(data, NFTA_COUNTER_PACKETS)) };
}

function element(b: Buffer): RawElement | null {
  let key: Buffer | null = null;
  let data: Buffer | null = null;
  let expiresMs = 0;
  let counter: RawElement['counter'] = null;
  for (const [t, v] of attrs(b, 0, b.length)) {
    if (t === NFTA_SET_ELEM_KEY) key = first(v, NFTA_DATA_VALUE) ?? null;
    else if (t === NFTA_SET_ELEM_DATA) data = first(v, NFTA_DATA_VALUE) ?? null;
    else if (t === NFTA_SET_ELEM_EXPIRATION && v.length >= 8) expiresMs = Number(v.readBigUInt64BE(0));
    else if (t === NFTA_SET_ELEM_EXPR) counter = counterOf(v) ?? counter;
    else if (t === NFTA_SET_ELEM_EXPRESSIONS) for (const [lt, e] of attrs(v, 0, v.length)) if (lt === NFTA_LIST_ELEM) counter = counterOf(e) ?? counter;
  }
  return key ? { key: Buffer.from(key), data: data ? Buffer.from(data) : null, expiresMs, counter } : null;
}

/**
 * One read's worth of netlink messages → the elements in it, whether the dump is done,
 * and the errno of an error message (ENOENT: no such table or set).
 */
export function parseSetElements(b: Buffer): { elements: RawElement[]; done: boolean; errno: number | null } {
  const elements: RawElement[] = [];
  let done = false;
  let errno: number | null = null;
  for (let off = 0; off + 16 <= b.length;) {
    const len = b.readUInt32LE(off);
    if (len < 16 || off + len > b.length) break;
    const type = b.readUInt16LE(off + 4);
    if (type === NLMSG_DONE) done = true;
    else if (type === NLMSG_ERROR && len >= 20) {
      const e = -b.readInt32LE(off + 16);
      if (e !== 0) errno = e;
      done = true;
    } else if (type === ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM)) {
      // nfgenmsg (4 bytes), then the list attributes.
      for (const [t, v] of attrs(b, off + 20, off + len)) {
        if (t !== NFTA_SET_ELEM_LIST_ELEMENTS) continue;
        for (const [lt, e] of attrs(v, 0, v.length)) {
          if (lt !== NFTA_LIST_ELEM) continue;
          const el = element(e);
          if (el) elements.push(el);
        }
      }
    }
    off += (len + 3) & ~3;
  }
  return { elements, done, errno };
}

let seq = 1;

/**
 * Every element of a set, from the kernel. An absent table or set reads as empty (as `nft
 * list` does); any other failure throws a SysError.
 */
export function dumpSetElements(family: keyof typeof NFPROTO, table: string, set: string): RawElement[] {
  const c = loadLibc();
  const what = `listing ${family} ${table} ${set}`;
  // Blocking, bounded by a receive timeout: the kernel produces the dump as it is read.
  const fd = netlinkSocket(what, { protocol: NETLINK_NETFILTER, blocking: true });
  try {
    const tv = Buffer.alloc(16);
    tv.writeBigInt64LE(5n, 0);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, tv, tv.length);
    const rb = Buffer.alloc(4);
    rb.writeInt32LE(4 << 20);
    c.setsockopt(fd, SOL_SOCKET, SO_RCVBUF, rb, 4);
    sendToKernel(fd, setElementsRequest(family, table, set, seq++), what);
    const out: RawElement[] = [];
    const buf = Buffer.alloc(1 << 20);
    for (let reads = 0; reads < 1_000_000; reads++) {
      const n = c.recvfrom(fd, buf, buf.length, 0, null, null);
      if (n < 0) throw sysFailure(what, c.errno(), 'CAP_NET_ADMIN');
      const r = parseSetElements(buf.subarray(0, n));
      for (const e of r.elements) out.push(e);
      if (r.errno === ENOENT) return [];
      if (r.errno !== null) throw new SysError(SysErrorCode.FAILED, `${what}: errno ${r.errno}`, r.errno);
      if (r.done) return out;
    }
    throw new SysError(SysErrorCode.FAILED, `${what}: the dump did not end`);
  } finally {
    c.close(fd);
  }
}
