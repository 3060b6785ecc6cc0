/**
 * ipvsadm's command grammar (ipvsadm(8)): one command line → a typed command.
 *
 * Accepts what people type (`ipvsadm -A -t 10.0.0.1:80 -s rr -p 600`) and what `ipvsadm -S`
 * prints (the same without the program name). Short options may be clustered (`-Ln`), long
 * options may use `=`; `-p` takes an optional timeout. Defaults are ipvsadm's, not
 * keepalived's (persistence 300 s; forwarding by direct routing; weight 1; scheduler wlc).
 */
import { DiagnosticCode, type DiagnosticSink, type SourceLocation } from '../../errors/index.js';
import { maskBits, maxPrefix, netmaskToPrefix, parseIp, prefixToNetmask } from '../../model/address.js';
import * as D from '../../model/defaults.js';
import { persistenceEngine } from '../persistence-engine.js';
import {
  IPVS_SCHEDULERS, isSchedulerName,
  type Family, type ForwardingMethod, type Persistence, type Protocol, type SchedFlag, type SchedulerName, type TunnelSpec,
} from '../../model/types.js';

export interface ArgToken {
  readonly text: string;
  readonly loc: SourceLocation;
}

/** Which service a command is about: ipvsadm's -t/-u/--sctp-service or -f. */
export type ServiceId =
  | { readonly kind: 'address'; readonly protocol: Protocol; readonly family: Family; readonly address: string; readonly port: number }
  | { readonly kind: 'fwmark'; readonly mark: number; readonly family: Family };

export interface ServiceOptions {
  readonly scheduler: SchedulerName;
  readonly schedFlags: readonly SchedFlag[];
  readonly persistence: Persistence | null;
  readonly ops: boolean;
}

export interface ServerOptions {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
  readonly method: ForwardingMethod;
  readonly weight: number;
  readonly uthreshold: number;
  readonly lthreshold: number;
  readonly tunnel?: TunnelSpec | undefined;
}

export type IpvsCommand =
  | { readonly op: 'add-service' | 'edit-service'; readonly service: ServiceId; readonly options: ServiceOptions; readonly loc: SourceLocation }
  | { readonly op: 'delete-service'; readonly service: ServiceId; readonly loc: SourceLocation }
  | { readonly op: 'add-server' | 'edit-server'; readonly service: ServiceId; readonly server: ServerOptions; readonly loc: SourceLocation }
  | { readonly op: 'delete-server'; readonly service: ServiceId; readonly server: { readonly family: Family; readonly address: string; readonly port: number }; readonly loc: SourceLocation }
  | { readonly op: 'clear' | 'save' | 'restore'; readonly loc: SourceLocation }
  | { readonly op: 'zero'; readonly service?: ServiceId | undefined; readonly loc: SourceLocation }
  | { readonly op: 'list'; readonly service?: ServiceId | undefined; readonly flags: ReadonlySet<string>; readonly loc: SourceLocation }
  | { readonly op: 'set'; readonly tcp: number; readonly tcpfin: number; readonly udp: number; readonly loc: SourceLocation }
  | { readonly op: 'start-daemon'; readonly role: 'master' | 'backup'; readonly sync: DaemonOptions; readonly loc: SourceLocation }
  | { readonly op: 'stop-daemon'; readonly role: 'master' | 'backup'; readonly loc: SourceLocation };

/** `--start-daemon`'s settings (ipvsadm's defaults: syncid 0, IPVS's group, port and TTL). */
export interface DaemonOptions {
  readonly interface: string;
  readonly syncid: number;
  readonly maxlen: number;
  readonly group: string;
  readonly port: number;
  readonly ttl: number;
}

