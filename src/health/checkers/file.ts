/**
 * FILE_CHECK (keepalived check_file.c with track_file): the file holds a number.
 * - weight 0: the number is a status — 0 up, anything else down.
 * - otherwise: value = number × weight (negated with `reverse`); below −253 the server is
 *   down. With `dynamic` the real server's weight becomes configured weight + value
 *   (at least 0).
 * A file that is missing or holds no number reads as 0, as keepalived does (so creating
 * the file is how an operator takes a server out).
 */
import fs from 'node:fs/promises';
import type { FileCheck } from '../../model/types.js';
import type { Checker, ProbeContext, ProbeResult } from '../types.js';
import { ProbeErrorCode, verdict } from '../types.js';

export function fileVerdict(value: number, cfg: Pick<FileCheck, 'weight' | 'reverse' | 'dynamic'>, baseWeight: number): { ok: boolean; weight?: number } {
  if (cfg.weight === 0) return { ok: value === 0 };
  const v = value * cfg.weight * (cfg.reverse ? -1 : 1);
  if (v < -253) return { ok: false };
  return cfg.dynamic ? { ok: true, weight: Math.max(0, Math.min(65535, baseWeight + v)) } : { ok: true };
}

export class FileChecker implements Checker {
  readonly type = 'FILE_CHECK';
  constructor(private readonly path: string, private readonly cfg: Pick<FileCheck, 'weight' | 'reverse' | 'dynamic'>, private readonly baseWeight: number) {}

  async check(_ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    let text = '';
    let note = '';
    try {
      const h = await fs.open(this.path, 'r');
      try {
        const buf = Buffer.alloc(64);
        const { bytesRead } = await h.read(buf, 0, 64, 0);
        text = buf.subarray(0, bytesRead).toString('utf8');
      } finally {
        await h.close();
      }
    } catch (err: unknown) {
      const code = (err as { code?: string }).code;
      if (code !== 'ENOENT') return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.LOCAL, detail: `${this.path}: ${(err as Error).message}` });
      note = ' (file absent)';
    }
    const m = /^\s*(-?[0-9]+)/.exec(text);
    const value = m ? Number(m[1]) : 0;
    const v = fileVerdict(value, this.cfg, this.baseWeight);
    const detail = `${this.path} = ${value}${note}${v.weight !== undefined ? `: weight ${v.weight}` : ''}`;
    return verdict(start, performance.now(), { ok: v.ok, status: value, detail, ...(v.weight !== undefined ? { weight: v.weight } : {}), ...(v.ok ? {} : { code: ProbeErrorCode.MISMATCH }) });
  }

  close(): void {}
}
