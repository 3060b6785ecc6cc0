/**
 * SMTP_CHECK (keepalived check_smtp.c): read the greeting (2xx, multi-line allowed), send
 * `HELO helo_name`, expect 250, then QUIT. Lines are bounded; a server that never speaks
 * or trickles bytes runs into the probe's deadline.
 */
import type { Abortable, Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, probeAbort, ProbeErrorCode, verdict } from '../types.js';
import { connectStream, LineReader, readStream } from '../stream.js';
import type net from 'node:net';

/** Read one SMTP reply (possibly multi-line "250-…" then "250 …"); returns its code and last text. */
async function reply(sock: net.Socket, lines: LineReader, pending: string[], signal: Abortable): Promise<{ code: number; text: string }> {
  const take = (): { code: number; text: string } | null => {
    while (pending.length > 0) {
      const l = pending.shift() ?? '';
      const m = /^([0-9]{3})([ -])(.*)$/.exec(l);
      if (!m) throw Object.assign(new Error(`not an SMTP reply: ${JSON.stringify(l.slice(0, 80))}`), { code: ProbeErrorCode.PROTOCOL });
      if (m[2] === ' ') return { code: Number(m[1]), text: m[3] ?? '' };
    }
    return null;
  };
  let r = take();
  if (r) return r;
  const how = await readStream(sock, signal, (c) => {
    pending.push(...lines.push(c));
    r = take();
    return r !== null;
  });
  if (r) return r;
  throw Object.assign(new Error(how === 'end' ? 'connection closed before a complete reply' : 'no reply'), { code: ProbeErrorCode.PROTOCOL });
}

export class SmtpChecker implements Checker {
  readonly type = 'SMTP_CHECK';
  constructor(private readonly target: ProbeTarget, private readonly heloName: string) {}

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    let sock: net.Socket | null = null;
    try {
      sock = await connectStream(this.target, probeAbort(ctx));
      const lines = new LineReader(1024);
      const pending: string[] = [];
      const greet = await reply(sock, lines, pending, probeAbort(ctx));
      if (greet.code < 200 || greet.code > 299) {
        return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.MISMATCH, status: greet.code, detail: `greeting ${greet.code} ${greet.text}`.trim() });
      }
      sock.write(`HELO ${this.heloName}\r\n`);
      const helo = await reply(sock, lines, pending, probeAbort(ctx));
      if (helo.code !== 250) {
        return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.MISMATCH, status: helo.code, detail: `HELO answered ${helo.code} ${helo.text}`.trim() });
      }
      sock.end('QUIT\r\n');
      return verdict(start, performance.now(), { ok: true, status: helo.code });
    } catch (err: unknown) {
      const code = (err as { code?: unknown }).code;
      if (code === ProbeErrorCode.PROTOCOL) return verdict(start, performance.now(), { ok: false, code: ProbeErrorCode.PROTOCOL, detail: (err as Error).message });
      return verdict(start, performance.now(), { ok: false, ...networkFailure(err) });
    } finally {
      sock?.destroy();
    }
  }

  close(): void {}
}
