/**
 * IPVS connection-sync messages on the wire (pure), laid out exactly as the kernel's
 * net/netfilter/ipvs/ip_vs_sync.c does, so Fulcrum and an IPVS director (or keepalived's
 * `lvs_sync_daemon`, which only starts the kernel's threads) understand each other.
 *
 * Version 1 (what the kernel sends by default, and what Fulcrum sends):
 *   header, 8 bytes:  reserved (0) · syncid · size (be16, whole datagram) · count · version (1) · spare (be16, 0)
 *   entry, 36 bytes (IPv4) or 72 (IPv6):
 *     type (bit 0: IPv6) · protocol · ver_size (be16: version << 12 | size, size without padding)
 *     flags (be32) · state (be16) · cport · vport · dport (be16 each) · fwmark (be32) ·
 *     timeout (be32, seconds) · caddr · vaddr · daddr
 *   then options, each: type (u8) · length (u8, not 0) · data — 1 sequence data (24 bytes:
 *   in_seq and out_seq, each init_seq · delta · previous_delta), 2 persistence-engine data,
 *   3 persistence-engine name; an unknown option is skipped only when its type has bit 6
 *   (IPVS_OPT_F_PARAM) set. The next entry starts at the next 4-byte boundary.
 * Version 0 (read only): header count · syncid · size (4 bytes); 24-byte IPv4 entries
 *   reserved · protocol · cport · vport · dport · caddr · vaddr · daddr · flags (be16) ·
 *   state (be16), followed by the 24 bytes of sequence data when the flags say so.
 *
 * The kernel's rule for what goes wrong: a fault in the framing (sizes, option lengths)
 * drops the rest of the datagram; an entry that is well framed but cannot be used (an
 * unknown protocol, a state out of range, an unknown mandatory option) is skipped alone.
 * `decodeMessage` follows it and names every refusal with a stable reason.
 */
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';

export {
  LVS_SYNC_GROUP as SYNC_DEFAULT_GROUP, LVS_SYNC_PORT as SYNC_DEFAULT_PORT, LVS_SYNC_TTL as SYNC_DEFAULT_TTL,
  LVS_SYNC_MAXLEN as SYNC_DEFAULT_MAXLEN,
} from '../model/defaults.js';
import { LVS_SYNC_MAXLEN as SYNC_DEFAULT_MAXLEN } from '../model/defaults.js';
export const SYNC_PROTO_VER = 1;
/** The largest UDP payload over IPv4. */
export const MAX_DATAGRAM = 65507;

export const HEADER_V1 = 8;
export const HEADER_V0 = 4;
export const ENTRY_V4 = 36;
export const ENTRY_V6 = 72;
export const ENTRY_V0 = 24;
export const SEQ_OPTIONS = 24;
const SVER_SHIFT = 12;
const SVER_MASK = 0x0fff;
const STYPE_F_INET6 = 1;
const OPT_SEQ = 1;
const OPT_PE_DATA = 2;
const OPT_PE_NAME = 3;
const OPT_F_PARAM = 1 << 6;
/** include/net/ip_vs.h */
const PEDATA_MAXLEN = 255;
const PENAME_MAXLEN = 16;
/** Entries per message: the count is one byte. */
export const MAX_ENTRIES = 255;

/** Connection flags (include/uapi/linux/ip_vs.h). */
export const ConnFlag = {
  FWD_MASK: 0x0007,
  MASQ: 0x0000,
  LOCALNODE: 0x0001,
  TUNNEL: 0x0002,
  DROUTE: 0x0003,
  BYPASS: 0x0004,
  SYNC: 0x0020,
  HASHED: 0x0040,
  NOOUTPUT: 0x0080,
  INACTIVE: 0x0100,
  OUT_SEQ: 0x0200,
  IN_SEQ: 0x0400,
  SEQ_MASK: 0x0600,
  NO_CPORT: 0x0800,
  TEMPLATE: 0x1000,
  ONE_PACKET: 0x2000,
} as const;
/** What a backup keeps of the flags it receives (IP_VS_CONN_F_BACKUP_MASK). */
export const BACKUP_MASK = ConnFlag.FWD_MASK | ConnFlag.NOOUTPUT | ConnFlag.INACTIVE | ConnFlag.SEQ_MASK | ConnFlag.NO_CPORT | ConnFlag.TEMPLATE;

