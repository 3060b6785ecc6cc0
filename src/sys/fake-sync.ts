/**
 * FakeSyncSegment: an in-memory multicast segment for the sync channel. Every sender's
 * datagram reaches every listener on the same group and port but its own sender's
 * (loopback is off, as IPVS sets it). Tests inject datagrams from a third party with
 * `inject`, and read what was sent in `sent`.
 */
import type { SyncChannelOptions, SyncListener, SyncSender, SyncTransport } from './sync-socket.js';

interface Member {
  readonly o: SyncChannelOptions;
  readonly host: string;
  readonly onMessage: (buf: Buffer, from: string) => void;
}

export class FakeSyncSegment {
  private readonly listeners = new Set<Member>();
  readonly sent: { from: string; group: string; port: number; data: Buffer }[] = [];
  /** Make the next send fail (once). */
  failNextSend: Error | null = null;

  /** The transport of one host on this segment. */
  transport(host: string): SyncTransport {
    return {
      openSender: (o): Promise<SyncSender> => Promise.resolve({
        send: (buf: Buffer): Promise<void> => {
          if (this.failNextSend) {
            const e = this.failNextSend;
            this.failNextSend = null;
            return Promise.reject(e);
          }
          this.sent.push({ from: host, group: o.group, port: o.port, data: Buffer.from(buf) });
          this.deliver(host, o, buf);
          return Promise.resolve();
        },
        close: () => undefined,
      }),
      openListener: (o, onMessage): Promise<SyncListener> => {
        const m: Member = { o, host, onMessage };
        this.listeners.add(m);
        return Promise.resolve({ close: () => { this.listeners.delete(m); } });
      },
    };
  }

  /** A datagram from `from` (a host with no Fulcrum: a hostile or broken sender). */
  inject(from: string, o: { group: string; port: number }, buf: Buffer): void {
    this.deliver(from, o, buf);
  }

  private deliver(from: string, o: { group: string; port: number }, buf: Buffer): void {
    for (const m of [...this.listeners]) if (m.host !== from && m.o.group === o.group && m.o.port === o.port) m.onMessage(Buffer.from(buf), from);
  }
}
