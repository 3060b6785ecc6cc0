/**
 * The data-plane boundary. The director computes what should be true and hands a data
 * plane a `Plan`: an ordered list of keyed deltas (add/edit/remove a virtual service,
 * add/edit/remove a real server, change a weight). A data plane never receives "the whole
 * table" — applying deltas is what lets unchanged services keep their connections across a
 * reload. Every implementation (the userspace proxy, the fake, later nftables) runs the
 * same compliance suite (compliance.ts).
 */
import type {
  Family, ForwardingMethod, Persistence, Protocol, ProxyProtocolVersion, SchedFlag, ServiceEndpoint,
} from '../model/types.js';
import type { AnySchedulerName } from '../scheduling/types.js';

/** One socket address a service accepts traffic on (a group expands to several). */
export interface ListenAddress {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  /**
   * The device VRRP puts this address on when MASTER (virtual_ipaddress `dev`, else the
   * instance's interface): where the kernel plane classifies DR/TUN packets for it while
   * this director is BACKUP and the address is elsewhere.
   */
  readonly device?: string | undefined;
}

/** Idle timeouts in seconds, as ipvsadm `--set tcp tcpfin udp` (0 = keep the default). */
export interface Timeouts {
  readonly tcp: number;
  readonly tcpfin: number;
  readonly udp: number;
}

/** ipvsadm's defaults for `--set` (IPVS: tcp 900 s, tcpfin 120 s, udp 300 s). */
export const DEFAULT_TIMEOUTS: Timeouts = { tcp: 900, tcpfin: 120, udp: 300 };

/** A virtual service as a data plane needs it. `key` is model/keys.serviceKey. */
export interface ServiceSpec {
  readonly key: string;
  readonly endpoint: ServiceEndpoint;
  readonly protocol: Protocol;
  /** Resolved addresses (a virtual_server_group's ranges expanded); empty for fwmark. */
  readonly listen: readonly ListenAddress[];
  readonly scheduler: AnySchedulerName;
  readonly schedFlags: readonly SchedFlag[];
  readonly persistence: Persistence | null;
  readonly method: ForwardingMethod;
  /** UDP one-packet scheduling (ipvsadm -o). */
  readonly ops: boolean;
  readonly timeouts: Timeouts;
  /** Full NAT (kernel NAT only): connections reach the real servers from this director address. */
  readonly snat?: string | null | undefined;
  /** Its slot in the workers' shared state (set by the workers plane for its workers only). */
  readonly slot?: number | undefined;
  /**
   * Neighbours its packets also arrive from (the BGP routers of an `announce bgp`
   * service): DR/TUN classify on the device of the route to each as well.
   */
  readonly arriveFrom?: readonly string[] | undefined;
  /** `fulcrum_dataplane xdp`: forwarded by the XDP plane rather than nftables (DR/TUN). */
  readonly plane?: 'xdp' | undefined;
  /** The kernel plane's slot-hash seed (`hash_seed`), when not the default. */
  readonly hashSeed?: number | undefined;
}

/** A real server of a service. `key` is model/keys.realServerKey (`addr:port`). */
export interface ServerSpec {
  readonly key: string;
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  /** The effective weight the director decided (0 = quiescent: drain, no new flows). */
  readonly weight: number;
  readonly method: ForwardingMethod;
  readonly uthreshold: number;
  readonly lthreshold: number;
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  /** The server agent's last load reading (−1..100) for the agent scheduler; absent = none. */
  readonly agentLoad?: number | undefined;
  /** Its slot in the workers' shared state (set by the workers plane for its workers only). */
  readonly slot?: number | undefined;
}

export type PlanOp =
  | { readonly op: 'add-service'; readonly service: ServiceSpec }
  | { readonly op: 'edit-service'; readonly service: ServiceSpec }
  | { readonly op: 'remove-service'; readonly key: string }
  | { readonly op: 'add-server'; readonly service: string; readonly server: ServerSpec }
  | { readonly op: 'edit-server'; readonly service: string; readonly server: ServerSpec }
  | { readonly op: 'remove-server'; readonly service: string; readonly key: string }
  | { readonly op: 'weight'; readonly service: string; readonly key: string; readonly weight: number }
  /** A server agent's load reading; planes that schedule per connection pass it to the scheduler. */
  | { readonly op: 'load'; readonly service: string; readonly key: string; readonly load: number };

