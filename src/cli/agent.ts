/**
 * `fulcrum agent`: run on a real server; answers the director's agent probes (Equalizer
 * integer by default, HAProxy agent-check words with --dialect haproxy). Logs JSON lines.
 */
import { AgentServer, DEFAULT_LOAD_WEIGHTS, parseWeights, type AgentDialect, type LoadSource } from '../agents/index.js';
import { createLogger } from '../daemon/index.js';
import type { Io } from './check.js';
import type { SignalSource } from './run.js';

export interface AgentCliOptions {
  readonly port: string;
  readonly listen: string;
  readonly dialect: string;
  readonly command?: string | undefined;
  readonly interval: string;
  readonly timeout: string;
  readonly stale: string;
  readonly weights?: string | undefined;
  readonly maxConnections: string;
  readonly probeWait: string;
  readonly logLevel?: string | undefined;
}

function seconds(v: string, name: string, min: number): number | string {
  const n = Number(v);
  return Number.isFinite(n) && n >= min ? n * 1000 : `--${name}: '${v}' is not a number of seconds ≥ ${min}`;
}

export async function runAgent(o: AgentCliOptions, io: Io, signals: SignalSource = process): Promise<number> {
  const port = Number(o.port);
  const errs: string[] = [];
  if (!Number.isInteger(port) || port < 0 || port > 65535) errs.push(`--port: '${o.port}' is not a port`);
  if (o.dialect !== 'equalizer' && o.dialect !== 'haproxy') errs.push(`--dialect: '${o.dialect}' is not equalizer or haproxy`);
  const interval = seconds(o.interval, 'interval', 0.1);
  const timeout = seconds(o.timeout, 'timeout', 0.01);
  const stale = seconds(o.stale, 'stale', 0.1);
  const probeWait = seconds(o.probeWait, 'probe-wait', 0);
  for (const x of [interval, timeout, stale, probeWait]) if (typeof x === 'string') errs.push(x);
  let source: LoadSource | undefined;
  try {
    const maxConnections = Number(o.maxConnections);
    if (!(maxConnections > 0)) throw new Error(`--max-connections: '${o.maxConnections}' is not a positive number`);
    source = o.command !== undefined
      ? { kind: 'command', argv: o.command.trim().split(/\s+/), timeoutMs: typeof timeout === 'number' ? timeout : 2000 }
      : { kind: 'system', weights: parseWeights(o.weights ?? '', { ...DEFAULT_LOAD_WEIGHTS, maxConnections }) };
  } catch (err: unknown) {
    errs.push((err as Error).message);
  }
  if (errs.length > 0 || !source || typeof interval !== 'number' || typeof stale !== 'number' || typeof probeWait !== 'number') {
    for (const e of errs) io.err(`fulcrum agent: ${e}`);
    return 2;
  }
  const log = createLogger((o.logLevel ?? 'info') as 'info');
  const server = new AgentServer({
    port, host: o.listen, dialect: o.dialect as AgentDialect, source, intervalMs: interval, staleMs: stale, probeWaitMs: probeWait,
    onEvent: (e) => {
      if (e.type === 'sample-failed') log.warn({ event: e.type, error: e.error }, `load sample failed: ${e.error} (the last good value stands until it is stale)`);
      else if (e.type === 'sample') log.debug({ event: e.type, value: e.value, detail: e.detail }, `load ${e.value} (${e.detail})`);
      else log.debug({ event: e.type, from: e.from, probe: e.probe, reply: e.reply }, `probe from ${e.from}: answered ${e.reply}`);
    },
  });
  let bound: number;
  try {
    bound = await server.start();
  } catch (err: unknown) {
    io.err(`fulcrum agent: cannot listen on ${o.listen}:${port}: ${(err as Error).message}`);
    await server.stop();
    return 1;
  }
  log.info({ event: 'agent-started', port: bound, dialect: o.dialect, source: source.kind }, `agent answering on ${o.listen}:${bound} (${o.dialect})`);
  process.send?.({ ready: true, port: bound });
  return new Promise((resolve) => {
    const stop = (): void => {
      signals.removeListener('SIGTERM', stop);
      signals.removeListener('SIGINT', stop);
      server.stop().then(() => resolve(0), () => resolve(1));
    };
    signals.on('SIGTERM', stop);
    signals.on('SIGINT', stop);
  });
}
