/**
 * virtual_server_group, virtual_server, real_server, checker and fulcrum_agent blocks →
 * model objects, with keepalived.conf(5)'s defaults and inheritance: a virtual server's
 * timing options are the defaults of its real servers, a real server's those of its
 * checkers.
 */
import { DiagnosticCode, type SourceLocation } from '../../errors/index.js';
import { cidrBounds, compareAddresses, maskBits, maxPrefix, netmaskToPrefix, parseIp, prefixToNetmask } from '../../model/address.js';
import * as D from '../../model/defaults.js';
import {
  SCHEDULER_NAMES, isSchedulerName,
  type AgentProbe, type Announce, type Checker, type DnsCheck, type CheckerConnection, type CheckerTiming, type CheckerType, type Family,
  type ForwardingMethod, type GroupMember, type KernelPlaneChoice, xdpRefusal, type HttpUrl, type Persistence, type Protocol, type ProxyProtocolVersion, type RealServer,
  type SchedFlag, type SchedulerName, type ScriptSpec, type ServiceEndpoint, type SorryServer, type TunnelSpec,
  type VirtualServer, type VirtualServerGroup,
} from '../../model/types.js';
import type { AstNode } from './ast.js';
import { dispatch, dispatchWith, type Handler } from './dispatch.js';
import type { Values } from './values.js';
import { compileAnnounce } from './bgp.js';
import { persistenceEngine } from '../persistence-engine.js';

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** Timing options as written at one level (undefined = inherit). */
interface TimingOverrides {
  delayLoop?: number | undefined;
  warmup?: number | undefined;
  connectTimeout?: number | undefined;
  retry?: number | undefined;
  delayBeforeRetry?: number | undefined;
  alpha?: boolean | undefined;
  logAllFailures?: boolean | undefined;
  rise?: number | undefined;
}

function timingHandlers(v: Values, t: TimingOverrides): Record<string, Handler> {
  const retry: Handler = (n) => { t.retry = v.int(n, 0, 0, 1_000_000) ?? t.retry; };
  return {
    delay_loop: (n) => { t.delayLoop = v.timer(n, 0, 0.001, 86400) ?? t.delayLoop; },
    warmup: (n) => { t.warmup = v.timer(n, 0, 0, 86400) ?? t.warmup; },
    connect_timeout: (n) => { t.connectTimeout = v.timer(n, 0, 0.001, 86400) ?? t.connectTimeout; },
    retry,
    nb_get_retry: retry,
    nb_sget_retry: retry,
    delay_before_retry: (n) => { t.delayBeforeRetry = v.timer(n, 0, 0, 86400) ?? t.delayBeforeRetry; },
    alpha: (n) => { t.alpha = onIgnoringArgument(v, n); },
    log_all_failures: (n) => { t.logAllFailures = v.optBool(n) ?? t.logAllFailures; },
    rise: (n) => { t.rise = v.int(n, 0, 1, 1000) ?? t.rise; },
  };
}

function merge(...levels: TimingOverrides[]): TimingOverrides {
  const out: TimingOverrides = {};
  for (const l of levels) {
    for (const [k, val] of Object.entries(l) as [keyof TimingOverrides, number | boolean | undefined][]) {
      if (val !== undefined) (out as Record<string, number | boolean>)[k] = val;
    }
  }
  return out;
}

/** Per-checker documented defaults (keepalived.conf(5)). */
function resolveTiming(type: CheckerType, t: TimingOverrides): CheckerTiming {
  const delayLoop = t.delayLoop ?? D.DEFAULT_DELAY_LOOP;
  const retry = t.retry ?? (type === 'DNS_CHECK' ? D.DNS_CHECK_RETRY : type === 'MISC_CHECK' ? D.MISC_CHECK_RETRY : D.DEFAULT_RETRY);
  const delayBeforeRetry = t.delayBeforeRetry
    ?? (type === 'DNS_CHECK' ? delayLoop : type === 'HTTP_GET' || type === 'SSL_GET' ? D.HTTP_DELAY_BEFORE_RETRY : D.DEFAULT_DELAY_BEFORE_RETRY);
  return {
    delayLoop,
    // "Enabled by default, with the maximum at delay_loop."
    warmup: t.warmup ?? delayLoop,
    connectTimeout: t.connectTimeout ?? D.DEFAULT_CONNECT_TIMEOUT,
    retry,
    delayBeforeRetry,
    alpha: t.alpha ?? false,
    logAllFailures: t.logAllFailures ?? false,
    rise: t.rise ?? 1,
  };
}

const METHOD_WORDS: Record<string, ForwardingMethod> = { NAT: 'nat', DR: 'dr', TUN: 'tun', PROXY: 'proxy' };

