/**
 * The ruleset as nft commands (pure text). Two tables, both named `fulcrum`:
 *
 *  - `netdev fulcrum` (DR, TUN): an ingress chain per device classifies packets for a VIP;
 *    a per-connection table (`conn4`/`conn6`, dynamic, with timeouts) keeps every packet of
 *    a connection on one real server, persistence templates (`persist4/6`) keep a client on
 *    one, and `fwd … device` rewrites only the destination MAC (or sends into a tunnel).
 *  - `inet fulcrum` (NAT): a nat prerouting chain chooses the real server once per
 *    connection (conntrack keeps the choice in the connection mark) and `dnat`s to it;
 *    a postrouting chain gives full-NAT services the director's source address.
 *
 * Everything that varies with the configuration is an element of a map; the chains are a
 * function of their name only (plus the three global timeouts), so a change is an element
 * transaction, and a chain that a new value needs (a persistence netmask, an egress
 * device) is added once and never rewritten. Deleting the table would wipe the connection
 * and persistence maps: nothing here ever does that while forwarding.
 */
import * as D from '../../model/defaults.js';
import type { Family } from '../../model/types.js';
import type { Timeouts } from '../types.js';
import { HASH_SLOTS, MH_SLOTS, RR_SLOTS } from './slots.js';
import { ip6PortBytes, nftJhash } from './jhash.js';
import { hex, TABLE_NAME, type ElementMap, type TableKind } from './model.js';

/** Sizes of the kernel's dynamic maps (maximum elements). */
export interface RulesetLimits {
  readonly connections: number;
  readonly templates: number;
}
export const DEFAULT_LIMITS: RulesetLimits = { connections: 1 << 20, templates: 1 << 18 };

const ip = (f: '4' | '6'): string => (f === '4' ? 'ip' : 'ip6');
const reg = (k: TableKind): string => (k === 'netdev' ? 'meta mark' : 'ct mark');

/** The connection key of a new flow (register = service id) and of a chosen one. */
function connKey(f: '4' | '6', base: string): string {
  // nft 1.0.6 cannot `update` a map keyed by the IPv6 4-tuple (register allocation fails):
  // IPv6 flows are keyed by a 64-bit hash of (source, source port) — two independent
  // jhashes. A collision only shares one real server between two flows.
  const h = (seed: number): string => `jhash ip6 saddr . th sport mod ${CONN6_MOD} seed ${hex(seed)}`;
  return f === '4' ? `${base} . ip saddr . th sport` : `${base} . ${h(CONN6_SEEDS[0])} . ${h(CONN6_SEEDS[1])}`;
}

const CONN6_MOD = 4294967295;
const CONN6_SEEDS = [0x1, 0x2] as const;

/**
 * The key the kernel gives an IPv6 flow of service `svcMark` from `client`:`port` in
 * conn6/closing6/seen6/client6/cport6, as `list` prints it — for a director that installs
 * another director's flows (connection sync). test/kernel-more.test.ts checks it against
 * the kernel.
 */
export function conn6Key(svcMark: number, client: string, port: number): string {
  const data = ip6PortBytes(client, port);
  return `${hex(svcMark)} . ${nftJhash(data, CONN6_MOD, CONN6_SEEDS[0])} . ${nftJhash(data, CONN6_MOD, CONN6_SEEDS[1])}`;
}

const CONN6_TYPE = 'meta mark . numgen inc mod 4294967295 . numgen inc mod 4294967295';

