/**
 * MISC_CHECK (keepalived check_misc.c): run the script; exit 0 = up, anything else = down.
 * With `misc_dynamic`: 0 = up at the configured weight, 1 = down, 2..255 = up with weight
 * = code − 2. A script that outlives misc_timeout is killed (with its process group) and
 * counts as a failure.
 */
import type { MiscCheck } from '../../model/types.js';
import { describeOutcome, runScript, type ScriptUser } from '../../notify/script.js';
import type { Checker, ProbeContext, ProbeResult } from '../types.js';
import { ProbeErrorCode, verdict } from '../types.js';

/** The verdict for an exit code (pure; keepalived's table above). */
export function miscVerdict(exitCode: number, dynamic: boolean): { ok: boolean; weight?: number } {
  if (exitCode === 0) return { ok: true };
  if (!dynamic || exitCode === 1) return { ok: false };
  return { ok: true, weight: Math.min(exitCode, 255) - 2 };
}

export class MiscChecker implements Checker {
  readonly type = 'MISC_CHECK';
  constructor(private readonly cfg: Pick<MiscCheck, 'script' | 'timeout' | 'dynamic'>, private readonly defaultUser?: ScriptUser) {}

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    const timeoutMs = Math.round(this.cfg.timeout * 1000);
    const o = await runScript(this.cfg.script, { timeoutMs, signal: ctx.signal, defaultUser: this.defaultUser });
    if (o.exitCode === null) return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.SCRIPT, detail: describeOutcome(o, timeoutMs) });
    const v = miscVerdict(o.exitCode, this.cfg.dynamic);
    return verdict(start, performance.now(), {
      ok: v.ok, status: o.exitCode, ...(v.weight !== undefined ? { weight: v.weight } : {}),
      ...(v.ok ? { detail: v.weight !== undefined ? `exit ${o.exitCode}: weight ${v.weight}` : 'exit 0' } : { code: ProbeErrorCode.SCRIPT, detail: describeOutcome(o, timeoutMs) }),
    });
  }

  close(): void {}
}
