/**
 * A fake RawSocketFactory: sockets that record what was sent, and a `reply` hook that
 * answers each packet (or not). `deny` makes open() fail as without CAP_NET_RAW.
 */
import type { Family } from '../model/types.js';
import { SysError, SysErrorCode, type RawMessageHandler, type RawSocket, type RawSocketFactory } from './raw.js';

export class FakeRawSockets implements RawSocketFactory {
  readonly sent: { family: Family; protocol: number; address: string; packet: Buffer }[] = [];
  opened = 0;
  closed = 0;
  deny = false;
  /** Given a sent packet, the packet to deliver back (and from where), or null for silence. */
  reply: (packet: Buffer, address: string, family: Family) => { packet: Buffer; from: string } | null = () => null;

  open(family: Family, protocol: number, onMessage: RawMessageHandler): RawSocket {
    if (this.deny) throw new SysError(SysErrorCode.PERMISSION, 'a raw socket needs CAP_NET_RAW (fake)');
    this.opened++;
    let open = true;
    return {
      send: (packet, address) => {
        if (!open) throw new SysError(SysErrorCode.FAILED, 'closed');
        this.sent.push({ family, protocol, address, packet });
        const r = this.reply(packet, address, family);
        if (r) setImmediate(() => { if (open) onMessage(r.packet, r.from); });
      },
      close: () => {
        if (open) this.closed++;
        open = false;
      },
    };
  }
}