/** IPVS's TCP states (ip_vs_proto_tcp.c) by number. */
export const TcpState = {
  NONE: 0, ESTABLISHED: 1, SYN_SENT: 2, SYN_RECV: 3, FIN_WAIT: 4, TIME_WAIT: 5, CLOSE: 6, CLOSE_WAIT: 7, LAST_ACK: 8, LISTEN: 9, SYNACK: 10,
} as const;
const STATES: Readonly<Record<number, number>> = { 6: 11, 17: 1, 132: 13 };

export const IPPROTO = { IP: 0, TCP: 6, UDP: 17, SCTP: 132 } as const;

export interface SeqData {
  readonly initSeq: number;
  readonly delta: number;
  readonly previousDelta: number;
}

/** One connection entry (or persistence template: flags has TEMPLATE). */
export interface SyncEntry {
  readonly family: Family;
  readonly protocol: number;
  readonly flags: number;
  readonly state: number;
  readonly cport: number;
  readonly vport: number;
  readonly dport: number;
  /** 0 in version 0 (it has no field for it). */
  readonly fwmark: number;
  /** Seconds; 0 in version 0 (the receiver uses its own timeout for the state). */
  readonly timeout: number;
  readonly caddr: string;
  readonly vaddr: string;
  readonly daddr: string;
  readonly seq?: { readonly in: SeqData; readonly out: SeqData } | undefined;
  readonly peData?: Buffer | undefined;
  readonly peName?: string | undefined;
}

/** Why a datagram or one entry was refused (stable; the label of its counter). */
export const SyncRefusal = {
  /** Shorter than the smallest header. */
  SHORT_HEADER: 'short-header',
  /** The header's size is not the datagram's length. */
  BAD_SIZE: 'bad-size',
  /** A syncid other than ours (and ours is not 0). */
  SYNCID: 'syncid',
  /** An entry runs past the end of the datagram. */
  TRUNCATED: 'truncated',
  /** An entry's version nibble is not 0. */
  ENTRY_VERSION: 'entry-version',
  /** An entry's type byte is neither IPv4 nor IPv6. */
  ENTRY_TYPE: 'entry-type',
  /** An option's length is 0 or runs past its entry. */
  OPTION_LENGTH: 'option-length',
  /** Sequence data of the wrong length, or an option given twice. */
  OPTION: 'bad-option',
  /** An option the kernel does not know and may not skip. */
  MANDATORY_OPTION: 'unknown-mandatory-option',
  /** A protocol IPVS does not balance (entry skipped). */
  PROTOCOL: 'protocol',
  /** A state number out of range for its protocol (entry skipped). */
  STATE: 'state',
  /** Bytes after the last entry the count announced. */
  TRAILING: 'trailing-bytes',
  /** Fewer entries than the count announced (v1: the kernel drops the rest). */
  COUNT: 'count',
} as const;
export type SyncRefusal = (typeof SyncRefusal)[keyof typeof SyncRefusal];

export interface DecodedMessage {
  readonly ok: true;
  readonly version: 0 | 1;
  readonly syncid: number;
  readonly entries: readonly SyncEntry[];
  /** Entries skipped one by one (the rest of the datagram was used). */
  readonly skipped: readonly SyncRefusal[];
  /** Set when decoding stopped early: entries before the fault are kept, as the kernel does. */
  readonly truncated?: SyncRefusal | undefined;
}

export interface RefusedMessage {
  readonly ok: false;
  readonly reason: SyncRefusal;
  readonly detail: string;
}

/** A dotted quad's four bytes, or null (the common case, without ipaddr.js's general parser). */
function quad(a: string): number[] | null {
  const out = [0, 0, 0, 0];
  let part = 0;
  let digits = 0;
  for (let i = 0; i < a.length; i++) {
    const c = a.charCodeAt(i);
    if (c === 46) {
      if (digits === 0 || ++part > 3) return null;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      out[part] = (out[part] as number) * 10 + c - 48;
      if ((out[part] as number) > 255) return null;
      digits++;
    } else {
      return null;
    }
  }
  return part === 3 && digits > 0 ? out : null;
}

