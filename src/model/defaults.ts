/**
 * Documented defaults. keepalived.conf(5) is the reference for configuration files,
 * ipvsadm(8) for `fulcrum adm` and ipvsadm rule files. Where they disagree the constant
 * names say whose it is.
 */

/** keepalived: "persistence_timeout … default 6 minutes" (when given without a value). */
export const KEEPALIVED_PERSISTENCE_TIMEOUT = 360;
/** ipvsadm(8): "-p [timeout] … The default persistent timeout is 300 seconds." */
export const IPVSADM_PERSISTENCE_TIMEOUT = 300;

/** Scheduler when none is given (both keepalived and ipvsadm). */
export const DEFAULT_SCHEDULER = 'wlc';

/** keepalived checker timing defaults (seconds). */
export const DEFAULT_DELAY_LOOP = 60;
export const DEFAULT_CONNECT_TIMEOUT = 5;
export const DEFAULT_RETRY = 1;
export const DNS_CHECK_RETRY = 3;
export const MISC_CHECK_RETRY = 0;
export const DEFAULT_DELAY_BEFORE_RETRY = 1;
export const HTTP_DELAY_BEFORE_RETRY = 3;

export const DEFAULT_WEIGHT = 1;
export const MAX_WEIGHT = 65535;
export const DEFAULT_QUORUM = 1;

/** VRRP defaults. */
export const DEFAULT_PRIORITY = 100;
export const DEFAULT_ADVERT_INT = 1;
export const DEFAULT_GARP_MASTER_DELAY = 5;
export const DEFAULT_GARP_MASTER_REPEAT = 5;
export const VRRP_MCAST_GROUP4 = '224.0.0.18';
export const VRRP_MCAST_GROUP6 = 'ff02::12';
/** VRRPv2 simple-password authentication uses 8 bytes of password. */
export const VRRP_AUTH_PASS_LEN = 8;
/** VRRPv3's max advert interval: 12 bits of centiseconds. */
export const VRRP3_MAX_ADVERT_INT = 40.95;

export const DEFAULT_SMTP_CONNECT_TIMEOUT = 30;

/** vrrp_script defaults. */
export const DEFAULT_SCRIPT_INTERVAL = 1;
export const DEFAULT_SCRIPT_RISE = 1;
export const DEFAULT_SCRIPT_FALL = 1;

/** Server-agent probe defaults (Coyote Point Equalizer's agent port). */
export const DEFAULT_AGENT_PORT = 1510;
export const DEFAULT_AGENT_INTERVAL = 5;
export const DEFAULT_AGENT_TIMEOUT = 2;

/** UDP_CHECK reply length bounds. */
export const UDP_MIN_REPLY_LENGTH = 0;
export const UDP_MAX_REPLY_LENGTH = 255;

/** IPVS's sync daemon (ip_vs_sync.c): multicast group, port, TTL; sync_maxlen for a 1500-byte MTU. */
export const LVS_SYNC_GROUP = '224.0.0.81';
export const LVS_SYNC_PORT = 8848;
export const LVS_SYNC_TTL = 1;
export const LVS_SYNC_MAXLEN = 1472;
/**
 * Fulcrum's sync masters send every flow they hold at least this often (seconds), so that a
 * director that starts listening has the whole table after one cycle.
 */
export const LVS_SYNC_FULL_CYCLE = 30;
/**
 * A VRRP instance that lvs_sync_daemon follows obeys a lower-priority master this long
 * after it (re)enters BACKUP (seconds; as preempt_delay, which it never shortens): one full
 * sync cycle and a margin, so a returning master takes over only once it holds the table.
 */
export const LVS_SYNC_PREEMPT_HOLD = LVS_SYNC_FULL_CYCLE + 2;

/** fulcrum_bgp: the port the BGP speaker accepts sessions on. */
export const BGP_LISTEN_PORT = 179;
/**
 * fulcrum_bgp: seconds between withdrawing every route on a clean stop and closing the
 * listeners: the routers move new flows away meanwhile, and established ones keep being
 * forwarded until they do.
 */
export const BGP_SHUTDOWN_GRACE = 3;
/** Well-known communities (RFC 1997), by the names operators write. */
export const BGP_WELL_KNOWN_COMMUNITIES: Readonly<Record<string, number>> = {
  'no-export': 0xffffff01,
  'no-advertise': 0xffffff02,
  'no-export-subconfed': 0xffffff03,
};

/**
 * The kernel plane's slot-hash seed when `hash_seed` is not set: the same on every director,
 * so a flow any of them hashes goes to the same slot. A constant, not derived from the
 * services: a seed that changed with the configuration would move every flow to another
 * real server on the reload that added a service, and directors reloading seconds apart
 * would disagree meanwhile.
 */
export const HASH_SEED = 0x46554c43;
