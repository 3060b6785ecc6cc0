/**
 * Messages between the control plane (WorkersDataPlane) and its data-plane workers.
 * Structured clone; the shared buffers travel once, in the worker's `workerData`.
 */
import type { ConnectionEntry, DataPlaneErrorCode, Plan } from '../types.js';
import type { ProxyTunables } from '../proxy/context.js';
import type { SharedBuffers } from '../shared/state.js';

export interface WorkerInit {
  readonly index: number;
  readonly buffers: SharedBuffers;
  readonly tunables: ProxyTunables;
  /** Fault injection for tests (FULCRUM_FAULT_INJECTION=1): the worker obeys `crash`. */
  readonly faults: boolean;
  /** The FdRegistry buffer the worker's relay records its descriptors in (relay 'epoll'). */
  readonly fds: SharedArrayBuffer | null;
}

export type ToWorker =
  /** Phase one: open what the plan listens on; reply with the ops that cannot be prepared. */
  | { readonly t: 'prepare'; readonly id: number; readonly plan: Plan }
  /** Phase two: apply the plan but `skip`. */
  | { readonly t: 'commit'; readonly id: number; readonly plan: Plan; readonly skip: readonly number[] }
  | { readonly t: 'abort'; readonly id: number }
  | { readonly t: 'connections'; readonly id: number }
  /** Close the listeners now (connections go on). */
  | { readonly t: 'stop-accepting'; readonly id: number }
  | { readonly t: 'close'; readonly id: number; readonly drainMs: number }
  | { readonly t: 'crash' };

export type FromWorker =
  | { readonly t: 'ready' }
  | { readonly t: 'prepared'; readonly id: number; readonly failures: readonly { readonly index: number; readonly code: DataPlaneErrorCode; readonly message: string }[] }
  | { readonly t: 'done'; readonly id: number }
  | { readonly t: 'connections'; readonly id: number; readonly entries: readonly ConnectionEntry[] }
  /** A diagnostics-channel message published in the worker (proxy events, internal failures). */
  | { readonly t: 'event'; readonly channel: string; readonly message: unknown }
  /** Live sessions now (for the control plane's view of each worker). */
  | { readonly t: 'load'; readonly sessions: number; readonly pipes: number }
  /** An uncaught exception: the worker ends right after sending this. */
  | { readonly t: 'fault'; readonly message: string };
