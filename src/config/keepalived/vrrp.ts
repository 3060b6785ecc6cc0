/**
 * global_defs, vrrp_script, track_file, vrrp_sync_group and vrrp_instance blocks →
 * model objects, with keepalived.conf(5)'s defaults.
 */
import { DiagnosticCode } from '../../errors/index.js';
import { cidrBounds, maxPrefix, netmaskToPrefix, parseIp } from '../../model/address.js';
import * as D from '../../model/defaults.js';
import type { SourceLocation } from '../../errors/index.js';
import type {
  Announce, Family, GlobalDefs, LvsSyncDaemon, NotifyScripts, ScriptSpec, StaticRoute, TrackedFile, TrackedInterface, TrackedScript, TrackFile, TrackProcess, UnicastPeer,
  VirtualIp, VrrpInstance, VrrpScript, VrrpSyncGroup,
} from '../../model/types.js';
import type { AstNode } from './ast.js';
import type { Token } from './lexer.js';
import { dispatch, type Handler } from './dispatch.js';
import type { Values } from './values.js';
import { compileAnnounce } from './bgp.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

const GLOBAL_IGNORED = new Set([
  'checker_log_all_failures',
  'default_interface', 'lvs_flush', 'lvs_flush_onstop',
  'vrrp_garp_lower_prio_delay', 'vrrp_garp_lower_prio_repeat', 'vrrp_garp_interval', 'vrrp_gna_interval',
  'vrrp_lower_prio_no_advert', 'vrrp_higher_prio_send_advert', 'vrrp_iptables', 'vrrp_ipsets', 'vrrp_check_unicast_src',
  'vrrp_skip_check_adv_addr', 'vrrp_priority', 'checker_priority', 'bfd_priority',
  'vrrp_no_swap', 'checker_no_swap', 'vrrp_rt_priority', 'checker_rt_priority', 'snmp_socket', 'enable_snmp_vrrp',
  'enable_snmp_keepalived', 'enable_snmp_checker', 'enable_snmp_rfc', 'enable_snmp_rfcv2', 'enable_snmp_rfcv3',
  'enable_traps', 'dynamic_interfaces', 'process_names', 'max_auto_priority',
  'min_auto_priority_delay', 'net_namespace_ipvs', 'instance', 'use_pid_dir', 'child_wait_time',
  'linkbeat_use_polling', 'script_security', 'vrrp_netlink_cmd_rcv_bufs', 'vrrp_netlink_monitor_rcv_bufs',
  'lvs_netlink_cmd_rcv_bufs', 'lvs_netlink_monitor_rcv_bufs', 'vrrp_startup_delay', 'vrrp_min_garp',
  'vrrp_version_3_checksum', 'random_seed', 'tmp_config_directory', 'config_save_dir', 'nftables', 'nftables_priority',
  'nftables_ifindex', 'nftables_counters', 'vrrp_rx_bufs_policy', 'vrrp_rx_bufs_multiplier', 'startup_script',
  'startup_script_timeout', 'shutdown_script', 'shutdown_script_timeout', 'use_symlink_paths', 'set_supplementary_groups',
]);

const INSTANCE_IGNORED = new Set([
  'use_vmac_addr', 'use_ipvlan', 'debug',
  'skip_check_adv_addr', 'promote_secondaries',
  'track_bfd', 'notify_master_rx_lower_pri', 'notify_priority_changes', 'kernel_rx_buf_size', 'linkbeat_use_polling',
  'garp_lower_prio_delay', 'garp_lower_prio_repeat',
  'lower_prio_no_advert', 'higher_prio_send_advert', 'check_unicast_src', 'unicast_fault_no_peer', 'unicast_ttl',
  'old_unicast_checksum', 'vrrp_strict', 'mcast_dst_ip', 'track_src_ip', 'vrf', 'no_virtual_ipaddress', 'notify_deleted',
]);

function freezeNotify(n: Mutable<NotifyScripts>): NotifyScripts {
  return { ...n };
}

/** Handlers shared by vrrp_instance and vrrp_sync_group for notify_* scripts. */
function notifyHandlers(v: Values, n: Mutable<NotifyScripts>): Record<string, Handler> {
  const set = (k: keyof NotifyScripts) => (node: AstNode) => {
    v.noBlock(node);
    const s: ScriptSpec | undefined = v.script(node);
    if (s) n[k] = s;
  };
  return {
    notify_master: set('master'),
    notify_backup: set('backup'),
    notify_fault: set('fault'),
    notify_stop: set('stop'),
    notify: set('any'),
  };
}

function trackInterfaces(v: Values, node: AstNode): TrackedInterface[] {
  const out: TrackedInterface[] = [];
  for (const line of v.needBlock(node) ?? []) {
    let weight = 0;
    let reverse = false;
    for (let i = 0; i < line.args.length; i++) {
      const a = line.args[i]?.text;
      if (a === 'weight') weight = v.int(line, ++i, -253, 253) ?? 0;
      else if (a === 'reverse') reverse = true;
      else if (a === 'noreverse') reverse = false;
      else v.sink.warn(DiagnosticCode.IGNORED, `unexpected '${a}'`, line.args[i]?.loc, 'track_interface', 'weight N [reverse]');
    }
    const name = v.ifnameToken(line.keyword, 'track_interface');
    if (name !== undefined) out.push({ name, weight, reverse });
  }
  return out;
}

/** `track_script { … }` / `track_file { … }` entries: `NAME [weight W] [reverse|noreverse]`, several names on a line allowed. */
function trackScripts(v: Values, node: AstNode, maxWeight = 253): TrackedScript[] {
  const out: TrackedScript[] = [];
  // One-line form `track_script { a b }` lists several names; `a weight 10` is one entry.
  for (const line of v.needBlock(node) ?? []) {
    const names: TrackedScript[] = [{ name: line.keyword.text, weight: undefined, reverse: false }];
    for (let i = 0; i < line.args.length; i++) {
      const a = line.args[i]?.text as string;
      const last = names[names.length - 1] as { name: string; weight?: number | undefined; reverse: boolean };
      if (a === 'weight') last.weight = v.int(line, ++i, -maxWeight, maxWeight);
      else if (a === 'reverse') last.reverse = true;
      else if (a === 'noreverse') last.reverse = false;
      else names.push({ name: a, weight: undefined, reverse: false });
    }
    out.push(...names);
  }
  return out;
}

/** A flat list of words from a block (one per line or several on a line). */
export function wordList(v: Values, node: AstNode): string[] {
  const out: string[] = [];
  for (const line of v.needBlock(node) ?? []) {
    out.push(line.keyword.text, ...line.args.map((a) => a.text));
    if (line.block) v.sink.error(DiagnosticCode.SYNTAX, 'unexpected block in a list', line.open, node.keyword.text);
  }
  return out;
}