export interface Plan {
  readonly ops: readonly PlanOp[];
}

/** Stable codes for an operation a data plane refused. */
export const DataPlaneErrorCode = {
  NO_SERVICE: 'E_DP_NO_SERVICE',
  NO_SERVER: 'E_DP_NO_SERVER',
  EXISTS: 'E_DP_EXISTS',
  /** The plane cannot do this (a DR service on the userspace proxy). */
  UNSUPPORTED: 'E_DP_UNSUPPORTED',
  /** A privilege is missing (a port below 1024 without CAP_NET_BIND_SERVICE). */
  PERMISSION: 'E_DP_PERMISSION',
  /** The address is in use or not on this host. */
  LISTEN: 'E_DP_LISTEN',
  CLOSED: 'E_DP_CLOSED',
  /** The kernel refused the transaction (nothing changed); the message is nftables'. */
  KERNEL: 'E_DP_KERNEL',
} as const;
export type DataPlaneErrorCode = (typeof DataPlaneErrorCode)[keyof typeof DataPlaneErrorCode];

export interface OpFailure {
  readonly op: PlanOp;
  readonly code: DataPlaneErrorCode;
  readonly message: string;
}

/**
 * What happened. Operations are applied in order; a refused one is skipped and reported,
 * the rest still apply (the director re-plans from what was actually applied).
 */
export interface ApplyResult {
  readonly applied: readonly PlanOp[];
  readonly failed: readonly OpFailure[];
}

/** ipvsadm --stats counters. Bytes and packets: In = client→server, Out = server→client. */
export interface Counters {
  conns: number;
  inPkts: number;
  outPkts: number;
  inBytes: number;
  outBytes: number;
}

/** ipvsadm --rate: per second, IPVS's 2-second estimator. */
export interface Rates {
  readonly cps: number;
  readonly inPps: number;
  readonly outPps: number;
  readonly inBps: number;
  readonly outBps: number;
}

export interface ServerStats {
  readonly spec: ServerSpec;
  readonly active: number;
  readonly inactive: number;
  /** Persistence templates pointing at this server. */
  readonly persistent: number;
  readonly counters: Readonly<Counters>;
  readonly rates: Rates;
}

export interface ServiceStats {
  readonly spec: ServiceSpec;
  readonly servers: readonly ServerStats[];
  readonly counters: Readonly<Counters>;
  readonly rates: Rates;
  /** Datagrams dropped since start (UDP: no real server, queue full, send failure). */
  readonly dropped: number;
}

/** One entry of the connection table (ipvsadm -L -c). */
export interface ConnectionEntry {
  readonly protocol: Protocol;
  readonly client: ListenAddress;
  readonly virtual: ListenAddress;
  /** The real server key, or '' while not yet scheduled. */
  readonly server: string;
  /** IPVS-like state names: SYN_SENT, ESTABLISHED, FIN_WAIT, CLOSE_WAIT, UDP. */
  readonly state: string;
  /** Seconds until the entry expires when idle. */
  readonly expires: number;
}

/** A plane's own record of what it holds: services by key, each with its servers by key. */
export interface HeldTable {
  readonly services: ReadonlyMap<string, {
    readonly spec: ServiceSpec;
    readonly servers: ReadonlyMap<string, ServerSpec>;
    /**
     * Changes whenever this service or one of its servers changes (a number never used for
     * other contents); the diff skips a service it found equal before at the same revision.
     */
    readonly rev?: number;
  }>;
}

