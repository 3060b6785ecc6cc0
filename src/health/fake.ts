/** A scripted Checker for tests: returns queued results (or a default), counting calls. */
import type { Checker, ProbeContext, ProbeResult } from './types.js';
import { ProbeErrorCode } from './types.js';

export class FakeChecker implements Checker {
  readonly type: string;
  calls = 0;
  closed = false;
  /** Results to return, in order; when empty, `healthy` decides. */
  readonly queue: boolean[] = [];
  healthy = true;
  /** Milliseconds each probe waits before answering (0 = at once); aborting ends it early. */
  delayMs = 0;

  constructor(type = 'FAKE_CHECK') {
    this.type = type;
  }

  check(ctx: ProbeContext): Promise<ProbeResult> {
    this.calls++;
    const ok = this.queue.length > 0 ? this.queue.shift() === true : this.healthy;
    const r: ProbeResult = ok ? { ok: true, latencyMs: this.delayMs } : { ok: false, latencyMs: this.delayMs, code: ProbeErrorCode.REFUSED, detail: 'fake failure' };
    if (this.delayMs === 0) return Promise.resolve(r);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(r), this.delayMs);
      ctx.signal.addEventListener('abort', () => {
        clearTimeout(t);
        resolve({ ok: false, latencyMs: 0, code: ProbeErrorCode.TIMEOUT, detail: 'timed out' });
      }, { once: true });
    });
  }

  close(): void {
    this.closed = true;
  }
}
