/**
 * The control API (HTTP/JSON, fastify), /metrics and the dashboard.
 *
 * - A unix socket (mode 0600) carries everything without a token: the file's permissions
 *   are the authentication, as for keepalived's and HAProxy's control sockets.
 * - An optional TCP address requires `Authorization: Bearer <token>` on every request that
 *   carries data (/v1, /metrics, the dashboard's /ui/state); the operator may open /metrics
 *   or the read-only dashboard explicitly (`--api-open metrics,dashboard`). The dashboard's
 *   static files hold no data and are always served.
 * - Every change is an ipvsadm command (JSON bodies are translated into one), applied by
 *   `Daemon.change`: checked with ipvsadm's rules, saved in the runtime overlay, then
 *   reconciled like a reload — one change at a time, in arrival order.
 * - Bodies are validated by JSON schema: malformed JSON, a wrong type or an unknown field
 *   is a 400 naming the field.
 */
import fs from 'node:fs';
import { SYNC_DEFAULT_GROUP, SYNC_DEFAULT_MAXLEN, SYNC_DEFAULT_PORT, SYNC_DEFAULT_TTL } from '../sync/index.js';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import { DiagnosticSink, errorMessage, FailureCode, FulcrumError, formatDiagnostic, reportFailure } from '../errors/index.js';
import { formatHostPort } from '../model/address.js';
import { formatIpvsSave, joinArgs, METHOD_FLAG, parseIpvsadmLine, serviceIdKey, splitLine, type IpvsCommand } from '../config/ipvsadm/index.js';
import type { Daemon, ChangeOutcome } from '../daemon/index.js';
import { describeOverlay, ipvsView } from '../runtime/index.js';
import type { Metrics } from './metrics.js';
import type { StatusBoard } from './status.js';
import { statusView } from './view.js';
import { TrafficHistory } from './history.js';
import { WriterPool } from './bytes.js';

export const ApiErrorCode = {
  BAD_REQUEST: 'E_API_BAD_REQUEST',
  UNAUTHORIZED: 'E_API_UNAUTHORIZED',
  NOT_FOUND: 'E_API_NOT_FOUND',
  /** ipvsadm refused the change ("Service already exists", …); nothing changed. */
  REFUSED: 'E_API_REFUSED',
  UNAVAILABLE: 'E_API_UNAVAILABLE',
  /** The socket or address cannot be used. */
  LISTEN: 'E_API_LISTEN',
} as const;

/** What the API needs of the daemon. */
export type ApiDaemon = Pick<Daemon, 'configuration' | 'plane' | 'runtime' | 'drains' | 'reloads' | 'change' | 'forgetRuntime' | 'drain' | 'undrain' | 'reload' | 'vrrpStatus' | 'vrrpDrops' | 'sync' | 'syncControl' | 'bgp'>;

export type OpenPart = 'metrics' | 'dashboard';

export interface ApiOptions {
  readonly daemon: ApiDaemon;
  readonly board: StatusBoard;
  readonly metrics: Metrics;
  /** Unix socket path; null = none. */
  readonly socketPath: string | null;
  /** TCP address; requires `token`. */
  readonly listen?: { readonly host: string; readonly port: number } | null;
  readonly token?: string | null;
  /** What the TCP address serves without the token (default: nothing but the dashboard's static files). */
  readonly open?: ReadonlySet<OpenPart>;
  /** Built dashboard (index.html + assets); null = not served. */
  readonly dashboardDir?: string | null;
  /** Traffic history behind the dashboard's charts (GET /ui/history); none = an empty history. */
  readonly history?: TrafficHistory;
  /** Connection caps, deadlines and body size (default DEFAULT_API_LIMITS). */
  readonly limits?: Partial<ApiLimits>;
  /**
   * Fault injection for tests (FULCRUM_FAULT_INJECTION=1 in the environment): POST
   * /v1/debug/stall stalls the control plane, POST /v1/debug/workers/:n/crash crashes a
   * data-plane worker. Never on otherwise.
   */
  readonly faults?: boolean;
}

