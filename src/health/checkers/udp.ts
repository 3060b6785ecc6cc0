/**
 * UDP_CHECK (keepalived check_udp.c): send the payload to the real server on a connected
 * socket. An ICMP port-unreachable (ECONNREFUSED on a connected socket) means down. With
 * `require_reply` a reply must arrive within connect_timeout, its length within
 * [min_reply_length, max_reply_length], and match the hex pattern (`x` = any nibble);
 * without it, silence until the deadline means up.
 */
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import type { UdpCheck } from '../../model/types.js';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, ProbeErrorCode, verdict } from '../types.js';

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
    const start = performance.now();
    return new Promise((resolve) => {
      const sock = dgram.createSocket(this.target.family === 'inet6' ? 'udp6' : 'udp4');
      let done = false;
      const finish = (r: Omit<ProbeResult, 'latencyMs'>): void => {
        if (done) return;
        done = true;
        ctx.signal.removeEventListener('abort', onAbort);
        sock.close();
        resolve(verdict(start, performance.now(), r));
      };
      const onAbort = (): void => {
        if (this.cfg.requireReply) finish({ ok: false, code: ProbeErrorCode.TIMEOUT, detail: 'no reply' });
        else finish({ ok: true, detail: 'no ICMP error' });
      };
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      sock.on('error', (err) => finish({ ok: false, ...networkFailure(err), ...((err as { code?: string }).code === 'ECONNREFUSED' ? { detail: 'ICMP port unreachable' } : {}) }));
      sock.on('message', (msg) => {
        if (!this.cfg.requireReply) return finish({ ok: true, detail: `reply of ${msg.length} bytes` });
        if (msg.length < this.cfg.minReplyLength || msg.length > this.cfg.maxReplyLength) {
          return finish({ ok: false, code: ProbeErrorCode.MISMATCH, detail: `reply of ${msg.length} bytes outside ${this.cfg.minReplyLength}..${this.cfg.maxReplyLength}` });
        }
        if (this.cfg.replyPattern !== undefined && !matchesHexPattern(msg, this.cfg.replyPattern)) {
          return finish({ ok: false, code: ProbeErrorCode.MISMATCH, detail: `reply ${msg.subarray(0, 16).toString('hex')} does not match ${this.cfg.replyPattern}` });
        }
        finish({ ok: true, detail: `reply of ${msg.length} bytes` });
      });
      const go = (): void => sock.connect(this.target.port, this.target.address, (err?: Error) => {
        if (err) return finish({ ok: false, ...networkFailure(err) });
        sock.send(this.payload ?? randomBytes(16));
      });
      if (this.target.bindAddress !== undefined || this.target.bindPort !== undefined) {
        sock.bind({ address: this.target.bindAddress, port: this.target.bindPort ?? 0 }, go);
      } else go();
    });
  }

  close(): void {}
}