/** `lb_kind NAT|DR|TUN [type ipip|gue port N|gre] [nocsum|csum|remcsum]|PROXY`. */
function method(v: Values, n: AstNode): { method: ForwardingMethod; tunnel?: TunnelSpec | undefined } | undefined {
  const word = v.arg(n, 0, 'NAT|DR|TUN|PROXY');
  if (!word) return undefined;
  const m = METHOD_WORDS[word.text.toUpperCase()];
  if (!m) {
    v.sink.error(DiagnosticCode.BAD_VALUE, `unknown forwarding method '${word.text}'`, word.loc, n.keyword.text, 'NAT|DR|TUN|PROXY');
    return undefined;
  }
  if (m !== 'tun') {
    v.extra(n, 1);
    return { method: m };
  }
  let tunnel: Mutable<TunnelSpec> = { type: 'ipip' };
  for (let i = 1; i < n.args.length; i++) {
    const a = n.args[i]?.text;
    if (a === 'type') {
      const ty = v.oneOf(n, ++i, ['ipip', 'gue', 'gre'] as const);
      if (ty) tunnel = { ...tunnel, type: ty };
    } else if (a === 'port') {
      tunnel.port = v.int(n, ++i, 1, 65535);
    } else if (a === 'nocsum' || a === 'csum' || a === 'remcsum') {
      tunnel.checksum = a;
    } else {
      v.sink.error(DiagnosticCode.BAD_VALUE, `unknown tunnel option '${a}'`, n.args[i]?.loc, n.keyword.text, 'type ipip|gue|gre, port N, nocsum|csum|remcsum');
    }
  }
  if (tunnel.type === 'gue' && tunnel.port === undefined) {
    v.sink.error(DiagnosticCode.MISSING, 'a GUE tunnel needs a port', n.keyword.loc, n.keyword.text, 'TUN type gue port N');
  }
  return { method: m, tunnel };
}

/** `IP [PORT]` of real_server / sorry_server, defaulting the port to the service's. */
function hostPort(v: Values, n: AstNode, defaultPort: number): { family: Family; address: string; port: number } | undefined {
  const ip = v.ip(n, 0);
  const pt = n.args[1];
  const port = pt ? v.portToken(pt, n.keyword.text) : defaultPort;
  v.extra(n, 2);
  if (!ip || port === undefined) return undefined;
  return { family: ip.family, address: ip.address, port };
}

function compileAgent(v: Values, n: AstNode): AgentProbe {
  const a: Mutable<AgentProbe> = {
    port: D.DEFAULT_AGENT_PORT,
    interval: D.DEFAULT_AGENT_INTERVAL,
    timeout: D.DEFAULT_AGENT_TIMEOUT,
    requireResponse: false,
    loc: n.keyword.loc,
  };
  dispatch(v.needBlock(n) ?? [], 'fulcrum_agent', {
    port: (x) => { a.port = v.int(x, 0, 1, 65535) ?? a.port; },
    connect_ip: (x) => { a.connectIp = v.ip(x, 0)?.address; },
    send: (x) => { a.send = v.string(x); },
    interval: (x) => { a.interval = v.timer(x, 0, 1, 86400) ?? a.interval; },
    timeout: (x) => { a.timeout = v.timer(x, 0, 0.001, 3600) ?? a.timeout; },
    require_response: (x) => { a.requireResponse = v.optBool(x) ?? a.requireResponse; },
  }, v.sink);
  return a;
}

const HEX_RE = /^[0-9a-fA-FxX\s]*$/;

/** A checker block, with timing resolved against the inherited overrides. */
/** Where a checker connects from and to: the same keywords in a checker and in SMTP_CHECK's `host`. */
function connectionHandlers(v: Values, conn: Mutable<CheckerConnection>): Record<string, Handler> {
  return {
    connect_ip: (x) => { conn.connectIp = v.ip(x, 0)?.address; },
    connect_port: (x) => { conn.connectPort = v.int(x, 0, 1, 65535); },
    bindto: (x) => { conn.bindto = v.ip(x, 0)?.address; },
    bind_port: (x) => { conn.bindPort = v.int(x, 0, 1, 65535); },
    bind_if: (x) => { conn.bindIf = v.ifname(x); },
    fwmark: (x) => { conn.fwmark = v.int(x, 0, 1, 0xffffffff); },
  };
}

/** The fields of `o` that are set (a host's settings over its checker's). */
function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, x]) => x !== undefined)) as Partial<T>;
}

