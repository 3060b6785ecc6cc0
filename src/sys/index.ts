/**
 * sys — the only code that reaches the kernel through the FFI (koffi, pinned): raw IP
 * sockets today; netlink and libnftables join it with VRRP and the kernel data plane.
 * Each adapter is an interface with a fake beside it.
 */
export { ffiRawSockets, sockaddr, sockaddrAddress, SysError, SysErrorCode, type RawMessageHandler, type RawSocket, type RawSocketFactory } from './raw.js';
export { FakeRawSockets } from './fake.js';
