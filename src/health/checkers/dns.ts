/**
 * DNS_CHECK (keepalived check_dns.c): send one query (type, name) over UDP and require a
 * reply with our id, the response bit, rcode NOERROR and at least one answer record.
 */
import { randomInt } from 'node:crypto';
import type * as DnsPacket from 'dns-packet';
import type { DnsCheck } from '../../model/types.js';
import type { Checker, ProbeContext, ProbeResult, ProbeTarget } from '../types.js';
import { ProbeErrorCode } from '../types.js';
import { udpExchange } from './exchange.js';

/** dns-packet loads at the first DNS_CHECK probe, not with every daemon (issue 22: resident memory). */
type Codec = Pick<typeof DnsPacket, 'encode' | 'decode' | 'RECURSION_DESIRED'>;
let codec: Promise<Codec> | undefined;
const loadCodec = (): Promise<Codec> => (codec ??= import('dns-packet').then((m) => m.default));

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

export class DnsChecker implements Checker {
  readonly type = 'DNS_CHECK';
  constructor(private readonly target: ProbeTarget, private readonly cfg: Pick<DnsCheck, 'queryType' | 'name'>) {}

  async check(ctx: ProbeContext): Promise<ProbeResult> {
    const dnsPacket = await loadCodec();
    const { queryType, name: qname } = this.cfg;
    const id = randomInt(0, 65536);
    const name = qname === '.' ? '.' : qname.replace(/\.$/, '');
    return udpExchange(this.target, ctx, {
      request: dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: queryType, name }] }),
      onTimeout: () => ({ ok: false, code: ProbeErrorCode.TIMEOUT, detail: `no DNS reply for ${queryType} ${qname}` }),
      onReply: (msg) => {
        let p: DnsPacket.Packet;
        try {
          p = dnsPacket.decode(msg);
        } catch {
          return { ok: false, code: ProbeErrorCode.PROTOCOL, detail: `malformed DNS reply (${msg.length} bytes)` };
        }
        if (p.id !== id || p.type !== 'response') return null; // not ours: keep waiting
        const rcode = (p.flags ?? 0) & 0x0f;
        const answers = p.answers?.length ?? 0;
        if (rcode !== 0) return { ok: false, code: ProbeErrorCode.MISMATCH, status: rcode, detail: `rcode ${RCODES[rcode] ?? rcode} for ${queryType} ${qname}` };
        if (answers === 0) return { ok: false, code: ProbeErrorCode.MISMATCH, status: rcode, detail: `no answer for ${queryType} ${qname}` };
        return { ok: true, status: rcode, detail: `${answers} answer(s)` };
      },
    });
  }

  close(): void {}
}