/** Every map and set of a table: [`map name` | `set name`, declaration body]. */
function declarations(kind: TableKind, limits: RulesetLimits): [string, string][] {
  const defs: [string, string][] = [
    ['map svc4', 'type ipv4_addr . inet_proto . inet_service : mark;'],
    ['map svc4any', 'type ipv4_addr . inet_proto : mark;'],
    ['map svc6', 'type ipv6_addr . inet_proto . inet_service : mark;'],
    ['map svc6any', 'type ipv6_addr . inet_proto : mark;'],
    ['map svcfw4', 'type mark : mark;'],
    ['map svcfw6', 'type mark : mark;'],
    ['map sched', 'type mark : verdict;'],
    ['map pgroup', 'type mark : verdict;'],
    ['map prefresh', 'type mark : verdict;'],
    ['map slots', 'typeof meta mark . numgen inc mod 256 : meta mark;'],
    ['set alive', 'type mark;'],
    ['map persist4', `type mark . ipv4_addr : mark; flags dynamic, timeout; timeout 360s; size ${limits.templates};`],
    ['map persist6', `type mark . ipv6_addr : mark; flags dynamic, timeout; timeout 360s; size ${limits.templates};`],
    ['set conns', 'type mark; flags dynamic; counter; size 65536;'],
    ['set pkts', 'type mark; flags dynamic; counter; size 65536;'],
    ['set nodest', 'type mark; flags dynamic; counter; size 65536;'],
  ];
  if (kind === 'netdev') {
    defs.push(
      ['set ops', 'type mark;'],
      ['map conn4', `type mark . ipv4_addr . inet_service : mark; flags dynamic, timeout; timeout 900s; size ${limits.connections};`],
      ['set closing4', `type mark . ipv4_addr . inet_service; flags dynamic, timeout; timeout 120s; size ${limits.connections};`],
      // Each flow's packets (seen4 here, seen6 below), for connection sync's threshold (IPVS's
      // sync_threshold): sets of their own, so conn4/conn6's declarations — and the takeover of
      // a table an older run loaded — are unchanged. A flow they lack (full, or installed by
      // sync and idle since) is one the plane does not count.
      ['set seen4', `type mark . ipv4_addr . inet_service; flags dynamic, timeout; counter; timeout 900s; size ${limits.connections};`],
      // Declared through numgen, whose 32-bit integer type matches jhash's: nft 1.0.6 crashes
      // printing a set declared `typeof … jhash …`.
      ['map conn6', `typeof ${CONN6_TYPE} : meta mark; flags dynamic, timeout; timeout 900s; size ${limits.connections};`],
      ['set closing6', `typeof ${CONN6_TYPE}; flags dynamic, timeout; timeout 120s; size ${limits.connections};`],
      ['set seen6', `typeof ${CONN6_TYPE}; flags dynamic, timeout; counter; timeout 900s; size ${limits.connections};`],
      // The client of each IPv6 flow, for listings (two maps: one concatenated value trips the
      // same nft 1.0.6 register bug). No timeout: the plane drops those conn6 no longer has.
      ['map client6', `typeof ${CONN6_TYPE} : ip6 saddr; flags dynamic; size ${limits.connections};`],
      ['map cport6', `typeof ${CONN6_TYPE} : th sport; flags dynamic; size ${limits.connections};`],
      ['map be4', 'type mark : ipv4_addr;'],
      ['map be6', 'type mark : ipv6_addr;'],
      ['map egress', 'type mark : verdict;'],
    );
  } else {
    defs.push(
      ['map nat4', 'type mark : ipv4_addr . inet_service;'],
      ['map nat4a', 'type mark : ipv4_addr;'],
      ['map nat6', 'type mark : ipv6_addr . inet_service;'],
      ['map nat6a', 'type mark : ipv6_addr;'],
      ['map snat4', 'type mark : ipv4_addr;'],
      ['map snat6', 'type mark : ipv6_addr;'],
      ['set pktsout', 'type mark; flags dynamic; counter; size 65536;'],
      // The real servers of NAT services: the director never sends them an ICMP redirect.
      ['set rs4', 'type ipv4_addr;'],
      ['set rs6', 'type ipv6_addr;'],
    );
  }
  return defs;
}

function setDefs(kind: TableKind, limits: RulesetLimits): string[] {
  const t = `${kind} ${TABLE_NAME}`;
  return declarations(kind, limits).map(([what, body]) => `add ${what.replace(' ', ` ${t} `)} { ${body} }`);
}

