/**
 * PING_CHECK (keepalived check_ping.c): an ICMP echo request to the real server; a
 * matching echo reply within connect_timeout means up. All PING checkers of one address
 * family share one raw socket (opened through sys/, needs CAP_NET_RAW); replies are
 * matched by identifier, sequence number and source address.
 */
import type { Family } from '../../model/types.js';
import { SysError, SysErrorCode, type RawSocket, type RawSocketFactory } from '../../sys/raw.js';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { ProbeErrorCode, verdict } from '../types.js';

const IPPROTO_ICMP = 1;
const IPPROTO_ICMPV6 = 58;

/** RFC 1071 Internet checksum. */
export function inetChecksum(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += ((b[i] ?? 0) << 8) | (b[i + 1] ?? 0);
  if (b.length % 2 === 1) sum += (b[b.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** An echo request. For ICMPv6 the kernel fills the checksum (it covers a pseudo-header). */
export function echoRequest(family: Family, id: number, seq: number, payload: Buffer): Buffer {
  const p = Buffer.alloc(8 + payload.length);
  p[0] = family === 'inet' ? 8 : 128;
  p.writeUInt16BE(id & 0xffff, 4);
  p.writeUInt16BE(seq & 0xffff, 6);
  payload.copy(p, 8);
  if (family === 'inet') p.writeUInt16BE(inetChecksum(p), 2);
  return p;
}

/** Parse an echo reply as a raw socket delivers it (IPv4 with its IP header). */
export function parseEchoReply(family: Family, packet: Buffer): { id: number; seq: number } | null {
  let icmp = packet;
  if (family === 'inet') {
    if (packet.length < 20 || (packet[0] ?? 0) >> 4 !== 4) return null;
    icmp = packet.subarray(((packet[0] ?? 0) & 0x0f) * 4);
  }
  if (icmp.length < 8) return null;
  if (icmp[0] !== (family === 'inet' ? 0 : 129) || icmp[1] !== 0) return null;
  return { id: icmp.readUInt16BE(4), seq: icmp.readUInt16BE(6) };
}

interface Waiter {
  readonly address: string;
  readonly resolve: () => void;
}

/** One raw ICMP socket per family, shared by every PING checker using it. */
export class Pinger {
  private sock: RawSocket | null = null;
  private users = 0;
  private seq = 0;
  private readonly waiting = new Map<number, Waiter>();
  private readonly id = process.pid & 0xffff;
  /** Replies that matched nothing (late, or someone else's). */
  strays = 0;

  constructor(private readonly factory: RawSocketFactory, readonly family: Family) {}

  acquire(): void {
    this.users++;
  }

  release(): void {
    if (--this.users > 0) return;
    this.users = 0;
    this.sock?.close();
    this.sock = null;
  }

  private socket(): RawSocket {
    if (!this.sock) {
      this.sock = this.factory.open(this.family, this.family === 'inet' ? IPPROTO_ICMP : IPPROTO_ICMPV6, (pkt, from) => this.onPacket(pkt, from));
    }
    return this.sock;
  }

  private onPacket(pkt: Buffer, from: string): void {
    const r = parseEchoReply(this.family, pkt);
    if (!r || r.id !== this.id) return;
    const w = this.waiting.get(r.seq);
    if (!w || w.address !== from) {
      this.strays++;
      return;
    }
    this.waiting.delete(r.seq);
    w.resolve();
  }

  /** Resolves true on a reply, false when the signal aborts first. Throws SysError on socket failure. */
  ping(address: string, signal: AbortSignal): Promise<boolean> {
    const sock = this.socket();
    let seq = 0;
    for (let i = 0; i < 65536; i++) {
      this.seq = (this.seq + 1) & 0xffff;
      if (!this.waiting.has(this.seq)) break;
    }
    seq = this.seq;
    return new Promise((resolve) => {
      const onAbort = (): void => {
        this.waiting.delete(seq);
        resolve(false);
      };
      if (signal.aborted) return resolve(false);
      this.waiting.set(seq, {
        address,
        resolve: () => {
          signal.removeEventListener('abort', onAbort);
          resolve(true);
        },
      });
      signal.addEventListener('abort', onAbort, { once: true });
      sock.send(echoRequest(this.family, this.id, seq, Buffer.from('fulcrum-ping-chk')), address);
    });
  }
}

export class PingChecker implements Checker {
  readonly type = 'PING_CHECK';
  private held = false;

  constructor(private readonly target: ProbeTarget, private readonly pinger: Pinger) {}

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    if (!this.held) {
      this.pinger.acquire();
      this.held = true;
    }
    try {
      const ok = await this.pinger.ping(this.target.address, ctx.signal);
      return verdict(start, performance.now(), ok ? { ok: true, detail: 'echo reply' } : { ok: false, code: ProbeErrorCode.TIMEOUT, detail: 'no echo reply' });
    } catch (err: unknown) {
      if (err instanceof SysError && err.code === SysErrorCode.PERMISSION) return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.PERMISSION, detail: err.message });
      return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.LOCAL, detail: (err as Error).message });
    }
  }

  close(): void {
    if (this.held) this.pinger.release();
    this.held = false;
  }
}
