/**
 * One UDP request/response exchange for the datagram checkers (DNS_CHECK, UDP_CHECK): a
 * connected socket (so an ICMP port-unreachable surfaces as ECONNREFUSED), optional local
 * binding, and a verdict from the first reply the caller accepts — or from the deadline.
 */
import dgram from 'node:dgram';
import type { ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, verdict } from '../types.js';

export type Verdict = Omit<ProbeResult, 'latencyMs'>;

export interface Exchange {
  readonly request: Buffer;
  /** The verdict for a reply, or null to keep waiting (not ours). */
  onReply(msg: Buffer): Verdict | null;
  /** The verdict when the deadline passes with no accepted reply. */
  onTimeout(): Verdict;
  /** Adjust the verdict for a socket error (default: its network failure). */
  onError?(err: Error, v: Verdict): Verdict;
}

export function udpExchange(target: ProbeTarget, ctx: ProbeContext, x: Exchange): Promise<ProbeResult> {
  const start = performance.now();
  return new Promise((resolve) => {
    const sock = dgram.createSocket(target.family === 'inet6' ? 'udp6' : 'udp4');
    let done = false;
    const finish = (v: Verdict): void => {
      if (done) return;
      done = true;
      ctx.signal.removeEventListener('abort', onAbort);
      sock.close();
      resolve(verdict(start, performance.now(), v));
    };
    const onAbort = (): void => finish(x.onTimeout());
    if (ctx.signal.aborted) return onAbort();
    ctx.signal.addEventListener('abort', onAbort, { once: true });
    sock.on('error', (err) => {
      const v: Verdict = { ok: false, ...networkFailure(err) };
      finish(x.onError ? x.onError(err, v) : v);
    });
    sock.on('message', (msg) => {
      const v = x.onReply(msg);
      if (v) finish(v);
    });
    const go = (): void => sock.connect(target.port, target.address, () => sock.send(x.request));
    if (target.bindAddress !== undefined || target.bindPort !== undefined) sock.bind({ address: target.bindAddress, port: target.bindPort ?? 0 }, go);
    else go();
  });
}