/** Whether a table's object is a `map` or a `set` (for `nft list map|set …`). */
export function objectKind(kind: TableKind, name: string): 'map' | 'set' {
  const d = declarations(kind, DEFAULT_LIMITS).find(([what]) => what.split(' ')[1] === name);
  return d?.[0].startsWith('set ') ? 'set' : 'map';
}

/** The maps and sets Fulcrum writes (not the kernel's dynamic ones): what a takeover reads back. */
export function staticSets(kind: TableKind): string[] {
  return declarations(kind, DEFAULT_LIMITS).filter(([, body]) => !body.includes('dynamic')).map(([what]) => what.split(' ')[1] as string);
}

/** The fixed chains of a table: name → rules. */
function staticChains(kind: TableKind, t: Timeouts): Map<string, string[]> {
  const r = reg(kind);
  const out = new Map<string, string[]>();
  const svcOnly = `${r} & 0xfffff000`;
  for (const f of ['4', '6'] as const) {
    const choose = [
      `${r} vmap @pgroup`,
      // A template pointing at a removed real server: schedule afresh (IPVS drops such templates).
      `${r} & 0x00000fff != 0 ${r} != @alive ${r} set ${svcOnly}`,
      `${r} & 0x00000fff == 0 ${r} vmap @sched`,
      `${r} & 0x00000fff == 0 update @nodest { ${r} counter } drop`,
      `update @conns { ${r} counter }`,
      `${svcOnly} vmap @prefresh`,
    ];
    if (kind === 'netdev') {
      const key = connKey(f, svcOnly);
      out.set(`lb${f}`, [
        `meta mark set ${connKey(f, 'meta mark')} map @conn${f} goto est${f}`,
        ...choose,
        `${svcOnly} @ops goto out${f}`,
        ...(f === '6' ? [`update @client6 { ${key} : ip6 saddr } update @cport6 { ${key} : th sport }`] : []),
        `meta l4proto udp update @conn${f} { ${key} timeout ${t.udp}s : meta mark } goto out${f}`,
        `update @conn${f} { ${key} timeout ${t.tcp}s : meta mark } goto out${f}`,
      ]);
      out.set(`est${f}`, [
        `tcp flags & (syn | ack) == syn delete @closing${f} { ${key} }`,
        `${svcOnly} vmap @prefresh`,
        `tcp flags & (fin | rst) != 0 update @conn${f} { ${key} timeout ${t.tcpfin}s : meta mark } update @closing${f} { ${key} timeout ${t.tcpfin}s } goto out${f}`,
        `${key} @closing${f} goto out${f}`,
        `meta l4proto udp update @conn${f} { ${key} timeout ${t.udp}s : meta mark } goto out${f}`,
        `update @conn${f} { ${key} timeout ${t.tcp}s : meta mark } goto out${f}`,
      ]);
      const seen = [`meta l4proto udp update @seen${f} { ${key} timeout ${t.udp}s counter }`, `meta l4proto != udp update @seen${f} { ${key} timeout ${t.tcp}s counter }`];
      out.set(`out${f}`, [...seen, 'update @pkts { meta mark counter }', 'meta mark vmap @egress', 'drop']);
    } else {
      const p = ip(f);
      out.set(`nat${f}`, [
        ...choose,
        `meta l4proto { tcp, udp, sctp } dnat ${p} addr . port to ct mark map @nat${f}`,
        `dnat ${p} to ct mark map @nat${f}a`,
        'drop',
      ]);
    }
  }
  if (kind === 'inet') {
    out.set('pre', [
      'meta nfproto ipv4 ct mark set meta mark map @svcfw4 goto nat4',
      'meta nfproto ipv6 ct mark set meta mark map @svcfw6 goto nat6',
      'ct mark set ip daddr . meta l4proto . th dport map @svc4 goto nat4',
      'ct mark set ip daddr . meta l4proto map @svc4any goto nat4',
      'ct mark set ip6 daddr . meta l4proto . th dport map @svc6 goto nat6',
      'ct mark set ip6 daddr . meta l4proto map @svc6any goto nat6',
    ]);
    out.set('stats', [
      'ct mark & 0x00000fff != 0 ct status dnat ct direction original update @pkts { ct mark counter } ct mark & 0xfffff000 vmap @prefresh',
      'ct mark & 0x00000fff != 0 ct status dnat ct direction reply update @pktsout { ct mark counter }',
    ]);
    // A reply from a real server that leaves through the device it came in on makes the
    // kernel send the real server a redirect before NAT has restored the VIP: IPv6 then
    // tells it the client is on-link (accepted for any address), and its next replies
    // bypass the director with the wrong source. IPv4 has send_redirects; IPv6 has no switch.
    out.set('noredirect', [
      'icmp type redirect ip daddr @rs4 counter drop',
      'icmpv6 type nd-redirect ip6 daddr @rs6 counter drop',
    ]);
    out.set('post', [
      'meta nfproto ipv4 ct status dnat ct mark & 0x00000fff != 0 snat ip to ct mark & 0xfffff000 map @snat4',
      'meta nfproto ipv6 ct status dnat ct mark & 0x00000fff != 0 snat ip6 to ct mark & 0xfffff000 map @snat6',
    ]);
  }
  return out;
}

