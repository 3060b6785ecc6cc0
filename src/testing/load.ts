/**
 * Load for end-to-end tests on loopback: a bounded loop of new connections through a
 * virtual service (each must get a real server's answer), and long-lived connections that
 * exchange a line every so often (each must stay with its real server, unbroken). Both
 * record failures and the worst latency, so a test can assert "0 failed" and "no gap".
 */
import type net from 'node:net';
import { fetchText, openSocket } from './net.js';

export interface LoadReport {
  ok: number;
  failed: number;
  errors: string[];
  /** When each of those failed (performance.now()), beside `errors`. */
  failedAt: number[];
  /** Worst time of one request (ms), and when it happened. */
  maxLatencyMs: number;
  /** Answers by real-server name. */
  byName: Record<string, number>;
}

/** Requests on new connections, `concurrency` at a time, until stopped (or `limit` requests). */
export function startLoad(port: number, o: { concurrency?: number; gapMs?: number; limit?: number; host?: string; timeoutMs?: number } = {}): { report: LoadReport; stop(): Promise<LoadReport> } {
  const report: LoadReport = { ok: 0, failed: 0, errors: [], failedAt: [], maxLatencyMs: 0, byName: {} };
  let running = true;
  let sent = 0;
  const worker = async (): Promise<void> => {
    while (running && (o.limit === undefined || sent < o.limit)) {
      sent++;
      const t0 = performance.now();
      try {
        const text = await fetchText(port, { host: o.host ?? '127.0.0.1', payload: 'ping', timeoutMs: o.timeoutMs ?? 5000 });
        const name = text.split('\n')[0] ?? '';
        if (name === '' || !text.includes('ping')) throw new Error(`bad answer ${JSON.stringify(text.slice(0, 40))}`);
        report.ok++;
        report.byName[name] = (report.byName[name] ?? 0) + 1;
      } catch (err: unknown) {
        report.failed++;
        if (report.errors.length < 20) {
          report.errors.push(err instanceof Error ? err.message : String(err));
          report.failedAt.push(performance.now());
        }
      }
      report.maxLatencyMs = Math.max(report.maxLatencyMs, performance.now() - t0);
      if (o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
    }
  };
  const workers = Array.from({ length: o.concurrency ?? 2 }, () => worker());
  return {
    report,
    stop: async () => {
      running = false;
      await Promise.all(workers);
      return report;
    },
  };
}

/** Lines from a socket, none lost between reads. */
class Lines {
  private buf = '';
  private readonly queue: string[] = [];
  private waiter: ((line: string | null) => void) | null = null;
  private ended = false;

  constructor(s: net.Socket) {
    s.setEncoding('utf8');
    s.on('data', (c: string) => {
      this.buf += c;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.queue.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    const end = (): void => { this.ended = true; this.wake(); };
    s.on('end', end);
    s.on('close', end);
    s.on('error', end);
  }

  private wake(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.queue.length > 0) { this.waiter = null; w(this.queue.shift() ?? ''); } else if (this.ended) { this.waiter = null; w(null); }
  }

  next(timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.waiter = null; reject(new Error('timeout waiting for a line')); }, timeoutMs);
      this.waiter = (line) => {
        clearTimeout(timer);
        if (line === null) reject(new Error('connection closed'));
        else resolve(line);
      };
      this.wake();
    });
  }
}

/**
 * Loads a test starts, to stop whatever happens: `const loads = loadPool(); afterEach(() =>
 * loads.stopAll());` — a failed assertion must not leave a request loop running.
 */
export function loadPool(): { start: typeof startLoad; stopAll(): Promise<void> } {
  const running: { stop(): Promise<unknown> }[] = [];
  return {
    start: (port, o) => {
      const l = startLoad(port, o);
      running.push(l);
      return l;
    },
    stopAll: async () => {
      for (const l of running.splice(0)) await l.stop();
    },
  };
}

export interface HeldConnection {
  readonly server: string;
  /** Exchanges that failed (no echo, or the connection broke). */
  failures: number;
  exchanges: number;
}

/**
 * `n` long-lived connections to a `name-echo` service: each reads its server's name, then
 * sends a line every `everyMs` and expects it back. `close()` ends them and reports.
 */
export async function holdConnections(port: number, n: number, everyMs = 200, host = '127.0.0.1'): Promise<{ held: HeldConnection[]; close(): Promise<HeldConnection[]> }> {
  const held: HeldConnection[] = [];
  const socks: net.Socket[] = [];
  const loops: Promise<void>[] = [];
  let running = true;
  for (let i = 0; i < n; i++) {
    const s = await openSocket(port, host);
    const lines = new Lines(s);
    s.write('hello\n');
    const server = await lines.next(5000);
    await lines.next(5000); // the echo of hello
    const h: HeldConnection = { server, failures: 0, exchanges: 0 };
    held.push(h);
    socks.push(s);
    loops.push((async () => {
      let k = 0;
      while (running) {
        await new Promise((r) => setTimeout(r, everyMs));
        if (!running) break;
        const line = `c${i}-${k++}`;
        try {
          s.write(`${line}\n`);
          const back = await lines.next(5000);
          if (back !== line) throw new Error(`got ${back}`);
          h.exchanges++;
        } catch {
          h.failures++;
          break;
        }
      }
    })());
  }
  return {
    held,
    close: async () => {
      running = false;
      await Promise.all(loops);
      for (const s of socks) s.destroy();
      return held;
    },
  };
}