/** An address into `buf` at `at` (IPv4 dotted quads without allocating). */
function writeAddr(buf: Buffer, at: number, family: Family, a: string): void {
  const q = family === 'inet' ? quad(a) : null;
  if (q) {
    buf[at] = q[0] as number;
    buf[at + 1] = q[1] as number;
    buf[at + 2] = q[2] as number;
    buf[at + 3] = q[3] as number;
    return;
  }
  addrBytes(family, a).copy(buf, at);
}

function addrBytes(family: Family, a: string): Buffer {
  const q = family === 'inet' ? quad(a) : null;
  if (q) return Buffer.from(q);
  const p = ipaddr.parse(a);
  if (family === 'inet') {
    const v4 = p.kind() === 'ipv4' ? (p as ipaddr.IPv4) : (p as ipaddr.IPv6).toIPv4Address();
    return Buffer.from(v4.toByteArray());
  }
  const v6 = p.kind() === 'ipv6' ? (p as ipaddr.IPv6) : (p as ipaddr.IPv4).toIPv4MappedAddress();
  return Buffer.from(v6.toByteArray());
}

function addrText(b: Buffer): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  return ipaddr.fromByteArray([...b]).toString();
}

/** The size of one entry without padding. */
export function entrySize(e: SyncEntry): number {
  let n = e.family === 'inet6' ? ENTRY_V6 : ENTRY_V4;
  if (e.seq) n += 2 + SEQ_OPTIONS;
  if (e.peData && e.peData.length > 0) n += 2 + e.peData.length;
  if (e.peName) n += 2 + Buffer.byteLength(e.peName, 'latin1');
  return n;
}

const pad4 = (n: number): number => (n + 3) & ~3;

function writeEntry(buf: Buffer, at: number, e: SyncEntry): number {
  const size = entrySize(e);
  buf.writeUInt8(e.family === 'inet6' ? STYPE_F_INET6 : 0, at);
  buf.writeUInt8(e.protocol, at + 1);
  buf.writeUInt16BE(size & SVER_MASK, at + 2);
  // The kernel clears HASHED (a local fact) and sends the SEQ bits only with the option.
  const flags = (e.flags & ~ConnFlag.HASHED & ~ConnFlag.SEQ_MASK) | (e.seq ? e.flags & ConnFlag.SEQ_MASK : 0);
  buf.writeUInt32BE(flags >>> 0, at + 4);
  buf.writeUInt16BE(e.state, at + 8);
  buf.writeUInt16BE(e.cport, at + 10);
  buf.writeUInt16BE(e.vport, at + 12);
  buf.writeUInt16BE(e.dport, at + 14);
  buf.writeUInt32BE(e.fwmark >>> 0, at + 16);
  buf.writeUInt32BE(e.timeout >>> 0, at + 20);
  const w = e.family === 'inet6' ? 16 : 4;
  writeAddr(buf, at + 24, e.family, e.caddr);
  writeAddr(buf, at + 24 + w, e.family, e.vaddr);
  writeAddr(buf, at + 24 + 2 * w, e.family, e.daddr);
  let p = at + 24 + 3 * w;
  if (e.seq) {
    buf.writeUInt8(OPT_SEQ, p);
    buf.writeUInt8(SEQ_OPTIONS, p + 1);
    p += 2;
    for (const s of [e.seq.in, e.seq.out]) {
      buf.writeUInt32BE(s.initSeq >>> 0, p);
      buf.writeUInt32BE(s.delta >>> 0, p + 4);
      buf.writeUInt32BE(s.previousDelta >>> 0, p + 8);
      p += 12;
    }
  }
  if (e.peData && e.peData.length > 0) {
    buf.writeUInt8(OPT_PE_DATA, p);
    buf.writeUInt8(e.peData.length, p + 1);
    e.peData.copy(buf, p + 2);
    p += 2 + e.peData.length;
  }
  if (e.peName) {
    const n = Buffer.from(e.peName, 'latin1');
    buf.writeUInt8(OPT_PE_NAME, p);
    buf.writeUInt8(n.length, p + 1);
    n.copy(buf, p + 2);
    p += 2 + n.length;
  }
  return p - at;
}

