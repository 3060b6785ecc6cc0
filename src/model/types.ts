/**
 * The shared vocabulary: what a virtual service, a real server, a checker and a VRRP
 * instance are, independent of where they were declared (keepalived.conf, ipvsadm rules,
 * the API). Every field is normalized: defaults applied, units fixed (seconds as numbers,
 * addresses in canonical text form), names lower-cased where the source was
 * case-insensitive.
 */
import type { SourceLocation } from '../errors/index.js';

export type Family = 'inet' | 'inet6';
export type Protocol = 'tcp' | 'udp' | 'sctp';

/**
 * How packets reach a real server. `nat`, `dr` and `tun` are LVS's masquerading, direct
 * routing and tunnelling (ipvsadm -m, -g, -i); `proxy` is Fulcrum's userspace full proxy.
 */
export type ForwardingMethod = 'nat' | 'dr' | 'tun' | 'proxy';
export const FORWARDING_METHODS: readonly ForwardingMethod[] = ['nat', 'dr', 'tun', 'proxy'];

/** The 14 IPVS schedulers, by their ipvsadm names. */
export const IPVS_SCHEDULERS = [
  'rr', 'wrr', 'lc', 'wlc', 'lblc', 'lblcr', 'dh', 'sh', 'sed', 'nq', 'mh', 'fo', 'ovf', 'twos',
] as const;
/** An IPVS scheduler, or Fulcrum's `agent` (lowest server-agent load first). */
export type SchedulerName = (typeof IPVS_SCHEDULERS)[number] | 'agent';
/** Every scheduler name the configuration accepts. */
export const SCHEDULER_NAMES: readonly SchedulerName[] = [...IPVS_SCHEDULERS, 'agent'];

export function isSchedulerName(s: string): s is SchedulerName {
  return (SCHEDULER_NAMES as readonly string[]).includes(s);
}

/**
 * Scheduler flags (ipvsadm -b). IPVS has three generic bits; sh and mh give the first two
 * names. They are stored by their generic bit so `-b sh-port` and `flag-2` compare equal.
 */
export type SchedFlag = 'flag-1' | 'flag-2' | 'flag-3';

export type TunnelType = 'ipip' | 'gue' | 'gre';
export interface TunnelSpec {
  readonly type: TunnelType;
  /** GUE destination port (required for gue). */
  readonly port?: number | undefined;
  readonly checksum?: 'nocsum' | 'csum' | 'remcsum' | undefined;
}

/** HAProxy's PROXY protocol: 1 = the text header, 2 = the binary header. */
export type ProxyProtocolVersion = 1 | 2;

/** Persistence (ipvsadm -p/-M; keepalived persistence_timeout/_granularity). */
export interface Persistence {
  /** Seconds a template outlives the client's last connection. */
  readonly timeout: number;
  /** Prefix length the client address is masked with (32/128 = per client address). */
  readonly prefixLength: number;
  /** The netmask as written, normalized (dotted quad for IPv4, `/n` for IPv6). */
  readonly netmask: string;
  /**
   * An IPv4 netmask that is not contiguous (`255.0.255.0`), which ipvsadm and the kernel
   * accept: clients are masked with it, and `prefixLength` is only its count of set bits.
   */
  readonly mask?: string | undefined;
}

/** A command to run, already split into arguments; never passed through a shell. */
export interface ScriptSpec {
  readonly argv: readonly string[];
  /** The user/group to run it as; undefined = global script_user. */
  readonly user?: string | undefined;
  readonly group?: string | undefined;
  /** The text as written, for messages. */
  readonly text: string;
}

/** What a virtual service listens on. */
export type ServiceEndpoint =
  | { readonly kind: 'address'; readonly family: Family; readonly address: string; readonly port: number }
  | { readonly kind: 'fwmark'; readonly family: Family; readonly mark: number }
  | { readonly kind: 'group'; readonly name: string };

// ---------------------------------------------------------------------------------
// Health checkers (keepalived's, with their documented defaults applied)
// ---------------------------------------------------------------------------------

export type CheckerType =
  | 'TCP_CHECK' | 'HTTP_GET' | 'SSL_GET' | 'SMTP_CHECK' | 'DNS_CHECK'
  | 'MISC_CHECK' | 'UDP_CHECK' | 'PING_CHECK' | 'FILE_CHECK';

