/** TCP_CHECK: the real server is up when a TCP connection to it completes. */
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, probeAbort, verdict } from '../types.js';
import { probeConnect } from '../stream.js';

export class TcpChecker implements Checker {
  readonly type = 'TCP_CHECK';
  constructor(private readonly target: ProbeTarget) {}

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    try {
      await probeConnect(this.target, probeAbort(ctx));
      return verdict(start, performance.now(), { ok: true });
    } catch (err: unknown) {
      return verdict(start, performance.now(), { ok: false, ...networkFailure(err) });
    }
  }

  close(): void {}
}
