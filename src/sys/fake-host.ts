/**
 * A fake HostNetwork: hosts on one simulated Ethernet segment. VRRP sent to a multicast
 * group reaches every other host's channel that joined it; unicast reaches the host that
 * holds the address. IPv4 packets arrive with an IPv4 header (TTL 255), as a raw socket
 * delivers them. Addresses, announcements and link states are recorded and settable.
 */
import type { Family, StaticRoute } from '../model/types.js';
import { SysError, SysErrorCode } from './errors.js';
import type { AddressSpec, HostNetwork, LinkInfo, VmacSpec, VrrpChannel, VrrpChannelOptions, VrrpPacketIn } from './host.js';

interface FakeChannel {
  readonly host: FakeHost;
  readonly o: VrrpChannelOptions;
  readonly onPacket: (p: VrrpPacketIn) => void;
  open: boolean;
}

/** An IPv4 header + payload, as the kernel hands a raw socket (checksum left 0). */
export function ipv4Datagram(src: string, dst: string, payload: Buffer, ttl = 255, protocol = 112): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h[1] = 0xc0;
  h.writeUInt16BE(20 + payload.length, 2);
  h[8] = ttl;
  h[9] = protocol;
  Buffer.from(src.split('.').map(Number)).copy(h, 12);
  Buffer.from(dst.split('.').map(Number)).copy(h, 16);
  return Buffer.concat([h, payload]);
}

export class FakeSegment {
  readonly channels: FakeChannel[] = [];
  readonly hosts: FakeHost[] = [];

  host(name: string, links: readonly { name: string; mac: string; addresses: readonly { family: Family; address: string; prefixLength: number }[] }[]): FakeHost {
    const h = new FakeHost(this, name, links);
    this.hosts.push(h);
    return h;
  }

  /** Deliver a packet as if `from` sent it (TTL and raw bytes as given): for malformed-packet tests. */
  inject(p: { family: Family; src: string; dst: string; payload: Buffer; ttl?: number; raw?: Buffer }): void {
    for (const ch of this.channels) this.deliver(ch, p);
  }

  send(from: FakeChannel, payload: Buffer, dst: string): void {
    if (!from.host.linkUp(from.o.ifname) || !from.host.up) return;
    for (const ch of this.channels) {
      if (ch.host !== from.host) this.deliver(ch, { family: from.o.family, src: from.o.source, dst, payload });
    }
  }

  /** Hand `p` to `ch` if it would get it: open, same family, host up, link up, and the group or an address of its host. */
  private deliver(ch: FakeChannel, p: { family: Family; src: string; dst: string; payload: Buffer; ttl?: number; raw?: Buffer }): void {
    if (!ch.open || ch.o.family !== p.family || !ch.host.up || !ch.host.linkUp(ch.o.ifname)) return;
    if (p.dst !== ch.o.group && !ch.host.has(p.dst)) return;
    const ttl = p.ttl ?? 255;
    const pkt: VrrpPacketIn = p.family === 'inet'
      ? { family: 'inet', data: p.raw ?? ipv4Datagram(p.src, p.dst, p.payload, ttl), src: p.src }
      : { family: 'inet6', data: Buffer.from(p.payload), src: p.src, dst: p.dst, ttl };
    queueMicrotask(() => { if (ch.open) ch.onPacket(pkt); });
  }
}

export class FakeHost implements HostNetwork {
  readonly added: AddressSpec[] = [];
  readonly removed: AddressSpec[] = [];
  readonly announced: { ifname: string; family: Family; address: string; at: number }[] = [];
  /** false = the host is "dead": it neither sends nor receives. */
  up = true;
  /** Refuse raw sockets, as without CAP_NET_RAW. */
  denyRaw = false;
  /** Capabilities this fake process lacks. */
  lacking: string[] = [];
  private readonly linkState = new Map<string, { mac: string; up: boolean; addresses: { family: Family; address: string; prefixLength: number }[] }>();
  private readonly watchers = new Set<() => void>();
  now: () => number = () => 0;

  constructor(private readonly segment: FakeSegment, readonly name: string, links: readonly { name: string; mac: string; addresses: readonly { family: Family; address: string; prefixLength: number }[] }[]) {
    for (const l of links) this.linkState.set(l.name, { mac: l.mac, up: true, addresses: [...l.addresses] });
  }

  has(address: string): boolean {
    for (const l of this.linkState.values()) if (l.addresses.some((a) => a.address === address)) return true;
    return false;
  }