/** Option table: long name, short letter, and whether it takes an argument. */
export const IPVSADM_OPTIONS: readonly { long: string; short?: string; arg: 'none' | 'required' | 'optional' }[] = [
  { long: 'add-service', short: 'A', arg: 'none' },
  { long: 'edit-service', short: 'E', arg: 'none' },
  { long: 'delete-service', short: 'D', arg: 'none' },
  { long: 'clear', short: 'C', arg: 'none' },
  { long: 'restore', short: 'R', arg: 'none' },
  { long: 'save', short: 'S', arg: 'none' },
  { long: 'add-server', short: 'a', arg: 'none' },
  { long: 'edit-server', short: 'e', arg: 'none' },
  { long: 'delete-server', short: 'd', arg: 'none' },
  { long: 'list', short: 'L', arg: 'none' },
  { long: 'list', short: 'l', arg: 'none' },
  { long: 'zero', short: 'Z', arg: 'none' },
  { long: 'set', arg: 'none' },
  { long: 'start-daemon', arg: 'required' },
  { long: 'stop-daemon', arg: 'required' },
  { long: 'mcast-interface', arg: 'required' },
  { long: 'syncid', arg: 'required' },
  { long: 'sync-maxlen', arg: 'required' },
  { long: 'mcast-group', arg: 'required' },
  { long: 'mcast-port', arg: 'required' },
  { long: 'mcast-ttl', arg: 'required' },
  { long: 'daemon', arg: 'none' },
  { long: 'tcp-service', short: 't', arg: 'required' },
  { long: 'udp-service', short: 'u', arg: 'required' },
  { long: 'sctp-service', arg: 'required' },
  { long: 'fwmark-service', short: 'f', arg: 'required' },
  { long: 'scheduler', short: 's', arg: 'required' },
  { long: 'sched-flags', short: 'b', arg: 'required' },
  { long: 'persistent', short: 'p', arg: 'optional' },
  { long: 'netmask', short: 'M', arg: 'required' },
  { long: 'real-server', short: 'r', arg: 'required' },
  { long: 'gatewaying', short: 'g', arg: 'none' },
  { long: 'ipip', short: 'i', arg: 'none' },
  { long: 'masquerading', short: 'm', arg: 'none' },
  { long: 'proxy', arg: 'none' },
  { long: 'weight', short: 'w', arg: 'required' },
  { long: 'u-threshold', short: 'x', arg: 'required' },
  { long: 'l-threshold', short: 'y', arg: 'required' },
  { long: 'tun-type', arg: 'required' },
  { long: 'tun-port', arg: 'required' },
  { long: 'tun-nocsum', arg: 'none' },
  { long: 'tun-csum', arg: 'none' },
  { long: 'tun-remcsum', arg: 'none' },
  { long: 'ipv6', short: '6', arg: 'none' },
  { long: 'ops', short: 'o', arg: 'none' },
  { long: 'pe', arg: 'required' },
  { long: 'numeric', short: 'n', arg: 'none' },
  { long: 'connection', short: 'c', arg: 'none' },
  { long: 'timeout', arg: 'none' },
  { long: 'stats', arg: 'none' },
  { long: 'rate', arg: 'none' },
  { long: 'thresholds', arg: 'none' },
  { long: 'persistent-conn', arg: 'none' },
  { long: 'exact', arg: 'none' },
  { long: 'sort', arg: 'none' },
  { long: 'nosort', arg: 'none' },
];
const BY_SHORT = new Map(IPVSADM_OPTIONS.filter((o) => o.short).map((o) => [o.short as string, o]));
const BY_LONG = new Map(IPVSADM_OPTIONS.map((o) => [o.long, o]));
const COMMANDS: Record<string, IpvsCommand['op']> = {
  'add-service': 'add-service', 'edit-service': 'edit-service', 'delete-service': 'delete-service',
  clear: 'clear', restore: 'restore', save: 'save', 'add-server': 'add-server', 'edit-server': 'edit-server',
  'delete-server': 'delete-server', list: 'list', zero: 'zero', set: 'set', 'start-daemon': 'start-daemon', 'stop-daemon': 'stop-daemon',
};
/** Port names ipvsadm prints without -n, for the common services. */
const SERVICE_PORTS: Record<string, number> = {
  ftp: 21, ssh: 22, telnet: 23, smtp: 25, domain: 53, http: 80, www: 80, pop3: 110, ntp: 123, imap: 143,
  snmp: 161, ldap: 389, https: 443, submission: 587, ldaps: 636, imaps: 993, pop3s: 995, 'http-alt': 8080, mysql: 3306,
};