/** Why an entry cannot be encoded (a value out of its field's range), or null. */
export function entryProblem(e: SyncEntry): string | null {
  for (const [name, v, max] of [['protocol', e.protocol, 0xff], ['state', e.state, 0xffff], ['cport', e.cport, 0xffff], ['vport', e.vport, 0xffff],
    ['dport', e.dport, 0xffff], ['fwmark', e.fwmark, 0xffffffff], ['timeout', e.timeout, 0xffffffff], ['flags', e.flags, 0xffffffff]] as const) {
    if (!Number.isInteger(v) || v < 0 || v > max) return `${name} ${v} is out of range 0..${max}`;
  }
  for (const [name, a] of [['caddr', e.caddr], ['vaddr', e.vaddr], ['daddr', e.daddr]] as const) {
    if (e.family === 'inet' && quad(a)) continue;
    if (!ipaddr.isValid(a)) return `${name} ${a} is not an address`;
    const k = ipaddr.parse(a).kind();
    if (e.family === 'inet' && k === 'ipv6' && !(ipaddr.parse(a) as ipaddr.IPv6).isIPv4MappedAddress()) return `${name} ${a} is not IPv4`;
  }
  if (e.peData && e.peData.length > PEDATA_MAXLEN) return `persistence-engine data is ${e.peData.length} bytes (at most ${PEDATA_MAXLEN})`;
  if (e.peName !== undefined && (Buffer.byteLength(e.peName, 'latin1') > PENAME_MAXLEN || e.peName.length === 0)) return `persistence-engine name "${e.peName}" must be 1..${PENAME_MAXLEN} bytes`;
  return null;
}

export interface EncodeOptions {
  readonly syncid: number;
  /** Largest datagram (header included); the kernel's sync_maxlen. */
  readonly maxlen?: number | undefined;
}

/**
 * Entries → version-1 datagrams, each at most `maxlen` bytes and 255 entries, entries
 * 4-byte aligned as the kernel places them. Throws RangeError for an entry that cannot be
 * encoded (entryProblem) — a caller's bug, never the network's.
 */
export function encodeMessages(entries: readonly SyncEntry[], o: EncodeOptions): Buffer[] {
  const maxlen = o.maxlen ?? SYNC_DEFAULT_MAXLEN;
  if (!Number.isInteger(o.syncid) || o.syncid < 0 || o.syncid > 255) throw new RangeError(`syncid ${o.syncid} is out of range 0..255`);
  if (!Number.isInteger(maxlen) || maxlen < HEADER_V1 + ENTRY_V4 || maxlen > MAX_DATAGRAM) throw new RangeError(`maxlen ${maxlen} is out of range ${HEADER_V1 + ENTRY_V4}..${MAX_DATAGRAM}`);
  const out: Buffer[] = [];
  let buf = Buffer.alloc(maxlen);
  let len = HEADER_V1;
  let count = 0;
  const flush = (): void => {
    if (count === 0) return;
    buf.writeUInt8(0, 0);
    buf.writeUInt8(o.syncid, 1);
    buf.writeUInt16BE(len, 2);
    buf.writeUInt8(count, 4);
    buf.writeInt8(SYNC_PROTO_VER, 5);
    buf.writeUInt16BE(0, 6);
    out.push(Buffer.from(buf.subarray(0, len)));
    buf = Buffer.alloc(maxlen);
    len = HEADER_V1;
    count = 0;
  };
  for (const e of entries) {
    const problem = entryProblem(e);
    if (problem) throw new RangeError(`sync entry: ${problem}`);
    const size = entrySize(e);
    if (HEADER_V1 + size > maxlen) throw new RangeError(`sync entry of ${size} bytes does not fit maxlen ${maxlen}`);
    let at = pad4(len);
    if (count === MAX_ENTRIES || at + size > maxlen) {
      flush();
      at = HEADER_V1;
    }
    buf.fill(0, len, at);
    writeEntry(buf, at, e);
    len = at + size;
    count++;
  }
  flush();
  return out;
}