const BASE_HOOKS: Record<string, string> = {
  pre: 'type nat hook prerouting priority -101; policy accept;',
  stats: 'type filter hook forward priority 0; policy accept;',
  post: 'type nat hook postrouting priority 101; policy accept;',
  noredirect: 'type filter hook output priority 0; policy accept;',
};

/** IPv4/IPv6 netmask text for a prefix length (null = the whole address). */
export function maskText(family: Family, prefix: number): string | null {
  const bits = family === 'inet' ? 32 : 128;
  if (prefix >= bits) return null;
  if (family === 'inet') {
    const m = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return [24, 16, 8, 0].map((s) => (m >>> s) & 255).join('.');
  }
  const groups: string[] = [];
  for (let g = 0; g < 8; g++) {
    const left = Math.max(0, Math.min(16, prefix - g * 16));
    groups.push(left === 0 ? '0' : ((0xffff << (16 - left)) & 0xffff).toString(16));
  }
  return groups.join(':').replace(/(:0)+$/, '::');
}

/**
 * Every slot hash is seeded explicitly, with the same seed on every director: without a
 * seed the kernel draws a random one per rule, and two directors with the same
 * configuration would send the same flow to different slots — a flow that moves to another
 * director (a VRRP takeover without sync, an ECMP change) would change real server.
 */
export const HASH_SEED = D.HASH_SEED;
/** `jhash <fields> mod <n> seed <seed>` (nft takes the seed after the modulus). */
const seeded = (fields: string, mod: number, seed: number): string => `jhash ${fields} mod ${mod} seed ${hex(seed)}`;

const HASH_KEYS: Record<string, (p: string, seed: number) => string> = {
  sh: (p, seed) => seeded(`${p} saddr`, HASH_SLOTS, seed),
  shp: (p, seed) => seeded(`${p} saddr . th sport`, HASH_SLOTS, seed),
  dh: (p, seed) => seeded(`${p} daddr`, HASH_SLOTS, seed),
  mh: (p, seed) => seeded(`${p} saddr`, MH_SLOTS, seed),
  mhp: (p, seed) => seeded(`${p} saddr . th sport`, MH_SLOTS, seed),
};

/**
 * The slot chain's hash name: the scheduler's (`mh`), with `_<seed in 8 hex digits>` when
 * `hash_seed` sets another seed — the seed is in the name, so a takeover rebuilds the rules
 * from the name alone and services with different seeds never share a chain.
 */
export function seededHash(hash: string, seed: number | undefined): string {
  return seed === undefined || seed === HASH_SEED ? hash : `${hash}_${seed.toString(16).padStart(8, '0')}`;
}

/**
 * The rules of a chain added on demand, from its name alone: `s4_rr` (slot choice),
 * `p4_24_360`/`u4_24_360` (persistence lookup/refresh), `o4_eth0` (DR/TUN egress).
 */
