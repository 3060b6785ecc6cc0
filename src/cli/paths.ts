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