const refuse = (reason: SyncRefusal, detail: string): RefusedMessage => ({ ok: false, reason, detail });

export interface DecodeOptions {
  /** Our syncid: messages with another are refused, unless ours is 0 (accept all). */
  readonly syncid: number;
}

function protocolState(protocol: number, state: number, template: boolean): SyncRefusal | null {
  if (template) return null; // the kernel only logs a template's odd state
  const n = STATES[protocol];
  if (n === undefined) return SyncRefusal.PROTOCOL;
  return state >= n ? SyncRefusal.STATE : null;
}

/** One datagram → its entries, or why it was refused. Never throws, whatever the bytes. */
export function decodeMessage(buf: Uint8Array, o: DecodeOptions): DecodedMessage | RefusedMessage {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  if (b.length < HEADER_V0) return refuse(SyncRefusal.SHORT_HEADER, `${b.length} bytes, a header needs ${HEADER_V0}`);
  const size = b.readUInt16BE(2);
  if (size !== b.length) return refuse(SyncRefusal.BAD_SIZE, `header says ${size} bytes, datagram has ${b.length}`);
  const syncid = b.readUInt8(1);
  if (o.syncid !== 0 && syncid !== o.syncid) return refuse(SyncRefusal.SYNCID, `syncid ${syncid}, ours is ${o.syncid}`);
  if (b.length >= HEADER_V1 && b.readUInt8(0) === 0 && b.readInt8(5) === SYNC_PROTO_VER && b.readUInt16BE(6) === 0) return decodeV1(b, syncid);
  return decodeV0(b, syncid);
}

function decodeV1(b: Buffer, syncid: number): DecodedMessage | RefusedMessage {
  const count = b.readUInt8(4);
  const entries: SyncEntry[] = [];
  const skipped: SyncRefusal[] = [];
  let p = HEADER_V1;
  const partial = (reason: SyncRefusal): DecodedMessage => ({ ok: true, version: 1, syncid, entries, skipped, truncated: reason });
  for (let i = 0; i < count; i++) {
    if (p + ENTRY_V4 > b.length) return entries.length + skipped.length === 0 ? refuse(SyncRefusal.COUNT, `entry ${i + 1} of ${count} starts at ${p}, past the end (${b.length})`) : partial(SyncRefusal.COUNT);
    const verSize = b.readUInt16BE(p + 2);
    const size = verSize & SVER_MASK;
    const end = p + size;
    if (end > b.length) return entries.length + skipped.length === 0 ? refuse(SyncRefusal.TRUNCATED, `entry ${i + 1} claims ${size} bytes from offset ${p}, past the end (${b.length})`) : partial(SyncRefusal.TRUNCATED);
    if (verSize >> SVER_SHIFT !== 0) return entries.length + skipped.length === 0 ? refuse(SyncRefusal.ENTRY_VERSION, `entry ${i + 1} has version ${verSize >> SVER_SHIFT}`) : partial(SyncRefusal.ENTRY_VERSION);
    const r = decodeEntryV1(b, p, end);
    if (r.fatal) return entries.length + skipped.length === 0 ? refuse(r.fatal, `entry ${i + 1}: ${r.detail}`) : partial(r.fatal);
    if (r.skip) skipped.push(r.skip);
    else if (r.entry) entries.push(r.entry);
    p = p + pad4(size);
  }
  // The kernel ignores what follows the last entry; Fulcrum counts it (a sender's bug or a probe).
  if (p < b.length) return partial(SyncRefusal.TRAILING);
  return { ok: true, version: 1, syncid, entries, skipped };
}

interface EntryResult {
  readonly entry?: SyncEntry;
  readonly skip?: SyncRefusal;
  readonly fatal?: SyncRefusal;
  readonly detail?: string;
}

