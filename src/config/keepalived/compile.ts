/**
 * The whole keepalived.conf: top-level blocks → FulcrumConfig, then the checks that need
 * the whole picture (duplicates, references between blocks, contradictions).
 */
import { DiagnosticCode, formatLocation, type DiagnosticSink, type SourceLocation } from '../../errors/index.js';
import { realServerKey, serviceKey } from '../../model/keys.js';
import type {
  FulcrumConfig, StaticRoute, TrackedFile, VirtualIp, TrackedScript, TrackFile, VirtualServer, VirtualServerGroup, VrrpInstance, VrrpScript, VrrpSyncGroup,
} from '../../model/types.js';
import type { AstNode } from './ast.js';
import { dispatch, reportUnreadBlocks } from './dispatch.js';
import { compileVirtualServer, compileVirtualServerGroup } from './lvs.js';
import { compileBgp } from './bgp.js';
import { Values } from './values.js';
import { compileGlobalDefs, compileSyncGroup, compileTrackFile, compileTrackProcess, compileVrrpInstance, compileVrrpScript, staticRoute, virtualIp } from './vrrp.js';

const TOP_IGNORED = new Set([
  'bfd_instance', 'garp_group',
  'linkbeat_interfaces', 'interface_up_down_delays', 'track_group', 'SSL', 'net_namespace_ipvs',
  'namespace_with_ipsets', 'instance', 'use_pid_dir', 'linkbeat_use_polling', 'child_wait_time',
]);

