/**
 * Fulcrum's BGP extension: the top-level `fulcrum_bgp { … }` block and `announce bgp …`
 * in a virtual_server or a vrrp_instance. Every bad value is a located error, as for
 * keepalived's own keywords.
 */
import { DiagnosticCode } from '../../errors/index.js';
import * as D from '../../model/defaults.js';
import type { Announce, BgpConfig, BgpNeighbor } from '../../model/types.js';
import type { AstNode } from './ast.js';
import { dispatch } from './dispatch.js';
import type { Token } from './lexer.js';
import type { Values } from './values.js';

const MAX_AS = 4294967295;


export function compileBgp(v: Values, node: AstNode): BgpConfig | undefined {
  let localAs: number | undefined;
  let routerId: string | undefined;
  let listenPort = D.BGP_LISTEN_PORT;
  let speaker: BgpConfig['speaker'] = { kind: 'gobgpd', path: 'gobgpd' };
  let shutdownGrace = D.BGP_SHUTDOWN_GRACE;
  const neighbors: BgpNeighbor[] = [];
  const tracked: string[] = [];
  let ok = true;
  const bad = (): void => { ok = false; };
  dispatch(v.needBlock(node) ?? [], 'fulcrum_bgp', {
    local_as: (n) => { localAs = v.int(n, 0, 1, MAX_AS); if (localAs === undefined) bad(); v.extra(n, 1); },
    router_id: (n) => {
      const ip = v.ip(n, 0);
      if (ip && ip.family !== 'inet') {
        v.sink.error(DiagnosticCode.BAD_VALUE, `'${ip.address}' is not an IPv4 address`, n.args[0]?.loc, 'router_id', 'a BGP identifier in IPv4 form, e.g. 10.0.1.2');
        bad();
      } else if (ip) routerId = ip.address;
      else bad();
      v.extra(n, 1);
    },
    listen_port: (n) => { const p = v.int(n, 0, -1, 65535); if (p === undefined || p === 0) { if (p === 0) v.sink.error(DiagnosticCode.RANGE, '0 is out of range', n.args[0]?.loc, 'listen_port', '1..65535, or -1 to only connect out'); bad(); } else listenPort = p; },
    shutdown_grace: (n) => { const s = v.timer(n, 0, 0, 600); if (s === undefined) bad(); else shutdownGrace = s; },
    gobgpd: (n) => { const p = v.string(n); if (p === undefined) bad(); else speaker = { kind: 'gobgpd', path: p }; v.extra(n, 1); },
    api: (n) => { const a = apiTarget(v, n); if (a) speaker = a; else bad(); },
    neighbor: (n) => { const nb = neighbor(v, n); if (nb) neighbors.push(nb); else bad(); },
    // `track_interface eth1 eth2`, or keepalived's block form `track_interface { eth1 … }`.
    track_interface: (n) => {
      const words = [...n.args, ...(n.block !== null ? (v.needBlock(n) ?? []).flatMap((l) => [l.keyword, ...l.args]) : [])];
      if (words.length === 0) v.arg(n, 0, 'interface names');
      for (const w of words) {
        const name = v.ifnameToken(w, 'track_interface');
        if (name === undefined) bad();
        else if (!tracked.includes(name)) tracked.push(name);
      }
    },
  }, v.sink);
  if (localAs === undefined && ok) {
    v.sink.error(DiagnosticCode.MISSING, 'fulcrum_bgp needs local_as', node.keyword.loc, 'fulcrum_bgp', 'local_as ASN');
    ok = false;
  }
  if (routerId === undefined && ok) {
    v.sink.error(DiagnosticCode.MISSING, 'fulcrum_bgp needs router_id', node.keyword.loc, 'fulcrum_bgp', 'router_id a.b.c.d');
    ok = false;
  }
  if (neighbors.length === 0 && ok) {
    v.sink.error(DiagnosticCode.MISSING, 'fulcrum_bgp has no neighbor: nothing would hear the announcements', node.keyword.loc, 'fulcrum_bgp', 'neighbor ADDR { remote_as ASN }');
    ok = false;
  }
  const seen = new Map<string, BgpNeighbor>();
  for (const nb of neighbors) {
    const prev = seen.get(nb.address);
    if (prev) {
      v.sink.error(DiagnosticCode.DUPLICATE, `neighbor ${nb.address} is already declared at ${prev.loc.line}:${prev.loc.col}`, nb.loc, 'neighbor');
      ok = false;
    } else seen.set(nb.address, nb);
  }
  if (!ok || localAs === undefined || routerId === undefined) return undefined;
  return { localAs, routerId, neighbors, listenPort, speaker, shutdownGrace, trackInterfaces: tracked, loc: node.keyword.loc };
}