export interface RunningApi {
  /** The TCP address actually bound (port 0 → a free port). */
  readonly tcp: { readonly host: string; readonly port: number } | null;
  readonly socketPath: string | null;
  close(): Promise<void>;
}

/** A request the API answers with an error status; `code` is one of ApiErrorCode. */
export class ApiError extends FulcrumError {
  constructor(readonly status: number, code: string, message: string, readonly extra: Record<string, unknown> = {}) {
    super(code, message);
  }
}

// --- JSON schemas -------------------------------------------------------------------

const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos', 'agent'];
const METHODS = ['dr', 'nat', 'tun', 'proxy'];
const persistence = {
  type: ['object', 'null'], additionalProperties: false, required: ['timeout'],
  properties: { timeout: { type: 'integer', minimum: 1, maximum: 31536000 }, netmask: { type: 'string', maxLength: 64 } },
};
const serviceOptions = {
  scheduler: { type: 'string', enum: SCHEDULERS },
  flags: { type: 'array', maxItems: 8, items: { type: 'string', enum: ['sh-fallback', 'sh-port', 'mh-fallback', 'mh-port', 'flag-1', 'flag-2', 'flag-3'] } },
  persistence,
  ops: { type: 'boolean' },
};
const serverOptions = {
  method: { type: 'string', enum: METHODS },
  weight: { type: 'integer', minimum: 0, maximum: 65535 },
  uthreshold: { type: 'integer', minimum: 0, maximum: 2147483647 },
  lthreshold: { type: 'integer', minimum: 0, maximum: 2147483647 },
};
const address = { type: 'string', minLength: 2, maxLength: 64 };
const port = { type: 'integer', minimum: 0, maximum: 65535 };

const SCHEMAS = {
  addService: {
    type: 'object', additionalProperties: false,
    properties: { protocol: { type: 'string', enum: ['tcp', 'udp', 'sctp'] }, address, port, fwmark: { type: 'integer', minimum: 1, maximum: 4294967295 }, family: { type: 'string', enum: ['inet', 'inet6'] }, ...serviceOptions },
    oneOf: [{ required: ['protocol', 'address', 'port'] }, { required: ['fwmark'] }],
  },
  editService: { type: 'object', additionalProperties: false, minProperties: 1, properties: serviceOptions },
  addServer: { type: 'object', additionalProperties: false, required: ['address'], properties: { address, port, ...serverOptions } },
  editServer: { type: 'object', additionalProperties: false, minProperties: 1, properties: serverOptions },
  ipvsadm: {
    type: 'object', additionalProperties: false, required: ['commands'],
    properties: { commands: { type: 'array', minItems: 1, maxItems: 100000, items: { type: 'string', maxLength: 4096 } } },
  },
  zero: { type: ['object', 'null'], additionalProperties: false, properties: { service: { type: 'string', maxLength: 200 } } },
  sync: {
    type: 'object', additionalProperties: false, required: ['action', 'role'],
    properties: {
      action: { type: 'string', enum: ['start', 'stop'] }, role: { type: 'string', enum: ['master', 'backup'] },
      interface: { type: 'string', minLength: 1, maxLength: 15, pattern: '^[^/\\s:]+$' }, syncid: { type: 'integer', minimum: 0, maximum: 255 },
      maxlen: { type: 'integer', minimum: 44, maximum: 65507 }, group: { type: 'string', pattern: '^2(2[4-9]|3[0-9])\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}$' },
      port: { type: 'integer', minimum: 1, maximum: 65535 }, ttl: { type: 'integer', minimum: 1, maximum: 255 },
    },
  },
  drain: {
    type: 'object', additionalProperties: false, required: ['server'],
    properties: { server: { type: 'string', maxLength: 80 }, service: { type: 'string', maxLength: 200 }, deadline: { type: 'number', exclusiveMinimum: 0, maximum: 31536000 } },
  },
  undrain: {
    type: 'object', additionalProperties: false, required: ['server'],
    properties: { server: { type: 'string', maxLength: 80 }, service: { type: 'string', maxLength: 200 } },
  },
} as const;