function compileChecker(
  v: Values, n: AstNode, type: CheckerType, inherited: TimingOverrides, hostDefaults: { virtualhost?: string | undefined },
): Checker | Checker[] | undefined {
  const t: TimingOverrides = {};
  const conn: Mutable<CheckerConnection> = {};
  const connHandlers = connectionHandlers(v, conn);
  const timing = timingHandlers(v, t);
  const loc = n.keyword.loc;
  const block = v.needBlock(n) ?? [];
  const done = () => resolveTiming(type, merge(inherited, t));

  switch (type) {
    case 'TCP_CHECK': {
      let halfOpen: boolean | undefined;
      dispatch(block, type, {
        ...connHandlers, ...timing,
        fulcrum_half_open: (x) => { halfOpen = v.optBool(x) ?? halfOpen; },
      }, v.sink);
      return { type, conn, timing: done(), loc, ...(halfOpen === true ? { halfOpen } : {}) };
    }
    case 'PING_CHECK': {
      dispatch(block, type, { ...connHandlers, ...timing }, v.sink);
      return { type, conn, timing: done(), loc };
    }
    case 'HTTP_GET':
    case 'SSL_GET': {
      const urls: HttpUrl[] = [];
      let httpProtocol: '1.0' | '1.0C' | '1.1' = '1.0';
      let virtualhost: string | undefined;
      let fastRecovery = false;
      let enableSni = false;
      let sniName: string | undefined;
      let tlsCompliant = false;
      dispatch(block, type, {
        ...connHandlers, ...timing,
        http_protocol: (x) => { httpProtocol = v.oneOf(x, 0, ['1.0', '1.0C', '1.1'] as const) ?? httpProtocol; },
        virtualhost: (x) => { virtualhost = v.string(x); },
        fast_recovery: (x) => { fastRecovery = v.optBool(x) ?? fastRecovery; },
        enable_sni: (x) => { enableSni = v.optBool(x) ?? enableSni; },
        sni_name: (x) => { sniName = v.string(x); enableSni = true; },
        tls_compliant: (x) => { tlsCompliant = v.optBool(x) ?? tlsCompliant; },
        url: (x) => {
          const u: Mutable<HttpUrl> = { path: '', statusCodes: [], regexNoMatch: false };
          let codes: [number, number][] = [];
          dispatch(v.needBlock(x) ?? [], 'url', {
            path: (y) => { u.path = v.string(y) ?? ''; },
            digest: (y) => {
              const d = v.string(y);
              if (d !== undefined && !/^[0-9a-fA-F]{32}$/.test(d)) {
                v.sink.error(DiagnosticCode.BAD_VALUE, `'${d}' is not an MD5 digest`, y.args[0]?.loc, 'digest', '32 hex digits, as genhash prints');
              } else if (d !== undefined) u.digest = d.toLowerCase();
            },
            status_code: (y) => {
              if (y.args.length === 0) v.arg(y, 0, 'a status code or range, e.g. 200 or 200-299');
              for (const a of y.args) {
                const m = /^([0-9]{3})(?:-([0-9]{3}))?$/.exec(a.text);
                const lo = m ? Number(m[1]) : NaN;
                const hi = m?.[2] !== undefined ? Number(m[2]) : lo;
                if (!m || lo < 100 || hi > 599 || hi < lo) {
                  v.sink.error(DiagnosticCode.BAD_VALUE, `'${a.text}' is not a status code or range`, a.loc, 'status_code', 'CODE or LOW-HIGH within 100..599');
                } else codes.push([lo, hi]);
              }
            },
            virtualhost: (y) => { u.virtualhost = v.string(y); },
            regex: (y) => { u.regex = v.string(y); },
            regex_no_match: () => { u.regexNoMatch = true; },
          }, v.sink, new Set(['regex_options', 'regex_stack', 'regex_min_offset', 'regex_max_offset', 'tls_compliant']));
          if (u.path === '') {
            v.sink.error(DiagnosticCode.MISSING, 'url has no path', x.keyword.loc, 'url', 'path /some/path');
            return;
          }
          if (codes.length === 0) codes = [[200, 299]];
          urls.push({ ...u, statusCodes: codes });
        },
      }, v.sink);
      if (urls.length === 0) {
        v.sink.error(DiagnosticCode.MISSING, `${type} has no url block`, loc, type, 'url { path / }');
      }
      return {
        type, conn, timing: done(), loc, urls, httpProtocol,
        virtualhost: virtualhost ?? hostDefaults.virtualhost, fastRecovery, enableSni, sniName, tlsCompliant,
      };
    }
    case 'SMTP_CHECK': {
      // Each `host { connect_ip … connect_port … bindto … }` is a checker of its own, as in
      // keepalived (the real server is up while every one of them passes); the block's own
      // connection settings are their defaults.
      let heloName = 'localhost';
      const hosts: { conn: Mutable<CheckerConnection>; loc: SourceLocation }[] = [];
      dispatch(block, type, {
        ...connHandlers, ...timing,
        helo_name: (x) => { heloName = v.string(x) ?? heloName; },
        host: (x) => {
          const h: Mutable<CheckerConnection> = {};
          dispatch(v.needBlock(x) ?? [], 'host', connectionHandlers(v, h), v.sink);
          hosts.push({ conn: h, loc: x.keyword.loc });
        },
      }, v.sink);
      const timingDone = done();
      if (hosts.length === 0) return { type, conn, timing: timingDone, loc, heloName };
      return hosts.map((h) => ({ type, conn: { ...conn, ...definedOnly(h.conn) }, timing: timingDone, loc: h.loc, heloName }));
    }
    case 'DNS_CHECK': {
      type Q = DnsCheck['queryType'];
      let queryType: Q = 'SOA';
      let name = '.';
      dispatch(block, type, {
        ...connHandlers, ...timing,
        // keepalived's table (check_dns.c): these nine types.
        type: (x) => { queryType = v.oneOf(x, 0, ['A', 'NS', 'CNAME', 'SOA', 'MX', 'TXT', 'AAAA', 'RRSIG', 'DNSKEY'] as const) ?? queryType; },
        name: (x) => { name = v.string(x) ?? name; },
      }, v.sink);
      return { type, conn, timing: done(), loc, queryType, name };
    }
    case 'MISC_CHECK': {
      let script: ScriptSpec | undefined;
      let timeout: number | undefined;
      let dynamic = false;
      let user: string | undefined;
      let group: string | undefined;
      dispatch(block, type, {
        ...timing,
        misc_path: (x) => { script = v.script(x); },
        misc_timeout: (x) => { timeout = v.timer(x, 0, 0.001, 86400); },
        misc_dynamic: () => { dynamic = true; },
        user: (x) => {
          user = v.string(x);
          group = x.args[1]?.text.replace(/^:/, '') || undefined;
        },
      }, v.sink);
      if (!script) {
        v.sink.error(DiagnosticCode.MISSING, 'MISC_CHECK has no misc_path', loc, 'MISC_CHECK', 'misc_path "/path/script args"');
        return undefined;
      }
      if (user !== undefined) script = { ...script, user, group };
      const tm = done();
      return { type, timing: tm, loc, script, timeout: timeout ?? tm.delayLoop, dynamic };
    }
    case 'UDP_CHECK': {
      let payload: string | undefined;
      let requireReply = false;
      let replyPattern: string | undefined;
      let minReplyLength = D.UDP_MIN_REPLY_LENGTH;
      let maxReplyLength = D.UDP_MAX_REPLY_LENGTH;
      const hex = (x: AstNode, from: number): string | undefined => {
        const s = x.args.slice(from).map((a) => a.text).join(' ');
        if (!HEX_RE.test(s)) {
          v.sink.error(DiagnosticCode.BAD_VALUE, `'${s}' is not a hex string`, x.args[from]?.loc, x.keyword.text, 'hex digits (x = any nibble in require_reply)');
          return undefined;
        }
        return normalizeHex(s);
      };
      dispatch(block, type, {
        ...connHandlers, ...timing,
        payload: (x) => {
          if (x.args.length === 0) v.arg(x, 0, 'hex bytes');
          const h = hex(x, 0);
          if (h !== undefined && /x/i.test(h)) v.sink.error(DiagnosticCode.BAD_VALUE, 'a payload cannot contain wildcards', x.args[0]?.loc, 'payload');
          else payload = h;
        },
        require_reply: (x) => { requireReply = true; if (x.args.length > 0) replyPattern = hex(x, 0); },
        min_reply_length: (x) => { minReplyLength = v.int(x, 0, 0, 65535) ?? minReplyLength; },
        max_reply_length: (x) => { maxReplyLength = v.int(x, 0, 0, 65535) ?? maxReplyLength; },
      }, v.sink);
      if (minReplyLength > maxReplyLength) {
        v.sink.error(DiagnosticCode.CONTRADICTION, `min_reply_length ${minReplyLength} > max_reply_length ${maxReplyLength}`, loc, 'UDP_CHECK');
      }
      return { type, conn, timing: done(), loc, payload, requireReply, replyPattern, minReplyLength, maxReplyLength };
    }
    case 'FILE_CHECK': {
      let trackFile: string | undefined;
      let dynamic = false;
      let weight = 1;
      let reverse = false;
      dispatch(block, type, {
        track_file: (x) => { trackFile = v.string(x); },
        dynamic: () => { dynamic = true; },
        weight: (x) => { weight = v.int(x, 0, -2147483647, 2147483647) ?? weight; reverse = x.args[1]?.text === 'reverse'; },
      }, v.sink);
      if (trackFile === undefined) {
        v.sink.error(DiagnosticCode.MISSING, 'FILE_CHECK has no track_file', loc, 'FILE_CHECK', 'track_file NAME');
        return undefined;
      }
      return { type, timing: done(), loc, trackFile, dynamic, weight, reverse };
    }
  }
}

