/**
 * sys — the only code that reaches the kernel through the FFI (koffi, pinned): raw IP
 * sockets (ping), the host network VRRP needs (raw protocol-112 channels, rtnetlink
 * addresses and link changes, gratuitous ARP / neighbour advertisements); libnftables
 * joins it with the kernel data plane. Each adapter is an interface with a fake beside it.
 */
export { SysError, SysErrorCode, sysFailure } from './errors.js';
export { ffiRawSockets, sockaddr, sockaddrAddress, type RawMessageHandler, type RawSocket, type RawSocketFactory } from './raw.js';
export { FakeRawSockets } from './fake.js';
export {
  ffiHostNetwork, gratuitousArp, missingNetCapabilities, readLink, unsolicitedNa,
  type AddressSpec, type HostNetwork, type LinkInfo, type VrrpChannel, type VrrpChannelOptions, type VrrpPacketIn,
} from './host.js';
export { addressMessage, ackErrno } from './netlink.js';
export { FakeHost, FakeSegment, ipv4Datagram } from './fake-host.js';
export { commandNft, defaultNft, libNft, NftError, type Nft } from './nft.js';
export { commandKernelHost, FakeKernelHost, tunnelDevice, tunnelMac, TUNNEL_PORT, tunnelVni, type KernelHost, type TunnelKind } from './kernel-host.js';
export { fileLimit, openFileCount, raiseFileLimit, watchFileLimit, type FileLimit } from './limits.js';
export { openNotifyFifo, type FifoOpener, type NotifyFifo } from './fifo.js';
export { FakeServiceManager, notifyMessage, notifySockaddr, systemdNotifier, type ServiceManager } from './sd-notify.js';
export { readProcesses } from './procs.js';