function decodeEntryV1(b: Buffer, at: number, end: number): EntryResult {
  const type = b.readUInt8(at);
  let family: Family;
  let base: number;
  if (type & STYPE_F_INET6) {
    family = 'inet6';
    base = ENTRY_V6;
  } else if (type === 0) {
    family = 'inet';
    base = ENTRY_V4;
  } else {
    return { fatal: SyncRefusal.ENTRY_TYPE, detail: `type ${type}` };
  }
  if (at + base > end) return { fatal: SyncRefusal.TRUNCATED, detail: `an ${family === 'inet' ? 'IPv4' : 'IPv6'} entry needs ${base} bytes, its size says ${end - at}` };
  let p = at + base;
  let seq: SyncEntry['seq'];
  let peData: Buffer | undefined;
  let peName: string | undefined;
  let skip: SyncRefusal | undefined;
  while (p < end) {
    if (p + 2 > end) return { fatal: SyncRefusal.OPTION_LENGTH, detail: `an option header at ${p} runs past the entry` };
    const ptype = b.readUInt8(p);
    const plen = b.readUInt8(p + 1);
    p += 2;
    if (plen === 0 || p + plen > end) return { fatal: SyncRefusal.OPTION_LENGTH, detail: `option ${ptype} of length ${plen}` };
    switch (ptype & ~OPT_F_PARAM) {
      case OPT_SEQ: {
        if (plen !== SEQ_OPTIONS || seq) return { fatal: SyncRefusal.OPTION, detail: seq ? 'sequence data twice' : `sequence data of ${plen} bytes` };
        const r = (o: number): SeqData => ({ initSeq: b.readUInt32BE(o), delta: b.readUInt32BE(o + 4), previousDelta: b.readUInt32BE(o + 8) });
        seq = { in: r(p), out: r(p + 12) };
        break;
      }
      case OPT_PE_DATA:
        if (peData) return { fatal: SyncRefusal.OPTION, detail: 'persistence-engine data twice' };
        peData = Buffer.from(b.subarray(p, p + plen));
        break;
      case OPT_PE_NAME:
        if (peName !== undefined || plen > PENAME_MAXLEN) return { fatal: SyncRefusal.OPTION, detail: peName !== undefined ? 'persistence-engine name twice' : `persistence-engine name of ${plen} bytes` };
        peName = b.subarray(p, p + plen).toString('latin1');
        break;
      default:
        if (!(ptype & OPT_F_PARAM)) skip = SyncRefusal.MANDATORY_OPTION;
    }
    p += plen;
  }
  if (skip) return { skip };
  const flags = b.readUInt32BE(at + 4);
  const protocol = b.readUInt8(at + 1);
  const state = b.readUInt16BE(at + 8);
  const bad = protocolState(protocol, state, (flags & ConnFlag.TEMPLATE) !== 0);
  if (bad) return { skip: bad };
  const w = family === 'inet' ? 4 : 16;
  const a = at + 24;
  return {
    entry: {
      family, protocol, flags, state,
      cport: b.readUInt16BE(at + 10), vport: b.readUInt16BE(at + 12), dport: b.readUInt16BE(at + 14),
      fwmark: b.readUInt32BE(at + 16), timeout: b.readUInt32BE(at + 20),
      caddr: addrText(b.subarray(a, a + w)), vaddr: addrText(b.subarray(a + w, a + 2 * w)), daddr: addrText(b.subarray(a + 2 * w, a + 3 * w)),
      ...(seq ? { seq } : {}), ...(peData ? { peData } : {}), ...(peName !== undefined ? { peName } : {}),
    },
  };
}

