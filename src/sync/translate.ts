/**
 * A plane's synchronised flow ↔ IPVS's sync entry (pure). The wire speaks IPVS's numbers
 * (protocol numbers, IP_VS_CONN_F_* flags, IPVS's TCP states); planes speak SyncedFlow.
 */
import type { Protocol } from '../model/types.js';
import type { SyncedFlow, SyncedState, Timeouts } from '../dataplane/types.js';
import { ConnFlag, IPPROTO, TcpState, type SyncEntry } from './codec.js';

const PROTO: Readonly<Record<Protocol, number>> = { tcp: IPPROTO.TCP, udp: IPPROTO.UDP, sctp: IPPROTO.SCTP };
const SCTP_ESTABLISHED = 7;
const SCTP_SHUTDOWN_SENT = 8;
/** IPVS's template timeout when a version-0 sender gives none (ip_vs_proc_conn: 3 minutes). */
const V0_TEMPLATE_TIMEOUT = 180;

export function toEntry(f: SyncedFlow): SyncEntry {
  // A proxied service's templates travel as LOCALNODE: the director itself is where the
  // client's connections end (no IPVS method is closer; only a Fulcrum receiver uses them).
  const fwd = f.method === 'nat' ? ConnFlag.MASQ : f.method === 'tun' ? ConnFlag.TUNNEL : f.method === 'proxy' ? ConnFlag.LOCALNODE : ConnFlag.DROUTE;
  let state = 0;
  if (!f.template && f.protocol === 'tcp') state = f.state === 'closing' ? TcpState.FIN_WAIT : TcpState.ESTABLISHED;
  if (!f.template && f.protocol === 'sctp') state = f.state === 'closing' ? SCTP_SHUTDOWN_SENT : SCTP_ESTABLISHED;
  return {
    family: f.family,
    protocol: PROTO[f.protocol],
    flags: fwd | (f.template ? ConnFlag.TEMPLATE : 0) | (f.state === 'closing' ? ConnFlag.INACTIVE : 0),
    state,
    cport: f.cport, vport: f.vport, dport: f.dport, fwmark: f.fwmark, timeout: Math.max(0, Math.round(f.timeout)),
    caddr: f.client, vaddr: f.virtual, daddr: f.server,
  };
}

/** Why an entry has no flow here (stable; counted with the codec's refusals). */
export type TranslateRefusal = 'method' | 'protocol';

/**
 * An entry → a flow, or why not: masquerading, tunnelling and direct routing are forwarding
 * methods a plane holds, and LOCALNODE templates are a proxied service's (LOCALNODE
 * connections and BYPASS are not held by any plane). `timeouts` gives the
 * timeout of a version-0 entry (which carries none), as the kernel does from its own table.
 */
export function fromEntry(e: SyncEntry, timeouts: Timeouts): SyncedFlow | TranslateRefusal {
  const fwd = e.flags & ConnFlag.FWD_MASK;
  const method = fwd === ConnFlag.MASQ ? 'nat' : fwd === ConnFlag.TUNNEL ? 'tun' : fwd === ConnFlag.DROUTE ? 'dr' : fwd === ConnFlag.LOCALNODE && (e.flags & ConnFlag.TEMPLATE) !== 0 ? 'proxy' : null;
  if (method === null) return 'method';
  const template = (e.flags & ConnFlag.TEMPLATE) !== 0;
  // A fwmark template goes with protocol 0 (IPPROTO_IP); its mark finds the service.
  const protocol: Protocol | undefined = e.protocol === IPPROTO.TCP ? 'tcp' : e.protocol === IPPROTO.UDP ? 'udp' : e.protocol === IPPROTO.SCTP ? 'sctp' : template ? 'tcp' : undefined;
  if (protocol === undefined) return 'protocol';
  let state: SyncedState = 'other';
  if (!template && protocol === 'tcp') state = e.state === TcpState.ESTABLISHED || e.state === TcpState.SYN_RECV || e.state === TcpState.SYNACK ? 'established' : 'closing';
  if (!template && protocol === 'sctp') state = e.state === SCTP_ESTABLISHED ? 'established' : 'closing';
  if (!template && protocol === 'tcp' && (e.flags & ConnFlag.INACTIVE) !== 0 && e.state === TcpState.NONE) state = 'closing';
  const timeout = e.timeout > 0 ? e.timeout
    : template ? V0_TEMPLATE_TIMEOUT : state === 'closing' ? timeouts.tcpfin : protocol === 'udp' ? timeouts.udp : timeouts.tcp;
  return {
    template, protocol, family: e.family, method, client: e.caddr, cport: e.cport,
    virtual: e.vaddr, vport: e.vport, fwmark: e.fwmark, server: e.daddr, dport: e.dport, state, timeout,
  };
}

/** A flow's identity (what a later entry for the same flow replaces). */
export function flowKey(f: SyncedFlow): string {
  return `${f.template ? 'T' : 'C'}|${f.protocol}|${f.client}|${f.cport}|${f.fwmark !== 0 ? `fw${f.fwmark}` : `${f.virtual}|${f.vport}`}`;
}
