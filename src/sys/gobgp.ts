/**
 * GoBGP behind the Announcer boundary: Fulcrum's own gobgpd (spawned and supervised here)
 * or an operator's, driven over its gRPC API (GoBGP v3, `apipb.GobgpApi`).
 *
 * Why GoBGP: a complete, maintained BGP speaker packaged by Debian (`gobgpd`) whose whole
 * configuration and RIB are reachable over a typed gRPC API — no config files to write
 * and reload, no screen-scraping of a CLI. The .proto files are vendored from GoBGP
 * v3.10.0 (vendor/gobgp, Apache-2.0); messages are encoded with protobufjs and carried by
 * @grpc/grpc-js (the maintained pure-JS gRPC), without generated code.
 *
 * Graceful restart is not advertised: a router honouring it would keep forwarding to a
 * dead director for its restart time. A director that stops or dies is withdrawn at once
 * (clean stop) or when the session drops (hold time).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { FulcrumError, errorMessage } from '../errors/index.js';
import { parseIp } from '../model/address.js';
import { BgpErrorCode, type Announcer, type BgpRoute, type BgpSession, type SessionState, type SpeakerConfig, type SpeakerNeighbor } from '../bgp/types.js';

type Msg = { readonly [k: string]: unknown };

const PROTO_DIR = fileURLToPath(new URL('../../../vendor/gobgp/api/', import.meta.url));
const SERVICE = '/apipb.GobgpApi/';
/** Each call's deadline: the speaker is local; a slow answer means it is unwell. */
const CALL_MS = 5000;

let rootCache: protobuf.Root | null = null;
function root(): protobuf.Root {
  if (rootCache) return rootCache;
  const r = new protobuf.Root();
  r.resolvePath = (_origin: string, target: string): string => (target.startsWith('google/') ? target : path.join(PROTO_DIR, path.basename(target)));
  r.loadSync(['gobgp.proto', 'attribute.proto'], { keepCase: true });
  r.resolveAll();
  rootCache = r;
  return r;
}

const type = (name: string): protobuf.Type => root().lookupType(`apipb.${name}`);
const EMPTY = 'google.protobuf.Empty';

function codec(name: string): { ser: (v: Msg) => Buffer; de: (b: Buffer) => Msg } {
  const t = name === EMPTY ? root().lookupType(EMPTY) : type(name);
  return {
    ser: (v) => Buffer.from(t.encode(t.fromObject(v)).finish()),
    de: (b) => t.toObject(t.decode(b), { longs: Number, enums: String, bytes: Buffer, defaults: true }) as Msg,
  };
}

/** A google.protobuf.Any holding an apipb message. */
function any(name: string, v: Msg): Msg {
  const t = type(name);
  return { type_url: `type.googleapis.com/apipb.${name}`, value: t.encode(t.fromObject(v)).finish() };
}

function unpack(a: unknown): { name: string; v: Msg } | null {
  if (typeof a !== 'object' || a === null) return null;
  const { type_url: url, value } = a as { type_url?: unknown; value?: unknown };
  if (typeof url !== 'string' || !(value instanceof Uint8Array)) return null;
  const name = url.slice(url.lastIndexOf('.') + 1);
  try {
    const t = type(name);
    return { name, v: t.toObject(t.decode(value), { longs: Number, enums: String, defaults: true }) as Msg };
  } catch {
    return null;
  }
}

const str = (m: Msg | undefined, k: string): string => (typeof m?.[k] === 'string' ? m[k] as string : '');
const num = (m: Msg | undefined, k: string): number => (typeof m?.[k] === 'number' ? m[k] as number : 0);
const obj = (m: Msg | undefined, k: string): Msg | undefined => (typeof m?.[k] === 'object' && m[k] !== null ? m[k] as Msg : undefined);
const list = (m: Msg | undefined, k: string): unknown[] => (Array.isArray(m?.[k]) ? m[k] as unknown[] : []);

const FAMILY = {
  inet: { afi: 'AFI_IP', safi: 'SAFI_UNICAST' },
  inet6: { afi: 'AFI_IP6', safi: 'SAFI_UNICAST' },
} as const;

const STATES: Readonly<Record<string, SessionState>> = {
  IDLE: 'idle', CONNECT: 'connect', ACTIVE: 'active', OPENSENT: 'opensent', OPENCONFIRM: 'openconfirm', ESTABLISHED: 'established',
};

