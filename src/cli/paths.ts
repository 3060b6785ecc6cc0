/**
 * Default paths, in a module of their own: `fulcrum adm` needs them without loading the
 * daemon that `fulcrum run` starts.
 */
import os from 'node:os';
import path from 'node:path';

/**
 * Where the API socket and the state file go by default: system paths for root; for anyone
 * else the user's runtime and state directories (XDG), so `fulcrum run` works unprivileged.
 */
export function defaultPaths(env: NodeJS.ProcessEnv = process.env, uid = process.getuid?.() ?? 0): { socket: string; state: string } {
  if (uid === 0) return { socket: '/run/fulcrum/fulcrum.sock', state: '/var/lib/fulcrum/runtime.json' };
  const runtime = env['XDG_RUNTIME_DIR'] || path.join(os.tmpdir(), `fulcrum-${uid}`);
  const state = env['XDG_STATE_HOME'] || path.join(env['HOME'] || os.homedir(), '.local', 'state');
  return { socket: path.join(runtime, 'fulcrum.sock'), state: path.join(state, 'fulcrum', 'runtime.json') };
}

/** Where `fulcrum run` and `fulcrum check` look without `-f`, in order. */
export const DEFAULT_CONFIG_FILES: readonly string[] = ['/etc/fulcrum/fulcrum.conf', '/etc/keepalived/keepalived.conf'];

/**
 * The configuration file to read when none is given: the first of DEFAULT_CONFIG_FILES that
 * exists, with a line saying which (an operator must never wonder which file is running);
 * null, with the reason, when none does.
 */
export function defaultConfigFile(exists: (p: string) => boolean): { file: string; said: string } | { file: null; said: string } {
  for (const [i, f] of DEFAULT_CONFIG_FILES.entries()) {
    if (exists(f)) {
      const skipped = DEFAULT_CONFIG_FILES.slice(0, i);
      return { file: f, said: `no -f given: reading ${f}${skipped.length > 0 ? ` (${skipped.join(', ')} does not exist)` : ''}` };
    }
  }
  return { file: null, said: `no -f given and none of ${DEFAULT_CONFIG_FILES.join(', ')} exists: give the configuration with -f FILE` };
}
