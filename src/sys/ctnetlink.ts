/**
 * ctnetlink through koffi: create conntrack entries with their NAT mapping, as conntrackd
 * does on a backup firewall — what connection sync needs to continue a NAT connection on
 * the director that takes over. Message building is pure and exported for tests; the
 * socket part sends a batch of messages in one datagram and reads one ack per message.
 *
 * A NAT entry is created with its original tuple (client → virtual address), its reply
 * tuple (real server → client), CTA_NAT_DST (the real server: the kernel sets the NAT up
 * exactly as a dnat rule would have), the connection mark the ruleset keeps the backend in,
 * the TCP state with "be liberal" in both directions (the backup never saw the window, so
 * it must not judge segments by it), and a timeout. An entry that exists is refreshed
 * (timeout, mark, state) without its NAT, which the kernel does not let a change touch.
 */
import ipaddr from 'ipaddr.js';
import type { Family } from '../model/types.js';
import { SysError, SysErrorCode, sysFailure } from './errors.js';
import { acks, attr, netlinkSocket, sendToKernel } from './netlink.js';
import { AF_INET, AF_INET6, EAGAIN, loadLibc, MSG_DONTWAIT } from './libc.js';

const NETLINK_NETFILTER = 12;
const NFNL_SUBSYS_CTNETLINK = 1;
const IPCTNL_MSG_CT_NEW = 0;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
const NLA_F_NESTED = 0x8000;
const EEXIST = 17;

const CTA_TUPLE_ORIG = 1;
const CTA_TUPLE_REPLY = 2;
const CTA_STATUS = 3;
const CTA_PROTOINFO = 4;
const CTA_TIMEOUT = 7;
const CTA_MARK = 8;
const CTA_NAT_DST = 13;
const CTA_TUPLE_IP = 1;
const CTA_TUPLE_PROTO = 2;
const CTA_PROTO_NUM = 1;
const CTA_PROTO_SRC_PORT = 2;
const CTA_PROTO_DST_PORT = 3;
const CTA_PROTOINFO_TCP = 1;
const CTA_PROTOINFO_TCP_STATE = 1;
const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL = 4;
const CTA_PROTOINFO_TCP_FLAGS_REPLY = 5;
const CTA_NAT_V4_MINIP = 1;
const CTA_NAT_V4_MAXIP = 2;
const CTA_NAT_PROTO = 3;
const CTA_NAT_V6_MINIP = 4;
const CTA_NAT_V6_MAXIP = 5;
const CTA_PROTONAT_PORT_MIN = 1;
const CTA_PROTONAT_PORT_MAX = 2;
const IPS_SEEN_REPLY = 1 << 1;
const IPS_ASSURED = 1 << 2;
/** A created entry is confirmed at once: a status without the bit is a change the kernel refuses (EBUSY). */
const IPS_CONFIRMED = 1 << 3;
const IP_CT_TCP_FLAG_BE_LIBERAL = 0x08;

/** Conntrack's TCP states (enum tcp_conntrack). */
export const CtTcpState = { ESTABLISHED: 3, FIN_WAIT: 4, CLOSE_WAIT: 5, LAST_ACK: 6, TIME_WAIT: 7, CLOSE: 8 } as const;

/** One NAT connection to create. */
export interface CtNatEntry {
  readonly family: Family;
  readonly protocol: 'tcp' | 'udp' | 'sctp';
  readonly client: string;
  readonly cport: number;
  readonly virtual: string;
  readonly vport: number;
  readonly server: string;
  readonly dport: number;
  readonly mark: number;
  /** Seconds. */
  readonly timeout: number;
  /** TCP: a CtTcpState. */
  readonly tcpState?: number | undefined;
}

const nest = (type: number, parts: readonly Buffer[]): Buffer => attr(type | NLA_F_NESTED, Buffer.concat(parts));
const u8 = (n: number): Buffer => Buffer.from([n & 255]);
const be16 = (n: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16BE(n); return b; };
const be32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32BE(n >>> 0); return b; };
const ipb = (a: string): Buffer => Buffer.from(ipaddr.parse(a).toByteArray());
const PROTO = { tcp: 6, udp: 17, sctp: 132 } as const;

function tuple(type: number, e: CtNatEntry, src: string, sport: number, dst: string, dport: number): Buffer {
  const v4 = e.family === 'inet';
  return nest(type, [
    nest(CTA_TUPLE_IP, [attr(v4 ? 1 : 3, ipb(src)), attr(v4 ? 2 : 4, ipb(dst))]),
    nest(CTA_TUPLE_PROTO, [attr(CTA_PROTO_NUM, u8(PROTO[e.protocol])), attr(CTA_PROTO_SRC_PORT, be16(sport)), attr(CTA_PROTO_DST_PORT, be16(dport))]),
  ]);
}