export function compileConfig(root: readonly AstNode[], sink: DiagnosticSink): FulcrumConfig {
  const v = new Values(sink);
  const globals: AstNode[] = [];
  const trackFileNodes: AstNode[] = [];
  const trackProcessNodes: AstNode[] = [];
  const netnsNodes: AstNode[] = [];
  const scriptNodes: AstNode[] = [];
  const syncNodes: AstNode[] = [];
  const instanceNodes: AstNode[] = [];
  const groupNodes: AstNode[] = [];
  const vsNodes: AstNode[] = [];
  const bgpNodes: AstNode[] = [];
  const staticAddresses: VirtualIp[] = [];
  const staticRoutes: StaticRoute[] = [];
  dispatch(root, 'the top level', {
    static_ipaddress: (n) => { for (const l of v.needBlock(n) ?? []) { const a = virtualIp(v, l, 'static_ipaddress'); if (a) staticAddresses.push(a); } },
    static_routes: (n) => { for (const l of v.needBlock(n) ?? []) { const r = staticRoute(v, l, 'route'); if (r) staticRoutes.push(r); } },
    static_rules: (n) => { for (const l of v.needBlock(n) ?? []) { const r = staticRoute(v, l, 'rule'); if (r) staticRoutes.push(r); } },
    global_defs: (n) => globals.push(n),
    track_file: (n) => trackFileNodes.push(n),
    vrrp_track_file: (n) => trackFileNodes.push(n),
    vrrp_track_process: (n) => trackProcessNodes.push(n),
    net_namespace: (n) => netnsNodes.push(n),
    vrrp_script: (n) => scriptNodes.push(n),
    vrrp_sync_group: (n) => syncNodes.push(n),
    vrrp_instance: (n) => instanceNodes.push(n),
    virtual_server_group: (n) => groupNodes.push(n),
    virtual_server: (n) => vsNodes.push(n),
    fulcrum_bgp: (n) => bgpNodes.push(n),
  }, sink, TOP_IGNORED);

  const netNamespace = compileNetNamespace(v, netnsNodes);
  const global = { ...compileGlobalDefs(v, globals), ...(netNamespace !== undefined ? { netNamespace } : {}) };
  const trackFiles = unique(trackFileNodes.map((n) => compileTrackFile(v, n)), 'track_file', sink);
  const vrrpScripts = unique(scriptNodes.map((n) => compileVrrpScript(v, n)), 'vrrp_script', sink);
  const scriptNames = new Set(vrrpScripts.map((s) => s.name));
  const fileNames = new Set(trackFiles.map((f) => f.name));
  const trackProcesses = unique(trackProcessNodes.map((n) => compileTrackProcess(v, n)), 'vrrp_track_process', sink);
  const processNames = new Set(trackProcesses.map((p) => p.name));
  const vrrpSyncGroups = unique(syncNodes.map((n) => compileSyncGroup(v, n)), 'vrrp_sync_group', sink)
    .map((g) => knownProcesses(knownFiles(knownScripts(g, 'vrrp_sync_group', scriptNames, sink), 'vrrp_sync_group', fileNames, sink), 'vrrp_sync_group', processNames, sink));
  const inGroup = new Set(vrrpSyncGroups.flatMap((g) => g.group));
  const vrrpInstances = unique(instanceNodes.map((n) => compileVrrpInstance(v, n, global)), 'vrrp_instance', sink)
    .map((i) => knownProcesses(fileWeights(knownFiles(knownScripts(i, 'vrrp_instance', scriptNames, sink), 'vrrp_instance', fileNames, sink), trackFiles, inGroup.has(i.name), sink), 'vrrp_instance', processNames, sink));
  const virtualServerGroups = unique(groupNodes.map((n) => compileVirtualServerGroup(v, n)), 'virtual_server_group', sink);
  const compiled = vsNodes.map((n) => compileVirtualServer(v, n)).filter((c): c is VirtualServer => c !== undefined);

  checkVrrp(vrrpInstances, vrrpScripts, vrrpSyncGroups, sink);
  const vmacs = new Map<string, VrrpInstance>();
  for (const i of vrrpInstances) {
    if (!i.vmac) continue;
    const prev = vmacs.get(i.vmac.name);
    if (prev) sink.error(DiagnosticCode.DUPLICATE, `the virtual MAC interface ${i.vmac.name} is already vrrp_instance '${prev.name}''s`, i.loc, 'use_vmac', 'use_vmac NAME (a name of its own)');
    else vmacs.set(i.vmac.name, i);
  }
  const sync = global.lvsSyncDaemon;
  if (sync?.instance !== undefined && !vrrpInstances.some((i) => i.name === sync.instance)) {
    sink.error(DiagnosticCode.REFERENCE, `lvs_sync_daemon follows unknown vrrp_instance '${sync.instance}'`, sync.loc, 'lvs_sync_daemon', 'the name of a vrrp_instance');
  }
  const virtualServers = checkLvs(compiled, virtualServerGroups, trackFiles, sink);
  warnUnreachableProxies(virtualServers, vrrpInstances, sink);
  for (const extra of bgpNodes.slice(1)) {
    sink.error(DiagnosticCode.DUPLICATE, `fulcrum_bgp is already declared at ${formatLocation((bgpNodes[0] as AstNode).keyword.loc)}`, extra.keyword.loc, 'fulcrum_bgp');
  }
  const bgp = bgpNodes[0] ? compileBgp(v, bgpNodes[0]) : undefined;
  const announcing = [...virtualServers, ...vrrpInstances].find((x) => x.announce !== undefined);
  if (announcing?.announce && !bgp && bgpNodes.length === 0) {
    sink.error(DiagnosticCode.REFERENCE, 'announce bgp needs a fulcrum_bgp { … } block (the BGP speaker and its neighbours)', announcing.announce.loc, 'announce', 'fulcrum_bgp { local_as … router_id … neighbor … }');
  }
  reportUnreadBlocks(root, sink);
  return {
    global, trackFiles, ...(trackProcesses.length > 0 ? { trackProcesses } : {}), vrrpScripts, vrrpSyncGroups, vrrpInstances, virtualServerGroups, virtualServers, ...(bgp ? { bgp } : {}),
    ...(staticAddresses.length > 0 ? { staticAddresses } : {}), ...(staticRoutes.length > 0 ? { staticRoutes } : {}),
  };
}

/**
 * A proxied service listening on the address of an instance without accept mode receives
 * nothing while that instance is MASTER (its traffic is dropped, as keepalived drops it):
 * said where the service is, with the way out.
 */
function warnUnreachableProxies(vss: readonly VirtualServer[], insts: readonly VrrpInstance[], sink: DiagnosticSink): void {
  const filtered = new Map<string, VrrpInstance>();
  for (const i of insts) if (!i.accept) for (const v of [...i.virtualIpAddresses, ...i.excludedIpAddresses]) filtered.set(v.address, i);
  if (filtered.size === 0) return;
  for (const vs of vss) {
    if (vs.method !== 'proxy' || vs.endpoint.kind !== 'address') continue;
    const i = filtered.get(vs.endpoint.address);
    if (!i) continue;
    sink.warn(DiagnosticCode.CONFLICT, `${vs.endpoint.address} belongs to vrrp_instance '${i.name}', which has no accept mode (${i.strict ? 'strict mode' : 'no_accept'}): its traffic is dropped while MASTER, so this proxied service receives none`,
      vs.loc, 'virtual_server', `accept in vrrp_instance '${i.name}'`);
  }
}

