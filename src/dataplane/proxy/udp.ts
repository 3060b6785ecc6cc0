/**
 * The UDP relay of one listen address. Sessions are keyed by the client's address and
 * port (nested maps: no per-datagram key string); each has its own connected socket to
 * the real server, so replies come back to the right client and ICMP unreachable ends
 * the session. A session lives until idle for the service's UDP timeout (ipvsadm
 * `--set … udp`); with one-packet scheduling (`ops`) every datagram is scheduled on its
 * own and its session ends at the first reply.
 *
 * As in IPVS, UDP sessions count as inactive connections. Sessions are capped plane-wide
 * (ProxyTunables.udpSessionLimit): past it, a datagram from a new client is dropped and
 * counted, and the sessions that exist keep working.
 */
import dgram from 'node:dgram';
import { addrFold } from '../../scheduling/hash.js';
import type { Dest, FlowKey } from '../../scheduling/types.js';
import type { ConnectionEntry, ListenAddress } from '../types.js';
import { countIn, countOut } from '../stats.js';
import type { ServerState, ServiceRuntime, Session } from './context.js';
import { unmapAddress } from './proxy-protocol.js';
import { FailureCode, reportFailure } from '../../errors/index.js';
import { nodeHasReusePort, reusePortSocket } from '../../sys/reuseport.js';

export class UdpListener {
  readonly socket: dgram.Socket;
  private readonly byClient = new Map<string, Map<number, UdpSession>>();
  private readonly vfold: number;
  /** Datagrams dropped: no server, queue full, or send failure. */
  dropped = 0;

  /** `svc` null: opened ahead of its service (see ProxyDataPlane.prepare); datagrams are dropped until setService. */
  constructor(private svc: ServiceRuntime | null, readonly listen: ListenAddress, private readonly reusePort = false) {
    const type = listen.family === 'inet' ? 'udp4' : 'udp6';
    this.socket = dgram.createSocket(reusePort && nodeHasReusePort() ? { type, reusePort: true } as dgram.SocketOptions : { type });
    this.vfold = addrFold(listen.address);
    this.socket.on('message', this.onMessage);
  }

  setService(svc: ServiceRuntime): void {
    this.svc = svc;
  }

  bind(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.socket.once('error', onError);
      const done = (): void => {
        this.socket.removeListener('error', onError);
        this.socket.on('error', () => { this.dropped++; });
        resolve();
      };
      if (this.reusePort && !nodeHasReusePort()) {
        let fd: number;
        try {
          fd = reusePortSocket(this.listen.family, 'udp', this.listen.address, this.listen.port);
        } catch (err: unknown) {
          reject(err);
          return;
        }
        this.socket.bind({ fd }, done);
      } else this.socket.bind({ address: this.listen.address, port: this.listen.port, exclusive: true }, done);
    });
  }

  /** Stop: replies can no longer reach clients without the socket, so sessions end too. */
  close(): void {
    if (this.svc) for (const s of [...this.svc.sessions]) if (s instanceof UdpSession && s.listenerIs(this)) s.end();
    this.socket.close();
  }

  private readonly onMessage = (msg: Buffer, rinfo: dgram.RemoteInfo): void => {
    const svc = this.svc;
    if (svc === null) {
      this.dropped++;
      return;
    }
    let s = svc.spec.ops ? undefined : this.byClient.get(rinfo.address)?.get(rinfo.port);
    if (s === undefined) {
      const budget = svc.udpBudget;
      if (budget.used >= svc.tunables.udpSessionLimit) {
        this.dropped++;
        budget.refused++;
        reportFailure('proxy', FailureCode.UDP_SESSION_LIMIT, `UDP session limit (${svc.tunables.udpSessionLimit}) reached: a datagram from ${rinfo.address}:${rinfo.port} to ${svc.spec.key} was dropped`, { service: svc.spec.key });
        return;
      }
      const caddr = unmapAddress(rinfo.address);
      const flow: FlowKey = { saddrFold: addrFold(caddr), sport: rinfo.port, daddrFold: this.vfold, dport: this.listen.port };
      const d = svc.sched.schedule(flow, caddr, svc.now(), false);
      if (d === null) {
        this.dropped++;
        svc.report({ type: 'no-server', service: svc.spec.key, client: { family: this.listen.family, address: caddr, port: rinfo.port } });
        return;
      }
      s = new UdpSession(svc, this, d, svc.serverState(d), rinfo.address, caddr, rinfo.port);
      if (!svc.spec.ops) {
        let m = this.byClient.get(rinfo.address);
        if (m === undefined) this.byClient.set(rinfo.address, m = new Map());
        m.set(rinfo.port, s);
      }
    }
    s.toServer(msg);
  };

  /** Called by a session when it ends. */
  forget(s: UdpSession): void {
    const m = this.byClient.get(s.rawClient);
    if (m?.get(s.cport) === s) {
      m.delete(s.cport);
      if (m.size === 0) this.byClient.delete(s.rawClient);
    }
  }
}

