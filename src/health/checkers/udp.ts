/**
 * UDP_CHECK (keepalived check_udp.c): send the payload to the real server on a connected
 * socket. An ICMP port-unreachable (ECONNREFUSED on a connected socket) means down. With
 * `require_reply` a reply must arrive within connect_timeout, its length within
 * [min_reply_length, max_reply_length], and match the hex pattern (`x` = any nibble);
 * without it, silence until the deadline means up.
 */
import { randomBytes } from 'node:crypto';
import type { UdpCheck } from '../../model/types.js';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { ProbeErrorCode } from '../types.js';
import { udpExchange } from './exchange.js';

/** Does `reply` start with `pattern` (hex, `x` nibbles match anything)? */
export function matchesHexPattern(reply: Buffer, pattern: string): boolean {
  const hex = reply.toString('hex');
  if (hex.length < pattern.length) return false;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i];
    if (p !== 'x' && p !== 'X' && p !== hex[i]) return false;
  }
  return true;
}

export class UdpChecker implements Checker {
  readonly type = 'UDP_CHECK';
  private readonly payload: Buffer | null;

  constructor(private readonly target: ProbeTarget, private readonly cfg: Pick<UdpCheck, 'payload' | 'requireReply' | 'replyPattern' | 'minReplyLength' | 'maxReplyLength'>) {
    this.payload = cfg.payload !== undefined ? Buffer.from(cfg.payload, 'hex') : null;
  }

  check(ctx: ProbeContext): Promise<ProbeResult> {
    const c = this.cfg;
    return udpExchange(this.target, ctx, {
      request: this.payload ?? randomBytes(16),
      onTimeout: () => (c.requireReply ? { ok: false, code: ProbeErrorCode.TIMEOUT, detail: 'no reply' } : { ok: true, detail: 'no ICMP error' }),
      onError: (err, v) => ((err as { code?: string }).code === 'ECONNREFUSED' ? { ...v, detail: 'ICMP port unreachable' } : v),
      onReply: (msg) => {
        if (!c.requireReply) return { ok: true, detail: `reply of ${msg.length} bytes` };
        if (msg.length < c.minReplyLength || msg.length > c.maxReplyLength) {
          return { ok: false, code: ProbeErrorCode.MISMATCH, detail: `reply of ${msg.length} bytes outside ${c.minReplyLength}..${c.maxReplyLength}` };
        }
        if (c.replyPattern !== undefined && !matchesHexPattern(msg, c.replyPattern)) {
          return { ok: false, code: ProbeErrorCode.MISMATCH, detail: `reply ${msg.subarray(0, 16).toString('hex')} does not match ${c.replyPattern}` };
        }
        return { ok: true, detail: `reply of ${msg.length} bytes` };
      },
    });
  }

  close(): void {}
}