export interface DataPlane {
  readonly name: string;
  /** Forwarding methods this plane implements. */
  readonly methods: readonly ForwardingMethod[];
  /**
   * What the plane holds now — the one source of truth about it. The director diffs the
   * desired state against this (never against a copy of its own), so whatever an apply did
   * or failed to do, the next reconcile starts from what is really there.
   */
  readonly held: HeldTable;
  apply(plan: Plan): Promise<ApplyResult>;
  stats(): ServiceStats[];
  /** The connection table (ipvsadm -L -c); asynchronous: workers are asked for theirs. */
  connections(): Promise<ConnectionEntry[]>;
  /**
   * `ipvsadm -Z`: zero the counters and rate estimates of one service (by key) or of all.
   * False when the service is not there.
   */
  zero(service?: string): boolean;
  /**
   * Stop: no new connections; existing ones may finish for up to `drainMs`, then are
   * closed. Resolves when the plane holds no sockets.
   */
  close(drainMs: number): Promise<void>;
  /**
   * Stop accepting new connections now (listeners closed), before a drain. Planes whose
   * close() already does that before its first await need not have it.
   */
  stopAccepting?(): Promise<void>;
  /** Planes that relay on worker threads: each worker's state. */
  workers?(): WorkerStatus[];
  /** Planes that relay on worker threads: connections lost with workers that died. */
  lostConnections?(): number;
  /**
   * The userspace proxy: pipes its epoll relay holds now for spliced bulk directions (two
   * descriptors each; summed over workers, as they last reported).
   */
  pipes?(): number;
  /**
   * Planes that run a program per packet (XDP): its packets by outcome since it was loaded
   * (forwarded, new, no-server, no-neighbour, malformed, tx-failed), summed over CPUs.
   */
  packetCounters?(): ReadonlyMap<string, number>;
  /**
   * Connection synchronisation (src/sync): the flows and persistence templates this plane
   * can hand to another director, read now. Planes that hold nothing another director
   * could continue (a proxied TCP connection cannot move) do not have it.
   */
  syncExport?(): Promise<SyncedFlow[]>;
  /** Install flows another director synchronised, so that they continue here after a takeover. */
  syncInstall?(flows: readonly SyncedFlow[]): Promise<SyncInstallResult>;
}

/** The state of a synchronised flow, as much as a receiver needs. */
export type SyncedState = 'established' | 'closing' | 'other';

/**
 * One connection or persistence template as directors synchronise it, independent of the
 * wire (src/sync/translate.ts maps it to IPVS's sync entry) and of the plane.
 */
export interface SyncedFlow {
  readonly template: boolean;
  readonly protocol: Protocol;
  readonly family: Family;
  readonly method: ForwardingMethod;
  /** The client (a template: the client's network, masked by the service's netmask). */
  readonly client: string;
  readonly cport: number;
  /** The service: its address and port; a fwmark service: its mark (address unspecified). */
  readonly virtual: string;
  readonly vport: number;
  readonly fwmark: number;
  readonly server: string;
  readonly dport: number;
  readonly state: SyncedState;
  /** Seconds a receiver keeps it without a refresh. */
  readonly timeout: number;
  /**
   * Packets the plane has seen on it, where the plane counts them (the XDP program, up to
   * 64): a new flow is sent only once it reaches the sync threshold (IPVS's sync_threshold).
   */
  readonly packets?: number | undefined;
}

/** Why a synchronised flow was not installed (stable; the label of its counter). */
export type SyncInstallRefusal = 'no-service' | 'no-server' | 'unsupported' | 'full' | 'kernel';

export interface SyncInstallResult {
  /** Written to the plane's tables (new, moved to another server, or refreshed). */
  readonly installed: number;
  /** Already held with the same server and enough time left: nothing written. */
  readonly unchanged: number;
  readonly refused: ReadonlyMap<SyncInstallRefusal, number>;
}

/** A data-plane worker as the control plane sees it. */
export interface WorkerStatus {
  readonly index: number;
  readonly threadId: number | null;
  readonly alive: boolean;
  readonly restarts: number;
  /** Sessions it relays now (as it last reported). */
  readonly sessions: number;
}