/** A gRPC failure as a BGP error: unreachable/unavailable → SPEAKER, a refusal → REFUSED. */
function grpcError(method: string, err: grpc.ServiceError): FulcrumError {
  const unreachable = err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED || err.code === grpc.status.CANCELLED;
  return new FulcrumError(unreachable ? BgpErrorCode.SPEAKER : BgpErrorCode.REFUSED, `${method}: ${err.details || err.message}`, { cause: err });
}

/** gRPC client of one gobgpd API endpoint. */
class GobgpClient {
  private readonly client: grpc.Client;
  constructor(readonly target: string) {
    this.client = new grpc.Client(target, grpc.credentials.createInsecure());
  }

  unary(method: string, req: Msg, reqType: string, resType = EMPTY): Promise<Msg> {
    const a = codec(reqType);
    const b = codec(resType);
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest(SERVICE + method, a.ser, b.de, req, { deadline: Date.now() + CALL_MS }, (err: grpc.ServiceError | null, res?: Msg) => {
        if (err) reject(grpcError(method, err));
        else resolve(res ?? {});
      });
    });
  }

  stream(method: string, req: Msg, reqType: string, resType: string): Promise<Msg[]> {
    const a = codec(reqType);
    const b = codec(resType);
    return new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const call = this.client.makeServerStreamRequest(SERVICE + method, a.ser, b.de, req, { deadline: Date.now() + CALL_MS });
      call.on('data', (m: Msg) => out.push(m));
      call.on('error', (err: grpc.ServiceError) => reject(grpcError(method, err)));
      call.on('end', () => resolve(out));
    });
  }

  close(): void {
    this.client.close();
  }
}

const SETPRIV = '/usr/bin/setpriv';

/** The executable `exe` names (a path, or a name on PATH), or null. */
function which(exe: string): string | null {
  const ok = (p: string): boolean => {
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return fs.statSync(p).isFile();
    } catch {
      return false;
    }
  };
  if (exe.includes('/')) return ok(exe) ? exe : null;
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':')) {
    const p = path.join(dir || '.', exe);
    if (ok(p)) return p;
  }
  return null;
}

/** A free loopback TCP port for gobgpd's API. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

export interface GoBgpOptions {
  /** Fulcrum's own gobgpd: the executable. */
  readonly gobgpd?: string | undefined;
  /** An operator's gobgpd: its API (HOST:PORT). */
  readonly api?: string | undefined;
  /** gobgpd's log level (warn). */
  readonly logLevel?: string | undefined;
  /** Where gobgpd's own log lines go (a line at a time). */
  readonly log?: ((line: string) => void) | undefined;
}

export class GoBgpAnnouncer implements Announcer {
  private client: GobgpClient | null = null;
  private child: ChildProcess | null = null;
  private exited: string | null = null;
  private starting: Promise<GobgpClient> | null = null;
  /** Neighbours this announcer added (an operator's speaker keeps its own). */
  private readonly added = new Set<string>();
  /** Prefixes this announcer originated: on an operator's speaker, the only ones it reads back or withdraws. */
  private readonly mine = new Set<string>();
  private global = '';
  private closed = false;

  constructor(private readonly o: GoBgpOptions) {}

  get name(): string {
    if (this.o.api !== undefined) return `gobgpd at ${this.o.api}`;
    return `gobgpd${this.child?.pid !== undefined && this.exited === null ? ` (pid ${this.child.pid})` : ''}`;
  }

  /**
   * The API client. Only `configure` (start) (re)starts Fulcrum's own gobgpd: any other
   * call on a speaker that is gone fails, so the caller reconfigures a fresh one instead of
   * reading an empty, unconfigured speaker.
   */
  private api(start = false): Promise<GobgpClient> {
    if (this.closed) return Promise.reject(new FulcrumError(BgpErrorCode.SPEAKER, 'the BGP speaker is closed'));
    if (this.client && (this.o.api !== undefined || (this.child && this.exited === null))) return Promise.resolve(this.client);
    if (!start && this.starting === null) {
      return Promise.reject(new FulcrumError(BgpErrorCode.SPEAKER, `${this.o.gobgpd ?? 'gobgpd'} ${this.exited ?? 'is not running'}`));
    }
    this.starting ??= this.open().finally(() => { this.starting = null; });
    return this.starting;
  }