export class UdpSession implements Session {
  private readonly up: dgram.Socket;
  private pending: Buffer[] | null = [];
  private lastActive: number;
  private ended = false;

  constructor(
    private readonly svc: ServiceRuntime,
    private readonly listener: UdpListener,
    private readonly dest: Dest,
    private readonly server: ServerState,
    /** The address as the socket reported it (the map key; replies go there). */
    readonly rawClient: string,
    private readonly caddr: string,
    readonly cport: number,
  ) {
    this.lastActive = svc.coarseNow();
    svc.counters.conns++;
    server.counters.conns++;
    svc.sessions.add(this);
    svc.udpBudget.used++;
    this.up = dgram.createSocket({ type: dest.family === 'inet' ? 'udp4' : 'udp6' });
    this.up.on('message', this.onReply);
    this.up.on('error', () => this.end());
    this.up.connect(dest.port, dest.address, () => {
      const q = this.pending;
      this.pending = null;
      if (q !== null) for (const m of q) this.send(m);
    });
  }

  toServer(msg: Buffer): void {
    countIn(this.svc.counters, this.server.counters, msg.length);
    this.lastActive = this.svc.coarseNow();
    if (this.pending !== null) {
      if (this.pending.length < this.svc.tunables.udpPendingLimit) this.pending.push(msg);
      else this.listener.dropped++;
      return;
    }
    this.send(msg);
  }

  private send(msg: Buffer): void {
    if (!this.ended) this.up.send(msg);
  }

  private readonly onReply = (msg: Buffer): void => {
    countOut(this.svc.counters, this.server.counters, msg.length);
    this.lastActive = this.svc.coarseNow();
    this.listener.socket.send(msg, this.cport, this.rawClient, (err) => { if (err) this.listener.dropped++; });
    if (this.svc.spec.ops) this.end();
  };

  listenerIs(l: UdpListener): boolean {
    return this.listener === l;
  }

  /** Idle past the UDP timeout? Then end; called by the plane's once-a-second sweep. */
  expire(now: number): void {
    if (now - this.lastActive >= this.svc.spec.timeouts.udp) this.end();
  }

  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.pending = null;
    this.up.close();
    this.listener.forget(this);
    this.svc.sessions.delete(this);
    this.svc.udpBudget.used--;
    this.svc.sched.finish(this.dest, this.caddr, false, this.svc.now());
  }

  abort(): void {
    this.end();
  }

  entry(now: number): ConnectionEntry {
    return {
      protocol: 'udp',
      client: { family: this.listener.listen.family, address: this.caddr, port: this.cport },
      virtual: this.listener.listen,
      server: this.dest.key,
      state: 'UDP',
      expires: Math.max(0, Math.round(this.svc.spec.timeouts.udp - (now - this.lastActive))),
    };
  }
}