// --- ipvsadm translation --------------------------------------------------------------

/** `tcp 10.0.0.1:80` → `-t 10.0.0.1:80`; `fwmark 8 inet6` → `-f 8 -6`. */
export function selectorOf(key: string): string[] {
  const m = /^(tcp|udp|sctp) (\S+)$/.exec(key);
  if (m) return [m[1] === 'tcp' ? '-t' : m[1] === 'udp' ? '-u' : '--sctp-service', m[2] as string];
  const f = /^fwmark (\d+) (inet6?)$/.exec(key);
  if (f) return ['-f', f[1] as string, ...(f[2] === 'inet6' ? ['-6'] : [])];
  if (key.startsWith('group ')) throw new ApiError(404, ApiErrorCode.NOT_FOUND, `${key}: a virtual_server_group service is changed in the configuration file, not at runtime`);
  throw new ApiError(404, ApiErrorCode.NOT_FOUND, `no service '${key}' (keys look like "tcp 10.0.0.1:80" or "fwmark 8 inet")`);
}


/** Parse ipvsadm lines; a bad one is a 400 naming its index, line and column. */
export function parseCommands(lines: readonly string[], what: string): IpvsCommand[] {
  const out: IpvsCommand[] = [];
  lines.forEach((line, i) => {
    const sink = new DiagnosticSink();
    const cmd = parseIpvsadmLine(splitLine(line, what, i + 1), sink);
    const err = sink.items.find((d) => d.severity === 'error');
    if (!cmd || err) throw new ApiError(400, ApiErrorCode.BAD_REQUEST, err ? formatDiagnostic(err) : `${what}:${i + 1}: empty command`, { index: i });
    if (cmd.op === 'start-daemon' || cmd.op === 'stop-daemon') {
      throw new ApiError(400, ApiErrorCode.BAD_REQUEST, `${what}:${i + 1}: the sync daemon is not part of the table: use POST /v1/sync`, { index: i });
    }
    if (cmd.op === 'list' || cmd.op === 'save' || cmd.op === 'restore') {
      throw new ApiError(400, ApiErrorCode.BAD_REQUEST, `${what}:${i + 1}: ${cmd.op} is a read: use GET /v1/stats or GET /v1/ipvsadm`, { index: i });
    }
    out.push(cmd);
  });
  return out;
}

// --- the app --------------------------------------------------------------------------