/** Words back into one command line that splitLine reads as the same words. */
export function joinArgs(words: readonly string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_.:,/=\-[\]]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`)).join(' ');
}

/** Shell-like split of a command line into located words (quotes, backslash escapes). */
export function splitLine(line: string, file: string, lineNo: number): ArgToken[] {
  const out: ArgToken[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && /\s/.test(line[i] as string)) i++;
    if (i >= line.length || line[i] === '#') break;
    const start = i;
    let buf = '';
    let quote = '';
    while (i < line.length && (quote || !/\s/.test(line[i] as string))) {
      const c = line[i] as string;
      if (quote) {
        if (c === quote) quote = '';
        else if (c === '\\' && quote === '"' && i + 1 < line.length) buf += line[++i];
        else buf += c;
      } else if (c === '"' || c === "'") quote = c;
      else if (c === '\\' && i + 1 < line.length) buf += line[++i];
      else buf += c;
      i++;
    }
    out.push({ text: buf, loc: { file, line: lineNo, col: start + 1 } });
  }
  return out;
}

interface Opt { readonly name: string; readonly value?: ArgToken | undefined; readonly at: ArgToken }

/** getopt/popt-like option scan. Positional words are errors (ipvsadm takes none). */
function scanOptions(words: readonly ArgToken[], sink: DiagnosticSink): Opt[] | undefined {
  const opts: Opt[] = [];
  let ok = true;
  for (let i = 0; i < words.length; i++) {
    const w = words[i] as ArgToken;
    const takeValue = (spec: { arg: string; long: string }, inline: string | undefined): ArgToken | undefined => {
      if (inline !== undefined) return { text: inline, loc: w.loc };
      const next = words[i + 1];
      if (spec.arg === 'required') {
        if (!next) {
          sink.error(DiagnosticCode.MISSING, `option --${spec.long} needs a value`, w.loc, w.text);
          ok = false;
          return undefined;
        }
        i++;
        return next;
      }
      // -p [timeout]: only a following number is its value.
      if (spec.arg === 'optional' && next && /^[0-9]+$/.test(next.text)) {
        i++;
        return next;
      }
      return undefined;
    };
    if (w.text.startsWith('--') && w.text.length > 2) {
      const eq = w.text.indexOf('=');
      const name = eq > 0 ? w.text.slice(2, eq) : w.text.slice(2);
      const spec = BY_LONG.get(name);
      if (!spec) {
        sink.error(DiagnosticCode.BAD_VALUE, `unknown option '${w.text}'`, w.loc, w.text);
        ok = false;
        continue;
      }
      const inline = eq > 0 ? w.text.slice(eq + 1) : undefined;
      if (spec.arg === 'none' && inline !== undefined) {
        sink.error(DiagnosticCode.BAD_VALUE, `option --${name} takes no value`, w.loc, w.text);
        ok = false;
      }
      opts.push({ name: spec.long, value: spec.arg === 'none' ? undefined : takeValue(spec, inline), at: w });
      continue;
    }
    if (w.text.startsWith('-') && w.text.length > 1) {
      for (let k = 1; k < w.text.length; k++) {
        const spec = BY_SHORT.get(w.text[k] as string);
        if (!spec) {
          sink.error(DiagnosticCode.BAD_VALUE, `unknown option '-${w.text[k]}'`, { ...w.loc, col: w.loc.col + k }, w.text);
          ok = false;
          break;
        }
        if (spec.arg !== 'none') {
          const rest = w.text.slice(k + 1);
          opts.push({ name: spec.long, value: takeValue(spec, rest === '' ? undefined : rest), at: w });
          break;
        }
        opts.push({ name: spec.long, at: w });
      }
      continue;
    }
    sink.error(DiagnosticCode.BAD_VALUE, `unexpected argument '${w.text}'`, w.loc, undefined, 'an option');
    ok = false;
  }
  return ok ? opts : undefined;
}

/** `host[:port]` / `[v6]:port` / bare v6 — ports may be numbers or common service names. */
export function parseHostPort(text: string): { family: Family; address: string; port: number | undefined } | null {
  let host = text;
  let portText: string | undefined;
  const br = /^\[([^\]]+)\](?::(.+))?$/.exec(text);
  if (br) {
    host = br[1] as string;
    portText = br[2];
  } else if ((text.match(/:/g) ?? []).length === 1) {
    const c = text.indexOf(':');
    host = text.slice(0, c);
    portText = text.slice(c + 1);
  }
  const ip = parseIp(host);
  if (!ip) return null;
  let port: number | undefined;
  if (portText !== undefined) {
    port = /^[0-9]+$/.test(portText) ? Number(portText) : SERVICE_PORTS[portText.toLowerCase()];
    if (port === undefined || port > 65535) return null;
  }
  return { family: ip.family, address: ip.address, port };
}

/** Parse one ipvsadm command line. Returns undefined (with diagnostics) when it is invalid. */
export function parseIpvsadmLine(words: readonly ArgToken[], sink: DiagnosticSink): IpvsCommand | undefined {
  const first = words[0];
  if (!first) return undefined;
  const rest = first.text === 'ipvsadm' || first.text.endsWith('/ipvsadm') ? words.slice(1) : words;
  const lineLoc = first.loc;
  const before = sink.errorCount;
  // --set takes three positional values (tcp tcpfin udp); lift them out before the scan.
  const setIdx = rest.findIndex((w) => w.text === '--set');
  const setVals = setIdx >= 0 ? rest.slice(setIdx + 1, setIdx + 4) : [];
  const scanned = setIdx >= 0 ? [...rest.slice(0, setIdx + 1), ...rest.slice(setIdx + 4)] : rest;
  const opts = scanOptions(scanned, sink);
  if (!opts) return undefined;

  const cmds = opts.filter((o) => COMMANDS[o.name] !== undefined);
  if (cmds.length !== 1) {
    sink.error(DiagnosticCode.MISSING, cmds.length === 0 ? 'no command given' : `more than one command (${cmds.map((c) => c.at.text).join(' ')})`,
      (cmds[1] ?? cmds[0])?.at.loc ?? lineLoc, undefined, 'exactly one of -A -E -D -a -e -d -C -S -R -L -Z --set --start-daemon --stop-daemon');
    return undefined;
  }
  const cmd = cmds[0] as Opt;
  const op = COMMANDS[cmd.name] as IpvsCommand['op'];
  const get = (name: string): Opt | undefined => {
    const all = opts.filter((o) => o.name === name);
    if (all.length > 1) sink.error(DiagnosticCode.DUPLICATE, `option --${name} given twice`, (all[1] as Opt).at.loc, (all[1] as Opt).at.text);
    return all[0];
  };
  const has = (name: string): boolean => opts.some((o) => o.name === name);
  const int = (o: Opt, min: number, max: number, what: string): number | undefined => {
    const t = o.value as ArgToken;
    if (!/^[0-9]+$/.test(t.text) || Number(t.text) < min || Number(t.text) > max) {
      sink.error(DiagnosticCode.RANGE, `illegal ${what} specified: '${t.text}'`, t.loc, o.at.text, `an integer ${min}..${max}`);
      return undefined;
    }
    return Number(t.text);
  };

  // Which options each command accepts (ipvsadm's option compatibility table, simplified).
  const SERVICE_OPTS = ['scheduler', 'sched-flags', 'persistent', 'netmask', 'ops', 'ipv6', 'pe'];
  const SERVER_OPTS = ['real-server', 'gatewaying', 'ipip', 'masquerading', 'proxy', 'weight', 'u-threshold', 'l-threshold',
    'tun-type', 'tun-port', 'tun-nocsum', 'tun-csum', 'tun-remcsum', 'ipv6'];
  const LIST_OPTS = ['numeric', 'connection', 'timeout', 'stats', 'rate', 'thresholds', 'persistent-conn', 'exact', 'sort', 'nosort', 'daemon'];
  const DAEMON_OPTS = ['mcast-interface', 'syncid', 'sync-maxlen', 'mcast-group', 'mcast-port', 'mcast-ttl'];
  const SVC_SEL = ['tcp-service', 'udp-service', 'sctp-service', 'fwmark-service'];
  const allowed: Record<IpvsCommand['op'], string[]> = {
    'add-service': [...SVC_SEL, ...SERVICE_OPTS], 'edit-service': [...SVC_SEL, ...SERVICE_OPTS], 'delete-service': [...SVC_SEL, 'ipv6'],
    'add-server': [...SVC_SEL, ...SERVER_OPTS], 'edit-server': [...SVC_SEL, ...SERVER_OPTS], 'delete-server': [...SVC_SEL, 'real-server', 'ipv6'],
    clear: [], save: ['numeric'], restore: [], zero: [...SVC_SEL, 'ipv6'], list: [...SVC_SEL, 'ipv6', ...LIST_OPTS], set: [],
    'start-daemon': DAEMON_OPTS, 'stop-daemon': [],
  };
  for (const o of opts) {
    if (o === cmd) continue;
    if (!allowed[op].includes(o.name)) {
      sink.error(DiagnosticCode.CONTRADICTION, `illegal option --${o.name} with ${cmd.at.text}`, o.at.loc, o.at.text);
    }
  }

  let service: ServiceId | undefined;
  const sel = SVC_SEL.map((s) => get(s)).filter((o): o is Opt => o !== undefined);
  if (sel.length > 1) sink.error(DiagnosticCode.CONTRADICTION, 'more than one service given', (sel[1] as Opt).at.loc, (sel[1] as Opt).at.text);
  const s0 = sel[0];
  if (s0?.value) {
    if (s0.name === 'fwmark-service') {
      const mark = int(s0, 1, 0xffffffff, 'fwmark');
      if (mark !== undefined) service = { kind: 'fwmark', mark, family: has('ipv6') ? 'inet6' : 'inet' };
    } else {
      const hp = parseHostPort(s0.value.text);
      if (!hp) {
        sink.error(DiagnosticCode.BAD_VALUE, `illegal virtual server address[:port] specified: '${s0.value.text}'`, s0.value.loc, s0.at.text,
          'ADDRESS[:PORT] or [IPv6]:PORT');
      } else {
        const protocol: Protocol = s0.name === 'tcp-service' ? 'tcp' : s0.name === 'udp-service' ? 'udp' : 'sctp';
        service = { kind: 'address', protocol, family: hp.family, address: hp.address, port: hp.port ?? 0 };
      }
    }
  }
  const needsService = ['add-service', 'edit-service', 'delete-service', 'add-server', 'edit-server', 'delete-server'].includes(op);
  if (needsService && !service && sel.length === 0) {
    sink.error(DiagnosticCode.MISSING, `${cmd.at.text} needs a service`, cmd.at.loc, cmd.at.text, '-t ADDR:PORT, -u ADDR:PORT, --sctp-service ADDR:PORT or -f MARK');
  }

  let result: IpvsCommand | undefined;
  switch (op) {
    case 'add-service':
    case 'edit-service': {
      let scheduler: SchedulerName = D.DEFAULT_SCHEDULER as SchedulerName;
      const so = get('scheduler');
      if (so?.value) {
        const s = so.value.text.toLowerCase();
        if (isSchedulerName(s)) scheduler = s;
        else sink.error(DiagnosticCode.BAD_VALUE, `unknown scheduler '${so.value.text}'`, so.value.loc, so.at.text, IPVS_SCHEDULERS.join('|'));
      }
      const flags = new Set<SchedFlag>();
      const bo = get('sched-flags');
      if (bo?.value) {
        for (const f of bo.value.text.split(',')) {
          const map: Record<string, SchedFlag> = {
            'flag-1': 'flag-1', 'flag-2': 'flag-2', 'flag-3': 'flag-3',
            'sh-fallback': 'flag-1', 'sh-port': 'flag-2', 'mh-fallback': 'flag-1', 'mh-port': 'flag-2',
          };
          const g = map[f];
          if (!g) sink.error(DiagnosticCode.BAD_VALUE, `unknown scheduler flag '${f}'`, bo.value.loc, bo.at.text, 'flag-1|flag-2|flag-3|sh-fallback|sh-port|mh-fallback|mh-port');
          else if ((f.startsWith('sh-') && scheduler !== 'sh') || (f.startsWith('mh-') && scheduler !== 'mh')) {
            sink.error(DiagnosticCode.CONTRADICTION, `flag '${f}' is for the ${f.slice(0, 2)} scheduler, not ${scheduler}`, bo.value.loc, bo.at.text);
          } else flags.add(g);
        }
      }
      let persistence: Persistence | null = null;
      const po = get('persistent');
      const mo = get('netmask');
      const family: Family = service?.family ?? 'inet';
      if (po) {
        const timeout = po.value ? int(po, 1, 2678400, 'timeout') : D.IPVSADM_PERSISTENCE_TIMEOUT;
        let prefixLength = maxPrefix(family);
        // ipvsadm takes any IPv4 netmask, contiguous or not (the kernel ANDs it).
        let mask: string | undefined;
        if (mo?.value) {
          const t = mo.value.text;
          const p = family === 'inet' ? netmaskToPrefix(t) : /^[0-9]{1,3}$/.test(t) ? Number(t) : null;
          const bits = family === 'inet' && p === null ? maskBits(t) : null;
          if (bits !== null && bits >= 1) {
            prefixLength = bits;
            mask = parseIp(t)?.address ?? t;
          } else if (p === null || p < 1 || p > maxPrefix(family)) {
            sink.error(DiagnosticCode.BAD_VALUE, `illegal netmask specified: '${t}'`, mo.value.loc, mo.at.text,
              family === 'inet' ? 'a netmask like 255.255.255.0' : 'a prefix length 1..128');
          } else prefixLength = p;
        }
        if (timeout !== undefined) {
          persistence = mask !== undefined
            ? { timeout, prefixLength, netmask: mask, mask }
            : { timeout, prefixLength, netmask: family === 'inet' ? prefixToNetmask(prefixLength) : `/${prefixLength}` };
        }
      } else if (mo) {
        sink.error(DiagnosticCode.CONTRADICTION, 'a netmask needs a persistent service (-p)', mo.at.loc, mo.at.text);
      }
      if (service?.kind === 'address' && service.port === 0 && !po) {
        sink.error(DiagnosticCode.CONTRADICTION, 'Zero port specified for non-persistent service', s0?.value?.loc ?? cmd.at.loc, s0?.at.text,
          'a port, or -p for an all-ports (PCC) service');
      }
      const pe = get('pe');
      if (pe?.value) persistenceEngine(pe.value.text, pe.value.loc, '--pe', sink);
      const ops = has('ops');
      if (ops && service?.kind === 'address' && service.protocol !== 'udp') {
        sink.error(DiagnosticCode.CONTRADICTION, 'One-Packet Scheduling is only for UDP services', cmd.at.loc, '--ops');
      }
      if (service) result = { op, service, options: { scheduler, schedFlags: [...flags].sort(), persistence, ops }, loc: lineLoc };
      break;
    }
    case 'delete-service':
      if (service) result = { op, service, loc: lineLoc };
      break;
    case 'add-server':
    case 'edit-server':
    case 'delete-server': {
      const ro = get('real-server');
      if (!ro?.value) {
        sink.error(DiagnosticCode.MISSING, `${cmd.at.text} needs a real server`, cmd.at.loc, '-r', '-r ADDRESS[:PORT]');
        break;
      }
      const hp = parseHostPort(ro.value.text);
      if (!hp) {
        sink.error(DiagnosticCode.BAD_VALUE, `illegal real server address[:port] specified: '${ro.value.text}'`, ro.value.loc, ro.at.text, 'ADDRESS[:PORT] or [IPv6]:PORT');
        break;
      }
      const svcPort = service?.kind === 'address' ? service.port : 0;
      let port = hp.port ?? svcPort;
      if (op === 'delete-server') {
        if (service) result = { op, service, server: { family: hp.family, address: hp.address, port }, loc: lineLoc };
        break;
      }
      const methods = (['gatewaying', 'ipip', 'masquerading', 'proxy'] as const).filter((m) => has(m));
      if (methods.length > 1) sink.error(DiagnosticCode.CONTRADICTION, 'more than one forwarding method', cmd.at.loc, undefined, 'one of -g -i -m --proxy');
      const m = methods[0];
      const method: ForwardingMethod = m === 'ipip' ? 'tun' : m === 'masquerading' ? 'nat' : m === 'proxy' ? 'proxy' : 'dr';
      // ipvsadm: for anything but masquerading the real server's port is the service's.
      if ((method === 'dr' || method === 'tun') && hp.port !== undefined && service?.kind === 'address' && hp.port !== svcPort) {
        sink.warn(DiagnosticCode.ADJUSTED, `port ${hp.port} ignored: ${method === 'dr' ? 'direct routing' : 'tunnelling'} cannot map ports; using ${svcPort}`,
          ro.value.loc, ro.at.text);
      }
      if (method === 'dr' || method === 'tun') port = svcPort || port;
      const wo = get('weight');
      const weight = wo ? int(wo, 0, D.MAX_WEIGHT, 'weight') : D.DEFAULT_WEIGHT;
      const xo = get('u-threshold');
      const yo = get('l-threshold');
      const uthreshold = xo ? int(xo, 0, 2147483647, 'upper threshold') : 0;
      const lthreshold = yo ? int(yo, 0, 2147483647, 'lower threshold') : 0;
      if (uthreshold !== undefined && lthreshold !== undefined && uthreshold > 0 && lthreshold > uthreshold) {
        sink.error(DiagnosticCode.CONTRADICTION, 'lower threshold is above the upper threshold', (yo as Opt).at.loc, '-y');
      }
      let tunnel: TunnelSpec | undefined;
      const tt = get('tun-type');
      const tunOpts = opts.filter((o) => o.name.startsWith('tun-'));
      if (tunOpts.length > 0 && method !== 'tun') {
        sink.error(DiagnosticCode.CONTRADICTION, 'tunnel options need -i (tunnelling)', (tunOpts[0] as Opt).at.loc, (tunOpts[0] as Opt).at.text);
      } else if (method === 'tun') {
        let type: TunnelSpec['type'] = 'ipip';
        if (tt?.value) {
          const t = tt.value.text.toLowerCase();
          if (t === 'ipip' || t === 'gue' || t === 'gre') type = t;
          else sink.error(DiagnosticCode.BAD_VALUE, `unknown tunnel type '${tt.value.text}'`, tt.value.loc, tt.at.text, 'ipip|gue|gre');
        }
        const tp = get('tun-port');
        const tport = tp ? int(tp, 1, 65535, 'tunnel port') : undefined;
        if (type === 'gue' && tport === undefined) sink.error(DiagnosticCode.MISSING, 'a GUE tunnel needs --tun-port', tt?.at.loc ?? cmd.at.loc, '--tun-type');
        const csum = has('tun-nocsum') ? 'nocsum' : has('tun-csum') ? 'csum' : has('tun-remcsum') ? 'remcsum' : undefined;
        tunnel = { type, port: tport, checksum: csum };
      }
      if (service && service.kind === 'address' && method !== 'tun' && hp.family !== service.family) {
        sink.error(DiagnosticCode.CONTRADICTION, 'real server and service address families differ (only -i may cross them)', ro.value.loc, ro.at.text);
      }
      if (service && weight !== undefined && uthreshold !== undefined && lthreshold !== undefined) {
        result = { op, service, server: { family: hp.family, address: hp.address, port, method, weight, uthreshold, lthreshold, tunnel }, loc: lineLoc };
      }
      break;
    }
    case 'clear':
    case 'save':
    case 'restore':
      result = { op, loc: lineLoc };
      break;
    case 'zero':
      result = { op, service, loc: lineLoc };
      break;
    case 'list':
      result = { op, service, flags: new Set(opts.filter((o) => LIST_OPTS.includes(o.name)).map((o) => o.name)), loc: lineLoc };
      break;
    case 'start-daemon':
    case 'stop-daemon': {
      const t = cmd.value as ArgToken;
      const role = t.text === 'master' || t.text === 'backup' ? t.text : undefined;
      if (!role) {
        sink.error(DiagnosticCode.BAD_VALUE, `illegal start-daemon parameter specified: '${t.text}'`, t.loc, cmd.at.text, 'master or backup');
        break;
      }
      if (op === 'stop-daemon') {
        result = { op, role, loc: lineLoc };
        break;
      }
      const ifo = get('mcast-interface');
      if (!ifo?.value) {
        sink.error(DiagnosticCode.MISSING, '--start-daemon needs --mcast-interface', cmd.at.loc, cmd.at.text, '--mcast-interface IF');
        break;
      }
      const ifname = ifo.value.text;
      if (ifname.length > 15 || !/^[^/\s:]+$/.test(ifname)) {
        sink.error(DiagnosticCode.BAD_VALUE, `illegal multicast interface name specified: '${ifname}'`, ifo.value.loc, ifo.at.text, 'an interface name (1..15 characters)');
        break;
      }
      const num = (name: string, min: number, max: number, dflt: number, what: string): number | undefined => {
        const o = get(name);
        return o ? int(o, min, max, what) : dflt;
      };
      const syncid = num('syncid', 0, 255, 0, 'syncid');
      const maxlen = num('sync-maxlen', 44, 65507, D.LVS_SYNC_MAXLEN, 'sync maxlen');
      const port = num('mcast-port', 1, 65535, D.LVS_SYNC_PORT, 'multicast port');
      const ttl = num('mcast-ttl', 1, 255, D.LVS_SYNC_TTL, 'multicast TTL');
      let group: string = D.LVS_SYNC_GROUP;
      const go = get('mcast-group');
      if (go?.value) {
        const ip = parseIp(go.value.text);
        if (!ip || ip.family !== 'inet' || !/^(22[4-9]|23\d)\./.test(ip.address)) {
          sink.error(DiagnosticCode.BAD_VALUE, `illegal multicast group specified: '${go.value.text}'`, go.value.loc, go.at.text, 'an IPv4 multicast address (224.0.0.0/4)');
          break;
        }
        group = ip.address;
      }
      if (syncid === undefined || maxlen === undefined || port === undefined || ttl === undefined) break;
      result = { op, role, sync: { interface: ifname, syncid, maxlen, group, port, ttl }, loc: lineLoc };
      break;
    }
    case 'set': {
      // --set tcp tcpfin udp: three positional numbers follow --set in ipvsadm.
      const vals = setVals;
      if (vals.length !== 3) {
        sink.error(DiagnosticCode.MISSING, '--set needs three timeouts', cmd.at.loc, '--set', '--set TCP TCPFIN UDP (seconds, 0 = unchanged)');
        break;
      }
      const n = vals.map((t) => (/^[0-9]+$/.test(t.text) ? Number(t.text) : NaN));
      const bad = vals.find((t, k) => !Number.isFinite(n[k]));
      if (bad) {
        sink.error(DiagnosticCode.BAD_VALUE, `illegal timeout '${bad.text}'`, bad.loc, '--set', 'seconds (0 = unchanged)');
        break;
      }
      result = { op, tcp: n[0] as number, tcpfin: n[1] as number, udp: n[2] as number, loc: lineLoc };
      break;
    }
  }
  return sink.errorCount > before ? undefined : result;
}

