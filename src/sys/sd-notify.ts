/**
 * systemd's readiness protocol (sd_notify(3)): one datagram of `KEY=VALUE` lines to the
 * AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or `@name` for the abstract namespace).
 * Node's `dgram` has no AF_UNIX, so the datagram goes through libc via koffi.
 *
 * `ServiceManager` is the boundary the daemon's front end talks to; `systemdNotifier()`
 * returns the real one when the variable is set and null otherwise (not under systemd, or
 * `Type=` is not `notify`). A failed send is reported, never thrown: the service manager's
 * view is advisory, the director's own state is what counts.
 */
import { loadLibc, SOCK_CLOEXEC, SOCK_DGRAM } from './libc.js';
import { SysError, SysErrorCode } from './errors.js';

export interface ServiceManager {
  /** Send one state message (`READY=1`, `RELOADING=1`, `STOPPING=1`, `STATUS=…`). Throws SysError on failure. */
  notify(fields: Readonly<Record<string, string>>): void;
}

const AF_UNIX = 1;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(struct sockaddr_un): family (2) + sun_path (108). */
const SUN_PATH_MAX = 108;

/** The `struct sockaddr_un` for a `$NOTIFY_SOCKET` value, and its length; null when the value cannot be one. */
export function notifySockaddr(value: string): { addr: Buffer; len: number } | null {
  if (value === '' || (value[0] !== '/' && value[0] !== '@')) return null;
  const name = Buffer.from(value, 'utf8');
  if (name.length >= SUN_PATH_MAX) return null;
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, 2);
  if (value[0] === '@') {
    // Abstract namespace: a leading NUL, and the length counts exactly the name's bytes.
    addr[2] = 0;
    return { addr, len: 2 + name.length };
  }
  return { addr, len: 2 + name.length + 1 };
}

/** `KEY=VALUE` lines, newline-separated; a value may not hold a newline (it would start another field). */
export function notifyMessage(fields: Readonly<Record<string, string>>): string {
  return Object.entries(fields).map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}`).join('\n');
}

/** The real notifier for `$NOTIFY_SOCKET`, or null when it is unset; a malformed value is a SysError. */
export function systemdNotifier(env: NodeJS.ProcessEnv = process.env): ServiceManager | null {
  const value = env['NOTIFY_SOCKET'];
  if (value === undefined || value === '') return null;
  const sa = notifySockaddr(value);
  if (!sa) throw new SysError(SysErrorCode.FAILED, `NOTIFY_SOCKET '${value}' is not an absolute path or @abstract name`);
  return {
    notify(fields) {
      const libc = loadLibc();
      const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (fd < 0) throw new SysError(SysErrorCode.FAILED, `socket(AF_UNIX) for NOTIFY_SOCKET failed: errno ${libc.errno()}`);
      try {
        const msg = Buffer.from(notifyMessage(fields), 'utf8');
        if (libc.sendto(fd, msg, msg.length, MSG_NOSIGNAL, sa.addr, sa.len) < 0) {
          const errno = libc.errno();
          throw new SysError(SysErrorCode.FAILED, `sendto NOTIFY_SOCKET ${value} failed: errno ${errno}`, errno);
        }
      } finally {
        libc.close(fd);
      }
    },
  };
}

/** A notifier that records what it was told (tests). */
export class FakeServiceManager implements ServiceManager {
  readonly sent: Record<string, string>[] = [];
  fail = false;
  notify(fields: Readonly<Record<string, string>>): void {
    if (this.fail) throw new SysError(SysErrorCode.FAILED, 'fake service manager refuses');
    this.sent.push({ ...fields });
  }
}
