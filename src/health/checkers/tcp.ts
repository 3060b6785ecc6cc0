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

  check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    // One promise and two callbacks, not an async function's: this runs thousands of times a second.
    return probeConnect(this.target, probeAbort(ctx), this.opts).then(
      () => ({ ok: true, latencyMs: Math.max(0, performance.now() - start) }),
      (err: unknown) => verdict(start, performance.now(), { ok: false, ...networkFailure(err) }),
    );
  }

  close(): void {}
}