/** Timing and connection options every network checker has. Seconds throughout. */
export interface CheckerTiming {
  readonly delayLoop: number;
  /** Maximum random delay before the first check (0 = none). */
  readonly warmup: number;
  readonly connectTimeout: number;
  /** Extra attempts after a failure before the server is declared down. */
  readonly retry: number;
  readonly delayBeforeRetry: number;
  /** Start in the failed state until the first success. */
  readonly alpha: boolean;
  readonly logAllFailures: boolean;
  /** Fulcrum: consecutive successes a failed checker needs before it is up again (1 = keepalived). */
  readonly rise: number;
}

export interface CheckerConnection {
  readonly connectIp?: string | undefined;
  readonly connectPort?: number | undefined;
  readonly bindto?: string | undefined;
  readonly bindPort?: number | undefined;
  readonly bindIf?: string | undefined;
  readonly fwmark?: number | undefined;
}

export interface HttpUrl {
  readonly path: string;
  /** Lower-case hex MD5 of the body, as keepalived's genhash prints it. */
  readonly digest?: string | undefined;
  /** Inclusive ranges; default [[200, 299]]. */
  readonly statusCodes: readonly (readonly [number, number])[];
  readonly virtualhost?: string | undefined;
  readonly regex?: string | undefined;
  readonly regexNoMatch: boolean;
}

interface CheckerBase {
  readonly timing: CheckerTiming;
  readonly loc?: SourceLocation | undefined;
}

export interface TcpCheck extends CheckerBase {
  readonly type: 'TCP_CHECK';
  readonly conn: CheckerConnection;
  /**
   * Fulcrum extension `fulcrum_half_open`: the probe holds back the handshake's last ACK and
   * ends with a reset once the real server's SYN-ACK is in (HAProxy's layer-4 check), so the
   * real server's application never accepts a check connection.
   */
  readonly halfOpen?: boolean | undefined;
}
export interface HttpCheck extends CheckerBase {
  readonly type: 'HTTP_GET' | 'SSL_GET';
  readonly conn: CheckerConnection;
  readonly urls: readonly HttpUrl[];
  readonly httpProtocol: '1.0' | '1.0C' | '1.1';
  /** Host header default (checker > real server > virtual server). */
  readonly virtualhost?: string | undefined;
  readonly fastRecovery: boolean;
  readonly enableSni: boolean;
  readonly sniName?: string | undefined;
  readonly tlsCompliant: boolean;
}
export interface SmtpCheck extends CheckerBase { readonly type: 'SMTP_CHECK'; readonly conn: CheckerConnection; readonly heloName: string }
export interface DnsCheck extends CheckerBase {
  readonly type: 'DNS_CHECK';
  readonly conn: CheckerConnection;
  readonly queryType: 'A' | 'NS' | 'CNAME' | 'SOA' | 'MX' | 'TXT' | 'AAAA' | 'RRSIG' | 'DNSKEY';
  readonly name: string;
}
export interface MiscCheck extends CheckerBase {
  readonly type: 'MISC_CHECK';
  readonly script: ScriptSpec;
  /** Seconds before the script is killed and counted as failed. */
  readonly timeout: number;
  /** Exit 0 ok, 1 fail, 2..255 → weight = code − 2. */
  readonly dynamic: boolean;
}
export interface UdpCheck extends CheckerBase {
  readonly type: 'UDP_CHECK';
  readonly conn: CheckerConnection;
  /** Bytes to send, hex; undefined = random payload. */
  readonly payload?: string | undefined;
  readonly requireReply: boolean;
  /** Hex pattern the reply must match; `x` nibbles are wildcards. */
  readonly replyPattern?: string | undefined;
  readonly minReplyLength: number;
  readonly maxReplyLength: number;
}
export interface PingCheck extends CheckerBase { readonly type: 'PING_CHECK'; readonly conn: CheckerConnection }
export interface FileCheck extends CheckerBase {
  readonly type: 'FILE_CHECK';
  /** Name of a top-level track_file block. */
  readonly trackFile: string;
  readonly dynamic: boolean;
  readonly weight: number;
  readonly reverse: boolean;
}