function bearer(req: FastifyRequest): string | null {
  const h = req.headers.authorization;
  if (typeof h !== 'string') return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(h);
  return m ? (m[1] as string) : null;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** The dashboard's static files: code and styles, no data — served without the token. */
function isDashboardAsset(url: string): boolean {
  return url === '/' || url === '/index.html' || url.startsWith('/assets/');
}

/** What one API listener allows a client (see ApiOptions.limits). */
export interface ApiLimits {
  /** Connections open at once, over all clients. */
  readonly connections: number;
  /** Connections open at once from one source address (TCP). */
  readonly perSource: number;
  /** Milliseconds to send the request's headers. */
  readonly headersMs: number;
  /** Milliseconds to send the whole request. */
  readonly requestMs: number;
  /** Largest request body, bytes. */
  readonly bodyBytes: number;
}

/**
 * The API is the control plane's door, and must never be a way to starve the data plane:
 * a bounded number of connections (in total and per source), short header and request
 * deadlines (a client trickling headers is cut off), bodies only after the token checked
 * out, and a body limit. The file-descriptor budget this leaves the proxy is the process's
 * limit less `connections`.
 */
export const DEFAULT_API_LIMITS: ApiLimits = { connections: 64, perSource: 16, headersMs: 10_000, requestMs: 30_000, bodyBytes: 4 * 1024 * 1024 };

/**
 * Enforce the connection caps on a listening server: a connection over a cap is closed at
 * once (before a byte is read) and counted; the first of each kind in 10 s is reported.
 */
function limitConnections(server: http.Server, limits: ApiLimits, where: string): { refused: number } {
  const stats = { refused: 0 };
  const bySource = new Map<string, number>();
  let open = 0;
  server.on('connection', (sock: net.Socket) => {
    // A unix socket's peers have no address: there only the total applies.
    const src = sock.remoteAddress ?? 'local';
    const n = bySource.get(src) ?? 0;
    const perSource = sock.remoteAddress === undefined ? Infinity : limits.perSource;
    if (open >= limits.connections || n >= perSource) {
      stats.refused++;
      reportFailure('api', FailureCode.API_LIMIT, `${where}: refused a connection from ${src}: ${open >= limits.connections ? `${limits.connections} connections open` : `${limits.perSource} connections from that address`}`, { source: src });
      sock.destroy();
      return;
    }
    open++;
    bySource.set(src, n + 1);
    sock.once('close', () => {
      open--;
      const m = (bySource.get(src) ?? 1) - 1;
      if (m <= 0) bySource.delete(src);
      else bySource.set(src, m);
    });
  });
  server.on('error', (err: NodeJS.ErrnoException) => {
    const fd = err.code === 'EMFILE' || err.code === 'ENFILE';
    reportFailure('api', fd ? FailureCode.FD_EXHAUSTED : FailureCode.ACCEPT, `${where}: ${err.code ?? err.message}`);
  });
  return stats;
}

function buildApp(o: ApiOptions, transport: 'unix' | 'tcp'): FastifyInstance {
  const limits = { ...DEFAULT_API_LIMITS, ...o.limits };
  const app = Fastify({
    logger: false,
    bodyLimit: limits.bodyBytes,
    // Node's own deadlines: headers, the whole request, idle keep-alive; checked every second.
    serverFactory: (handler) => http.createServer({ headersTimeout: limits.headersMs, requestTimeout: limits.requestMs, keepAliveTimeout: 5000, connectionsCheckingInterval: 1000 }, handler),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: true } },
  });
  limitConnections(app.server, limits, transport === 'unix' ? 'the API socket' : 'the TCP API');
  // Nothing that carries data is open by default: /metrics and the dashboard's state
  // (topology, addresses, the event timeline) need the token unless the operator opens them.
  const open = o.open ?? new Set<OpenPart>();

  if (transport === 'tcp') {
    app.addHook('onRequest', async (req, reply) => {
      const url = req.url.split('?')[0] ?? '';
      if (isDashboardAsset(url)) return;
      if (url === '/metrics' && open.has('metrics')) return;
      if (url.startsWith('/ui/') && open.has('dashboard')) return;
      const t = bearer(req);
      if (t === null || !o.token || !sameToken(t, o.token)) {
        void reply.header('www-authenticate', 'Bearer realm="fulcrum"');
        throw new ApiError(401, ApiErrorCode.UNAUTHORIZED, t === null ? 'this address needs Authorization: Bearer <token>' : 'wrong token');
      }
    });
  }

  app.setErrorHandler((err: FastifyError | ApiError, _req, reply) => {
    if (err instanceof ApiError) return reply.status(err.status).send({ error: { code: err.code, message: err.message, ...err.extra } });
    const status = err.statusCode ?? 500;
    if (err.validation) {
      const msg = err.validation.map((v) => {
        const field = `${err.validationContext ?? 'body'}${v.instancePath.replace(/\//g, '.')}`;
        if (v.keyword === 'additionalProperties') return `${field}: unknown field '${String((v.params as { additionalProperty?: string }).additionalProperty)}'`;
        return `${field}: ${v.message ?? 'invalid'}`;
      });
      return reply.status(400).send({ error: { code: ApiErrorCode.BAD_REQUEST, message: [...new Set(msg)].join('; ') } });
    }
    if (status >= 400 && status < 500) return reply.status(status).send({ error: { code: ApiErrorCode.BAD_REQUEST, message: err.message } });
    return reply.status(500).send({ error: { code: 'E_API_INTERNAL', message: err.message } });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: ApiErrorCode.NOT_FOUND, message: `no route ${req.method} ${req.url}` } }));

  const d = o.daemon;
  const source = (req: FastifyRequest): string => (transport === 'unix' ? 'api (unix socket)' : `api (${req.ip})`);
  const changed = (out: ChangeOutcome, reply: FastifyReply): unknown => {
    if (out.ok) return { ok: true, ops: out.ops, failed: out.failed };
    const status = out.status === 'not-found' ? 404 : out.status === 'unavailable' ? 503 : 409;
    return reply.status(status).send({ error: { code: out.status === 'unavailable' ? ApiErrorCode.UNAVAILABLE : ApiErrorCode.REFUSED, message: out.reason, ...(out.index !== undefined ? { index: out.index } : {}) } });
  };
  const run = async (req: FastifyRequest, reply: FastifyReply, argv: readonly string[]): Promise<unknown> => {
    const line = joinArgs(argv);
    const cmds = parseCommands([line], 'request');
    return changed(await d.change(cmds, source(req), [line]), reply);
  };
  const current = (key: string): ReturnType<typeof ipvsView>['services'][number] => {
    const cfg = d.configuration;
    const s = cfg ? ipvsView(cfg).services.find((x) => serviceIdKey(x.id) === key) : undefined;
    if (!s) throw new ApiError(404, ApiErrorCode.NOT_FOUND, `No such service: ${key}`);
    return s;
  };
  const serviceArgs = (b: { scheduler?: string; flags?: readonly string[]; persistence?: { timeout: number; netmask?: string } | null; ops?: boolean }): string[] => {
    const a = ['-s', b.scheduler ?? 'wlc'];
    if (b.flags && b.flags.length > 0) a.push('-b', b.flags.join(','));
    if (b.persistence) {
      a.push('-p', String(b.persistence.timeout));
      if (b.persistence.netmask !== undefined) a.push('-M', b.persistence.netmask);
    }
    if (b.ops) a.push('-o');
    return a;
  };
  const serverArgs = (b: { method?: string; weight?: number; uthreshold?: number; lthreshold?: number }): string[] => {
    const a = [METHOD_FLAG[(b.method ?? 'dr') as keyof typeof METHOD_FLAG] ?? '-g', '-w', String(b.weight ?? 1)];
    if (b.uthreshold) a.push('-x', String(b.uthreshold));
    if (b.lthreshold) a.push('-y', String(b.lthreshold));
    return a;
  };

  // Reads
  app.get('/v1/status', async () => statusView(d, o.board));
  app.get('/v1/services', async () => statusView(d, o.board).services);
  app.get<{ Params: { key: string } }>('/v1/services/:key', async (req) => {
    const s = statusView(d, o.board).services.find((x) => x.key === req.params.key);
    if (!s) throw new ApiError(404, ApiErrorCode.NOT_FOUND, `No such service: ${req.params.key}`);
    return s;
  });
  app.get('/v1/vrrp', async () => { const v = statusView(d, o.board); return { instances: v.vrrp, dropped: v.vrrpDrops }; });
  app.get('/v1/stats', async () => d.plane.stats());
  app.get('/v1/connections', async () => d.plane.connections());
  app.get('/v1/timeouts', async () => (d.configuration ? ipvsView(d.configuration).timeouts : null));
  app.get('/v1/ipvsadm', async () => ({ lines: d.configuration ? formatIpvsSave(ipvsView(d.configuration)) : [] }));
  app.get('/v1/runtime', async () => {
    const r = d.runtime;
    return { where: r.where, overlay: r.overlay, stale: r.stale, description: describeOverlay(r.overlay) };
  });
  app.get('/v1/drains', async () => d.drains());
  app.get('/v1/sync', async () => d.sync.status());
  app.get('/v1/bgp', async () => d.bgp.status());
  app.get<{ Querystring: { since?: string } }>('/v1/events', async (req) => o.board.timeline(Number(req.query.since ?? 0) || 0));

  // Changes
  app.post<{ Body: { commands: string[] } }>('/v1/ipvsadm', { schema: { body: SCHEMAS.ipvsadm } }, async (req, reply) => {
    const cmds = parseCommands(req.body.commands, 'commands');
    return changed(await d.change(cmds, source(req), req.body.commands), reply);
  });
  app.post<{ Body: { protocol?: string; address?: string; port?: number; fwmark?: number; family?: string; scheduler?: string; flags?: string[]; persistence?: { timeout: number; netmask?: string } | null; ops?: boolean } }>(
    '/v1/services', { schema: { body: SCHEMAS.addService } }, async (req, reply) => {
      const b = req.body;
      const sel = b.fwmark !== undefined
        ? ['-f', String(b.fwmark), ...(b.family === 'inet6' ? ['-6'] : [])]
        : [b.protocol === 'udp' ? '-u' : b.protocol === 'sctp' ? '--sctp-service' : '-t', formatHostPort(b.address ?? '', b.port ?? 0)];
      return run(req, reply, ['-A', ...sel, ...serviceArgs(b)]);
    });
  app.patch<{ Params: { key: string }; Body: { scheduler?: string; flags?: string[]; persistence?: { timeout: number; netmask?: string } | null; ops?: boolean } }>(
    '/v1/services/:key', { schema: { body: SCHEMAS.editService } }, async (req, reply) => {
      const cur = current(req.params.key).options;
      const p = req.body.persistence === undefined ? (cur.persistence ? { timeout: cur.persistence.timeout, netmask: cur.persistence.netmask } : null) : req.body.persistence;
      return run(req, reply, ['-E', ...selectorOf(req.params.key), ...serviceArgs({
        scheduler: req.body.scheduler ?? cur.scheduler, flags: req.body.flags ?? cur.schedFlags, persistence: p, ops: req.body.ops ?? cur.ops,
      })]);
    });
  app.delete<{ Params: { key: string } }>('/v1/services/:key', async (req, reply) => run(req, reply, ['-D', ...selectorOf(req.params.key)]));
  app.post<{ Params: { key: string }; Body: { address: string; port?: number; method?: string; weight?: number; uthreshold?: number; lthreshold?: number } }>(
    '/v1/services/:key/servers', { schema: { body: SCHEMAS.addServer } }, async (req, reply) => {
      const b = req.body;
      return run(req, reply, ['-a', ...selectorOf(req.params.key), '-r', b.port !== undefined ? formatHostPort(b.address, b.port) : b.address, ...serverArgs(b)]);
    });
  app.patch<{ Params: { key: string; server: string }; Body: { method?: string; weight?: number; uthreshold?: number; lthreshold?: number } }>(
    '/v1/services/:key/servers/:server', { schema: { body: SCHEMAS.editServer } }, async (req, reply) => {
      const s = current(req.params.key).servers.find((r) => formatHostPort(r.address, r.port) === req.params.server);
      if (!s) throw new ApiError(404, ApiErrorCode.NOT_FOUND, `No such destination: ${req.params.server} in ${req.params.key}`);
      return run(req, reply, ['-e', ...selectorOf(req.params.key), '-r', req.params.server, ...serverArgs({
        method: req.body.method ?? s.method, weight: req.body.weight ?? s.weight,
        uthreshold: req.body.uthreshold ?? s.uthreshold, lthreshold: req.body.lthreshold ?? s.lthreshold,
      })]);
    });
  app.delete<{ Params: { key: string; server: string } }>('/v1/services/:key/servers/:server', async (req, reply) =>
    run(req, reply, ['-d', ...selectorOf(req.params.key), '-r', req.params.server]));
  app.post<{ Body: { service?: string } | null }>('/v1/zero', { schema: { body: SCHEMAS.zero } }, async (req, reply) =>
    run(req, reply, ['-Z', ...(req.body?.service ? selectorOf(req.body.service) : [])]));
  app.post('/v1/reload', async (_req, reply) => {
    const r = await d.reload();
    if (!r.ok) return reply.status(409).send({ error: { code: ApiErrorCode.REFUSED, message: 'configuration rejected; the running configuration stays', errors: r.errors } });
    return { ok: true };
  });
  app.delete('/v1/runtime', async (req, reply) => changed(await d.forgetRuntime(source(req)), reply));
  // ipvsadm --start-daemon / --stop-daemon
  app.post<{ Body: { action: 'start' | 'stop'; role: 'master' | 'backup'; interface?: string; syncid?: number; maxlen?: number; group?: string; port?: number; ttl?: number } }>(
    '/v1/sync', { schema: { body: SCHEMAS.sync } }, async (req, reply) => {
      const b = req.body;
      if (b.action === 'start' && b.interface === undefined) throw new ApiError(400, ApiErrorCode.BAD_REQUEST, 'body/interface: --start-daemon needs --mcast-interface');
      try {
        return await d.syncControl(b.action, b.role, b.interface === undefined ? undefined : {
          interface: b.interface, syncid: b.syncid ?? 0, maxlen: b.maxlen ?? SYNC_DEFAULT_MAXLEN, group: b.group ?? SYNC_DEFAULT_GROUP,
          port: b.port ?? SYNC_DEFAULT_PORT, ttl: b.ttl ?? SYNC_DEFAULT_TTL,
        });
      } catch (err: unknown) {
        return reply.status(409).send({ error: { code: ApiErrorCode.REFUSED, message: errorMessage(err) } });
      }
    });
  app.post<{ Body: { server: string; service?: string; deadline?: number } }>('/v1/drains', { schema: { body: SCHEMAS.drain } }, async (req, reply) => {
    const deadline = Date.now() + (req.body.deadline ?? 600) * 1000;
    const out = await d.drain(req.body.server, req.body.service, deadline, source(req));
    if (!out.ok) return changed(out, reply);
    return { ok: true, drains: out.drains ?? [] };
  });
  // Undrain: cancel a drain in progress and restore the weight it had (fulcrum adm undrain).
  app.delete<{ Body: { server: string; service?: string } }>('/v1/drains', { schema: { body: SCHEMAS.undrain } }, async (req, reply) => {
    const out = await d.undrain(req.body.server, req.body.service, source(req));
    if (!out.ok) return changed(out, reply);
    return { ok: true, restored: out.restored ?? [] };
  });

  if (o.faults) {
    app.post<{ Body: { ms: number } }>('/v1/debug/stall', { schema: { body: { type: 'object', required: ['ms'], additionalProperties: false, properties: { ms: { type: 'integer', minimum: 1, maximum: 60_000 } } } } }, async (req) => {
      // A CPU stall of the control plane's thread: nothing here yields until it is over.
      const until = performance.now() + req.body.ms;
      while (performance.now() < until) { /* busy */ }
      return { ok: true, stalledMs: req.body.ms };
    });
    app.post<{ Params: { n: string } }>('/v1/debug/workers/:n/crash', async (req, reply) => {
      const plane = d.plane as { crashWorker?: (n: number) => boolean };
      if (!plane.crashWorker?.(Number(req.params.n))) return reply.status(404).send({ error: { code: ApiErrorCode.NOT_FOUND, message: `no data-plane worker ${req.params.n}` } });
      return { ok: true };
    });
  }

  // Prometheus
  const scrapeBuffers = new WriterPool();
  app.get('/metrics', async (_req, reply) => {
    // Written into a buffer lent for this response (see bytes.ts), returned once it is sent.
    const out = scrapeBuffers.acquire();
    reply.raw.once('close', () => scrapeBuffers.release(out));
    const contentType = await o.metrics.scrapeInto(out);
    return reply.header('content-type', contentType).send(out.bytes());
  });

  // Dashboard
  app.get<{ Querystring: { since?: string } }>('/ui/state', async (req) => ({
    status: statusView(d, o.board), events: o.board.timeline(Number(req.query.since ?? 0) || 0, 200),
  }));
  const history = o.history ?? new TrafficHistory();
  app.get<{ Querystring: { since?: string } }>('/ui/history', async (req) => history.view(Number(req.query.since ?? 0) || 0));
  if (o.dashboardDir) {
    void app.register(fastifyStatic, { root: path.resolve(o.dashboardDir), prefix: '/', index: ['index.html'], wildcard: true });
  }
  return app;
}

