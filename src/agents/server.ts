/**
 * `fulcrum agent`: the program that runs on a real server and answers the director's
 * agent probes. The load is sampled in the background every interval — from the system
 * (load.ts) or from a user command — so a probe is answered at once from the last value
 * and never waits for a slow command. A value older than `staleMs` is reported as −1
 * (unavailable). Equalizer dialect: one integer −1..100. HAProxy dialect: `up N%` with
 * N = 100 − load, or `down` when unavailable (a command's own agent-check words pass through).
 */
import { supervise } from '../errors/index.js';
import net from 'node:net';
import { describeOutcome, runScript } from '../notify/script.js';
import { computeLoad, readSample, type LoadSample, type LoadWeights } from './load.js';
import { parseAgentReply } from './reply.js';

export type AgentDialect = 'equalizer' | 'haproxy';

export type LoadSource =
  | { readonly kind: 'system'; readonly weights: LoadWeights; readonly sample?: () => LoadSample }
  | { readonly kind: 'command'; readonly argv: readonly string[]; readonly timeoutMs: number };

export interface AgentServerOptions {
  readonly port: number;
  readonly host: string;
  readonly dialect: AgentDialect;
  readonly source: LoadSource;
  readonly intervalMs: number;
  readonly staleMs: number;
  /** How long to wait for the director's probe string before answering anyway. */
  readonly probeWaitMs: number;
  readonly onEvent?: (e: AgentServerEvent) => void;
}

export type AgentServerEvent =
  | { readonly type: 'sample'; readonly value: string; readonly detail: string }
  | { readonly type: 'sample-failed'; readonly error: string }
  | { readonly type: 'probe'; readonly from: string; readonly probe: string; readonly reply: string };

/** The reply for a value (integer load or agent-check words) in a dialect. */
export function formatReply(value: string | null, dialect: AgentDialect): string {
  if (value === null) return dialect === 'equalizer' ? '-1\n' : 'down #stale\n';
  if (!/^-?[0-9]+$/.test(value)) return `${value}\n`;
  const load = Number(value);
  if (dialect === 'equalizer') return `${load}\n`;
  return load < 0 ? 'down\n' : `up ${Math.max(0, 100 - load)}%\n`;
}

export class AgentServer {
  private server: net.Server | null = null;
  private timer: NodeJS.Timeout | null = null;
  private value: string | null = null;
  private valueAt = 0;
  private prev: LoadSample | null = null;
  private sampling = false;
  /** The last probe string the director sent. */
  lastProbe = '';

  constructor(private readonly o: AgentServerOptions) {}

  /** The value a probe gets now: the last good sample, or null when stale. */
  current(now = performance.now()): string | null {
    return this.value !== null && now - this.valueAt <= this.o.staleMs ? this.value : null;
  }

  async start(): Promise<number> {
    await this.sample();
    this.timer = setInterval(() => supervise('agent', this.sample()), this.o.intervalMs);
    this.server = net.createServer((s) => this.answer(s));
    await new Promise<void>((resolve, reject) => {
      this.server?.once('error', reject);
      this.server?.listen(this.o.port, this.o.host, () => resolve());
    });
    return (this.server.address() as net.AddressInfo).port;
  }

  stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    return new Promise((r) => (this.server ? this.server.close(() => r()) : r()));
  }

  private answer(s: net.Socket): void {
    s.on('error', () => undefined);
    s.setTimeout(5000, () => s.destroy());
    let probe = '';
    let done = false;
    const reply = (): void => {
      if (done) return;
      done = true;
      clearTimeout(wait);
      this.lastProbe = probe.trim();
      const text = formatReply(this.current(), this.o.dialect);
      this.o.onEvent?.({ type: 'probe', from: s.remoteAddress ?? '', probe: this.lastProbe, reply: text.trim() });
      s.end(text);
    };
    const wait = setTimeout(reply, this.o.probeWaitMs);
    s.on('data', (c: Buffer) => {
      probe += c.toString('utf8');
      if (probe.includes('\n') || probe.length >= 256) reply();
    });
    s.on('end', reply);
  }

  /** Take one sample (never two at once: a slow command is not piled up). */
  async sample(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const src = this.o.source;
      if (src.kind === 'system') {
        const cur = (src.sample ?? readSample)();
        const b = computeLoad(this.prev, cur, src.weights);
        this.prev = cur;
        this.set(String(b.load), `cpu ${b.cpu.toFixed(0)}% load/core ${b.loadavg.toFixed(0)}% mem ${b.memory.toFixed(0)}% conns ${b.connections.toFixed(0)}%`);
      } else {
        const r = await runScript({ argv: src.argv, text: src.argv.join(' ') }, { timeoutMs: src.timeoutMs, captureBytes: 4096 });
        if (r.exitCode !== 0) return this.o.onEvent?.({ type: 'sample-failed', error: `command ${describeOutcome(r, src.timeoutMs)}` });
        const line = r.output.split('\n')[0]?.trim() ?? '';
        if (/^-?[0-9]+$/.test(line) && Number(line) >= -1 && Number(line) <= 100) this.set(line, 'command');
        else if (parseAgentReply(line).ok) this.set(line, 'command (agent-check words)');
        else this.o.onEvent?.({ type: 'sample-failed', error: `command printed ${JSON.stringify(line.slice(0, 80))}, not a load -1..100 or agent-check words` });
      }
    } catch (err: unknown) {
      this.o.onEvent?.({ type: 'sample-failed', error: (err as Error).message });
    } finally {
      this.sampling = false;
    }
  }

  private set(value: string, detail: string): void {
    this.value = value;
    this.valueAt = performance.now();
    this.o.onEvent?.({ type: 'sample', value, detail });
  }
}