/** A gratuitous ARP count: 0 is raised to 1, as keepalived does (0 would announce nothing). */
function garpRepeat(v: Values, n: AstNode): number | undefined {
  const x = v.int(n, 0, 0, 255);
  if (x === 0) v.sink.warn(DiagnosticCode.ADJUSTED, '0 gratuitous ARPs would announce nothing: 1 (as keepalived does)', n.args[0]?.loc, n.keyword.text);
  return x === undefined ? undefined : Math.max(1, x);
}

/** A FIFO path: absolute (keepalived resolves nothing relative for it); [user [group]] may follow. */
function fifoPath(v: Values, n: AstNode): string | undefined {
  const p = v.string(n);
  if (p === undefined) return undefined;
  if (!p.startsWith('/')) {
    v.sink.error(DiagnosticCode.BAD_VALUE, `'${p}' is not an absolute path`, n.args[0]?.loc, n.keyword.text, 'an absolute path for the FIFO');
    return undefined;
  }
  return p;
}

export function compileGlobalDefs(v: Values, nodes: readonly AstNode[]): GlobalDefs {
  const g: Mutable<GlobalDefs> = {
    notificationEmail: [],
    smtpConnectTimeout: D.DEFAULT_SMTP_CONNECT_TIMEOUT,
    vrrpVersion: 2,
    vrrpMcastGroup4: D.VRRP_MCAST_GROUP4,
    vrrpMcastGroup6: D.VRRP_MCAST_GROUP6,
    lvsTimeouts: {},
    enableScriptSecurity: false,
  };
  const garp: { masterDelay?: number; masterRepeat?: number; masterRefresh?: number; masterRefreshRepeat?: number } = {};
  for (const node of nodes) {
    dispatch(v.needBlock(node) ?? [], 'global_defs', {
      router_id: (n) => { g.routerId = v.string(n); v.extra(n, 1); },
      notification_email: (n) => { g.notificationEmail = [...g.notificationEmail, ...wordList(v, n)]; },
      notification_email_from: (n) => { g.notificationEmailFrom = v.string(n); },
      smtp_server: (n) => {
        const host = v.string(n);
        const portTok = n.args[1];
        const port = portTok ? v.portToken(portTok, 'smtp_server', 1) : 25;
        if (host !== undefined && port !== undefined) g.smtpServer = { host, port };
      },
      smtp_helo_name: (n) => { g.smtpHeloName = v.string(n); },
      smtp_alert: (n) => { g.smtpAlert = v.optBool(n) ?? true; },
      smtp_alert_checker: (n) => { g.smtpAlertChecker = v.optBool(n) ?? true; },
      smtp_alert_vrrp: (n) => { g.smtpAlertVrrp = v.optBool(n) ?? true; },
      no_email_faults: (n) => { v.extra(n, 0); g.noEmailFaults = true; },
      smtp_connect_timeout: (n) => { g.smtpConnectTimeout = v.timer(n, 0, 0.001, 3600) ?? g.smtpConnectTimeout; },
      vrrp_version: (n) => { const x = v.int(n, 0, 2, 3); if (x === 2 || x === 3) g.vrrpVersion = x; },
      vrrp_strict: (n) => { v.extra(n, 0); g.vrrpStrict = true; },
      vrrp_mcast_group4: (n) => { const ip = v.ip(n, 0); if (ip) g.vrrpMcastGroup4 = ip.address; },
      vrrp_mcast_group6: (n) => { const ip = v.ip(n, 0); if (ip) g.vrrpMcastGroup6 = ip.address; },
      lvs_timeouts: (n) => {
        const t: { tcp?: number; tcpfin?: number; udp?: number } = {};
        if (n.args.length === 0) v.arg(n, 0, 'tcp SECS, tcpfin SECS and/or udp SECS');
        for (let i = 0; i < n.args.length; i += 2) {
          const k = n.args[i]?.text;
          const val = v.int(n, i + 1, 1, 86400 * 365);
          if (k === 'tcp' || k === 'tcpfin' || k === 'udp') {
            if (val !== undefined) t[k] = val;
          } else {
            v.sink.error(DiagnosticCode.BAD_VALUE, `unknown timeout '${k}'`, n.args[i]?.loc, 'lvs_timeouts', 'tcp|tcpfin|udp');
          }
        }
        g.lvsTimeouts = t;
      },
      script_user: (n) => {
        const user = v.string(n);
        let group = n.args[1]?.text;
        if (group?.startsWith(':')) group = group.slice(1) || undefined;
        if (user !== undefined) g.scriptUser = { user, group };
      },
      enable_script_security: (n) => { g.enableScriptSecurity = v.optBool(n) ?? false; },
      // The user and group keepalived takes are for the *_fifo_script variants.
      // The instances' gratuitous ARP defaults (keepalived's global spellings).
      vrrp_garp_master_delay: (n) => { garp.masterDelay = v.timer(n, 0, 0, 255) ?? garp.masterDelay; },
      vrrp_garp_master_repeat: (n) => { garp.masterRepeat = garpRepeat(v, n) ?? garp.masterRepeat; },
      vrrp_garp_master_refresh: (n) => { garp.masterRefresh = v.timer(n, 0, 0, 86400) ?? garp.masterRefresh; },
      vrrp_garp_master_refresh_repeat: (n) => { garp.masterRefreshRepeat = garpRepeat(v, n) ?? garp.masterRefreshRepeat; },
      notify_fifo: (n) => { g.notifyFifo = fifoPath(v, n) ?? g.notifyFifo; },
      vrrp_notify_fifo: (n) => { g.vrrpNotifyFifo = fifoPath(v, n) ?? g.vrrpNotifyFifo; },
      lvs_notify_fifo: (n) => { g.lvsNotifyFifo = fifoPath(v, n) ?? g.lvsNotifyFifo; },
      notify_fifo_script: (n) => { v.noBlock(n); g.notifyFifoScript = v.script(n) ?? g.notifyFifoScript; },
      vrrp_notify_fifo_script: (n) => { v.noBlock(n); g.vrrpNotifyFifoScript = v.script(n) ?? g.vrrpNotifyFifoScript; },
      lvs_notify_fifo_script: (n) => { v.noBlock(n); g.lvsNotifyFifoScript = v.script(n) ?? g.lvsNotifyFifoScript; },
      lvs_sync_daemon: (n) => { g.lvsSyncDaemon = lvsSyncDaemon(v, n) ?? g.lvsSyncDaemon; },
      fulcrum_dataplane: (n) => { g.dataplane = v.oneOf(n, 0, ['xdp', 'nft'] as const) ?? g.dataplane; v.extra(n, 1); },
      fulcrum_sync_threshold: (n) => { g.syncThreshold = v.int(n, 0, 0, 65535) ?? g.syncThreshold; v.extra(n, 1); },
      fulcrum_sync_refresh_period: (n) => { g.syncRefreshPeriod = v.int(n, 0, 0, 86400) ?? g.syncRefreshPeriod; v.extra(n, 1); },
      hash_seed: (n) => {
        const t = v.arg(n, 0, 'a 32-bit seed (decimal or 0x hex)');
        if (!t) return;
        const x = /^0x[0-9a-f]{1,8}$/i.test(t.text) ? Number.parseInt(t.text.slice(2), 16) : /^[0-9]{1,10}$/.test(t.text) ? Number(t.text) : NaN;
        if (!(x >= 0 && x <= 0xffffffff)) {
          v.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a 32-bit seed`, t.loc, 'hash_seed', 'an integer 0..4294967295, decimal or 0x hex');
        } else g.hashSeed = x;
        v.extra(n, 1);
      },
    }, v.sink, GLOBAL_IGNORED);
    if (Object.keys(garp).length > 0) g.garp = { ...garp };
  }
  return g;
}

const SYNC_OPTIONS = new Set(['inst', 'id', 'maxlen', 'port', 'ttl', 'group']);

/**
 * `lvs_sync_daemon IF [INSTANCE] [inst INSTANCE] [id 0..255] [maxlen 1..65507] [port P]
 * [ttl 1..255] [group ADDR]` — keepalived names the instance positionally; `inst` is
 * accepted too. Defaults are IPVS's (group 224.0.0.81, port 8848, TTL 1, syncid 0).
 */
function lvsSyncDaemon(v: Values, n: AstNode): LvsSyncDaemon | undefined {
  const ifname = v.ifname(n, 0);
  let instance: string | undefined;
  let syncid = 0;
  let maxlen = D.LVS_SYNC_MAXLEN;
  let port = D.LVS_SYNC_PORT;
  let ttl = D.LVS_SYNC_TTL;
  let group = D.LVS_SYNC_GROUP;
  let ok = ifname !== undefined;
  for (let i = 1; i < n.args.length; i++) {
    const t = n.args[i] as { text: string; loc: SourceLocation };
    if (!SYNC_OPTIONS.has(t.text)) {
      if (i === 1) {
        instance = t.text;
        continue;
      }
      v.sink.error(DiagnosticCode.BAD_VALUE, `unknown lvs_sync_daemon option '${t.text}'`, t.loc, 'lvs_sync_daemon', 'inst NAME, id N, maxlen N, port P, ttl T, group ADDR');
      ok = false;
      continue;
    }
    const k = t.text;
    const val = v.arg(n, ++i, k === 'inst' ? 'a vrrp_instance name' : k === 'group' ? 'a multicast address' : 'a number');
    if (!val) {
      ok = false;
      continue;
    }
    const num = (min: number, max: number): number | undefined => v.intToken(val, `lvs_sync_daemon ${k}`, min, max);
    let x: number | undefined;
    switch (k) {
      case 'inst': instance = val.text; break;
      case 'id': x = num(0, 255); if (x !== undefined) syncid = x; else ok = false; break;
      case 'maxlen': x = num(1, 65507); if (x !== undefined) maxlen = x; else ok = false; break;
      case 'port': x = num(1, 65535); if (x !== undefined) port = x; else ok = false; break;
      case 'ttl': x = num(1, 255); if (x !== undefined) ttl = x; else ok = false; break;
      case 'group': {
        const ip = v.ipToken(val, 'lvs_sync_daemon group');
        if (ip && !(ip.family === 'inet' && /^(22[4-9]|23\d)\./.test(ip.address))) {
          v.sink.error(DiagnosticCode.BAD_VALUE, `'${val.text}' is not an IPv4 multicast address (224.0.0.0/4)`, val.loc, 'lvs_sync_daemon group', 'e.g. 224.0.0.81');
          ok = false;
        } else if (ip) group = ip.address;
        else ok = false;
        break;
      }
    }
  }
  if (!ok || ifname === undefined) return undefined;
  return { interface: ifname, instance, syncid, maxlen, port, ttl, group, loc: n.keyword.loc };
}

export function compileTrackFile(v: Values, node: AstNode): TrackFile | undefined {
  const name = v.string(node);
  let file: string | undefined;
  let weight = 1;
  let reverse = false;
  let initFile: TrackFile['initFile'];
  dispatch(v.needBlock(node) ?? [], 'track_file', {
    file: (n) => { file = v.string(n); },
    weight: (n) => {
      weight = v.int(n, 0, -2147483647, 2147483647) ?? weight;
      reverse = n.args[1]?.text === 'reverse';
    },
    init_file: (n) => {
      let value = 0;
      let overwrite = false;
      for (const a of n.args) {
        if (a.text === 'overwrite') overwrite = true;
        else value = v.intToken(a, 'init_file', -2147483648, 2147483647) ?? 0;
      }
      initFile = { value, overwrite };
    },
  }, v.sink);
  if (name === undefined) return undefined;
  if (file === undefined) {
    v.sink.error(DiagnosticCode.MISSING, `track_file '${name}' has no 'file'`, node.keyword.loc, 'track_file', 'file PATH');
    return undefined;
  }
  return { name, file, weight, reverse, initFile, loc: node.keyword.loc };
}

/**
 * `vrrp_track_process NAME { process P [ARG …]; param_match [initial|partial]; weight W
 * [reverse]; quorum N; quorum_max N; fork_delay S; terminate_delay S; delay S; full_command }`,
 * with keepalived's defaults (weight 0, quorum 1, no maximum, no delays) and its rules:
 * arguments or param_match mean the command line is compared; quorum_max 0 means "not running".
 */
export function compileTrackProcess(v: Values, node: AstNode): TrackProcess | undefined {
  const name = v.string(node);
  let proc: string | undefined;
  let params: string[] = [];
  let paramMatch: TrackProcess['paramMatch'] = 'none';
  let fullCommand = false;
  let weight = 0;
  let reverse = false;
  let quorum = 1;
  let quorumMax = Number.MAX_SAFE_INTEGER;
  let forkDelay = 0;
  let terminateDelay = 0;
  dispatch(v.needBlock(node) ?? [], 'vrrp_track_process', {
    process: (n) => {
      if (proc !== undefined) {
        v.sink.warn(DiagnosticCode.IGNORED, `the process is already '${proc}': this one is ignored (as keepalived does)`, n.keyword.loc, 'process');
        return;
      }
      proc = v.string(n);
      params = n.args.slice(1).map((a) => a.text);
      if (params.length > 0) {
        if (paramMatch === 'none') paramMatch = 'exact';
        fullCommand = true;
      }
    },
    param_match: (n) => {
      const t = n.args[0];
      if (t === undefined) paramMatch = 'exact';
      else if (t.text === 'initial' || t.text === 'partial') paramMatch = t.text;
      else {
        v.sink.warn(DiagnosticCode.IGNORED, `unknown param_match '${t.text}' ignored (as keepalived does)`, t.loc, 'param_match', 'initial|partial');
        return;
      }
      fullCommand = true;
    },
    weight: (n) => {
      weight = v.int(n, 0, -254, 254) ?? weight;
      const r = n.args[1];
      if (r?.text === 'reverse') reverse = true;
      else if (r) v.sink.warn(DiagnosticCode.IGNORED, `unknown weight option '${r.text}' ignored`, r.loc, 'weight', 'reverse');
    },
    quorum: (n) => {
      const q = v.int(n, 0, 1, 65535);
      if (q === undefined) return;
      if (q > quorumMax) v.sink.warn(DiagnosticCode.IGNORED, `quorum ${q} is above quorum_max ${quorumMax}: ignored (as keepalived does)`, n.args[0]?.loc, 'quorum');
      else quorum = q;
    },
    quorum_max: (n) => {
      const q = v.int(n, 0, 0, 65535);
      if (q === undefined) return;
      if ((q > 0 || quorum > 1) && q < quorum) {
        v.sink.warn(DiagnosticCode.IGNORED, `quorum_max ${q} is below quorum ${quorum}: ignored (as keepalived does)`, n.args[0]?.loc, 'quorum_max');
        return;
      }
      quorumMax = q;
      if (q === 0) quorum = 0;
    },
    fork_delay: (n) => { forkDelay = v.timer(n, 0, 0.000001, 3600) ?? forkDelay; },
    terminate_delay: (n) => { terminateDelay = v.timer(n, 0, 0.000001, 3600) ?? terminateDelay; },
    delay: (n) => { const d = v.timer(n, 0, 0.000001, 3600); if (d !== undefined) { forkDelay = d; terminateDelay = d; } },
    full_command: () => { fullCommand = true; },
  }, v.sink);
  if (name === undefined) return undefined;
  if (proc === undefined) {
    // keepalived drops the block ("process name not specified") and with it what tracks it.
    v.sink.error(DiagnosticCode.MISSING, `vrrp_track_process '${name}' has no 'process'`, node.keyword.loc, 'vrrp_track_process', 'process NAME');
    return undefined;
  }
  return { name, process: proc, params, paramMatch, fullCommand, weight, reverse, quorum, quorumMax, forkDelay, terminateDelay, loc: node.keyword.loc };
}

export function compileVrrpScript(v: Values, node: AstNode): VrrpScript | undefined {
  const name = v.string(node);
  let script: ScriptSpec | undefined;
  let interval = D.DEFAULT_SCRIPT_INTERVAL;
  let timeout: number | undefined;
  let weight = 0;
  let reverse = false;
  let rise = D.DEFAULT_SCRIPT_RISE;
  let fall = D.DEFAULT_SCRIPT_FALL;
  let initFail = false;
  let user: { user?: string | undefined; group?: string | undefined } = {};
  dispatch(v.needBlock(node) ?? [], 'vrrp_script', {
    script: (n) => { script = v.script(n); },
    interval: (n) => { interval = v.timer(n, 0, 0.001, 86400) ?? interval; },
    timeout: (n) => { timeout = v.timer(n, 0, 0.001, 86400); },
    weight: (n) => {
      weight = v.int(n, 0, -253, 253) ?? weight;
      reverse = n.args[1]?.text === 'reverse';
    },
    rise: (n) => { rise = v.int(n, 0, 1, 1000000) ?? rise; },
    fall: (n) => { fall = v.int(n, 0, 1, 1000000) ?? fall; },
    user: (n) => {
      let group = n.args[1]?.text;
      if (group?.startsWith(':')) group = group.slice(1) || undefined;
      user = { user: v.string(n), group };
    },
    init_fail: () => { initFail = true; },
  }, v.sink);
  if (name === undefined) return undefined;
  if (!script) {
    v.sink.warn(DiagnosticCode.ADJUSTED, `vrrp_script '${name}' has no 'script': removed, and instances tracking it track nothing (as keepalived does)`, node.keyword.loc, 'vrrp_script', 'script PATH');
    return undefined;
  }
  if (user.user !== undefined) script = { ...script, user: user.user, group: user.group };
  return { name, script, interval, timeout: timeout ?? interval, weight, reverse, rise, fall, initFail, loc: node.keyword.loc };
}

export function compileSyncGroup(v: Values, node: AstNode): VrrpSyncGroup | undefined {
  const name = v.string(node);
  let group: string[] = [];
  let ti: TrackedInterface[] = [];
  let ts: TrackedScript[] = [];
  let tf: TrackedFile[] = [];
  let tp: TrackedFile[] = [];
  const notify: Mutable<NotifyScripts> = {};
  dispatch(v.needBlock(node) ?? [], 'vrrp_sync_group', {
    group: (n) => { group = [...group, ...wordList(v, n)]; },
    track_interface: (n) => { ti = [...ti, ...trackInterfaces(v, n)]; },
    track_script: (n) => { ts = [...ts, ...trackScripts(v, n)]; },
    track_file: (n) => { tf = [...tf, ...trackScripts(v, n, 254)]; },
    track_process: (n) => { tp = [...tp, ...trackScripts(v, n, 254)]; },
    ...notifyHandlers(v, notify),
  }, v.sink, new Set(['smtp_alert', 'global_tracking', 'sync_group_tracking_weight', 'track_bfd', 'notify_priority_changes', 'notify_deleted']));
  if (name === undefined) return undefined;
  return { name, group, trackInterfaces: ti, trackScripts: ts, ...(tf.length > 0 ? { trackFiles: tf } : {}), ...(tp.length > 0 ? { trackProcesses: tp } : {}), notify: freezeNotify(notify), loc: node.keyword.loc };
}

function refuseHmac(v: Values, n: AstNode): void {
  if (n.block !== null) v.needBlock(n); // its block is part of what is refused, not a second error
  v.sink.error(DiagnosticCode.UNSUPPORTED, 'HMAC authentication is not implemented: refusing to run the instance without the authentication its configuration asks for',
    n.keyword.loc, n.keyword.text, 'auth_type PASS or AH, or no authentication');
}

/** An address written `ADDR[/PREFIX]` where keepalived drops the prefix (sources, peers). */
function addressDroppingPrefix(v: Values, t: Token, keyword: string): string | undefined {
  return v.ipToken({ ...t, text: t.text.replace(/\/\d{1,3}$/, '') }, keyword)?.address;
}

/** `unicast_src_ip` / `mcast_src_ip ADDR[/PREFIX]`. */
function sourceIp(v: Values, n: AstNode): string | undefined {
  const t = v.arg(n, 0, 'an IP address');
  return t ? addressDroppingPrefix(v, t, n.keyword.text) : undefined;
}

/** One `virtual_ipaddress` line: `ADDR[/MASK] [brd X|+|-] [broadcast X] [dev X] [scope X] [label X] …`. */
export function virtualIp(v: Values, line: AstNode, where: string): VirtualIp | undefined {
  const text = line.keyword.text;
  const slash = text.indexOf('/');
  const addrText = slash >= 0 ? text.slice(0, slash) : text;
  const ip = parseIp(addrText);
  if (!ip) {
    v.sink.error(DiagnosticCode.BAD_VALUE, `'${text}' is not an IP address`, line.keyword.loc, where, 'ADDRESS[/PREFIX]');
    return undefined;
  }
  let prefixLength = maxPrefix(ip.family);
  if (slash >= 0) {
    const m = text.slice(slash + 1);
    const p = /^[0-9]+$/.test(m) ? Number(m) : ip.family === 'inet' ? netmaskToPrefix(m) : null;
    if (p === null || p > maxPrefix(ip.family)) {
      v.sink.error(DiagnosticCode.BAD_VALUE, `bad prefix '/${m}'`, line.keyword.loc, where, `/0../${maxPrefix(ip.family)}`);
      return undefined;
    }
    prefixLength = p;
  }
  const vip: Mutable<VirtualIp> = { family: ip.family, address: ip.address, prefixLength, noTrack: false };
  const args = line.args;
  for (let i = 0; i < args.length; i++) {
    const k = args[i]?.text as string;
    const val = (): string | undefined => {
      const t = args[++i];
      if (!t) v.sink.error(DiagnosticCode.MISSING, `'${k}' needs a value`, args[i - 1]?.loc, where);
      return t?.text;
    };
    switch (k) {
      case 'dev': {
        const d = val();
        const t = args[i];
        vip.dev = d !== undefined && t ? v.ifnameToken(t, 'dev') : undefined;
        break;
      }
      case 'label': vip.label = val(); break;
      case 'scope': vip.scope = val(); break;
      case 'brd':
      case 'broadcast': {
        // `+`: the prefix's broadcast address (host bits set); `-`: none (ip-address(8)).
        const b = val();
        if (b === '+') vip.brd = ip.family === 'inet' && prefixLength < 31 ? cidrBounds(ip.address, prefixLength).last : undefined;
        else if (b === '-') vip.brd = undefined;
        else if (b !== undefined && !parseIp(b)) v.sink.error(DiagnosticCode.BAD_VALUE, `'${b}' is not an address, + or -`, args[i]?.loc, k);
        else vip.brd = b;
        break;
      }
      case 'no_track': vip.noTrack = true; break;
      case 'peer': case 'preferred_lft': case 'use_vmac':
        if (k !== 'use_vmac') val();
        v.sink.warn(DiagnosticCode.IGNORED, `'${k}' has no effect in Fulcrum`, args[i]?.loc, where);
        break;
      case 'home': case '-nodad': case 'nodad': case 'mngtmpaddr': case 'noprefixroute': case 'autojoin':
        v.sink.warn(DiagnosticCode.IGNORED, `'${k}' has no effect in Fulcrum`, args[i]?.loc, where);
        break;
      default:
        v.sink.error(DiagnosticCode.BAD_VALUE, `unknown address option '${k}'`, args[i]?.loc, where, 'dev|label|scope|brd|no_track');
    }
  }
  return vip;
}

export function compileVrrpInstance(v: Values, node: AstNode, global: GlobalDefs): VrrpInstance | undefined {
  const name = v.string(node);
  let state = 'BACKUP' as 'MASTER' | 'BACKUP';
  let stateLoc = node.keyword.loc;
  let iface: string | undefined;
  let vrid: number | undefined;
  let priority: number | undefined;
  let priorityLoc = node.keyword.loc;
  let advertInt = D.DEFAULT_ADVERT_INT;
  let advertLoc = node.keyword.loc;
  let version: 2 | 3 | undefined;
  let versionLoc = node.keyword.loc;
  let nopreempt = false;
  let preemptDelay = 0;
  let auth: VrrpInstance['auth'];
  let authLoc = node.keyword.loc;
  let vips: VirtualIp[] = [];
  let evips: VirtualIp[] = [];
  let unicastSrcIp: string | undefined;
  let mcastSrcIp: string | undefined;
  let peers: UnicastPeer[] = [];
  let ti: TrackedInterface[] = [];
  let ts: TrackedScript[] = [];
  let tf: TrackedFile[] = [];
  let tp: TrackedFile[] = [];
  const vroutes: StaticRoute[] = [];
  let garpMasterDelay = global.garp?.masterDelay ?? D.DEFAULT_GARP_MASTER_DELAY;
  let garpMasterRepeat = global.garp?.masterRepeat ?? D.DEFAULT_GARP_MASTER_REPEAT;
  let garpMasterRefresh = global.garp?.masterRefresh ?? 0;
  let garpMasterRefreshRepeat = global.garp?.masterRefreshRepeat ?? 1;
  let dontTrackPrimary = false;
  let accept: boolean | undefined;
  let acceptLoc = node.keyword.loc;
  let strictMode: boolean | undefined;
  let smtpAlert: boolean | undefined;
  let vmacName: string | undefined;
  let vmacLoc = node.keyword.loc;
  let xmitBase = false;
  let xmitBaseLoc = node.keyword.loc;
  let preemptDelayLoc = node.keyword.loc;
  let announce: Announce | undefined;
  const notify: Mutable<NotifyScripts> = {};
  const addrList = (n: AstNode, where: string): VirtualIp[] =>
    (v.needBlock(n) ?? []).map((l) => virtualIp(v, l, where)).filter((x): x is VirtualIp => x !== undefined);

  dispatch(v.needBlock(node) ?? [], 'vrrp_instance', {
    state: (n) => {
      stateLoc = n.args[0]?.loc ?? n.keyword.loc;
      const t = v.arg(n, 0, 'MASTER|BACKUP');
      const w = t?.text.toUpperCase();
      if (w === 'MASTER' || w === 'BACKUP') state = w;
      else if (t) v.sink.warn(DiagnosticCode.ADJUSTED, `unknown state '${t.text}': BACKUP (as keepalived does)`, t.loc, 'state', 'MASTER|BACKUP');
    },
    interface: (n) => { iface = v.ifname(n); },
    virtual_router_id: (n) => { vrid = v.int(n, 0, 1, 255); },
    priority: (n) => { priorityLoc = n.args[0]?.loc ?? n.keyword.loc; priority = v.int(n, 0, 1, 255) ?? priority ?? D.DEFAULT_PRIORITY; },
    advert_int: (n) => { advertLoc = n.args[0]?.loc ?? n.keyword.loc; advertInt = v.timer(n, 0, 0.01, 255) ?? advertInt; },
    version: (n) => { versionLoc = n.args[0]?.loc ?? n.keyword.loc; const x = v.int(n, 0, 2, 3); if (x === 2 || x === 3) version = x; },
    nopreempt: () => { nopreempt = true; },
    preempt: () => { nopreempt = false; },
    preempt_delay: (n) => { preemptDelayLoc = n.keyword.loc; preemptDelay = v.timer(n, 0, 0, 1000) ?? preemptDelay; },
    strict_mode: (n) => { strictMode = v.optBool(n) ?? true; },
    smtp_alert: (n) => { smtpAlert = v.optBool(n) ?? true; },
    use_vmac: (n) => { vmacLoc = n.keyword.loc; vmacName = n.args[0] ? v.ifname(n) : ''; },
    vmac_xmit_base: (n) => { xmitBaseLoc = n.keyword.loc; xmitBase = true; },
    // Ignoring an authentication scheme would run the instance with none: refused instead.
    auth_hmac: (n) => { refuseHmac(v, n); },
    authentication: (n) => {
      authLoc = n.keyword.loc;
      let type: 'PASS' | 'AH' | undefined;
      let pass: string | undefined;
      dispatch(v.needBlock(n) ?? [], 'authentication', {
        auth_type: (a) => {
          if (/^hmac/i.test(a.args[0]?.text ?? '')) refuseHmac(v, a);
          else type = v.oneOf(a, 0, ['PASS', 'AH'] as const);
        },
        auth_hmac: (a) => { refuseHmac(v, a); },
        auth_pass: (a) => {
          pass = v.string(a);
          if (pass !== undefined && pass.length > D.VRRP_AUTH_PASS_LEN) {
            v.sink.warn(DiagnosticCode.ADJUSTED, `password longer than ${D.VRRP_AUTH_PASS_LEN} characters: only '${pass.slice(0, D.VRRP_AUTH_PASS_LEN)}' is used (as keepalived does)`,
              a.args[0]?.loc, 'auth_pass');
            pass = pass.slice(0, D.VRRP_AUTH_PASS_LEN);
          }
        },
      }, v.sink);
      if (type === 'AH') {
        v.sink.error(DiagnosticCode.UNSUPPORTED, 'IPsec AH authentication is not implemented by Fulcrum', n.keyword.loc, 'auth_type', 'PASS, or no authentication');
      } else if (type === 'PASS') {
        if (pass === undefined) v.sink.error(DiagnosticCode.MISSING, 'PASS authentication needs auth_pass', n.keyword.loc, 'authentication', 'auth_pass SECRET');
        else auth = { type, pass };
      } else if (type === undefined && pass !== undefined) {
        v.sink.error(DiagnosticCode.MISSING, 'auth_pass without auth_type', n.keyword.loc, 'authentication', 'auth_type PASS');
      }
    },
    virtual_ipaddress: (n) => {
      // An address listed twice: keepalived keeps the first.
      for (const x of addrList(n, 'virtual_ipaddress')) {
        if (vips.some((y) => y.address === x.address)) {
          v.sink.warn(DiagnosticCode.ADJUSTED, `${x.address} is listed twice; the first is kept (as keepalived does)`, n.keyword.loc, 'virtual_ipaddress');
        } else vips.push(x);
      }
    },
    virtual_ipaddress_excluded: (n) => { evips = [...evips, ...addrList(n, 'virtual_ipaddress_excluded')]; },
    unicast_src_ip: (n) => { unicastSrcIp = sourceIp(v, n); },
    mcast_src_ip: (n) => { mcastSrcIp = sourceIp(v, n); },
    unicast_peer: (n) => {
      for (const l of v.needBlock(n) ?? []) {
        const address = addressDroppingPrefix(v, l.keyword, 'unicast_peer');
        const peer: { address: string; minTtl?: number; maxTtl?: number } = { address: address ?? '' };
        for (let i = 0; i < l.args.length; i++) {
          const k = l.args[i]?.text;
          if (k === 'min_ttl' || k === 'max_ttl') {
            const x = v.int(l, ++i, 0, 255);
            if (x !== undefined) peer[k === 'min_ttl' ? 'minTtl' : 'maxTtl'] = x;
          } else {
            v.sink.error(DiagnosticCode.BAD_VALUE, `unknown option '${k}'`, l.args[i]?.loc, 'unicast_peer', 'min_ttl N | max_ttl N');
          }
        }
        if (address !== undefined) peers.push(peer);
      }
    },
    track_interface: (n) => { ti = [...ti, ...trackInterfaces(v, n)]; },
    track_script: (n) => { ts = [...ts, ...trackScripts(v, n)]; },
    track_file: (n) => { tf = [...tf, ...trackScripts(v, n, 254)]; },
    track_process: (n) => { tp = [...tp, ...trackScripts(v, n, 254)]; },
    virtual_routes: (n) => { for (const l of v.needBlock(n) ?? []) { const r = staticRoute(v, l, 'route'); if (r) vroutes.push(r); } },
    virtual_rules: (n) => { for (const l of v.needBlock(n) ?? []) { const r = staticRoute(v, l, 'rule'); if (r) vroutes.push(r); } },
    garp_master_delay: (n) => { garpMasterDelay = v.timer(n, 0, 0, 255) ?? garpMasterDelay; },
    garp_master_repeat: (n) => { garpMasterRepeat = garpRepeat(v, n) ?? garpMasterRepeat; },
    garp_master_refresh: (n) => { garpMasterRefresh = v.timer(n, 0, 0, 86400) ?? garpMasterRefresh; },
    garp_master_refresh_repeat: (n) => { garpMasterRefreshRepeat = garpRepeat(v, n) ?? garpMasterRefreshRepeat; },
    dont_track_primary: () => { dontTrackPrimary = true; },
    accept: (n) => { acceptLoc = n.keyword.loc; accept = true; },
    no_accept: (n) => { acceptLoc = n.keyword.loc; accept = false; },
    announce: (n) => { announce = compileAnnounce(v, n) ?? announce; },
    native_ipv6: (n) => { v.sink.warn(DiagnosticCode.DEPRECATED, 'deprecated: the family follows the virtual addresses', n.keyword.loc, 'native_ipv6'); },
    ...notifyHandlers(v, notify),
  }, v.sink, INSTANCE_IGNORED);

  if (name === undefined) return undefined;
  if (vrid === undefined) {
    if (!(v.needBlock(node) ?? []).some((n) => n.keyword.text === 'virtual_router_id')) {
      v.sink.error(DiagnosticCode.MISSING, `vrrp_instance '${name}' has no virtual_router_id`, node.keyword.loc, 'virtual_router_id', 'virtual_router_id 1..255');
    }
    return undefined;
  }
  // No priority: keepalived derives it from the initial state — MASTER is the address owner.
  priority ??= state === 'MASTER' ? 255 : D.DEFAULT_PRIORITY;
  const family: Family = vips[0]?.family ?? (unicastSrcIp?.includes(':') ? 'inet6' : 'inet');
  const mixed = vips.find((x) => x.family !== family);
  if (mixed) {
    v.sink.error(DiagnosticCode.CONTRADICTION, `virtual_ipaddress mixes IPv4 and IPv6 (${mixed.address}); put the other family in virtual_ipaddress_excluded`,
      node.keyword.loc, 'virtual_ipaddress');
  }
  if (vips.length === 0) {
    v.sink.warn(DiagnosticCode.MISSING, `vrrp_instance '${name}' has no virtual_ipaddress`, node.keyword.loc, 'virtual_ipaddress');
  }
  let ver: 2 | 3 = version ?? global.vrrpVersion;
  if (family === 'inet6' && ver === 2) {
    if (version === 2) v.sink.warn(DiagnosticCode.ADJUSTED, 'IPv6 instances always use VRRP version 3', versionLoc, 'version');
    ver = 3;
  }
  if (ver === 2 && !Number.isInteger(advertInt)) {
    const rounded = Math.max(1, Math.round(advertInt));
    v.sink.warn(DiagnosticCode.ADJUSTED, `VRRPv2 adverts are in whole seconds: ${advertInt} becomes ${rounded}`, advertLoc, 'advert_int');
    advertInt = rounded;
  } else if (ver === 3) {
    if (advertInt > D.VRRP3_MAX_ADVERT_INT) {
      v.sink.warn(DiagnosticCode.ADJUSTED, `${advertInt} s is longer than VRRPv3 allows: ${D.VRRP3_MAX_ADVERT_INT} (as keepalived does)`, advertLoc, 'advert_int', `at most ${D.VRRP3_MAX_ADVERT_INT}`);
      advertInt = D.VRRP3_MAX_ADVERT_INT;
    }
    const cs = Math.round(advertInt * 100) / 100;
    if (cs !== advertInt) {
      v.sink.warn(DiagnosticCode.ADJUSTED, `VRRPv3 adverts are in centiseconds: ${advertInt} becomes ${cs}`, advertLoc, 'advert_int');
      advertInt = cs;
    }
  }
  if (ver === 2 && advertInt > 255) advertInt = 255;
  if (ver === 3 && auth) {
    v.sink.warn(DiagnosticCode.IGNORED, 'VRRPv3 has no authentication; the authentication block is ignored', authLoc, 'authentication');
    auth = undefined;
  }
  if (priority === 255 && state === 'BACKUP') {
    v.sink.error(DiagnosticCode.CONTRADICTION, 'priority 255 means the address owner, which is always MASTER',
      priorityLoc, 'priority', 'state MASTER, or a priority below 255');
  }
  if (nopreempt && state === 'MASTER') {
    v.sink.warn(DiagnosticCode.IGNORED, 'nopreempt only works when the initial state is BACKUP', stateLoc, 'nopreempt');
  }
  for (const src of [unicastSrcIp, mcastSrcIp]) {
    if (src !== undefined && (src.includes(':') ? 'inet6' : 'inet') !== family) {
      v.sink.error(DiagnosticCode.CONTRADICTION, `source address ${src} is not of the instance's family (${family})`, node.keyword.loc, 'unicast_src_ip');
    }
  }
  for (const p of peers) {
    if ((p.address.includes(':') ? 'inet6' : 'inet') !== family) {
      v.sink.error(DiagnosticCode.CONTRADICTION, `unicast peer ${p.address} is not of the instance's family (${family})`, node.keyword.loc, 'unicast_peer');
    }
  }
  if (!iface && peers.length === 0) {
    v.sink.error(DiagnosticCode.MISSING, `vrrp_instance '${name}' needs an interface (or unicast peers)`, node.keyword.loc, 'interface', 'interface IFNAME');
  }
  peers = peers.filter((p) => p.address !== '');
  // Strict mode (keepalived's vrrp_complete_instance): what RFC 3768/5798 forbid is refused
  // where keepalived drops the instance, repaired with a warning where keepalived repairs.
  const strict = strictMode ?? global.vrrpStrict ?? false;
  if (strict) {
    const why = strictMode === undefined ? 'vrrp_strict' : 'strict_mode';
    if (vips.length === 0) {
      v.sink.error(DiagnosticCode.MISSING, `vrrp_instance '${name}' has no virtual_ipaddress, which ${why} requires`, node.keyword.loc, 'virtual_ipaddress');
    }
    if (peers.length > 0) {
      v.sink.error(DiagnosticCode.CONTRADICTION, `unicast peers are not allowed in strict mode (${why}): RFC VRRP is multicast`, node.keyword.loc, 'unicast_peer', `multicast, or strict_mode off`);
    }
    if ((state === 'MASTER') !== (priority === 255)) {
      const to = priority === 255 ? 'MASTER' : 'BACKUP';
      v.sink.warn(DiagnosticCode.ADJUSTED, `in strict mode the initial state follows address ownership (priority 255): ${to} (as keepalived does)`, stateLoc, 'state');
      state = to;
    }
    if (auth) {
      v.sink.warn(DiagnosticCode.ADJUSTED, `strict mode (${why}) has no authentication: the authentication block is dropped (as keepalived does)`, authLoc, 'authentication');
      auth = undefined;
    }
    if (preemptDelay > 0) {
      v.sink.warn(DiagnosticCode.ADJUSTED, `preempt_delay is not allowed in strict mode (${why}): 0 (as keepalived does)`, preemptDelayLoc, 'preempt_delay');
      preemptDelay = 0;
    }
    if (family === 'inet6' && vips[0] && !vips[0].address.toLowerCase().startsWith('fe80:')) {
      v.sink.warn(DiagnosticCode.CONFLICT, `in strict mode the first IPv6 virtual address should be link-local (${vips[0].address} is not)`, node.keyword.loc, 'virtual_ipaddress');
    }
  }
  let vmac: VrrpInstance['vmac'];
  if (vmacName !== undefined) {
    if (iface === undefined) {
      v.sink.error(DiagnosticCode.MISSING, 'use_vmac needs the instance\'s interface (the macvlan goes on it)', vmacLoc, 'use_vmac', 'interface IFNAME');
    } else {
      if (xmitBase && strict) {
        v.sink.warn(DiagnosticCode.ADJUSTED, 'vmac_xmit_base is not allowed in strict mode: adverts come from the virtual MAC (as keepalived does)', xmitBaseLoc, 'vmac_xmit_base');
        xmitBase = false;
      }
      vmac = { name: vmacName === '' ? `vrrp.${vrid}` : vmacName, xmitBase };
    }
  } else if (xmitBase) {
    v.sink.warn(DiagnosticCode.IGNORED, 'vmac_xmit_base without use_vmac has no effect', xmitBaseLoc, 'vmac_xmit_base');
  }
  // Accept mode: as written, else on for the address owner and off in strict mode.
  let accepting = accept ?? (priority === 255 || !strict);
  if (accepting && strict && priority !== 255 && ver === 2) {
    v.sink.warn(DiagnosticCode.ADJUSTED, 'accept mode does not exist in VRRPv2 (RFC 3768) and strict mode follows it: no_accept (as keepalived does)', acceptLoc, 'accept');
    accepting = false;
  }
  return {
    name, initialState: state, interface: iface, family, vrid, priority, advertInt, version: ver, nopreempt, preemptDelay,
    auth, virtualIpAddresses: vips, excludedIpAddresses: evips, unicastSrcIp, mcastSrcIp, unicastPeers: peers,
    trackInterfaces: ti, trackScripts: ts, ...(tf.length > 0 ? { trackFiles: tf } : {}), ...(tp.length > 0 ? { trackProcesses: tp } : {}), notify: freezeNotify(notify), garpMasterDelay, garpMasterRepeat,
    ...(garpMasterRefresh > 0 ? { garpMasterRefresh, garpMasterRefreshRepeat } : {}),
    ...(vroutes.length > 0 ? { virtualRoutes: vroutes } : {}),
    dontTrackPrimary, accept: accepting, ...(strict ? { strict } : {}), ...(smtpAlert !== undefined ? { smtpAlert } : {}), ...(vmac ? { vmac } : {}), ...(announce ? { announce } : {}), loc: node.keyword.loc,
  };
}

/** ip-route options that take a value, and flags that take none. */
const ROUTE_VALUE_OPTIONS = new Set(['src', 'via', 'dev', 'oif', 'table', 'metric', 'priority', 'preference', 'tos', 'dsfield', 'proto', 'protocol',
  'scope', 'mtu', 'advmss', 'rtt', 'rttvar', 'reordering', 'window', 'cwnd', 'initcwnd', 'initrwnd', 'ssthresh', 'realms', 'rto_min',
  'hoplimit', 'features', 'quickack', 'congctl', 'pref', 'expires', 'nhid', 'fastopen_no_cookie', 'ttl-propagate']);
const ROUTE_FLAGS = new Set(['onlink', 'lock', 'pervasive']);
const ROUTE_TYPES = new Set(['unicast', 'blackhole', 'unreachable', 'prohibit', 'local', 'broadcast', 'throw', 'nat', 'anycast', 'multicast']);

/**
 * One `static_routes` / `static_rules` line, as `ip route add` / `ip rule add` take it
 * (keepalived's syntax). The destination (a route's first word after an optional type) must
 * be an address/prefix or `default`; every word must be plain (no quoting, no shell); `inet6`
 * forces IPv6; `add`/`append`/`prepend` choose how the route is added (prepend by default).
 * `track_group` is not implemented: refused rather than silently untracked.
 */
export function staticRoute(v: Values, line: AstNode, kind: 'route' | 'rule'): StaticRoute | undefined {
  const where = kind === 'route' ? 'static_routes' : 'static_rules';
  const toks = [line.keyword, ...line.args];
  let family: Family | undefined;
  let action: StaticRoute['action'] = kind === 'route' ? 'prepend' : 'add';
  const words: string[] = [];
  for (const t of toks) {
    if (!/^[A-Za-z0-9_.:/,@+-]+$/.test(t.text)) {
      v.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a word ip ${kind} takes`, t.loc, where);
      return undefined;
    }
    if (t.text === 'inet6') family = 'inet6';
    else if (t.text === 'inet') family = 'inet';
    else if (t.text === 'track_group') {
      v.sink.error(DiagnosticCode.UNSUPPORTED, 'track_group is not implemented: the route would not follow its group', t.loc, where);
      return undefined;
    } else if (kind === 'route' && words.length === 0 && (t.text === 'add' || t.text === 'append' || t.text === 'prepend')) action = t.text;
    else words.push(t.text);
  }
  // Address-valued options must be addresses (keepalived refuses `to 192.168.100./24` too).
  for (let k = 0; k + 1 < words.length; k++) {
    const w = words[k] as string;
    const val = words[k + 1] as string;
    const isAddr = (x: string): boolean => x === 'all' || x === 'default' || parseIp(x.split('/')[0] ?? '') !== null;
    if ((w === 'via' || w === 'src' || w === 'from' || w === 'to') && !isAddr(val)) {
      // keepalived skips such a line and carries on: so does Fulcrum, saying so.
      v.sink.warn(DiagnosticCode.ADJUSTED, `'${val}' after '${w}' is not an address: this ${kind} is ignored (as keepalived does)`, line.keyword.loc, where, `${w} ADDRESS[/PREFIX]`);
      return undefined;
    }
  }
  // keepalived's deprecated `via A or B`: two next hops.
  const or = words.indexOf('or');
  if (kind === 'route' && or > 0) {
    const via = words.lastIndexOf('via', or);
    const alt = words[or + 1];
    if (via !== or - 2 || alt === undefined || !parseIp(alt)) {
      v.sink.error(DiagnosticCode.BAD_VALUE, "'or' takes the form 'via ADDR or ADDR'", line.keyword.loc, where);
      return undefined;
    }
    v.sink.warn(DiagnosticCode.DEPRECATED, `'via ${words[or - 1] ?? ''} or ${alt}' is deprecated (as in keepalived): read as 'nexthop via ${words[or - 1] ?? ''} nexthop via ${alt}'`, line.keyword.loc, where);
    words.splice(via, 4, 'nexthop', 'via', words[or - 1] as string, 'nexthop', 'via', alt);
  }
  if (kind === 'route') {
    // Options may come before the destination (`src 10.0.0.1 10.9.0.0/24 via …`), as ip(8) allows.
    let dst: string | undefined;
    for (let k = 0; k < words.length && dst === undefined; k++) {
      const w = words[k] as string;
      if (ROUTE_VALUE_OPTIONS.has(w)) k++;
      else if (!ROUTE_TYPES.has(w) && !ROUTE_FLAGS.has(w)) dst = w;
    }
    const ip = dst === 'default' ? null : dst !== undefined ? parseIp(dst.split('/')[0] ?? '') : null;
    if (dst === undefined || (dst !== 'default' && !ip)) {
      v.sink.error(DiagnosticCode.BAD_VALUE, `a route starts with its destination: '${dst ?? ''}' is not ADDRESS[/PREFIX] or default`, line.keyword.loc, where, 'DEST [via GW] [dev IF] …');
      return undefined;
    }
    family ??= ip?.family ?? 'inet';
  }
  return { kind, family: family ?? 'inet', action, words, loc: line.keyword.loc };
}