export function demandChain(kind: TableKind, name: string): string[] {
  const r = reg(kind);
  const m = /^([spuo])([46])_(.+)$/.exec(name);
  if (!m) throw new Error(`not a Fulcrum chain name: ${name}`);
  const [, what, f, rest] = m as unknown as [string, 's' | 'p' | 'u' | 'o', '4' | '6', string];
  const p = ip(f);
  const family: Family = f === '4' ? 'inet' : 'inet6';
  switch (what) {
    case 's': {
      const sm = /^([a-z]+)(?:_([0-9a-f]{8}))?$/.exec(rest);
      if (!sm) throw new Error(`unknown slot hash ${rest}`);
      const base = sm[1] as string;
      const seed = sm[2] === undefined ? HASH_SEED : Number.parseInt(sm[2], 16);
      if (base === 'rr') {
        return [
          `tcp flags & (syn | ack) == syn ${r} set ${r} . numgen inc mod ${RR_SLOTS} map @slots return`,
          `meta l4proto != tcp ${r} set ${r} . numgen inc mod ${RR_SLOTS} map @slots return`,
          // A TCP packet of a connection the table does not know (after a restart): hash it.
          `${r} set ${r} . ${seeded(`${p} saddr . th sport`, RR_SLOTS, seed)} map @slots`,
        ];
      }
      const h = HASH_KEYS[base];
      if (!h) throw new Error(`unknown slot hash ${rest}`);
      return [`${r} set ${r} . ${h(p, seed)} map @slots`];
    }
    case 'p':
    case 'u': {
      const [maskPart, timeoutPart] = rest.split('_') as [string, string];
      const timeout = Number(timeoutPart);
      const mask = /^[0-9a-f]{8}$/.test(maskPart)
        ? (maskPart.match(/../g) ?? []).map((h) => Number.parseInt(h, 16)).join('.')
        : maskText(family, Number(maskPart));
      const src = mask === null ? `${p} saddr` : `(${p} saddr & ${mask})`;
      return what === 'p'
        ? [`${r} set ${r} . ${src} map @persist${f}`]
        : [`update @persist${f} { ${r} & 0xfffff000 . ${src} timeout ${timeout}s : ${r} }`];
    }
    case 'o':
      return [`fwd ${p} to meta mark map @be${f} device "${rest}"`, 'drop'];
  }
}

const chainRules = (t: string, chain: string, rules: readonly string[]): string[] => rules.map((x) => `add rule ${t} ${chain} ${x}`);

/**
 * Load (or take over) a table: declare it and its maps (idempotent for an existing table of
 * the same shape), and rewrite the fixed chains' rules. Maps are never flushed here.
 */
export function tableCommands(kind: TableKind, timeouts: Timeouts, limits: RulesetLimits = DEFAULT_LIMITS): string[] {
  const t = `${kind} ${TABLE_NAME}`;
  const cmds = [`add table ${t}`, ...setDefs(kind, limits)];
  const chains = staticChains(kind, timeouts);
  // Declare every chain before any rule refers to one (goto est4 from lb4, …).
  for (const name of chains.keys()) {
    const hook = kind === 'inet' ? BASE_HOOKS[name] : undefined;
    cmds.push(hook ? `add chain ${t} ${name} { ${hook} }` : `add chain ${t} ${name}`);
  }
  cmds.push(...rewriteChains(kind, chains));
  return cmds;
}

/** Flush the fixed chains and add their rules again (their maps untouched). */
function rewriteChains(kind: TableKind, chains: Map<string, string[]>): string[] {
  const t = `${kind} ${TABLE_NAME}`;
  return [...chains].flatMap(([name, rules]) => [`flush chain ${t} ${name}`, ...chainRules(t, name, rules)]);
}

/**
 * The DR/TUN connection chains again, for a change of the global timeouts (ipvsadm --set):
 * their `update … timeout` constants change; NAT follows conntrack's own timeouts.
 */