/** keepalived's free-form hex: groups of digits, odd groups padded on the left. */
export function normalizeHex(s: string): string {
  return s.trim().split(/\s+/).filter(Boolean).map((g) => (g.length % 2 === 1 ? `0${g}` : g)).join('').toLowerCase();
}

export const CHECKER_TYPES: readonly CheckerType[] = [
  'TCP_CHECK', 'HTTP_GET', 'SSL_GET', 'SMTP_CHECK', 'DNS_CHECK', 'MISC_CHECK', 'UDP_CHECK', 'PING_CHECK', 'FILE_CHECK',
];

const RS_IGNORED = new Set(['snmp_name', 'BFD_CHECK']);
const VS_IGNORED = new Set(['snmp_name', 'persistence_engine']);

interface VsDefaults {
  readonly method: ForwardingMethod;
  readonly tunnel?: TunnelSpec | undefined;
  readonly port: number;
  readonly timing: TimingOverrides;
  readonly inhibitOnFailure: boolean;
  readonly virtualhost?: string | undefined;
  readonly agent?: AgentProbe | undefined;
  readonly proxyProtocol?: ProxyProtocolVersion | undefined;
  readonly smtpAlert?: boolean | undefined;
}

/** `proxy_protocol v1|v2` (Fulcrum): a PROXY protocol header towards the real server. */
function proxyProtocolVersion(v: Values, n: AstNode): ProxyProtocolVersion | undefined {
  const w = v.oneOf(n, 0, ['v1', 'v2'] as const);
  return w === undefined ? undefined : w === 'v1' ? 1 : 2;
}