export type Checker = TcpCheck | HttpCheck | SmtpCheck | DnsCheck | MiscCheck | UdpCheck | PingCheck | FileCheck;

/**
 * Fulcrum extension: a server-agent probe (Coyote Point Equalizer protocol on TCP 1510,
 * replying -1..100; HAProxy's agent-check words are accepted on the same probe).
 */
export interface AgentProbe {
  readonly port: number;
  readonly connectIp?: string | undefined;
  /** String sent after connecting; undefined = send nothing, just read. */
  readonly send?: string | undefined;
  /** Seconds between probes (≥ 1). */
  readonly interval: number;
  /** Seconds to wait for a reply. */
  readonly timeout: number;
  /** A missing or unparsable reply marks the server down (default: it does not). */
  readonly requireResponse: boolean;
  readonly loc?: SourceLocation | undefined;
}

// ---------------------------------------------------------------------------------
// LVS: virtual and real servers
// ---------------------------------------------------------------------------------

export interface RealServer {
  readonly family: Family;
  readonly address: string;
  /** 0 for fwmark services where no port was given. */
  readonly port: number;
  /** IPVS weight 0..65535; 0 = quiescent. */
  readonly weight: number;
  readonly method: ForwardingMethod;
  readonly tunnel?: TunnelSpec | undefined;
  /** Upper connection threshold (ipvsadm -x); 0 = none. */
  readonly uthreshold: number;
  /** Lower connection threshold (ipvsadm -y); 0 = none. */
  readonly lthreshold: number;
  readonly inhibitOnFailure: boolean;
  readonly alpha: boolean;
  readonly notifyUp?: ScriptSpec | undefined;
  readonly notifyDown?: ScriptSpec | undefined;
  /** `smtp_alert` of the real server, or of its virtual server; unset = the global setting. */
  readonly smtpAlert?: boolean | undefined;
  readonly virtualhost?: string | undefined;
  /** Fulcrum PROXY forwarding: send a PROXY protocol header (v1 text, v2 binary) first. */
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  readonly checkers: readonly Checker[];
  readonly agent?: AgentProbe | undefined;
  readonly loc?: SourceLocation | undefined;
}

export interface SorryServer {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  readonly method: ForwardingMethod;
  readonly inhibit: boolean;
}

export interface VirtualServer {
  readonly endpoint: ServiceEndpoint;
  readonly protocol: Protocol;
  readonly scheduler: SchedulerName;
  readonly schedFlags: readonly SchedFlag[];
  /** Default forwarding method of its real servers. */
  readonly method: ForwardingMethod;
  readonly tunnel?: TunnelSpec | undefined;
  /** null = not persistent. */
  readonly persistence: Persistence | null;
  /** One-packet scheduling for UDP (ipvsadm -o). */
  readonly ops: boolean;
  /** Full NAT (Fulcrum's `fullnat_source`, lb_kind NAT): the director address real servers see. */
  readonly fullnatSource?: string | undefined;
  /** `fulcrum_dataplane xdp|nft` (Fulcrum): the kernel plane of a DR/TUN service; unset = the global choice. */
  readonly dataplane?: KernelPlaneChoice | undefined;
  readonly delayLoop: number;
  /** Minimum total weight of live servers for the service to be up. */
  readonly quorum: number;
  readonly hysteresis: number;
  readonly quorumUp?: ScriptSpec | undefined;
  readonly quorumDown?: ScriptSpec | undefined;
  readonly sorryServer?: SorryServer | undefined;
  readonly inhibitOnFailure: boolean;
  readonly alpha: boolean;
  readonly omega: boolean;
  readonly haSuspend: boolean;
  readonly virtualhost?: string | undefined;
  /** Default PROXY protocol version for its real servers (PROXY forwarding, TCP only). */
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  readonly realServers: readonly RealServer[];
  /** `announce bgp …`: the virtual address is announced over BGP while the service has quorum. */
  readonly announce?: Announce | undefined;
  readonly loc?: SourceLocation | undefined;
}

export type GroupMember =
  | { readonly kind: 'range'; readonly family: Family; readonly first: string; readonly last: string; readonly port: number }
  | { readonly kind: 'fwmark'; readonly mark: number; readonly family?: Family | undefined };

