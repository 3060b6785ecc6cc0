/** Run a command (no shell) and capture up to 4 KiB of its output, with a timeout. */
import { spawn } from 'node:child_process';

export function runCommandOutput(argv: readonly string[], timeoutMs: number): Promise<{ ok: true; output: string } | { ok: false; error: string }> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) return resolve({ ok: false, error: 'empty command' });
    const child = spawn(cmd, args, { shell: false, stdio: ['ignore', 'pipe', 'ignore'], detached: true });
    let out = '';
    let settled = false;
    const finish = (r: { ok: true; output: string } | { ok: false; error: string }): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      try { if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL'); } catch { child.kill('SIGKILL'); }
      finish({ ok: false, error: `command timed out after ${timeoutMs} ms` });
    }, timeoutMs);
    child.stdout?.on('data', (c: Buffer) => { if (out.length < 4096) out += c.toString('utf8'); });
    child.once('error', (err) => finish({ ok: false, error: err.message }));
    child.once('close', (code) => finish(code === 0 ? { ok: true, output: out } : { ok: false, error: `command exited ${code ?? 'by signal'}` }));
  });
}
