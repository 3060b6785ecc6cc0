/**
 * The messages between the daemon and its VRRP child (process IPC, structured clone).
 */
import type { FulcrumConfig } from '../../model/types.js';
import type { InstanceStatus } from '../node.js';

export type ToChild =
  | { readonly t: 'prepare'; readonly id: number; readonly config: FulcrumConfig }
  | { readonly t: 'commit'; readonly id: number }
  | { readonly t: 'abort'; readonly id: number }
  | { readonly t: 'stop'; readonly id: number };

export type FromChild =
  | { readonly t: 'ready' }
  | { readonly t: 'reply'; readonly id: number; readonly ok: true }
  | { readonly t: 'reply'; readonly id: number; readonly ok: false; readonly code: string; readonly message: string }
  | { readonly t: 'held'; readonly addresses: readonly string[] }
  | { readonly t: 'status'; readonly status: readonly InstanceStatus[]; readonly drops: Readonly<Record<string, number>> }
  /** A diagnostics-channel message published in the child, for the daemon to publish again. */
  | { readonly t: 'event'; readonly channel: string; readonly message: unknown };
