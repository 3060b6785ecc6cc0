/**
 * How the daemon reads its configuration file. `ConfigLoader` is the boundary:
 *
 *  - `inProcessConfigLoader`: on the caller's thread (tests, `fulcrum check`);
 *  - `threadConfigLoader`: in a worker thread of its own, one per load, with a memory
 *    ceiling and a deadline. Parsing is CPU work that grows with the file: a configuration
 *    bomb (a generator expanding to millions of lines, a 160,000-line block) must never stall
 *    the loop that keeps VRRP's timers or serves the API, and must not take the process's
 *    memory with it. A load that exceeds either bound is a located error, like any other.
 */
import { Worker } from 'node:worker_threads';
import { DiagnosticCode, formatDiagnostic, type Diagnostic } from '../errors/index.js';
import { loadKeepalivedConfig, type LoadResult } from './keepalived/index.js';
import type { FulcrumConfig } from '../model/types.js';

export interface ConfigLoadOptions {
  readonly configId?: string | undefined;
}

export interface ConfigLoader {
  load(file: string, o?: ConfigLoadOptions): Promise<LoadResult>;
}

export const inProcessConfigLoader: ConfigLoader = {
  load: (file, o = {}) => Promise.resolve(loadKeepalivedConfig(file, o.configId !== undefined ? { configId: o.configId } : {})),
};

export interface ThreadLoaderOptions {
  /** Milliseconds a load may take (default 60 s). */
  readonly timeoutMs?: number;
  /** The reading thread's heap ceiling in MiB (default 1024). */
  readonly maxMemoryMb?: number;
}

const EMPTY_CONFIG: FulcrumConfig = {
  global: {} as FulcrumConfig['global'], trackFiles: [], vrrpScripts: [], vrrpSyncGroups: [], vrrpInstances: [], virtualServerGroups: [], virtualServers: [],
};

/** A load that did not finish: one located error naming the bound it hit. */
function failed(file: string, message: string): LoadResult {
  const d: Diagnostic = { severity: 'error', code: DiagnosticCode.LIMIT, message, loc: { file, line: 1, col: 1 } };
  return { config: EMPTY_CONFIG, diagnostics: [d], files: [file], ok: false };
}

export function threadConfigLoader(o: ThreadLoaderOptions = {}): ConfigLoader {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const maxMemoryMb = o.maxMemoryMb ?? 1024;
  return {
    load(file, lo = {}) {
      return new Promise<LoadResult>((resolve) => {
        let done = false;
        const worker = new Worker(new URL('./thread/worker.js', import.meta.url), {
          workerData: { file, ...(lo.configId !== undefined ? { configId: lo.configId } : {}) },
          resourceLimits: { maxOldGenerationSizeMb: maxMemoryMb, stackSizeMb: 8 },
          stdout: false, stderr: false,
        });
        const finish = (r: LoadResult): void => {
          if (done) return;
          done = true;
          clearTimeout(timer);
          resolve(r);
          worker.terminate().catch(() => undefined);
        };
        const timer = setTimeout(() => finish(failed(file, `reading the configuration took longer than ${timeoutMs / 1000} s; it was abandoned (is a generator or an include expanding without end?)`)), timeoutMs);
        worker.once('message', (r: LoadResult) => finish(r));
        worker.once('error', (err: Error) => {
          const code = (err as NodeJS.ErrnoException).code;
          finish(failed(file, code === 'ERR_WORKER_OUT_OF_MEMORY'
            ? `reading the configuration needed more than ${maxMemoryMb} MiB; it was abandoned`
            : `reading the configuration failed: ${err.message}`));
        });
        worker.once('exit', (c) => finish(failed(file, `the configuration reader exited (${c}) without an answer`)));
      });
    },
  };
}

/** The first error of a failed load, for one-line messages. */
export function firstError(r: LoadResult): string {
  const e = r.diagnostics.find((d) => d.severity === 'error');
  return e ? formatDiagnostic(e) : 'invalid configuration';
}
