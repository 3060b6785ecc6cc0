/**
 * The connection-sync channel: UDP multicast on one interface, as IPVS's sync threads use
 * it (send: multicast interface set, loopback off, TTL as configured; receive: the group
 * joined on that interface). `SyncTransport` is the boundary; `udpSyncTransport` the real
 * one (node:dgram), `FakeSyncSegment` (fake-sync.ts) the fake.
 */
import dgram from 'node:dgram';
import os from 'node:os';
import { SysError, SysErrorCode } from './errors.js';

export interface SyncChannelOptions {
  readonly ifname: string;
  readonly group: string;
  readonly port: number;
  readonly ttl: number;
}

export interface SyncSender {
  send(buf: Buffer): Promise<void>;
  close(): void;
}

export interface SyncListener {
  close(): void;
}

export interface SyncTransport {
  openSender(o: SyncChannelOptions): Promise<SyncSender>;
  /** `onMessage` gets each datagram and its sender's address. */
  openListener(o: SyncChannelOptions, onMessage: (buf: Buffer, from: string) => void): Promise<SyncListener>;
}

/** The interface's first IPv4 address (the kernel's sync threads bind to it too). */
function interfaceAddress(ifname: string): string {
  const a = (os.networkInterfaces()[ifname] ?? []).find((x) => x.family === 'IPv4');
  if (!a) throw new SysError(SysErrorCode.NO_DEVICE, `sync interface ${ifname} does not exist or has no IPv4 address (IPVS's sync threads need one too)`);
  return a.address;
}

function bindSocket(s: dgram.Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    s.once('error', onError);
    s.bind({ port, address, exclusive: true }, () => {
      s.off('error', onError);
      resolve();
    });
  });
}

export const udpSyncTransport: SyncTransport = {
  async openSender(o) {
    const local = interfaceAddress(o.ifname);
    const s = dgram.createSocket({ type: 'udp4' });
    try {
      await bindSocket(s, 0, local);
      s.setMulticastInterface(local);
      s.setMulticastTTL(o.ttl);
      s.setMulticastLoopback(false);
    } catch (err: unknown) {
      s.close();
      throw err;
    }
    // Errors after the bind (a send refused) come back through send's callback.
    s.on('error', () => undefined);
    return {
      send: (buf) => new Promise<void>((resolve, reject) => s.send(buf, o.port, o.group, (err) => (err ? reject(err) : resolve()))),
      close: () => s.close(),
    };
  },
  async openListener(o, onMessage) {
    const local = interfaceAddress(o.ifname);
    // As large a receive buffer as the kernel allows (net.core.rmem_max caps it): a backup
    // that is busy writing its plane must not lose the master's datagrams meanwhile.
    const s = dgram.createSocket({ type: 'udp4', reuseAddr: true, recvBufferSize: 16 << 20 });
    try {
      // Bound to the group: only datagrams sent to it arrive here.
      await bindSocket(s, o.port, o.group);
      s.addMembership(o.group, local);
    } catch (err: unknown) {
      s.close();
      throw err;
    }
    s.on('message', (buf, rinfo) => onMessage(buf, rinfo.address));
    s.on('error', () => undefined);
    return { close: () => s.close() };
  },
};