  private async open(): Promise<GobgpClient> {
    this.client?.close();
    this.client = null;
    this.global = '';
    this.added.clear();
    // A new gobgpd of Fulcrum's own starts with an empty RIB.
    if (this.o.api === undefined) this.mine.clear();
    if (this.o.api !== undefined) {
      const c = new GobgpClient(this.o.api);
      await this.ready(c, null);
      this.client = c;
      return c;
    }
    const exe = this.o.gobgpd ?? 'gobgpd';
    const found = which(exe);
    if (found === null) {
      throw new FulcrumError(BgpErrorCode.MISSING, `${exe} is not installed: install Debian's gobgpd package (apt-get install gobgpd), or name gobgpd's path (gobgpd PATH) or an operator's gobgpd (api HOST:PORT) in fulcrum_bgp`);
    }
    const port = await freePort();
    if (this.closed) throw new FulcrumError(BgpErrorCode.SPEAKER, 'the BGP speaker is closed');
    const target = `127.0.0.1:${port}`;
    this.exited = null;
    const args = ['--api-hosts', target, '--log-level', this.o.logLevel ?? 'warn', '--log-plain', '--pprof-disable'];
    // gobgpd must not outlive Fulcrum (a killed director whose speaker still announced
    // the VIPs would black-hole its share of the flows): the kernel sends it SIGTERM when
    // its parent dies (PR_SET_PDEATHSIG, set by util-linux's setpriv before exec).
    const child = fs.existsSync(SETPRIV)
      ? spawn(SETPRIV, ['--pdeathsig', 'TERM', found, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(found, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const tail: string[] = [];
    const onLine = (buf: Buffer): void => {
      for (const line of buf.toString('utf8').split('\n')) {
        if (line.trim() === '') continue;
        tail.push(line);
        if (tail.length > 5) tail.shift();
        this.o.log?.(line);
      }
    };
    child.stdout?.on('data', onLine);
    child.stderr?.on('data', onLine);
    const gone = new Promise<never>((_resolve, reject) => {
      // Only this child's end marks the speaker gone (an older one may report late).
      child.once('error', (err: NodeJS.ErrnoException) => {
        if (this.child === child) this.exited = errorMessage(err);
        reject(new FulcrumError(BgpErrorCode.SPEAKER, `${exe} could not start: ${errorMessage(err)}`, { cause: err }));
      });
      child.once('exit', (code, signal) => {
        const why = `exited (${signal ?? `code ${code ?? '?'}`})${tail.length ? `: ${tail.join(' | ')}` : ''}`;
        if (this.child === child) this.exited = why;
        reject(new FulcrumError(BgpErrorCode.SPEAKER, `${exe} ${why}`));
      });
    });
    gone.catch(() => undefined);
    const c = new GobgpClient(target);
    try {
      await Promise.race([this.ready(c, child), gone]);
    } catch (err: unknown) {
      c.close();
      child.kill('SIGKILL');
      throw err;
    }
    this.client = c;
    return c;
  }

  /** Wait (≤ 10 s) for the API to answer. */
  private async ready(c: GobgpClient, child: ChildProcess | null): Promise<void> {
    const until = Date.now() + 10000;
    for (;;) {
      try {
        await c.unary('GetBgp', {}, 'GetBgpRequest', 'GetBgpResponse');
        return;
      } catch (err: unknown) {
        if (Date.now() > until || (child && this.exited !== null)) {
          throw new FulcrumError(BgpErrorCode.SPEAKER, `gobgpd's API at ${c.target} does not answer: ${errorMessage(err)}`, { cause: err });
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  async configure(cfg: SpeakerConfig): Promise<void> {
    const c = await this.api(true);
    const g = { asn: cfg.localAs, router_id: cfg.routerId, listen_port: cfg.listenPort };
    const gkey = JSON.stringify(g);
    if (this.global !== gkey) {
      const cur = obj(await c.unary('GetBgp', {}, 'GetBgpRequest', 'GetBgpResponse'), 'global');
      const running = num(cur, 'asn') !== 0;
      const same = running && num(cur, 'asn') === g.asn && str(cur, 'router_id') === g.router_id;
      if (running && !same) {
        if (this.o.api !== undefined) {
          throw new FulcrumError(BgpErrorCode.REFUSED, `gobgpd at ${this.o.api} runs AS ${num(cur, 'asn')} router id ${str(cur, 'router_id')}; fulcrum_bgp says AS ${g.asn} router id ${g.router_id}`);
        }
        await c.unary('StopBgp', {}, 'StopBgpRequest');
        this.added.clear();
      }
      if (!same) await c.unary('StartBgp', { global: g }, 'StartBgpRequest');
      this.global = gkey;
    }
    const peers = new Map<string, Msg>();
    for (const m of await c.stream('ListPeer', {}, 'ListPeerRequest', 'ListPeerResponse')) {
      const p = obj(m, 'peer');
      const addr = parseIp(str(obj(p, 'conf'), 'neighbor_address'))?.address;
      if (addr !== undefined && p) peers.set(addr, p);
    }
    for (const n of cfg.neighbors) {
      const p = peers.get(n.address);
      if (p && samePeer(p, n)) continue;
      if (p) await c.unary('DeletePeer', { address: n.address }, 'DeletePeerRequest');
      await c.unary('AddPeer', { peer: peerOf(n) }, 'AddPeerRequest');
      this.added.add(n.address);
    }
    for (const addr of peers.keys()) {
      if (cfg.neighbors.some((n) => n.address === addr)) continue;
      // An operator's gobgpd keeps the neighbours it had; only those added here go.
      if (this.o.api !== undefined && !this.added.has(addr)) continue;
      await c.unary('DeletePeer', { address: addr }, 'DeletePeerRequest');
      this.added.delete(addr);
    }
  }

  async routes(): Promise<BgpRoute[]> {
    const c = await this.api();
    const out: BgpRoute[] = [];
    for (const family of ['inet', 'inet6'] as const) {
      for (const m of await c.stream('ListPath', { table_type: 'GLOBAL', family: FAMILY[family] }, 'ListPathRequest', 'ListPathResponse')) {
        for (const p of list(obj(m, 'destination'), 'paths')) {
          const path = p as Msg;
          // Originated here (AddPath): not learned from a neighbour.
          if (str(path, 'neighbor_ip') !== '' && str(path, 'neighbor_ip') !== '<nil>') continue;
          if (path.is_withdraw === true) continue;
          const r = routeFrom(family, path);
          // An operator's speaker may originate routes of its own: never touch those.
          if (r && (this.o.api === undefined || this.mine.has(r.prefix))) out.push(r);
        }
      }
    }
    return out;
  }

  async announce(route: BgpRoute): Promise<void> {
    const c = await this.api();
    await c.unary('AddPath', { table_type: 'GLOBAL', path: pathOf(route) }, 'AddPathRequest', 'AddPathResponse');
    this.mine.add(route.prefix);
  }

  async withdraw(prefix: string): Promise<void> {
    const c = await this.api();
    const [address, len] = prefix.split('/');
    const ip = parseIp(address ?? '');
    if (!ip) throw new FulcrumError(BgpErrorCode.REFUSED, `'${prefix}' is not a prefix`);
    const r: BgpRoute = { prefix, family: ip.family, address: ip.address, prefixLength: Number(len), communities: [] };
    await c.unary('DeletePath', { table_type: 'GLOBAL', family: FAMILY[ip.family], path: pathOf(r) }, 'DeletePathRequest');
    this.mine.delete(prefix);
  }

  async sessions(): Promise<BgpSession[]> {
    const c = await this.api();
    const out: BgpSession[] = [];
    for (const m of await c.stream('ListPeer', {}, 'ListPeerRequest', 'ListPeerResponse')) {
      const p = obj(m, 'peer');
      const st = obj(p, 'state');
      const state = STATES[str(st, 'session_state')] ?? 'unknown';
      const up = obj(obj(obj(p, 'timers'), 'state'), 'uptime');
      let received = 0;
      for (const a of list(p, 'afi_safis')) received += num(obj(a as Msg, 'state'), 'accepted');
      out.push({
        neighbor: parseIp(str(obj(p, 'conf'), 'neighbor_address'))?.address ?? str(obj(p, 'conf'), 'neighbor_address'),
        remoteAs: num(obj(p, 'conf'), 'peer_asn'),
        state,
        upSince: state === 'established' && up && num(up, 'seconds') > 0 ? num(up, 'seconds') * 1000 : null,
        received,
      });
    }
    return out;
  }

  async close(): Promise<void> {
    // A start under way finishes first, so what it spawned is stopped below.
    await this.starting?.catch(() => undefined);
    const child = this.child;
    if (this.o.api !== undefined) {
      // An operator's gobgpd keeps running: take back what was put there.
      const c = this.client;
      if (c) {
        for (const r of await this.routes().catch(() => [])) await this.withdraw(r.prefix).catch(() => undefined);
        for (const addr of this.added) await c.unary('DeletePeer', { address: addr }, 'DeletePeerRequest').catch(() => undefined);
      }
    }
    this.closed = true;
    this.client?.close();
    this.client = null;
    this.child = null;
    if (child && this.exited === null && child.exitCode === null) {
      // SIGTERM: gobgpd closes its sessions (a Cease notification): the routers withdraw at once.
      const done = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await done;
      clearTimeout(t);
    }
  }
}

function peerOf(n: SpeakerNeighbor): Msg {
  const hold = n.holdTime ?? 90;
  return {
    conf: { neighbor_address: n.address, peer_asn: n.remoteAs, ...(n.password !== undefined ? { auth_password: n.password } : {}) },
    timers: { config: { hold_time: hold, keepalive_interval: Math.floor(hold / 3), connect_retry: 5, idle_hold_time_after_reset: 5 } },
    transport: { remote_port: n.port },
    afi_safis: [
      { config: { family: FAMILY.inet, enabled: true } },
      { config: { family: FAMILY.inet6, enabled: true } },
    ],
  };
}

function samePeer(p: Msg, n: SpeakerNeighbor): boolean {
  const conf = obj(p, 'conf');
  const timers = obj(obj(p, 'timers'), 'config');
  return num(conf, 'peer_asn') === n.remoteAs && str(conf, 'auth_password') === (n.password ?? '')
    && num(timers, 'hold_time') === (n.holdTime ?? 90) && (num(obj(p, 'transport'), 'remote_port') || 179) === n.port;
}

function pathOf(r: BgpRoute): Msg {
  const nlri = any('IPAddressPrefix', { prefix: r.address, prefix_len: r.prefixLength });
  const pattrs: Msg[] = [any('OriginAttribute', { origin: 0 })];
  if (r.family === 'inet') pattrs.push(any('NextHopAttribute', { next_hop: r.nextHop ?? '0.0.0.0' }));
  else pattrs.push(any('MpReachNLRIAttribute', { family: FAMILY.inet6, next_hops: [r.nextHop ?? '::'], nlris: [nlri] }));
  if (r.communities.length > 0) pattrs.push(any('CommunitiesAttribute', { communities: r.communities }));
  if (r.med !== undefined) pattrs.push(any('MultiExitDiscAttribute', { med: r.med }));
  return { family: FAMILY[r.family], nlri, pattrs };
}

function routeFrom(family: 'inet' | 'inet6', p: Msg): BgpRoute | null {
  const n = unpack(p.nlri);
  if (!n || n.name !== 'IPAddressPrefix') return null;
  const address = parseIp(str(n.v, 'prefix'))?.address;
  if (address === undefined) return null;
  const prefixLength = num(n.v, 'prefix_len');
  let nextHop: string | undefined;
  let communities: number[] = [];
  let med: number | undefined;
  for (const a of list(p, 'pattrs')) {
    const u = unpack(a);
    if (!u) continue;
    if (u.name === 'NextHopAttribute') nextHop = str(u.v, 'next_hop');
    else if (u.name === 'MpReachNLRIAttribute') nextHop = str({ h: list(u.v, 'next_hops')[0] }, 'h');
    else if (u.name === 'CommunitiesAttribute') communities = list(u.v, 'communities').filter((x): x is number => typeof x === 'number').sort((x, y) => x - y);
    else if (u.name === 'MultiExitDiscAttribute') med = num(u.v, 'med');
  }
  const self = nextHop === undefined || nextHop === '' || nextHop === '0.0.0.0' || nextHop === '::';
  return { prefix: `${address}/${prefixLength}`, family, address, prefixLength, ...(self ? {} : { nextHop }), communities, ...(med !== undefined ? { med } : {}) };
}