function apiTarget(v: Values, n: AstNode): BgpConfig['speaker'] | undefined {
  const t = v.arg(n, 0, 'HOST:PORT of gobgpd\'s gRPC API');
  if (!t) return undefined;
  const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(t.text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    v.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not HOST:PORT`, t.loc, 'api', 'e.g. 127.0.0.1:50051');
    return undefined;
  }
  v.extra(n, 1);
  return { kind: 'api', host: m[1] as string, port };
}

function neighbor(v: Values, n: AstNode): BgpNeighbor | undefined {
  const ip = v.ip(n, 0);
  let remoteAs: number | undefined;
  let holdTime: number | undefined;
  let password: string | undefined;
  let port = 179;
  let ok = ip !== undefined;
  dispatch(v.needBlock(n) ?? [], 'neighbor', {
    remote_as: (x) => { remoteAs = v.int(x, 0, 1, MAX_AS); if (remoteAs === undefined) ok = false; v.extra(x, 1); },
    // RFC 4271: 0 (no keepalives) or at least 3 seconds.
    hold_time: (x) => {
      const h = v.int(x, 0, 0, 65535);
      if (h !== undefined && h > 0 && h < 3) {
        v.sink.error(DiagnosticCode.RANGE, `${h} is out of range`, x.args[0]?.loc, 'hold_time', '0, or 3..65535 seconds (RFC 4271)');
        ok = false;
      } else if (h === undefined) ok = false;
      else holdTime = h;
    },
    password: (x) => { password = v.string(x); v.extra(x, 1); },
    port: (x) => { const p = v.int(x, 0, 1, 65535); if (p === undefined) ok = false; else port = p; },
  }, v.sink);
  if (ip && remoteAs === undefined && ok) {
    v.sink.error(DiagnosticCode.MISSING, `neighbor ${ip.address} needs remote_as`, n.keyword.loc, 'neighbor', 'remote_as ASN');
    ok = false;
  }
  if (!ok || !ip || remoteAs === undefined) return undefined;
  return { address: ip.address, family: ip.family, remoteAs, holdTime, password, port, loc: n.keyword.loc };
}

/**
 * `announce bgp [community ASN:N | no-export | no-advertise | no-export-subconfed …]
 * [med N] [next_hop ADDR]`.
 */
export function compileAnnounce(v: Values, n: AstNode): Announce | undefined {
  const how = v.arg(n, 0, "'bgp'");
  if (!how) return undefined;
  if (how.text !== 'bgp') {
    v.sink.error(DiagnosticCode.BAD_VALUE, `announce '${how.text}' is not known`, how.loc, 'announce', "'bgp'");
    return undefined;
  }
  const communities: number[] = [];
  let med: number | undefined;
  let nextHop: string | undefined;
  let ok = true;
  for (let i = 1; i < n.args.length; i++) {
    const k = n.args[i] as Token;
    const val = n.args[i + 1];
    const need = (what: string): Token | undefined => {
      if (val === undefined) v.sink.error(DiagnosticCode.MISSING, 'missing argument', v.after(n), `announce ${k.text}`, what);
      i++;
      return val;
    };
    switch (k.text) {
      case 'community': {
        const t = need('ASN:N (each 0..65535), no-export or no-advertise');
        const c = t && community(v, t);
        if (c === undefined) ok = false;
        else communities.push(c);
        break;
      }
      case 'med': {
        const t = need('an integer 0..4294967295');
        const m = t && v.intToken(t, 'announce med', 0, MAX_AS);
        if (m === undefined) ok = false;
        else med = m;
        break;
      }
      case 'next_hop': {
        const t = need('an IP address');
        const ip = t && v.ipToken(t, 'announce next_hop');
        if (!ip) ok = false;
        else nextHop = ip.address;
        break;
      }
      default:
        v.sink.error(DiagnosticCode.BAD_VALUE, `unknown announce option '${k.text}'`, k.loc, 'announce', 'community ASN:N, med N, next_hop ADDR');
        ok = false;
    }
  }
  v.noBlock(n);
  return ok ? { communities, med, nextHop, loc: n.keyword.loc } : undefined;
}

function community(v: Values, t: Token): number | undefined {
  const known = D.BGP_WELL_KNOWN_COMMUNITIES[t.text.toLowerCase()];
  if (known !== undefined) return known;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(t.text);
  const hi = m ? Number(m[1]) : NaN;
  const lo = m ? Number(m[2]) : NaN;
  if (!m || hi > 65535 || lo > 65535) {
    v.sink.error(DiagnosticCode.BAD_VALUE, `'${t.text}' is not a community`, t.loc, 'announce community', 'ASN:N (each 0..65535), no-export, no-advertise or no-export-subconfed');
    return undefined;
  }
  return ((hi << 16) >>> 0) + lo;
}