export function timeoutCommands(timeouts: Timeouts): string[] {
  return rewriteChains('netdev', staticChains('netdev', timeouts));
}

/** Add a chain that the model needs and the kernel does not have yet. */
export function demandChainCommands(kind: TableKind, name: string): string[] {
  const t = `${kind} ${TABLE_NAME}`;
  return [`add chain ${t} ${name}`, `flush chain ${t} ${name}`, ...chainRules(t, name, demandChain(kind, name))];
}

/** The ingress hook on a device (DR/TUN): classify packets for a service, hand them to lb4/lb6. */
export function ingressCommands(device: string): string[] {
  const t = `netdev ${TABLE_NAME}`;
  const name = ingressChain(device);
  return [
    `add chain ${t} ${name} { type filter hook ingress device ${JSON.stringify(device)} priority -500; policy accept; }`,
    `flush chain ${t} ${name}`,
    ...chainRules(t, name, [
      'meta protocol ip meta mark set meta mark map @svcfw4 goto lb4',
      'meta protocol ip6 meta mark set meta mark map @svcfw6 goto lb6',
      'meta mark set ip daddr . meta l4proto . th dport map @svc4 goto lb4',
      'meta mark set ip daddr . meta l4proto map @svc4any goto lb4',
      'meta mark set ip6 daddr . meta l4proto . th dport map @svc6 goto lb6',
      'meta mark set ip6 daddr . meta l4proto map @svc6any goto lb6',
    ]),
  ];
}

/**
 * The ingress chain of a device. Names are validated at configuration time, but a kernel
 * name may hold characters nft identifiers cannot ('@', …): those are written `_xHH`, and
 * `ingressDevice` reads them back (a takeover learns the devices from chain names).
 */
export const ingressChain = (device: string): string =>
  `in_${device.replace(/_x|[^A-Za-z0-9_.-]/g, (c) => [...Buffer.from(c)].map((b) => `_x${b.toString(16).padStart(2, '0')}`).join(''))}`;

/** The device of an ingress chain name (the inverse of ingressChain), or null when it is not one. */
export function ingressDevice(chain: string): string | null {
  if (!chain.startsWith('in_')) return null;
  const bytes: number[] = [];
  const s = chain.slice(3);
  for (let i = 0; i < s.length; i++) {
    if (s.startsWith('_x', i) && /^[0-9a-f]{2}$/.test(s.slice(i + 2, i + 4))) {
      bytes.push(parseInt(s.slice(i + 2, i + 4), 16));
      i += 3;
    } else bytes.push(s.charCodeAt(i));
  }
  return Buffer.from(bytes).toString('utf8');
}

/** How many elements go into one `add element` command (keeps each line parseable quickly). */
const BATCH = 2000;

/**
 * The element delta from `prev` to `next`: deletions first (a changed value is a delete and
 * an add of the same key), then additions. Both tables' deltas go into one transaction.
 */
export function elementDelta(kind: TableKind, prev: ElementMap, next: ElementMap): string[] {
  const t = `${kind} ${TABLE_NAME}`;
  const dels: string[] = [];
  const adds: string[] = [];
  const names = new Set([...prev.keys(), ...next.keys()]);
  for (const set of [...names].sort()) {
    const a = prev.get(set) ?? new Map<string, string>();
    const b = next.get(set) ?? new Map<string, string>();
    const del: string[] = [];
    const add: string[] = [];
    for (const [k, v] of a) {
      const nv = b.get(k);
      if (nv === undefined || nv !== v) del.push(k);
    }
    for (const [k, v] of b) {
      const ov = a.get(k);
      if (ov === undefined || ov !== v) add.push(v === '' ? k : `${k} : ${v}`);
    }
    for (let i = 0; i < del.length; i += BATCH) dels.push(`delete element ${t} ${set} { ${del.slice(i, i + BATCH).join(', ')} }`);
    for (let i = 0; i < add.length; i += BATCH) adds.push(`add element ${t} ${set} { ${add.slice(i, i + BATCH).join(', ')} }`);
  }
  return [...dels, ...adds];
}