/** Is something answering on this unix socket? (A stale file from a crash is not.) */
function socketInUse(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Start the API on the unix socket and/or TCP address; a failure names what and why. */
export async function startApi(o: ApiOptions): Promise<RunningApi> {
  const apps: FastifyInstance[] = [];
  const fail = async (msg: string): Promise<never> => {
    await Promise.all(apps.map((a) => a.close()));
    throw new ApiError(0, ApiErrorCode.LISTEN, msg);
  };
  if (o.listen && !o.token) await fail('the API on a TCP address needs a token (--api-token-file)');
  if (o.socketPath) {
    const p = o.socketPath;
    try {
      fs.mkdirSync(path.dirname(p), { recursive: true, mode: 0o755 });
    } catch (err: unknown) {
      await fail(`cannot create the API socket's directory ${path.dirname(p)}: ${err instanceof Error ? err.message : String(err)} (choose another with --api-socket, or --api-socket none)`);
    }
    if (fs.existsSync(p)) {
      if (await socketInUse(p)) await fail(`${p}: another process is serving the API there (another fulcrum run?)`);
      fs.rmSync(p, { force: true });
    }
    const app = buildApp(o, 'unix');
    apps.push(app);
    // No one else may reach the socket from its first instant, without touching the process
    // umask (it is process-wide, and other work runs while listen() is awaited): bind it in
    // a private directory (0700), make it 0600, then move it into place.
    let priv: string | null = null;
    try {
      priv = fs.mkdtempSync(path.join(path.dirname(p), '.fulcrum-api-'));
      const tmp = path.join(priv, 'sock');
      await app.listen({ path: tmp });
      fs.chmodSync(tmp, 0o600);
      fs.renameSync(tmp, p);
    } catch (err: unknown) {
      await fail(`cannot listen on ${p}: ${err instanceof Error ? err.message : String(err)} (choose another with --api-socket, or --api-socket none)`);
    } finally {
      if (priv) fs.rmSync(priv, { recursive: true, force: true });
    }
  }
  let tcp: { host: string; port: number } | null = null;
  if (o.listen) {
    const app = buildApp(o, 'tcp');
    apps.push(app);
    try {
      await app.listen({ host: o.listen.host, port: o.listen.port });
    } catch (err: unknown) {
      await fail(`cannot listen on ${formatHostPort(o.listen.host, o.listen.port)}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const a = app.server.address();
    tcp = a && typeof a === 'object' ? { host: a.address, port: a.port } : null;
  }
  return {
    tcp,
    socketPath: o.socketPath,
    async close() {
      await Promise.all(apps.map((a) => a.close()));
      if (o.socketPath) fs.rmSync(o.socketPath, { force: true });
    },
  };
}