/** `net_namespace NAME` (top level, as keepalived installs it): the last one given wins. */
function compileNetNamespace(v: Values, nodes: readonly AstNode[]): string | undefined {
  let name: string | undefined;
  for (const n of nodes) {
    v.noBlock(n);
    const t = v.arg(n, 0, 'a network namespace name');
    if (!t) continue;
    v.extra(n, 1);
    // ip-netns(8) names: a file name under /run/netns.
    if (!/^[A-Za-z0-9_.-]{1,255}$/.test(t.text) || t.text === '.' || t.text === '..') {
      v.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a network namespace name`, t.loc, 'net_namespace', 'a name as ip netns add takes (letters, digits, _ . -)');
    } else name = t.text;
  }
  return name;
}

/** Drop undefined results and report names declared twice (the first one wins). */
function unique<T extends { name: string; loc?: SourceLocation | undefined }>(
  items: readonly (T | undefined)[], what: string, sink: DiagnosticSink,
): T[] {
  const seen = new Map<string, T>();
  for (const it of items) {
    if (!it) continue;
    const prev = seen.get(it.name);
    if (prev) {
      sink.error(DiagnosticCode.DUPLICATE, `${what} '${it.name}' is already declared${prev.loc ? ` at ${formatLocation(prev.loc)}` : ''}`, it.loc, what);
    } else seen.set(it.name, it);
  }
  return [...seen.values()];
}

/**
 * A track_script naming no vrrp_script (or one removed for having no script) is dropped
 * with a located warning: keepalived ignores it too, so the file keeps working as it did.
 */
function knownScripts<T extends { readonly name: string; readonly trackScripts: readonly TrackedScript[]; readonly loc?: SourceLocation | undefined }>(
  x: T, what: string, scripts: ReadonlySet<string>, sink: DiagnosticSink,
): T {
  const missing = x.trackScripts.filter((ts) => !scripts.has(ts.name));
  if (missing.length === 0) return x;
  for (const m of missing) {
    sink.warn(DiagnosticCode.ADJUSTED, `${what} '${x.name}' tracks unknown vrrp_script '${m.name}': ignored (as keepalived does)`, x.loc, 'track_script', 'the name of a vrrp_script block');
  }
  return { ...x, trackScripts: x.trackScripts.filter((ts) => scripts.has(ts.name)) };
}

type Tracker = { readonly name: string; readonly trackFiles?: readonly TrackedFile[] | undefined; readonly trackProcesses?: readonly TrackedFile[] | undefined; readonly loc?: SourceLocation | undefined };

/**
 * A track_file / track_process naming no track_file / vrrp_track_process block is dropped
 * with a located warning, as keepalived does.
 */
function knownTracked<T extends Tracker>(
  x: T, what: string, field: 'trackFiles' | 'trackProcesses', names: ReadonlySet<string>, sink: DiagnosticSink,
): T {
  const [keyword, block] = field === 'trackFiles' ? ['track_file', 'track_file'] : ['track_process', 'vrrp_track_process'];
  const list = x[field] ?? [];
  const missing = list.filter((f) => !names.has(f.name));
  if (missing.length === 0) return x;
  for (const m of missing) {
    sink.warn(DiagnosticCode.ADJUSTED, `${what} '${x.name}' tracks unknown ${block} '${m.name}': ignored (as keepalived does)`, x.loc, keyword, `the name of a ${block} block`);
  }
  return { ...x, [field]: list.filter((f) => names.has(f.name)) };
}

function knownFiles<T extends Tracker>(x: T, what: string, files: ReadonlySet<string>, sink: DiagnosticSink): T {
  return knownTracked(x, what, 'trackFiles', files, sink);
}

function knownProcesses<T extends Tracker>(x: T, what: string, procs: ReadonlySet<string>, sink: DiagnosticSink): T {
  return knownTracked(x, what, 'trackProcesses', procs, sink);
}

/**
 * keepalived.conf(5): the address owner (priority 255) and a sync group's member must track
 * a file with weight 0 (FAULT on a non-zero value): a weight there is set to 0, with a warning.
 */
function fileWeights(i: VrrpInstance, defs: readonly TrackFile[], grouped: boolean, sink: DiagnosticSink): VrrpInstance {
  if (!i.trackFiles || (!grouped && i.priority !== 255)) return i;
  const why = i.priority === 255 ? 'the address owner (priority 255)' : 'a sync group member';
  return {
    ...i,
    trackFiles: i.trackFiles.map((f) => {
      const w = f.weight ?? defs.find((d) => d.name === f.name)?.weight ?? 1;
      if (w === 0) return f;
      sink.warn(DiagnosticCode.ADJUSTED, `vrrp_instance '${i.name}' is ${why}: track_file '${f.name}' weight ${w} set to 0 (FAULT on a non-zero value), as keepalived does`, i.loc, 'track_file');
      return { ...f, weight: 0 };
    }),
  };
}

function checkVrrp(instances: VrrpInstance[], scripts: VrrpScript[], groups: VrrpSyncGroup[], sink: DiagnosticSink): void {
  const scriptNames = new Set(scripts.map((s) => s.name));
  const byVrid = new Map<string, VrrpInstance>();
  for (const inst of instances) {
    // VRRP identifies a virtual router by (interface, VRID, family); two instances may not share it.
    const key = `${inst.interface ?? '(unicast)'} ${inst.vrid} ${inst.family}`;
    const prev = byVrid.get(key);
    if (prev) {
      sink.error(DiagnosticCode.DUPLICATE,
        `virtual_router_id ${inst.vrid} on ${inst.interface ?? 'the unicast path'} is already used by '${prev.name}'${prev.loc ? ` at ${formatLocation(prev.loc)}` : ''}`,
        inst.loc, 'virtual_router_id');
    } else byVrid.set(key, inst);
  }
  const instNames = new Set(instances.map((i) => i.name));
  const member = new Map<string, string>();
  for (const g of groups) {
    for (const name of g.group) {
      if (!instNames.has(name)) {
        sink.error(DiagnosticCode.REFERENCE, `vrrp_sync_group '${g.name}' names unknown vrrp_instance '${name}'`, g.loc, 'group', 'the name of a vrrp_instance');
      }
      const other = member.get(name);
      if (other !== undefined) {
        sink.error(DiagnosticCode.CONTRADICTION, `vrrp_instance '${name}' is in both '${other}' and '${g.name}'`, g.loc, 'group', 'each instance in at most one sync group');
      } else member.set(name, g.name);
    }
  }
}

/**
 * DR and TUN cannot map ports: a real server written with another port than the virtual
 * server's gets the virtual server's, with a warning — keepalived does the same (and
 * ipvsadm, and Fulcrum's --ipvsadm path).
 */
function drPortsReset(vs: VirtualServer, sink: DiagnosticSink): VirtualServer {
  const ep = vs.endpoint;
  if (ep.kind !== 'address' || ep.port === 0) return vs;
  const wrong = (rs: VirtualServer['realServers'][number]): boolean => (rs.method === 'dr' || rs.method === 'tun') && rs.port !== ep.port;
  if (!vs.realServers.some(wrong)) return vs;
  return {
    ...vs,
    realServers: vs.realServers.map((rs) => {
      if (!wrong(rs)) return rs;
      sink.warn(DiagnosticCode.ADJUSTED,
        `${rs.method.toUpperCase()} cannot map ports: real server ${realServerKey(rs)} gets the virtual server's port ${ep.port} (as keepalived does; use NAT or PROXY to map ports)`,
        rs.loc, 'real_server');
      return { ...rs, port: ep.port };
    }),
  };
}

