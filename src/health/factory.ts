/**
 * Builds the Checker for one configured checker block on one real server: resolves the
 * probe target (connect_ip/connect_port/bindto/bind_port over the real server's address)
 * and picks the implementation.
 */
import net from 'node:net';
import type { Checker as CheckerConfig, FulcrumConfig, RealServer, VirtualServer } from '../model/types.js';
import type { RawSocketFactory } from '../sys/raw.js';
import type { ScriptUser } from '../notify/script.js';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from './types.js';
import { ProbeErrorCode } from './types.js';
import { TcpChecker } from './checkers/tcp.js';
import { HttpChecker } from './checkers/http.js';
import { SmtpChecker } from './checkers/smtp.js';
import { DnsChecker } from './checkers/dns.js';
import { MiscChecker } from './checkers/misc.js';
import { UdpChecker } from './checkers/udp.js';
import { Pinger, PingChecker } from './checkers/ping.js';
import { FileChecker } from './checkers/file.js';

export interface CheckerDeps {
  readonly rawSockets: RawSocketFactory;
  /** Shared ICMP sockets, by family (filled on first use). */
  readonly pingers: Map<string, Pinger>;
  readonly config: FulcrumConfig;
}

export type CheckerFactory = (cfg: CheckerConfig, rs: RealServer, vs: VirtualServer, deps: CheckerDeps) => Checker;

/** A checker that cannot run (e.g. no port to probe): every probe fails with the reason. */
class BrokenChecker implements Checker {
  constructor(readonly type: string, private readonly reason: string) {}
  check(_ctx: ProbeContext): Promise<ProbeResult> {
    return Promise.resolve({ ok: false, latencyMs: 0, code: ProbeErrorCode.LOCAL, detail: this.reason });
  }
  close(): void {}
}

export function probeTarget(cfg: CheckerConfig, rs: RealServer): ProbeTarget | string {
  const conn = 'conn' in cfg ? cfg.conn : {};
  const address = conn.connectIp ?? rs.address;
  const port = conn.connectPort ?? rs.port;
  if (port === 0 && cfg.type !== 'PING_CHECK') return `${cfg.type} on ${rs.address} has no port: set connect_port`;
  return {
    family: net.isIPv6(address) ? 'inet6' : 'inet',
    address, port,
    bindAddress: conn.bindto, bindPort: conn.bindPort,
  };
}

export const createChecker: CheckerFactory = (cfg, rs, vs, deps) => {
  const user: ScriptUser | undefined = deps.config.global.scriptUser;
  if (cfg.type === 'MISC_CHECK') return new MiscChecker(cfg, user);
  if (cfg.type === 'FILE_CHECK') {
    const tf = deps.config.trackFiles.find((t) => t.name === cfg.trackFile);
    if (!tf) return new BrokenChecker(cfg.type, `track_file ${cfg.trackFile} is not defined`);
    return new FileChecker(tf.file, cfg, rs.weight);
  }
  const target = probeTarget(cfg, rs);
  if (typeof target === 'string') return new BrokenChecker(cfg.type, target);
  switch (cfg.type) {
    case 'TCP_CHECK': return new TcpChecker(target, { halfOpen: cfg.halfOpen === true });
    case 'HTTP_GET':
    case 'SSL_GET': return new HttpChecker(target, cfg, rs.virtualhost ?? vs.virtualhost);
    case 'SMTP_CHECK': return new SmtpChecker(target, cfg.heloName);
    case 'DNS_CHECK': return new DnsChecker(target, cfg);
    case 'UDP_CHECK': return new UdpChecker(target, cfg);
    case 'PING_CHECK': {
      let p = deps.pingers.get(target.family);
      if (!p) {
        p = new Pinger(deps.rawSockets, target.family);
        deps.pingers.set(target.family, p);
      }
      return new PingChecker(target, p);
    }
  }
};
