/**
 * `fulcrum demo`: the quick start. Starts a small HTTP server for every loopback real
 * server of the configuration's PROXY services, starts the director on the same file, sends
 * a few requests through each virtual server printing which real server answered, and keeps
 * running (until Ctrl-C) so you can try it yourself with curl.
 */
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadKeepalivedConfig } from '../config/index.js';
import { formatDiagnostic } from '../errors/index.js';
import { formatHostPort } from '../model/address.js';
import { serviceKey } from '../model/keys.js';
import { Daemon, attachLogger, createLogger } from '../daemon/index.js';
import { ProxyDataPlane } from '../dataplane/index.js';
import type { Io } from './check.js';
import type { SignalSource } from './run.js';

export interface DemoCliOptions {
  readonly file?: string | undefined;
  readonly requests: string;
  /** Stop after the requests instead of waiting for Ctrl-C (for scripts and tests). */
  readonly exit?: boolean | undefined;
}

/** The package root (holding package.json), from this compiled file. */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
  return dir;
}

function isLoopback(a: string): boolean {
  return a === '::1' || a.startsWith('127.');
}

function get(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: '/', agent: false, timeout: 3000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve(body.trim()));
    });
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

export async function runDemo(o: DemoCliOptions, io: Io, signals: SignalSource = process): Promise<number> {
  const file = o.file ?? path.join(packageRoot(), 'examples', 'quickstart.conf');
  const requests = Number(o.requests);
  if (!Number.isInteger(requests) || requests < 0) {
    io.err(`fulcrum demo: --requests: '${o.requests}' is not a whole number`);
    return 2;
  }
  const loaded = loadKeepalivedConfig(file);
  if (!loaded.ok) {
    for (const d of loaded.diagnostics) if (d.severity === 'error') io.err(formatDiagnostic(d));
    return 1;
  }
  const services = loaded.config.virtualServers.filter((vs) => vs.method === 'proxy' && vs.protocol === 'tcp' && vs.endpoint.kind === 'address');
  if (services.length === 0) {
    io.err(`fulcrum demo: ${file} has no TCP PROXY virtual server on an address to demonstrate`);
    return 1;
  }
  // Demo real servers: loopback only, one per distinct address:port.
  const backends = new Map<string, { address: string; port: number; n: number }>();
  for (const vs of services) {
    for (const rs of vs.realServers) {
      if (!isLoopback(rs.address)) continue;
      const k = formatHostPort(rs.address, rs.port);
      if (!backends.has(k)) backends.set(k, { address: rs.address, port: rs.port, n: backends.size + 1 });
    }
  }
  const servers: http.Server[] = [];
  for (const [k, b] of backends) {
    const srv = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(`Hello from real server ${b.n} (${k})\n`);
    });
    const ok = await new Promise<boolean>((resolve) => {
      srv.once('error', () => resolve(false));
      srv.listen(b.port, b.address, () => resolve(true));
    });
    if (ok) servers.push(srv);
    else io.out(`note: ${k} is already in use — using whatever listens there as that real server`);
  }
  io.out(`Started ${servers.length} demo real server(s): ${[...backends.keys()].join(', ')}`);

  const log = createLogger('warn', 2);
  const detach = attachLogger(log);
  const plane = new ProxyDataPlane();
  const daemon = new Daemon({ configFile: file, plane, drainMs: 2000 });
  const cleanup = async (): Promise<void> => {
    await daemon.stop('demo');
    detach();
    await Promise.all(servers.map((s) => new Promise<void>((r) => { s.closeAllConnections(); s.close(() => r()); })));
  };
  const started = await daemon.start();
  if (!started.ok) {
    for (const e of started.errors) io.err(`fulcrum demo: ${e}`);
    await cleanup();
    return 1;
  }
  for (const vs of services) {
    if (vs.endpoint.kind !== 'address') continue;
    const { address, port } = vs.endpoint;
    const url = `http://${formatHostPort(address, port)}/`;
    io.out(`\nDirector up: ${serviceKey(vs)} (${vs.scheduler}, ${vs.realServers.map((r) => `${formatHostPort(r.address, r.port)} w${r.weight}`).join(', ')})`);
    const tally = new Map<string, number>();
    for (let i = 1; i <= requests; i++) {
      try {
        const body = await get(address, port);
        io.out(`  request ${String(i).padStart(2)} → ${body}`);
        const who = /\(([^)]+)\)/.exec(body)?.[1] ?? body;
        tally.set(who, (tally.get(who) ?? 0) + 1);
      } catch (err: unknown) {
        io.out(`  request ${String(i).padStart(2)} → failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    if (requests > 0) io.out(`  split: ${[...tally].map(([k, n]) => `${k} ${n}`).join(', ')}`);
    io.out(`\nSee it balance yourself:\n  for i in $(seq 6); do curl -s ${url}; done`);
  }
  if (o.exit) {
    await cleanup();
    return 0;
  }
  io.out('\nThe director keeps running; press Ctrl-C to stop.');
  return new Promise<number>((resolve) => {
    const onSig = (): void => {
      signals.removeListener('SIGINT', onSig);
      signals.removeListener('SIGTERM', onSig);
      cleanup().then(() => resolve(0), () => resolve(1));
    };
    signals.on('SIGINT', onSig);
    signals.on('SIGTERM', onSig);
  });
}
