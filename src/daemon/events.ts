import { channel } from 'node:diagnostics_channel';
import type { BgpEvent } from '../bgp/index.js';

/** diagnostics_channel name for DaemonEvent messages. */
export const DAEMON_CHANNEL = 'fulcrum:daemon';
const ch = channel(DAEMON_CHANNEL);

export type DaemonEvent =
  | { readonly type: 'started'; readonly services: number; readonly plane: string }
  | { readonly type: 'reloaded'; readonly ops: number; readonly failed: number }
  | { readonly type: 'reload-rejected'; readonly errors: readonly string[] }
  | { readonly type: 'stopping'; readonly signal: string; readonly connections: number; readonly drainMs: number }
  | { readonly type: 'stopped' }
  /** Configuration applied, the API listening, signals handled: what a supervisor waits for. */
  | { readonly type: 'ready' }
  | { readonly type: 'notice'; readonly message: string }
  /** Where the control API listens. */
  | { readonly type: 'api'; readonly socket: string | null; readonly url: string | null }
  /** A runtime change (fulcrum adm / the API) was applied. */
  | { readonly type: 'runtime'; readonly source: string; readonly commands: readonly string[]; readonly ops: number }
  /** A runtime change was refused; nothing changed. */
  | { readonly type: 'runtime-rejected'; readonly source: string; readonly commands: readonly string[]; readonly reason: string }
  | { readonly type: 'drain-started'; readonly service: string; readonly server: string; readonly deadline: number }
  /** A drain was cancelled (undrain): the server keeps serving with its weight from before. */
  | { readonly type: 'drain-cancelled'; readonly service: string; readonly server: string; readonly weight: number; readonly source: string }
  /** A drained server was removed: idle, at its deadline (with what was left), or gone from the table. */
  | { readonly type: 'drained'; readonly service: string; readonly server: string; readonly outcome: 'idle' | 'deadline' | 'gone'; readonly connections: number; readonly templates: number }

  /** The connection-sync daemon changed role (VRRP moved, a start or stop, sockets opened at last). */
  | { readonly type: 'sync-role'; readonly from: string; readonly to: string; readonly interface: string; readonly instance: string | null; readonly syncid: number }
  /** BGP: a session changed state, a route was announced or withdrawn (with why), the speaker went up or down. */
  | BgpEvent;

export function publishDaemon(e: DaemonEvent): void {
  if (ch.hasSubscribers) ch.publish(e);
}
