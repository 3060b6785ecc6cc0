/** Errors of the system adapters, with stable codes. */

/** Stable codes for system-adapter failures. */
export const SysErrorCode = {
  /** The operation needs a capability the process lacks (CAP_NET_RAW, CAP_NET_ADMIN). */
  PERMISSION: 'E_SYS_PERMISSION',
  /** A named interface does not exist. */
  NO_DEVICE: 'E_SYS_NO_DEVICE',
  /** nftables refused a transaction (nothing changed in the kernel). */
  NFT: 'E_SYS_NFT',
  /** The FFI or the call failed for another reason. */
  FAILED: 'E_SYS_FAILED',
} as const;
export type SysErrorCode = (typeof SysErrorCode)[keyof typeof SysErrorCode];

export class SysError extends Error {
  constructor(readonly code: SysErrorCode, message: string, readonly errno?: number) {
    super(message);
    this.name = 'SysError';
  }
}

/** errno → a SysError naming the capability to grant when it is EPERM/EACCES. */
export function sysFailure(what: string, errno: number, capability: 'CAP_NET_RAW' | 'CAP_NET_ADMIN'): SysError {
  if (errno === 1 || errno === 13) {
    return new SysError(SysErrorCode.PERMISSION, `${what} needs ${capability}: run as root or grant it (setcap ${capability.toLowerCase()}+ep, or AmbientCapabilities=${capability} in the systemd unit)`, errno);
  }
  if (errno === 19) return new SysError(SysErrorCode.NO_DEVICE, `${what}: no such network interface`, errno);
  return new SysError(SysErrorCode.FAILED, `${what} failed: errno ${errno}`, errno);
}