/** A real server listed twice in a virtual server: the first is kept, as keepalived does. */
function oneOfEachServer(vs: VirtualServer, sink: DiagnosticSink): VirtualServer {
  const seen = new Map<string, SourceLocation | undefined>();
  const kept = vs.realServers.filter((rs) => {
    const k = realServerKey(rs);
    if (!seen.has(k)) {
      seen.set(k, rs.loc);
      return true;
    }
    const first = seen.get(k);
    sink.warn(DiagnosticCode.ADJUSTED, `real server ${k} is already in ${serviceKey(vs)}${first ? ` (at ${formatLocation(first)})` : ''}: this one is removed (as keepalived does)`, rs.loc, 'real_server');
    return false;
  });
  return kept.length === vs.realServers.length ? vs : { ...vs, realServers: kept };
}

function checkLvs(
  compiled: VirtualServer[], groups: VirtualServerGroup[], trackFiles: TrackFile[], sink: DiagnosticSink,
): VirtualServer[] {
  const groupByName = new Map(groups.map((g) => [g.name, g]));
  const trackFileNames = new Set(trackFiles.map((t) => t.name));
  const seen = new Map<string, VirtualServer>();
  const out: VirtualServer[] = [];
  for (const written of compiled) {
    const vs = oneOfEachServer(drPortsReset(written, sink), sink);
    const key = serviceKey(vs);
    const prev = seen.get(key);
    if (prev) {
      sink.error(DiagnosticCode.DUPLICATE, `virtual server ${key} is already declared${prev.loc ? ` at ${formatLocation(prev.loc)}` : ''}`, vs.loc, 'virtual_server');
      continue;
    }
    seen.set(key, vs);
    out.push(vs);
    const ep = vs.endpoint;
    const group = ep.kind === 'group' ? groupByName.get(ep.name) : undefined;
    if (ep.kind === 'group' && !group) {
      sink.error(DiagnosticCode.REFERENCE, `unknown virtual_server_group '${ep.name}'`, vs.loc, 'virtual_server group', 'the name of a virtual_server_group block');
    }
    // A port can only be omitted (0) for a persistent service: IPVS's "port zero" services.
    if (ep.kind === 'address' && ep.port === 0 && !vs.persistence) {
      sink.error(DiagnosticCode.CONTRADICTION, `virtual server ${key} has no port but is not persistent`, vs.loc, 'virtual_server',
        'a port, or persistence_timeout for an all-ports (PCC) service');
    }
    if (vs.method === 'proxy' || vs.realServers.some((r) => r.method === 'proxy')) {
      const fw = ep.kind === 'fwmark' || (group?.members.some((m) => m.kind === 'fwmark') ?? false);
      if (fw) {
        sink.error(DiagnosticCode.CONTRADICTION, 'the userspace proxy (PROXY) cannot serve a firewall-mark service: marked packets never reach a socket',
          vs.loc, 'lb_kind', 'NAT, DR or TUN for fwmark services, or a virtual_server_group of addresses and ports for PROXY');
      } else if ((ep.kind === 'address' && ep.port === 0) || group?.members.some((m) => m.kind === 'range' && m.port === 0)) {
        sink.error(DiagnosticCode.CONTRADICTION, 'the userspace proxy (PROXY) cannot listen on every port of an address',
          vs.loc, 'lb_kind', 'explicit ports: a virtual_server_group listing the ports, with persistence for PCC-like stickiness');
      }
      if (vs.protocol === 'sctp') {
        sink.error(DiagnosticCode.UNSUPPORTED, 'the userspace proxy (PROXY) supports TCP and UDP only', vs.loc, 'protocol', 'TCP or UDP');
      }
    }
    for (const o of [vs, ...vs.realServers]) {
      if (o.proxyProtocol === undefined) continue;
      if (vs.method !== 'proxy') {
        sink.error(DiagnosticCode.CONTRADICTION, 'proxy_protocol needs PROXY forwarding: only the userspace proxy opens its own connection to the real server',
          o.loc, 'proxy_protocol', 'lb_kind PROXY');
        break;
      } else if (vs.protocol !== 'tcp') {
        sink.error(DiagnosticCode.UNSUPPORTED, 'proxy_protocol is supported for TCP services only', o.loc, 'proxy_protocol', 'protocol TCP');
        break;
      }
    }
    const vsFamily = ep.kind === 'group' ? undefined : ep.family;
    for (const rs of vs.realServers) {
      const rk = realServerKey(rs);
      if (vsFamily && rs.method !== 'tun' && rs.method !== 'proxy' && rs.family !== vsFamily) {
        sink.error(DiagnosticCode.CONTRADICTION, `real server ${rk} is ${rs.family} but the virtual server is ${vsFamily}`, rs.loc, 'real_server',
          'the same address family (only TUN and PROXY may cross families)');
      }
      if (rs.method === 'proxy' && vs.method !== 'proxy') {
        sink.error(DiagnosticCode.CONTRADICTION, 'a PROXY real server needs a PROXY virtual server (the proxy owns the listening socket)', rs.loc, 'lb_kind');
      } else if (vs.method === 'proxy' && rs.method !== 'proxy') {
        sink.error(DiagnosticCode.CONTRADICTION, `real server ${rk} uses ${rs.method.toUpperCase()} inside a PROXY virtual server`, rs.loc, 'lb_kind', 'PROXY');
      }
      for (const c of rs.checkers) {
        if (c.type === 'FILE_CHECK' && !trackFileNames.has(c.trackFile)) {
          sink.error(DiagnosticCode.REFERENCE, `FILE_CHECK names unknown track_file '${c.trackFile}'`, c.loc, 'track_file', 'the name of a track_file block');
        }
      }
    }
    if (vs.sorryServer && vsFamily && vs.sorryServer.method !== 'tun' && vs.sorryServer.family !== vsFamily) {
      sink.error(DiagnosticCode.CONTRADICTION, `sorry_server ${vs.sorryServer.address} is not ${vsFamily}`, vs.loc, 'sorry_server');
    }
    if (vs.hysteresis > 0 && vs.hysteresis >= vs.quorum) {
      sink.warn(DiagnosticCode.ADJUSTED, `hysteresis ${vs.hysteresis} is not below quorum ${vs.quorum}: the service can never lose quorum`, vs.loc, 'hysteresis');
    }
  }
  return out;
}
