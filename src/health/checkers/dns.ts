/**
 * DNS_CHECK (keepalived check_dns.c): send one query (type, name) over UDP and require a
 * reply with our id, the response bit, rcode NOERROR and at least one answer record.
 */
import dgram from 'node:dgram';
import { randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import type { DnsCheck } from '../../model/types.js';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { networkFailure, ProbeErrorCode, verdict } from '../types.js';

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export class DnsChecker implements Checker {
  readonly type = 'DNS_CHECK';
  constructor(private readonly target: ProbeTarget, private readonly cfg: Pick<DnsCheck, 'queryType' | 'name'>) {}

  check(ctx: ProbeContext): Promise<ProbeResult> {
    const start = performance.now();
    const id = randomInt(0, 65536);
    const name = this.cfg.name === '.' ? '.' : this.cfg.name.replace(/\.$/, '');
    const query = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: this.cfg.queryType, name }] });
    return new Promise((resolve) => {
      const sock = dgram.createSocket(this.target.family === 'inet6' ? 'udp6' : 'udp4');
      let done = false;
      const finish = (r: Omit<ProbeResult, 'latencyMs'>): void => {
        if (done) return;
        done = true;
        ctx.signal.removeEventListener('abort', onAbort);
        sock.close();
        resolve(verdict(start, performance.now(), r));
      };
      const onAbort = (): void => finish({ ok: false, code: ProbeErrorCode.TIMEOUT, detail: `no DNS reply for ${this.cfg.queryType} ${this.cfg.name}` });
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener('abort', onAbort, { once: true });
      sock.on('error', (err) => finish({ ok: false, ...networkFailure(err) }));
      sock.on('message', (msg) => {
        let p: dnsPacket.Packet;
        try {
          p = dnsPacket.decode(msg);
        } catch {
          return finish({ ok: false, code: ProbeErrorCode.PROTOCOL, detail: `malformed DNS reply (${msg.length} bytes)` });
        }
        if (p.id !== id || p.type !== 'response') return; // not ours: keep waiting
        const rcode = (p.flags ?? 0) & 0x0f;
        const answers = p.answers?.length ?? 0;
        if (rcode !== 0) return finish({ ok: false, code: ProbeErrorCode.MISMATCH, status: rcode, detail: `rcode ${RCODES[rcode] ?? rcode} for ${this.cfg.queryType} ${this.cfg.name}` });
        if (answers === 0) return finish({ ok: false, code: ProbeErrorCode.MISMATCH, status: rcode, detail: `no answer for ${this.cfg.queryType} ${this.cfg.name}` });
        finish({ ok: true, status: rcode, detail: `${answers} answer(s)` });
      });
      const bind = this.target.bindAddress !== undefined || this.target.bindPort !== undefined
        ? { address: this.target.bindAddress, port: this.target.bindPort ?? 0 } : undefined;
      const go = (): void => sock.connect(this.target.port, this.target.address, () => sock.send(query));
      if (bind) sock.bind(bind, go);
      else go();
    });
  }

  close(): void {}
}