/** What a real_server block sets while it is read (one static handler table serves every server). */
interface RsState {
  readonly v: Values;
  readonly t: TimingOverrides;
  weight: number;
  m: { method: ForwardingMethod; tunnel?: TunnelSpec | undefined };
  uthreshold: number;
  lthreshold: number;
  inhibitOnFailure: boolean;
  notifyUp: ScriptSpec | undefined;
  notifyDown: ScriptSpec | undefined;
  virtualhost: string | undefined;
  agent: AgentProbe | undefined;
  proxyProtocol: ProxyProtocolVersion | undefined;
  smtpAlert: boolean | undefined;
  readonly checkerNodes: [AstNode, CheckerType][];
}

const RS_HANDLERS: Readonly<Record<string, (x: AstNode, s: RsState) => void>> = (() => {
  const h: Record<string, (x: AstNode, s: RsState) => void> = {};
  // Timing keywords: the same handlers as at the other levels, bound to this server's overrides.
  for (const k of Object.keys(timingHandlers(null as unknown as Values, {}))) h[k] = (x, s) => (timingHandlers(s.v, s.t)[k] as Handler)(x);
  for (const ct of CHECKER_TYPES) h[ct] = (x, s) => { s.checkerNodes.push([x, ct]); };
  Object.assign(h, {
    weight: (x: AstNode, s: RsState) => { s.weight = s.v.int(x, 0, 0, D.MAX_WEIGHT) ?? s.weight; },
    lb_kind: (x: AstNode, s: RsState) => { s.m = method(s.v, x) ?? s.m; },
    lvs_method: (x: AstNode, s: RsState) => { s.m = method(s.v, x) ?? s.m; },
    uthreshold: (x: AstNode, s: RsState) => { s.uthreshold = s.v.int(x, 0, 0, 2147483647) ?? s.uthreshold; },
    lthreshold: (x: AstNode, s: RsState) => { s.lthreshold = s.v.int(x, 0, 0, 2147483647) ?? s.lthreshold; },
    inhibit_on_failure: (x: AstNode, s: RsState) => { s.inhibitOnFailure = s.v.optBool(x) ?? s.inhibitOnFailure; },
    notify_up: (x: AstNode, s: RsState) => { s.notifyUp = s.v.script(x); },
    notify_down: (x: AstNode, s: RsState) => { s.notifyDown = s.v.script(x); },
    smtp_alert: (x: AstNode, s: RsState) => { s.smtpAlert = s.v.optBool(x) ?? true; },
    virtualhost: (x: AstNode, s: RsState) => { s.virtualhost = s.v.string(x); },
    fulcrum_agent: (x: AstNode, s: RsState) => { s.agent = compileAgent(s.v, x); },
    proxy_protocol: (x: AstNode, s: RsState) => { s.proxyProtocol = proxyProtocolVersion(s.v, x) ?? s.proxyProtocol; },
  });
  return h;
})();

function compileRealServer(v: Values, n: AstNode, vs: VsDefaults): RealServer | undefined {
  const hp = hostPort(v, n, vs.port);
  const s: RsState = {
    v, t: {}, weight: D.DEFAULT_WEIGHT, m: { method: vs.method, tunnel: vs.tunnel }, uthreshold: 0, lthreshold: 0,
    inhibitOnFailure: vs.inhibitOnFailure, notifyUp: undefined, notifyDown: undefined, virtualhost: vs.virtualhost,
    agent: vs.agent, proxyProtocol: vs.proxyProtocol, smtpAlert: vs.smtpAlert, checkerNodes: [],
  };
  dispatchWith(v.needBlock(n) ?? [], 'real_server', RS_HANDLERS, s, v.sink, RS_IGNORED);
  if (!hp) return undefined;
  const { weight, m, uthreshold, lthreshold, inhibitOnFailure, notifyUp, notifyDown, smtpAlert, virtualhost, agent, proxyProtocol } = s;
  if (uthreshold > 0 && lthreshold > uthreshold) {
    v.sink.error(DiagnosticCode.CONTRADICTION, `lthreshold ${lthreshold} is above uthreshold ${uthreshold}`, n.keyword.loc, 'lthreshold', 'lthreshold < uthreshold');
  }
  // Most servers set no timing of their own: they share the service's (no copy per server).
  const inherited = Object.keys(s.t).length === 0 ? vs.timing : merge(vs.timing, s.t);
  const checkers = s.checkerNodes
    .flatMap(([x, ct]) => compileChecker(v, x, ct, inherited, { virtualhost }) ?? []);
  return {
    ...hp, weight, method: m.method, tunnel: m.tunnel, uthreshold, lthreshold, inhibitOnFailure,
    alpha: inherited.alpha ?? false, notifyUp, notifyDown, smtpAlert, virtualhost, proxyProtocol, checkers, agent, loc: n.keyword.loc,
  };
}