function decodeV0(b: Buffer, syncid: number): DecodedMessage | RefusedMessage {
  const count = b.readUInt8(0);
  const entries: SyncEntry[] = [];
  const skipped: SyncRefusal[] = [];
  let p = HEADER_V0;
  for (let i = 0; i < count; i++) {
    const fault = (reason: SyncRefusal, detail: string): DecodedMessage | RefusedMessage =>
      entries.length + skipped.length === 0 ? refuse(reason, detail) : { ok: true, version: 0, syncid, entries, skipped, truncated: reason };
    if (p + ENTRY_V0 > b.length) return fault(SyncRefusal.COUNT, `v0 entry ${i + 1} of ${count} runs past the end`);
    const flags = b.readUInt16BE(p + 20);
    const hasSeq = (flags & ConnFlag.SEQ_MASK) !== 0;
    if (hasSeq && p + ENTRY_V0 + SEQ_OPTIONS > b.length) return fault(SyncRefusal.TRUNCATED, `v0 entry ${i + 1}'s sequence data runs past the end`);
    const protocol = b.readUInt8(p + 1);
    const state = b.readUInt16BE(p + 22);
    const bad = protocolState(protocol, state, (flags & ConnFlag.TEMPLATE) !== 0);
    if (bad) {
      skipped.push(bad);
    } else {
      const r = (o: number): SeqData => ({ initSeq: b.readUInt32BE(o), delta: b.readUInt32BE(o + 4), previousDelta: b.readUInt32BE(o + 8) });
      const s = p + ENTRY_V0;
      entries.push({
        family: 'inet', protocol, flags, state,
        cport: b.readUInt16BE(p + 2), vport: b.readUInt16BE(p + 4), dport: b.readUInt16BE(p + 6), fwmark: 0, timeout: 0,
        caddr: addrText(b.subarray(p + 8, p + 12)), vaddr: addrText(b.subarray(p + 12, p + 16)), daddr: addrText(b.subarray(p + 16, p + 20)),
        ...(hasSeq ? { seq: { in: r(s), out: r(s + 12) } } : {}),
      });
    }
    p += ENTRY_V0 + (hasSeq ? SEQ_OPTIONS : 0);
  }
  if (p < b.length && count > 0) return { ok: true, version: 0, syncid, entries, skipped, truncated: SyncRefusal.TRAILING };
  return { ok: true, version: 0, syncid, entries, skipped };
}

/** Version-0 datagrams (IPv4 only; for tests and for talking to very old receivers). */
export function encodeMessagesV0(entries: readonly SyncEntry[], o: EncodeOptions): Buffer[] {
  const maxlen = o.maxlen ?? SYNC_DEFAULT_MAXLEN;
  const out: Buffer[] = [];
  let parts: Buffer[] = [];
  let len = HEADER_V0;
  const flush = (): void => {
    if (parts.length === 0) return;
    const h = Buffer.alloc(HEADER_V0);
    h.writeUInt8(parts.length, 0);
    h.writeUInt8(o.syncid, 1);
    h.writeUInt16BE(len, 2);
    out.push(Buffer.concat([h, ...parts]));
    parts = [];
    len = HEADER_V0;
  };
  for (const e of entries) {
    if (e.family !== 'inet') throw new RangeError('version 0 carries IPv4 only');
    const n = ENTRY_V0 + (e.seq ? SEQ_OPTIONS : 0);
    if (parts.length === MAX_ENTRIES || len + n > maxlen) flush();
    const x = Buffer.alloc(n);
    x.writeUInt8(e.protocol, 1);
    x.writeUInt16BE(e.cport, 2);
    x.writeUInt16BE(e.vport, 4);
    x.writeUInt16BE(e.dport, 6);
    addrBytes('inet', e.caddr).copy(x, 8);
    addrBytes('inet', e.vaddr).copy(x, 12);
    addrBytes('inet', e.daddr).copy(x, 16);
    x.writeUInt16BE((e.flags & 0xffff & ~ConnFlag.SEQ_MASK) | (e.seq ? e.flags & ConnFlag.SEQ_MASK || ConnFlag.IN_SEQ : 0), 20);
    x.writeUInt16BE(e.state, 22);
    if (e.seq) {
      let q = ENTRY_V0;
      for (const s of [e.seq.in, e.seq.out]) {
        x.writeUInt32BE(s.initSeq >>> 0, q);
        x.writeUInt32BE(s.delta >>> 0, q + 4);
        x.writeUInt32BE(s.previousDelta >>> 0, q + 8);
        q += 12;
      }
    }
    parts.push(x);
    len += n;
  }
  flush();
  return out;
}
