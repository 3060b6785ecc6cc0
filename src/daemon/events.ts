import { channel } from 'node:diagnostics_channel';

/** diagnostics_channel name for DaemonEvent messages. */
export const DAEMON_CHANNEL = 'fulcrum:daemon';
const ch = channel(DAEMON_CHANNEL);

export type DaemonEvent =
  | { readonly type: 'started'; readonly services: number; readonly plane: string }
  | { readonly type: 'reloaded'; readonly ops: number; readonly failed: number }
  | { readonly type: 'reload-rejected'; readonly errors: readonly string[] }
  | { readonly type: 'stopping'; readonly signal: string; readonly connections: number; readonly drainMs: number }
  | { readonly type: 'stopped' }
  | { readonly type: 'notice'; readonly message: string };

export function publishDaemon(e: DaemonEvent): void {
  if (ch.hasSubscribers) ch.publish(e);
}