/** The `virtual_server …` head: `IP [PORT]`, `fwmark N`, or `group NAME`. */
function endpoint(v: Values, n: AstNode): ServiceEndpoint | undefined {
  const first = v.arg(n, 0, 'IP [PORT] | fwmark N | group NAME');
  if (!first) return undefined;
  if (first.text === 'fwmark') {
    const mark = v.int(n, 1, 1, 0xffffffff);
    v.extra(n, 2);
    return mark === undefined ? undefined : { kind: 'fwmark', family: 'inet', mark };
  }
  if (first.text === 'group') {
    const name = v.arg(n, 1, 'a virtual_server_group name')?.text;
    v.extra(n, 2);
    return name === undefined ? undefined : { kind: 'group', name };
  }
  const ip = v.ipToken(first, 'virtual_server');
  const pt = n.args[1];
  const port = pt ? v.portToken(pt, 'virtual_server') : 0;
  v.extra(n, 2);
  if (!ip || port === undefined) return undefined;
  return { kind: 'address', family: ip.family, address: ip.address, port };
}

/**
 * `alpha` / `omega`: keepalived takes no argument and ignores one if written (`alpha no`
 * still turns it on) — so does Fulcrum, with a warning saying so.
 */
function onIgnoringArgument(v: Values, n: AstNode): true {
  const t = n.args[0];
  if (t !== undefined) v.sink.warn(DiagnosticCode.IGNORED, `takes no argument; keepalived ignores '${t.text}' and turns ${n.keyword.text} on`, t.loc, n.keyword.text);
  return true;
}

/**
 * `persistence_granularity`: an IPv4 netmask — any bits, as keepalived, ipvsadm and the
 * kernel accept (`255.0.255.0`) — or a prefix length (`/64` or `64`).
 */