export interface VirtualServerGroup {
  readonly name: string;
  readonly members: readonly GroupMember[];
  readonly loc?: SourceLocation | undefined;
}

// ---------------------------------------------------------------------------------
// VRRP
// ---------------------------------------------------------------------------------

export interface VirtualIp {
  readonly family: Family;
  readonly address: string;
  readonly prefixLength: number;
  readonly dev?: string | undefined;
  readonly label?: string | undefined;
  readonly brd?: string | undefined;
  readonly scope?: string | undefined;
  readonly noTrack: boolean;
}

export interface TrackedInterface { readonly name: string; readonly weight: number; readonly reverse: boolean }
export interface TrackedScript {
  readonly name: string;
  /** undefined = the weight declared in the vrrp_script. */
  readonly weight?: number | undefined;
  readonly reverse: boolean;
}

/** `track_file { NAME [weight W [reverse]] }` in a vrrp_instance or vrrp_sync_group: a track_file block by name. */
export interface TrackedFile {
  readonly name: string;
  /** undefined = the weight declared in the track_file block. */
  readonly weight?: number | undefined;
  readonly reverse: boolean;
}

/** `track_process { NAME [weight W [reverse|noreverse]] }`: a vrrp_track_process block by name. */
export type TrackedProcess = TrackedFile;

/**
 * `vrrp_track_process NAME { … }`: how many processes match, and whether that count is in
 * quorum..quorumMax (keepalived.conf(5)).
 */
export interface TrackProcess {
  readonly name: string;
  /** The process name (comm), or with fullCommand argv[0] as the command line holds it. */
  readonly process: string;
  /** The parameters after it (process PATH ARG …), compared as paramMatch says. */
  readonly params: readonly string[];
  /** none: the name alone; exact: these parameters and no others; partial: these first; initial: as partial, the last may be longer. */
  readonly paramMatch: 'none' | 'exact' | 'partial' | 'initial';
  /** Compare against /proc/PID/cmdline rather than the process name. */
  readonly fullCommand: boolean;
  readonly weight: number;
  readonly reverse: boolean;
  readonly quorum: number;
  readonly quorumMax: number;
  /** Seconds quorum must hold after it is gained, and stay lost after it is lost, before it counts. */
  readonly forkDelay: number;
  readonly terminateDelay: number;
  readonly loc?: SourceLocation | undefined;
}

export interface NotifyScripts {
  readonly master?: ScriptSpec | undefined;
  readonly backup?: ScriptSpec | undefined;
  readonly fault?: ScriptSpec | undefined;
  readonly stop?: ScriptSpec | undefined;
  /** `notify`: called on every transition with keepalived's 4 extra arguments. */
  readonly any?: ScriptSpec | undefined;
}

export interface UnicastPeer { readonly address: string; readonly minTtl?: number | undefined; readonly maxTtl?: number | undefined }