  linkUp(ifname: string | undefined): boolean {
    return ifname === undefined || (this.linkState.get(ifname)?.up ?? false);
  }

  /** Addresses currently on `ifname`. */
  addresses(ifname: string): string[] {
    return (this.linkState.get(ifname)?.addresses ?? []).map((a) => a.address);
  }

  /** A link appears (as a hot-plugged or later-created interface does); the watchers hear of it. */
  plugLink(l: { name: string; mac: string; addresses: readonly { family: Family; address: string; prefixLength: number }[] }): void {
    this.linkState.set(l.name, { mac: l.mac, up: true, addresses: [...l.addresses] });
    for (const w of [...this.watchers]) queueMicrotask(w);
  }

  setLink(ifname: string, up: boolean): void {
    const l = this.linkState.get(ifname);
    if (l) l.up = up;
    for (const w of [...this.watchers]) queueMicrotask(w);
  }

  openVrrp(o: VrrpChannelOptions, onPacket: (p: VrrpPacketIn) => void): VrrpChannel {
    if (this.denyRaw) throw new SysError(SysErrorCode.PERMISSION, 'a raw VRRP socket needs CAP_NET_RAW (fake)');
    if (o.ifname !== undefined && !this.linkState.has(o.ifname)) throw new SysError(SysErrorCode.NO_DEVICE, `network interface '${o.ifname}' does not exist`);
    const ch: FakeChannel = { host: this, o, onPacket, open: true };
    this.segment.channels.push(ch);
    return {
      send: (payload, dst) => this.segment.send(ch, payload, dst),
      close: () => { ch.open = false; },
    };
  }

  link(name: string): LinkInfo | null {
    const l = this.linkState.get(name);
    if (!l) return null;
    return { name, index: [...this.linkState.keys()].indexOf(name) + 1, mac: l.mac, up: l.up, addresses: [...l.addresses] };
  }

  addAddress(a: AddressSpec): void {
    const l = this.linkState.get(a.ifname);
    if (!l) throw new SysError(SysErrorCode.NO_DEVICE, `network interface '${a.ifname}' does not exist`);
    this.added.push(a);
    if (!l.addresses.some((x) => x.address === a.address)) l.addresses.push({ family: a.family, address: a.address, prefixLength: a.prefixLength });
  }

  removeAddress(a: AddressSpec): void {
    const l = this.linkState.get(a.ifname);
    if (!l) return;
    this.removed.push(a);
    l.addresses = l.addresses.filter((x) => x.address !== a.address);
  }

  /** Virtual MAC interfaces made (name → base). */
  readonly vmacs = new Map<string, string>();

  vmac(op: 'add' | 'delete', v: VmacSpec): void {
    if (op === 'delete') {
      if (this.vmacs.delete(v.name)) this.linkState.delete(v.name);
      return;
    }
    if (!this.linkState.has(v.base)) throw new SysError(SysErrorCode.NO_DEVICE, `network interface '${v.base}' does not exist`);
    const have = this.linkState.get(v.name);
    if (have && have.mac !== v.mac) throw new SysError(SysErrorCode.FAILED, `interface ${v.name} exists with another MAC`);
    this.vmacs.set(v.name, v.base);
    if (!have) this.linkState.set(v.name, { mac: v.mac, up: true, addresses: [] });
  }

  /** Addresses the VIP filter drops now (`family address`). */
  filtered = new Set<string>();
  failFilter = false;

  filterVips(addresses: readonly { readonly family: Family; readonly address: string }[]): void {
    if (this.failFilter) throw new SysError(SysErrorCode.NFT, 'fake host refuses the VIP filter');
    this.filtered = new Set(addresses.map((a) => `${a.family} ${a.address}`));
  }

  /** Static routes and rules in place, as `kind family words`. */
  readonly routes = new Set<string>();
  failRoutes = false;

  route(op: 'add' | 'delete', r: StaticRoute): void {
    if (this.failRoutes) throw new SysError(SysErrorCode.FAILED, 'fake host refuses routes');
    const key = `${r.kind} ${r.family} ${r.words.join(' ')}`;
    if (op === 'add') this.routes.add(key);
    else this.routes.delete(key);
  }

  announce(ifname: string, family: Family, address: string, count: number): void {
    for (let k = 0; k < count; k++) this.announced.push({ ifname, family, address, at: this.now() });
  }

  missingCapabilities(): string[] {
    return [...this.lacking];
  }

  watchLinks(onChange: () => void): { close(): void } {
    this.watchers.add(onChange);
    return { close: () => { this.watchers.delete(onChange); } };
  }
}