function granularity(v: Values, n: AstNode): { prefixLength: number; netmask: string; mask?: string } | undefined {
  const t = v.arg(n, 0, 'a netmask (255.255.255.0) or prefix length');
  if (!t) return undefined;
  if (/^\/?[0-9]{1,3}$/.test(t.text)) {
    const plen = Number(t.text.replace('/', ''));
    if (plen >= 1 && plen <= 128) return { prefixLength: plen, netmask: t.text };
  } else {
    const plen = netmaskToPrefix(t.text);
    if (plen !== null && plen >= 1) return { prefixLength: plen, netmask: t.text };
    const bits = maskBits(t.text);
    if (plen === null && bits !== null && bits >= 1) return { prefixLength: bits, netmask: t.text, mask: t.text };
  }
  v.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a netmask`, t.loc, 'persistence_granularity', 'a netmask like 255.255.255.0 (any bits), or a prefix length');
  return undefined;
}

export function compileVirtualServer(v: Values, n: AstNode): VirtualServer | undefined {
  const ep = endpoint(v, n);
  const t: TimingOverrides = {};
  let scheduler: SchedulerName = D.DEFAULT_SCHEDULER as SchedulerName;
  const flags = new Set<SchedFlag>();
  let m: { method: ForwardingMethod; tunnel?: TunnelSpec | undefined } = { method: 'nat' };
  let persistTimeout: number | undefined;
  let gran: { prefixLength: number; netmask: string; mask?: string } | undefined;
  let granLoc: SourceLocation | undefined;
  let protocol: Protocol = 'tcp';
  let protocolSet = false;
  let quorum = D.DEFAULT_QUORUM;
  let hysteresis = 0;
  let quorumUp: ScriptSpec | undefined;
  let quorumDown: ScriptSpec | undefined;
  let sorryNode: AstNode | undefined;
  let sorryInhibit = false;
  let sorryMethod: ForwardingMethod | undefined;
  let inhibitOnFailure = false;
  let omega = false;
  let haSuspend = false;
  let ops = false;
  let fullnatSource: string | undefined;
  let virtualhost: string | undefined;
  let announce: Announce | undefined;
  let agent: AgentProbe | undefined;
  let proxyProtocol: ProxyProtocolVersion | undefined;
  let smtpAlert: boolean | undefined;
  let ipFamily: Family | undefined;
  let dataplane: KernelPlaneChoice | undefined;
  let dataplaneNode: AstNode | undefined;
  const rsNodes: AstNode[] = [];
  const flag = (f: SchedFlag): Handler => () => { flags.add(f); };
  dispatch(v.needBlock(n) ?? [], 'virtual_server', {
    ...timingHandlers(v, t),
    lb_algo: (x) => { scheduler = sched(v, x) ?? scheduler; },
    lvs_sched: (x) => { scheduler = sched(v, x) ?? scheduler; },
    lb_kind: (x) => { m = method(v, x) ?? m; },
    lvs_method: (x) => { m = method(v, x) ?? m; },
    'flag-1': flag('flag-1'), 'flag-2': flag('flag-2'), 'flag-3': flag('flag-3'),
    'sh-fallback': flag('flag-1'), 'sh-port': flag('flag-2'), 'mh-fallback': flag('flag-1'), 'mh-port': flag('flag-2'),
    ops: () => { ops = true; },
    // Fulcrum: one-arm full NAT — NAT connections reach the real servers from this address.
    fullnat_source: (x) => { fullnatSource = v.ip(x, 0)?.address ?? fullnatSource; },
    // Fulcrum: which kernel plane forwards this DR/TUN service (overrides global_defs).
    fulcrum_dataplane: (x) => { dataplane = v.oneOf(x, 0, ['xdp', 'nft'] as const) ?? dataplane; dataplaneNode = x; },
    persistence_engine: (x) => {
      const t = v.arg(x, 0, 'sip');
      if (t) persistenceEngine(t.text, t.loc, 'persistence_engine', v.sink);
    },
    persistence_timeout: (x) => {
      persistTimeout = x.args.length === 0 ? D.KEEPALIVED_PERSISTENCE_TIMEOUT : v.int(x, 0, 0, 2678400) ?? persistTimeout;
    },
    persistence_granularity: (x) => { gran = granularity(v, x); granLoc = x.keyword.loc; },
    protocol: (x) => {
      protocolSet = true;
      const p = v.oneOf(x, 0, ['TCP', 'UDP', 'SCTP'] as const);
      if (p) protocol = p.toLowerCase() as Protocol;
    },
    quorum: (x) => { quorum = v.int(x, 0, 0, 2147483647) ?? quorum; },
    announce: (x) => { announce = compileAnnounce(v, x) ?? announce; },
    hysteresis: (x) => { hysteresis = v.int(x, 0, 0, 2147483647) ?? hysteresis; },
    quorum_up: (x) => { quorumUp = v.script(x); },
    quorum_down: (x) => { quorumDown = v.script(x); },
    sorry_server: (x) => { sorryNode = x; },
    sorry_server_inhibit: (x) => { sorryInhibit = v.optBool(x) ?? sorryInhibit; },
    sorry_server_lvs_method: (x) => { sorryMethod = method(v, x)?.method; },
    inhibit_on_failure: (x) => { inhibitOnFailure = v.optBool(x) ?? inhibitOnFailure; },
    omega: (x) => { omega = onIgnoringArgument(v, x); },
    ha_suspend: (x) => { haSuspend = v.optBool(x) ?? haSuspend; },
    smtp_alert: (x) => { smtpAlert = v.optBool(x) ?? true; },
    virtualhost: (x) => { virtualhost = v.string(x); },
    ip_family: (x) => { ipFamily = v.oneOf(x, 0, ['inet', 'inet6'] as const); },
    fulcrum_agent: (x) => { agent = compileAgent(v, x); },
    proxy_protocol: (x) => { proxyProtocol = proxyProtocolVersion(v, x) ?? proxyProtocol; },
    real_server: (x) => { rsNodes.push(x); },
  }, v.sink, VS_IGNORED);
  if (!ep) return undefined;

  const endpointFinal: ServiceEndpoint = ep.kind === 'fwmark' && ipFamily ? { ...ep, family: ipFamily } : ep;
  const vsPort = endpointFinal.kind === 'address' ? endpointFinal.port : 0;
  const defaults: VsDefaults = { method: m.method, tunnel: m.tunnel, port: vsPort, timing: t, inhibitOnFailure, virtualhost, agent, proxyProtocol, smtpAlert };
  const realServers = rsNodes.map((x) => compileRealServer(v, x, defaults)).filter((r): r is RealServer => r !== undefined);

  let sorryServer: SorryServer | undefined;
  if (sorryNode) {
    const hp = hostPort(v, sorryNode, vsPort);
    if (hp) sorryServer = { ...hp, method: sorryMethod ?? m.method, inhibit: sorryInhibit };
  }
  const family: Family | undefined = endpointFinal.kind === 'group' ? realServers[0]?.family : endpointFinal.family;
  let persistence: Persistence | null = null;
  if (persistTimeout !== undefined && persistTimeout > 0) {
    const max = maxPrefix(family ?? 'inet');
    const plen = gran ? Math.min(gran.prefixLength, max) : max;
    const v4 = (family ?? 'inet') === 'inet';
    persistence = gran?.mask !== undefined && v4
      ? { timeout: persistTimeout, prefixLength: plen, netmask: gran.mask, mask: gran.mask }
      : { timeout: persistTimeout, prefixLength: plen, netmask: v4 ? prefixToNetmask(plen) : `/${plen}` };
  } else if (gran) {
    v.sink.warn(DiagnosticCode.IGNORED, 'persistence_granularity without persistence_timeout has no effect', granLoc, 'persistence_granularity');
  }
  if (!protocolSet && endpointFinal.kind !== 'fwmark') {
    // keepalived 2.2.7 reports this ("no protocol set - defaulting to UDP") and serves UDP;
    // Fulcrum serves TCP. Said, so the same file cannot mean two things unnoticed.
    v.sink.warn(DiagnosticCode.ADJUSTED, 'no protocol: TCP here, but keepalived 2.2.7 reports this and serves UDP — write protocol TCP or UDP', n.keyword.loc, 'protocol', 'protocol TCP|UDP|SCTP');
  }
  const noXdp = xdpRefusal(endpointFinal, protocol, m.method);
  if (dataplane === 'xdp' && noXdp !== null && dataplaneNode) {
    v.sink.warn(DiagnosticCode.ADJUSTED, `${noXdp}: this service stays on nftables`, dataplaneNode.keyword.loc, 'fulcrum_dataplane', 'fulcrum_dataplane nft');
  }
  const vs: VirtualServer = {
    endpoint: endpointFinal, protocol, scheduler, schedFlags: [...flags].sort(), method: m.method, tunnel: m.tunnel,
    persistence, ops, ...(fullnatSource !== undefined ? { fullnatSource } : {}), ...(dataplane !== undefined ? { dataplane } : {}), delayLoop: t.delayLoop ?? D.DEFAULT_DELAY_LOOP, quorum, hysteresis, quorumUp, quorumDown, sorryServer,
    inhibitOnFailure, alpha: t.alpha ?? false, omega, haSuspend, virtualhost, proxyProtocol, realServers,
    ...(announce ? { announce } : {}), loc: n.keyword.loc,
  };
  if (announce && endpointFinal.kind === 'fwmark') {
    v.sink.error(DiagnosticCode.CONTRADICTION, 'a firewall-mark service has no address to announce', announce.loc, 'announce', 'announce bgp on a virtual_server IP PORT, a group of addresses, or a vrrp_instance');
  }
  return vs;
}

function sched(v: Values, n: AstNode): SchedulerName | undefined {
  const t = v.arg(n, 0, SCHEDULER_NAMES.join('|'));
  if (!t) return undefined;
  const s = t.text.toLowerCase();
  if (!isSchedulerName(s)) {
    v.sink.error(DiagnosticCode.BAD_VALUE, `unknown scheduler '${t.text}'`, t.loc, n.keyword.text, SCHEDULER_NAMES.join('|'));
    return undefined;
  }
  return s;
}

/** `virtual_server_group NAME { IP|RANGE|CIDR [PORT] … fwmark N [inet|inet6] … }`. */
export function compileVirtualServerGroup(v: Values, n: AstNode): VirtualServerGroup | undefined {
  const name = v.string(n);
  const members: GroupMember[] = [];
  for (const line of v.needBlock(n) ?? []) {
    const kw = line.keyword;
    if (kw.text === 'fwmark') {
      const mark = v.int(line, 0, 1, 0xffffffff);
      const fam = line.args[1] ? v.oneOf(line, 1, ['inet', 'inet6'] as const) : undefined;
      if (mark !== undefined) members.push({ kind: 'fwmark', mark, family: fam });
      continue;
    }
    if (kw.text === 'vip_range' || kw.text === 'fwmark_range') {
      v.sink.error(DiagnosticCode.UNSUPPORTED, 'old range syntax; write the range inline (192.168.1.1-10 80)', kw.loc, kw.text);
      continue;
    }
    const range = parseRange(kw.text);
    if (!range) {
      v.sink.error(DiagnosticCode.BAD_VALUE, `'${kw.text}' is not an address, range or CIDR block`, kw.loc, 'virtual_server_group',
        'IP, IP-LAST, IP-IP or IP/PREFIX, then an optional port');
      continue;
    }
    const pt = line.args[0];
    const port = pt ? v.portToken(pt, 'virtual_server_group') : 0;
    v.extra(line, 1);
    if (port !== undefined) members.push({ kind: 'range', ...range, port });
  }
  if (name === undefined) return undefined;
  return { name, members, loc: n.keyword.loc };
}

/** `a.b.c.d`, `a.b.c.d-e`, `a.b.c.d-e.f.g.h`, `a.b.c.d/n` (and IPv6 equivalents). */
export function parseRange(text: string): { family: Family; first: string; last: string } | null {
  const slash = text.indexOf('/');
  if (slash > 0) {
    const ip = parseIp(text.slice(0, slash));
    const p = text.slice(slash + 1);
    if (!ip || !/^[0-9]{1,3}$/.test(p) || Number(p) > maxPrefix(ip.family)) return null;
    return { family: ip.family, ...cidrBounds(ip.address, Number(p)) };
  }
  const dash = text.lastIndexOf('-');
  if (dash > 0) {
    const first = parseIp(text.slice(0, dash));
    const tail = text.slice(dash + 1);
    if (!first) return null;
    let last = parseIp(tail);
    if (!last) {
      // Short form: replace the last group (IPv4 decimal octet, IPv6 hex group).
      const sep = first.family === 'inet' ? '.' : ':';
      const head = first.address.slice(0, first.address.lastIndexOf(sep) + 1);
      const ok = first.family === 'inet' ? /^[0-9]{1,3}$/.test(tail) : /^[0-9a-fA-F]{1,4}$/.test(tail);
      last = ok ? parseIp(head + tail) : null;
    }
    if (!last || last.family !== first.family || compareAddresses(first.address, last.address) > 0) return null;
    return { family: first.family, first: first.address, last: last.address };
  }
  const ip = parseIp(text);
  return ip ? { family: ip.family, first: ip.address, last: ip.address } : null;
}