export interface VrrpInstance {
  readonly name: string;
  readonly initialState: 'MASTER' | 'BACKUP';
  readonly interface?: string | undefined;
  readonly family: Family;
  readonly vrid: number;
  readonly priority: number;
  /** Seconds; fractions only take effect with VRRPv3 (centisecond resolution). */
  readonly advertInt: number;
  readonly version: 2 | 3;
  readonly nopreempt: boolean;
  /** Seconds. */
  readonly preemptDelay: number;
  readonly auth?: { readonly type: 'PASS' | 'AH'; readonly pass: string } | undefined;
  readonly virtualIpAddresses: readonly VirtualIp[];
  readonly excludedIpAddresses: readonly VirtualIp[];
  readonly unicastSrcIp?: string | undefined;
  readonly mcastSrcIp?: string | undefined;
  readonly unicastPeers: readonly UnicastPeer[];
  readonly trackInterfaces: readonly TrackedInterface[];
  readonly trackScripts: readonly TrackedScript[];
  /** track_file blocks: the number in the file × weight moves the priority; weight 0 = FAULT on non-zero. */
  readonly trackFiles?: readonly TrackedFile[] | undefined;
  /** track_process: a process count out of quorum × weight moves the priority; weight 0 = FAULT. */
  readonly trackProcesses?: readonly TrackedProcess[] | undefined;
  readonly notify: NotifyScripts;
  /** Seconds between the first and second burst of gratuitous ARPs. */
  readonly garpMasterDelay: number;
  readonly garpMasterRepeat: number;
  /** garp_master_refresh: seconds between gratuitous ARP / NA refreshes while MASTER (0 or absent: none). */
  readonly garpMasterRefresh?: number | undefined;
  /** garp_master_refresh_repeat: how many each refresh sends (1). */
  readonly garpMasterRefreshRepeat?: number | undefined;
  /** virtual_routes / virtual_rules: routes and rules that move with the addresses (present while MASTER). */
  readonly virtualRoutes?: readonly StaticRoute[] | undefined;
  readonly dontTrackPrimary: boolean;
  /**
   * Accept mode (RFC 5798 §6.1): whether this host takes traffic for the addresses while it
   * is MASTER without being their owner. Off (`no_accept`, or strict mode's default), traffic
   * to and from them is dropped in an nftables table while MASTER, as keepalived does.
   */
  readonly accept: boolean;
  /**
   * use_vmac [NAME]: the addresses live on a macvlan (private mode) on the interface with the
   * VRRP virtual MAC 00:00:5e:00:01:VRID, which adverts come from unless xmitBase (vmac_xmit_base).
   */
  readonly vmac?: { readonly name: string; readonly xmitBase: boolean } | undefined;
  /** smtp_alert: mail each state this instance enters (unset: smtp_alert_vrrp, smtp_alert, off). */
  readonly smtpAlert?: boolean | undefined;
  /** strict_mode / global vrrp_strict: RFC-strict VRRP (set only when on). */
  readonly strict?: boolean | undefined;
  /** `announce bgp …`: the instance's addresses are announced over BGP while it is MASTER. */
  readonly announce?: Announce | undefined;
  readonly loc?: SourceLocation | undefined;
}

/** Every address an instance adds when MASTER: virtual_ipaddress and virtual_ipaddress_excluded. */
export function instanceAddresses(cfg: VrrpInstance): readonly VirtualIp[] {
  return [...cfg.virtualIpAddresses, ...cfg.excludedIpAddresses];
}

export interface VrrpScript {
  readonly name: string;
  readonly script: ScriptSpec;
  /** Seconds between runs. */
  readonly interval: number;
  /** Seconds before a run counts as failed (default = interval). */
  readonly timeout: number;
  readonly weight: number;
  readonly reverse: boolean;
  readonly rise: number;
  readonly fall: number;
  readonly initFail: boolean;
  readonly loc?: SourceLocation | undefined;
}

export interface VrrpSyncGroup {
  readonly name: string;
  readonly group: readonly string[];
  readonly trackInterfaces: readonly TrackedInterface[];
  readonly trackScripts: readonly TrackedScript[];
  /** track_file blocks the group tracks (fault only, as keepalived). */
  readonly trackFiles?: readonly TrackedFile[] | undefined;
  /** track_process: a process count out of quorum × weight moves the priority; weight 0 = FAULT. */
  readonly trackProcesses?: readonly TrackedProcess[] | undefined;
  readonly notify: NotifyScripts;
  readonly loc?: SourceLocation | undefined;
}

export interface TrackFile {
  readonly name: string;
  readonly file: string;
  readonly weight: number;
  readonly reverse: boolean;
  readonly initFile?: { readonly value: number; readonly overwrite: boolean } | undefined;
  readonly loc?: SourceLocation | undefined;
}

// ---------------------------------------------------------------------------------
// Global definitions and the whole configuration
// ---------------------------------------------------------------------------------

export interface LvsTimeouts {
  readonly tcp?: number | undefined;
  readonly tcpfin?: number | undefined;
  readonly udp?: number | undefined;
}

