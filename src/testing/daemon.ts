/**
 * Run `fulcrum run` as a child process for end-to-end tests: config in a temp directory,
 * JSON log lines collected, waits bounded in time, and always killed on cleanup.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './index.js';

export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly event?: string;
  readonly [k: string]: unknown;
}

export interface RunningDaemon {
  readonly proc: ChildProcess;
  readonly dir: string;
  readonly configFile: string;
  readonly logs: LogLine[];
  stderr: string;
  /** Resolve when a log line matches (bounded). */
  waitLog(pred: (l: LogLine) => boolean, timeoutMs?: number, what?: string): Promise<LogLine>;
  /** Resolve with the exit code (bounded). */
  waitExit(timeoutMs?: number): Promise<number | null>;
  writeConfig(text: string): void;
  signal(sig: NodeJS.Signals): void;
  /** Resident set size of the daemon, bytes (from /proc). */
  rss(): number;
  cleanup(): Promise<void>;
}

/**
 * `prefix` runs the daemon under another command (e.g. setpriv to drop a capability).
 */
export async function startDaemon(config: string, opts: { args?: string[]; spawn?: SpawnOptions; waitStarted?: boolean; prefix?: string[] } = {}): Promise<RunningDaemon> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-run-'));
  fs.chmodSync(dir, 0o755);
  const configFile = path.join(dir, 'fulcrum.conf');
  fs.writeFileSync(configFile, config);
  const argv = [process.execPath, path.join(repoRoot(), 'bin', 'fulcrum.js'), 'run', '-f', configFile, '--log-level', 'info',
    '--api-socket', path.join(dir, 'fulcrum.sock'), '--state-file', path.join(dir, 'runtime.json'), ...(opts.args ?? [])];
  const [cmd, ...rest] = [...(opts.prefix ?? []), ...argv] as [string, ...string[]];
  const proc = spawn(cmd, rest, {
    stdio: ['ignore', 'pipe', 'pipe'], ...opts.spawn,
  });
  const logs: LogLine[] = [];
  const waiters = new Set<() => void>();
  let buf = '';
  proc.stdout?.setEncoding('utf8');
  proc.stdout?.on('data', (c: string) => {
    buf += c;
    let i: number;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        logs.push({ level: 0, msg: line });
      }
    }
    for (const w of [...waiters]) w();
  });
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  const d: RunningDaemon = {
    proc, dir, configFile, logs, stderr: '',
    waitLog: (pred, timeoutMs = 10000, what = 'log line') => new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = logs.find(pred);
        if (hit) {
          clearTimeout(timer);
          waiters.delete(check);
          resolve(hit);
        }
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`timed out waiting for ${what}; logs: ${logs.map((l) => l.msg).join(' | ')}; stderr: ${d.stderr}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    }),
    waitExit: (timeoutMs = 15000) => Promise.race([
      exited,
      new Promise<number | null>((_, reject) => setTimeout(() => reject(new Error('daemon did not exit in time')), timeoutMs).unref()),
    ]),
    writeConfig: (text) => fs.writeFileSync(configFile, text),
    signal: (sig) => { proc.kill(sig); },
    rss: () => {
      const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) * 1024 : NaN;
    },
    cleanup: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGKILL');
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  proc.stderr?.setEncoding('utf8');
  proc.stderr?.on('data', (c: string) => { d.stderr += c; });
  if (opts.waitStarted ?? true) {
    try {
      await Promise.race([
        // 'ready': configuration applied, API listening, SIGHUP handled.
        d.waitLog((l) => l.event === 'ready', 15000, 'the daemon to be ready'),
        exited.then((code) => { throw new Error(`daemon exited ${code}: ${d.stderr}`); }),
      ]);
    } catch (err: unknown) {
      await d.cleanup();
      throw err;
    }
  }
  return d;
}