/** An IPCTNL_MSG_CT_NEW request: `create` with the NAT and NLM_F_EXCL, else a refresh of an entry that exists. */
export function conntrackMessage(e: CtNatEntry, seq: number, create: boolean): Buffer {
  const v4 = e.family === 'inet';
  const attrs: Buffer[] = [
    tuple(CTA_TUPLE_ORIG, e, e.client, e.cport, e.virtual, e.vport),
    // The reply tuple before NAT (the inverse of the original); CTA_NAT_DST rewrites it to
    // the real server's, as a dnat rule does. A refresh names the entry by its reply as NATed.
    create ? tuple(CTA_TUPLE_REPLY, e, e.virtual, e.vport, e.client, e.cport) : tuple(CTA_TUPLE_REPLY, e, e.server, e.dport, e.client, e.cport),
    attr(CTA_TIMEOUT, be32(Math.max(1, Math.round(e.timeout)))),
    attr(CTA_MARK, be32(e.mark)),
  ];
  if (create) {
    attrs.push(attr(CTA_STATUS, be32(IPS_SEEN_REPLY | IPS_ASSURED | IPS_CONFIRMED)));
    attrs.push(nest(CTA_NAT_DST, [
      attr(v4 ? CTA_NAT_V4_MINIP : CTA_NAT_V6_MINIP, ipb(e.server)), attr(v4 ? CTA_NAT_V4_MAXIP : CTA_NAT_V6_MAXIP, ipb(e.server)),
      nest(CTA_NAT_PROTO, [attr(CTA_PROTONAT_PORT_MIN, be16(e.dport)), attr(CTA_PROTONAT_PORT_MAX, be16(e.dport))]),
    ]));
  }
  if (e.protocol === 'tcp' && e.tcpState !== undefined) {
    const liberal = Buffer.from([IP_CT_TCP_FLAG_BE_LIBERAL, IP_CT_TCP_FLAG_BE_LIBERAL]);
    attrs.push(nest(CTA_PROTOINFO, [nest(CTA_PROTOINFO_TCP, [
      attr(CTA_PROTOINFO_TCP_STATE, u8(e.tcpState)), attr(CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, liberal), attr(CTA_PROTOINFO_TCP_FLAGS_REPLY, liberal),
    ])]));
  }
  const body = Buffer.concat([Buffer.from([v4 ? AF_INET : AF_INET6, 0, 0, 0]), ...attrs]);
  const h = Buffer.alloc(16);
  h.writeUInt32LE(16 + body.length, 0);
  h.writeUInt16LE((NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_NEW, 4);
  h.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | (create ? NLM_F_EXCL : 0), 6);
  h.writeUInt32LE(seq, 8);
  return Buffer.concat([h, body]);
}

export interface CtResult {
  readonly created: number;
  readonly refreshed: number;
  /** Entries the kernel refused, with the errno of the first. */
  readonly failed: number;
  readonly firstError?: number | undefined;
}

/** The conntrack table's writer (a boundary: `FakeConntrack` stands in for it in tests). */
export interface ConntrackWriter {
  /** Create (or refresh, when they exist) NAT entries. Rejects only when netlink itself fails. */
  natEntries(entries: readonly CtNatEntry[]): Promise<CtResult>;
}

let seqNo = 1;
const BATCH = 64;

/** Send `msgs` in one datagram; the errno of each by its sequence number. */
function exchange(fd: number, msgs: readonly { seq: number; buf: Buffer }[]): Map<number, number> {
  const c = loadLibc();
  sendToKernel(fd, Buffer.concat(msgs.map((m) => m.buf)), 'sending to ctnetlink');
  // ctnetlink handles each request inside sendto: the acks are already queued.
  const got = new Map<number, number>();
  const buf = Buffer.alloc(65536);
  for (let i = 0; i < msgs.length * 2 && got.size < msgs.length; i++) {
    const n = c.recvfrom(fd, buf, buf.length, MSG_DONTWAIT, null, null);
    if (n < 0) {
      const e = c.errno();
      if (e === EAGAIN) break;
      throw sysFailure('reading ctnetlink acks', e, 'CAP_NET_ADMIN');
    }
    for (const [s, err] of acks(buf.subarray(0, n))) got.set(s, err);
  }
  if (got.size < msgs.length) throw new SysError(SysErrorCode.FAILED, `ctnetlink acknowledged ${got.size} of ${msgs.length} requests`);
  return got;
}

export const ffiConntrack: ConntrackWriter = {
  natEntries(entries) {
    const fd = netlinkSocket('opening ctnetlink', { protocol: NETLINK_NETFILTER });
    const c = loadLibc();
    let created = 0;
    let refreshed = 0;
    let failed = 0;
    let firstError: number | undefined;
    try {
      for (let i = 0; i < entries.length; i += BATCH) {
        const chunk = entries.slice(i, i + BATCH);
        const msgs = chunk.map((e) => ({ e, seq: seqNo++ })).map(({ e, seq }) => ({ e, seq, buf: conntrackMessage(e, seq, true) }));
        const res = exchange(fd, msgs);
        const again: { e: CtNatEntry; seq: number; buf: Buffer }[] = [];
        for (const m of msgs) {
          const err = res.get(m.seq) ?? -1;
          if (err === 0) created++;
          else if (err === EEXIST) {
            const seq = seqNo++;
            again.push({ e: m.e, seq, buf: conntrackMessage(m.e, seq, false) });
          } else {
            failed++;
            firstError ??= err;
          }
        }
        if (again.length > 0) {
          const r2 = exchange(fd, again);
          for (const m of again) {
            const err = r2.get(m.seq) ?? -1;
            if (err === 0) refreshed++;
            else {
              failed++;
              firstError ??= err;
            }
          }
        }
      }
    } finally {
      c.close(fd);
    }
    return Promise.resolve({ created, refreshed, failed, firstError });
  },
};

/** An in-memory conntrack writer for tests: what was created, with failures on demand. */
export class FakeConntrack implements ConntrackWriter {
  readonly entries = new Map<string, CtNatEntry>();
  fail: Error | null = null;
  natEntries(entries: readonly CtNatEntry[]): Promise<CtResult> {
    if (this.fail) return Promise.reject(this.fail);
    let created = 0;
    let refreshed = 0;
    for (const e of entries) {
      const k = `${e.protocol} ${e.client}:${e.cport} ${e.virtual}:${e.vport}`;
      if (this.entries.has(k)) refreshed++;
      else created++;
      this.entries.set(k, this.entries.get(k) ? { ...(this.entries.get(k) as CtNatEntry), timeout: e.timeout, mark: e.mark } : e);
    }
    return Promise.resolve({ created, refreshed, failed: 0 });
  }
}