export interface GlobalDefs {
  readonly routerId?: string | undefined;
  readonly notificationEmail: readonly string[];
  readonly notificationEmailFrom?: string | undefined;
  readonly smtpServer?: { readonly host: string; readonly port: number } | undefined;
  readonly smtpHeloName?: string | undefined;
  /** E-mail alerts for everything (`smtp_alert`); unset = on when smtp_server and notification_email are set. */
  readonly smtpAlert?: boolean | undefined;
  /** E-mail alerts for VRRP state changes (`smtp_alert_vrrp`), over smtpAlert. */
  readonly smtpAlertVrrp?: boolean | undefined;
  /** `no_email_faults`: no mail when an instance enters FAULT. */
  readonly noEmailFaults?: boolean | undefined;
  /** E-mail alerts for real-server transitions (`smtp_alert_checker`), over smtpAlert. */
  readonly smtpAlertChecker?: boolean | undefined;
  /** Seconds. */
  readonly smtpConnectTimeout: number;
  readonly vrrpVersion: 2 | 3;
  /** net_namespace: the named network namespace (/run/netns/NAME) the whole director runs in. */
  readonly netNamespace?: string | undefined;
  /** vrrp_strict: every instance is in strict mode unless its strict_mode says otherwise. */
  readonly vrrpStrict?: boolean | undefined;
  readonly vrrpMcastGroup4: string;
  readonly vrrpMcastGroup6: string;
  readonly lvsTimeouts: LvsTimeouts;
  readonly scriptUser?: { readonly user: string; readonly group?: string | undefined } | undefined;
  readonly enableScriptSecurity: boolean;
  /** `lvs_sync_daemon`: connection sync between directors (src/sync). */
  readonly lvsSyncDaemon?: LvsSyncDaemon | undefined;
  /**
   * `fulcrum_sync_threshold N` (Fulcrum; IPVS's sync_threshold sysctl, first value): a master
   * sends a counted flow once it has had N packets; unset = 3.
   */
  readonly syncThreshold?: number | undefined;
  /**
   * `fulcrum_sync_refresh_period S` (Fulcrum; IPVS's sync_refresh_period sysctl): resend every
   * flow at least every S seconds; 0 or unset = half its timeout, at most the 30 s cycle.
   */
  readonly syncRefreshPeriod?: number | undefined;
  /** `hash_seed N` (Fulcrum): the seed of every kernel-plane slot hash; unset = D.HASH_SEED. */
  readonly hashSeed?: number | undefined;
  /** `fulcrum_dataplane xdp|nft` (Fulcrum): the kernel plane of every DR/TUN service; unset = nft. */
  readonly dataplane?: KernelPlaneChoice | undefined;
  /** vrrp_garp_master_delay / _repeat / _refresh / _refresh_repeat: the instances' defaults. */
  readonly garp?: { readonly masterDelay?: number; readonly masterRepeat?: number; readonly masterRefresh?: number; readonly masterRefreshRepeat?: number } | undefined;
  /** `notify_fifo PATH`: VRRP (and health) notify events, one line each. */
  readonly notifyFifo?: string | undefined;
  /** notify_fifo_script / vrrp_notify_fifo_script / lvs_notify_fifo_script: the reader keepalived starts, the FIFO's path its last argument. */
  readonly notifyFifoScript?: ScriptSpec | undefined;
  readonly vrrpNotifyFifoScript?: ScriptSpec | undefined;
  readonly lvsNotifyFifoScript?: ScriptSpec | undefined;
  /** `vrrp_notify_fifo PATH`: VRRP notify events only (`INSTANCE "VI_1" MASTER 100`). */
  readonly vrrpNotifyFifo?: string | undefined;
  /** `lvs_notify_fifo PATH`: health events only (`RS [10.0.0.2]:tcp:80 [10.0.0.1]:tcp:80 DOWN`, `VS … UP`). */
  readonly lvsNotifyFifo?: string | undefined;
}

/** keepalived's `lvs_sync_daemon IF [INSTANCE | inst INSTANCE] [id N] [maxlen N] [port P] [ttl T] [group ADDR]`. */
export interface LvsSyncDaemon {
  readonly interface: string;
  readonly instance?: string | undefined;
  readonly syncid: number;
  readonly maxlen: number;
  readonly port: number;
  readonly ttl: number;
  readonly group: string;
  readonly loc: SourceLocation;
}

/**
 * `announce bgp [community ASN:N | no-export | no-advertise …] [med N] [next_hop ADDR]`
 * on a virtual_server or a vrrp_instance (Fulcrum's extension, src/bgp).
 */
export interface Announce {
  /** RFC 1997 communities as 32-bit values (ASN << 16 | N). */
  readonly communities: readonly number[];
  readonly med?: number | undefined;
  /** Unset: the speaker's own address on each session (next-hop self). */
  readonly nextHop?: string | undefined;
  readonly loc: SourceLocation;
}

