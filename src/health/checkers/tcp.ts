/**
 * TCP_CHECK: the real server is up when a TCP connection to it completes. Half-open
 * (`fulcrum_half_open`): up when its SYN-ACK comes, and the probe ends with a reset before
 * the handshake's last ACK is sent, so the real server's application never sees it.
 */
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, probeAbort, verdict } from '../types.js';
import { probeConnect } from '../stream.js';

export class TcpChecker implements Checker {
  readonly type = 'TCP_CHECK';
  private readonly opts: { readonly halfOpen: boolean };
  constructor(private readonly target: ProbeTarget, opts: { readonly halfOpen?: boolean } = {}) {
    this.opts = { halfOpen: opts.halfOpen === true };
  }

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    try {
      await probeConnect(this.target, probeAbort(ctx), this.opts);
      return verdict(start, performance.now(), { ok: true });
    } catch (err: unknown) {
      return verdict(start, performance.now(), { ok: false, ...networkFailure(err) });
    }
  }

  close(): void {}
}
