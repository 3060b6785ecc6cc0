/**
 * Running operator scripts (MISC_CHECK, notify_up/notify_down): always without a shell
 * (argv as configured, arguments appended as separate words, nothing interpolated into a
 * command line), as the configured user, with a timeout that ends the whole process group
 * (SIGTERM, then SIGKILL after a grace, as keepalived does). Never rejects: a script that
 * cannot start is an outcome with `error`.
 * Also `fulcrum agent --command`, which keeps the first bytes of the output.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { ScriptSpec } from '../model/types.js';

export interface ScriptUser {
  readonly user: string;
  readonly group?: string | undefined;
}

export interface ScriptOutcome {
  /** Exit status, or null when killed or not started. */
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  /** Why it could not run (spawn error, unknown user). */
  readonly error?: string | undefined;
  readonly ms: number;
  /** Standard output, up to `captureBytes` (empty unless asked for). */
  readonly output: string;
}

export interface RunScriptOptions {
  readonly timeoutMs: number;
  /** Words appended to the configured argv (each its own argument). */
  readonly args?: readonly string[];
  /** Used when the script names no user (global script_user). */
  readonly defaultUser?: ScriptUser | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Keep up to this many bytes of standard output (default: none; output is discarded). */
  readonly captureBytes?: number;
  /** Milliseconds between SIGTERM at the timeout and SIGKILL (default KILL_GRACE_MS). */
  readonly killGraceMs?: number;
}

/** Milliseconds a timed-out script's process group has between SIGTERM and SIGKILL. */
export const KILL_GRACE_MS = 2000;

/** Look a user (name or numeric id) up in /etc/passwd, and its group in /etc/group. */
export function resolveUser(u: ScriptUser, files = { passwd: '/etc/passwd', group: '/etc/group' }): { uid: number; gid: number } {
  const passwd = fs.readFileSync(files.passwd, 'utf8').split('\n').map((l) => l.split(':'));
  const pw = passwd.find((f) => f[0] === u.user) ?? (/^[0-9]+$/.test(u.user) ? passwd.find((f) => f[2] === u.user) : undefined);
  let uid: number;
  let gid: number;
  if (pw) {
    uid = Number(pw[2]);
    gid = Number(pw[3]);
  } else if (/^[0-9]+$/.test(u.user)) {
    uid = Number(u.user);
    gid = uid;
  } else throw new Error(`unknown user '${u.user}'`);
  if (u.group !== undefined) {
    const gr = fs.readFileSync(files.group, 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === u.group || f[2] === u.group);
    if (gr) gid = Number(gr[2]);
    else if (/^[0-9]+$/.test(u.group)) gid = Number(u.group);
    else throw new Error(`unknown group '${u.group}'`);
  }
  return { uid, gid };
}

export function runScript(spec: ScriptSpec, o: RunScriptOptions): Promise<ScriptOutcome> {
  const start = performance.now();
  const ms = (): number => Math.round(performance.now() - start);
  return new Promise((resolve) => {
    const [cmd, ...rest] = spec.argv;
    if (o.signal?.aborted) return resolve({ exitCode: null, signal: null, timedOut: true, error: 'not started: aborted', ms: 0, output: '' });
    if (cmd === undefined) return resolve({ exitCode: null, signal: null, timedOut: false, error: 'empty command', ms: 0, output: '' });
    let ids: { uid: number; gid: number } | undefined;
    const who = spec.user !== undefined ? { user: spec.user, group: spec.group } : o.defaultUser;
    try {
      if (who) ids = resolveUser(who);
    } catch (err: unknown) {
      return resolve({ exitCode: null, signal: null, timedOut: false, error: (err as Error).message, ms: ms(), output: '' });
    }
    // Dropping privilege only makes sense (and is only allowed) when running as root.
    const dropTo = ids && process.getuid?.() === 0 ? ids : undefined;
    let timedOut = false;
    let settled = false;
    const capture = o.captureBytes ?? 0;
    let output = '';
    const bad = [cmd, ...rest, ...(o.args ?? [])].find((a) => a.includes('\0'));
    if (bad !== undefined) return resolve({ exitCode: null, signal: null, timedOut: false, error: `argument ${JSON.stringify(bad)} contains a NUL byte`, ms: 0, output: '' });
    let child: ChildProcess;
    try {
      child = spawn(cmd, [...rest, ...(o.args ?? [])], {
        shell: false, stdio: capture > 0 ? ['ignore', 'pipe', 'ignore'] : 'ignore', detached: true,
        ...(dropTo ? { uid: dropTo.uid, gid: dropTo.gid } : {}),
      });
    } catch (err: unknown) {
      // spawn throws synchronously for what it cannot even try (EMFILE, bad arguments):
      // an outcome like any other, never a rejection.
      return resolve({ exitCode: null, signal: null, timedOut: false, error: err instanceof Error ? err.message : String(err), ms: ms(), output: '' });
    }
    const signalGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        child.kill(sig);
      }
    };
    // As keepalived: SIGTERM at the timeout, SIGKILL if the group is still there after the grace.
    let killTimer: NodeJS.Timeout | null = null;
    const stopIt = (): void => {
      if (timedOut) return;
      timedOut = true;
      signalGroup('SIGTERM');
      killTimer = setTimeout(() => signalGroup('SIGKILL'), o.killGraceMs ?? KILL_GRACE_MS);
      killTimer.unref();
    };
    // An infinite timeout is keepalived's TIMER_NEVER: the script runs until it ends or is aborted.
    const timer = Number.isFinite(o.timeoutMs) ? setTimeout(stopIt, o.timeoutMs) : undefined;
    const onAbort = stopIt;
    o.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout?.on('data', (c: Buffer) => { if (output.length < capture) output += c.toString('utf8').slice(0, capture - output.length); });
    const finish = (r: Omit<ScriptOutcome, 'ms' | 'timedOut' | 'output'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      resolve({ ...r, timedOut, ms: ms(), output });
    };
    child.once('error', (err) => finish({ exitCode: null, signal: null, error: err.message }));
    // 'close': the process has exited and its output (if captured) has been read.
    child.once('close', (code, signal) => {
      // The group may still hold grandchildren the script left behind: end them too.
      if (timedOut) signalGroup('SIGKILL');
      if (killTimer !== null) clearTimeout(killTimer);
      finish({ exitCode: code, signal });
    });
  });
}

/** "exit 3", "killed after the 2000 ms timeout", "cannot run: …" */
export function describeOutcome(o: ScriptOutcome, timeoutMs: number): string {
  if (o.error !== undefined) return `cannot run: ${o.error}`;
  if (o.timedOut) return `killed after the ${timeoutMs} ms timeout`;
  if (o.signal) return `killed by ${o.signal}`;
  return `exit ${o.exitCode ?? '?'}`;
}