/** A BGP neighbour of `fulcrum_bgp` (the router that spreads the VIPs' flows by ECMP). */
export interface BgpNeighbor {
  readonly address: string;
  readonly family: Family;
  readonly remoteAs: number;
  /** Seconds; unset = the speaker's default (GoBGP: 90). */
  readonly holdTime?: number | undefined;
  /** TCP MD5 (RFC 2385). */
  readonly password?: string | undefined;
  /** The neighbour's BGP port (179). */
  readonly port: number;
  readonly loc: SourceLocation;
}

/** Fulcrum's `fulcrum_bgp { … }` block: the BGP speaker that announces VIPs (src/bgp). */
export interface BgpConfig {
  readonly localAs: number;
  readonly routerId: string;
  readonly neighbors: readonly BgpNeighbor[];
  /** Port the speaker accepts sessions on: 179, or -1 to only connect out. */
  readonly listenPort: number;
  /** Fulcrum's own gobgpd (the executable), or an operator's reached at its gRPC API. */
  readonly speaker: { readonly kind: 'gobgpd'; readonly path: string } | { readonly kind: 'api'; readonly host: string; readonly port: number };
  /** Seconds between withdrawing every route on a clean stop and closing (routers move flows away meanwhile). */
  readonly shutdownGrace: number;
  /** `track_interface`: while any of these is down (no carrier, or admin down) every route is withdrawn. */
  readonly trackInterfaces: readonly string[];
  readonly loc: SourceLocation;
}

/** The validated, normalized configuration: what the director wants to be true. */
/** A `static_routes` or `static_rules` line: `ip route` / `ip rule` words, checked, applied as written. */
export interface StaticRoute {
  readonly kind: 'route' | 'rule';
  readonly family: Family;
  /** prepend (keepalived's default for routes), add or append; rules are added. */
  readonly action: 'prepend' | 'add' | 'append';
  /** The words after the action (destination first for a route), `inet6` taken out. */
  readonly words: readonly string[];
  readonly loc?: SourceLocation | undefined;
}

export interface FulcrumConfig {
  readonly global: GlobalDefs;
  /** `static_ipaddress { … }`: addresses set at start and kept whatever the VRRP state, removed at stop. */
  readonly staticAddresses?: readonly VirtualIp[] | undefined;
  /** `static_routes { … }` and `static_rules { … }`: likewise for routes and policy rules. */
  readonly staticRoutes?: readonly StaticRoute[] | undefined;
  readonly trackFiles: readonly TrackFile[];
  /** vrrp_track_process blocks. */
  readonly trackProcesses?: readonly TrackProcess[] | undefined;
  readonly vrrpScripts: readonly VrrpScript[];
  readonly vrrpSyncGroups: readonly VrrpSyncGroup[];
  readonly vrrpInstances: readonly VrrpInstance[];
  readonly virtualServerGroups: readonly VirtualServerGroup[];
  readonly virtualServers: readonly VirtualServer[];
  /** `fulcrum_bgp { … }`: announce VIPs over BGP (unset: no BGP). */
  readonly bgp?: BgpConfig | undefined;
}

/** Which kernel plane forwards a DR/TUN service: the XDP program or nftables. */
export type KernelPlaneChoice = 'xdp' | 'nft';

/**
 * Why a virtual server cannot be forwarded by the XDP plane (`fulcrum_dataplane xdp`), or
 * null when it can: it goes to nftables instead (said where the keyword is on the service).
 */
export function xdpRefusal(endpoint: ServiceEndpoint, protocol: Protocol, method: ForwardingMethod): string | null {
  if (method !== 'dr' && method !== 'tun') return `XDP forwards lb_kind DR and TUN, not ${method.toUpperCase()}`;
  if (endpoint.kind === 'fwmark') return 'XDP runs before netfilter and sees no firewall mark';
  if (protocol === 'sctp') return 'the XDP program parses TCP and UDP only';
  if (method === 'tun' && endpoint.kind === 'address' && endpoint.family === 'inet6') return "XDP's VXLAN tunnel is IPv4";
  return null;
}
