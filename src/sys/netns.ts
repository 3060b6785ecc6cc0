/**
 * keepalived's `net_namespace NAME`: the director runs inside the named network namespace.
 * Fulcrum enters it the way `ip netns exec` does — by becoming `ip netns exec NAME` running
 * itself again (execve: the same PID, so systemd keeps following it, the same arguments and
 * environment, FULCRUM_NETNS saying it is done) — before it opens anything. A thread-level
 * setns(2) would leave libuv's pool threads, and so name lookups, in the old namespace.
 */
import fs from 'node:fs';
import { SysError, SysErrorCode } from './errors.js';
import { loadLibc } from './libc.js';

/** Where ip-netns(8) keeps named namespaces. */
export const NETNS_DIR = '/run/netns';
/** Set in the environment of the process that has entered the namespace. */
export const NETNS_ENV = 'FULCRUM_NETNS';

/** Is this process in the named namespace ('in'), elsewhere ('out'), or is there no such namespace? */
export function netnsState(name: string, o: { self?: string; dir?: string } = {}): 'in' | 'out' | 'missing' {
  let target: fs.Stats;
  try {
    target = fs.statSync(`${o.dir ?? NETNS_DIR}/${name}`);
  } catch {
    return 'missing';
  }
  const self = fs.statSync(o.self ?? '/proc/self/ns/net');
  return self.ino === target.ino && self.dev === target.dev ? 'in' : 'out';
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;
const F_GETFL = 3;
const F_SETFL = 4;
const O_NONBLOCK = 0o4000;

/**
 * Become `ip netns exec NAME <argv…>` (does not return; throws SysError when execve fails).
 * The standard streams are kept open across it and put back to blocking: Node may have made a
 * pipe non-blocking, and that flag belongs to the open file, which the new program shares.
 */
export function execInNetns(name: string, argv: readonly string[], env: NodeJS.ProcessEnv): never {
  const c = loadLibc();
  for (const fd of [0, 1, 2]) {
    // Node marks its standard streams close-on-exec; they must survive this one.
    const fdf = c.fcntl(fd, F_GETFD, 0);
    if (fdf >= 0 && (fdf & FD_CLOEXEC) !== 0) c.fcntl(fd, F_SETFD, fdf & ~FD_CLOEXEC);
    const fl = c.fcntl(fd, F_GETFL, 0);
    if (fl >= 0 && (fl & O_NONBLOCK) !== 0) c.fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
  }
  const ip = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => fs.existsSync(p));
  if (!ip) throw new SysError(SysErrorCode.FAILED, `net_namespace ${name}: the ip command (iproute2) is not installed`);
  const envp = Object.entries({ ...env, [NETNS_ENV]: name }).filter((e): e is [string, string] => e[1] !== undefined).map(([k, v]) => `${k}=${v}`);
  c.execve(ip, ['ip', 'netns', 'exec', name, ...argv], envp);
  const e = c.errno();
  throw new SysError(SysErrorCode.FAILED, `net_namespace ${name}: cannot run ip netns exec (errno ${e})`, e);
}
