/**
 * Reading the kernel back: a set or map's elements as typed records (the model's key and
 * value text, expiry, counter) so a takeover can diff against what is there and the poll
 * reads counters and connections without splitting strings; and /proc/net/nf_conntrack
 * lines (NAT connection counts). Pure parsing plus one `list`, whose failure is an error.
 */
import type { Family } from '../../model/types.js';
import type { ListenAddress } from '../types.js';
import os from 'node:os';
import type { Nft } from '../../sys/nft.js';
import type { RawElement } from '../../sys/nft-dump.js';
import { hex, type TableKind, TABLE_NAME } from './model.js';
import { objectKind } from './ruleset.js';
import { errorMessage, FailureCode, FulcrumError } from '../../errors/index.js';

/** One connection the kernel holds for a backend (mark). */
export interface KernelConn {
  readonly mark: number;
  readonly key?: string;
  readonly state: string;
  readonly expires: number;
  readonly family: Family;
  readonly client?: ListenAddress;
  readonly virtual?: ListenAddress;
  /** NAT: where the reply comes from (the real server, from the reply tuple). */
  readonly server?: ListenAddress;
}

type Json = unknown;

function component(v: Json, type: string): string {
  if (typeof v === 'number') return type === 'mark' ? hex(v) : String(v);
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    if ('concat' in o && Array.isArray(o['concat'])) return concat(o['concat'] as Json[], [type]);
    for (const verdict of ['jump', 'goto']) {
      const t = o[verdict] as { target?: string } | undefined;
      if (t?.target) return `${verdict} ${t.target}`;
    }
    if ('prefix' in o) {
      const p = o['prefix'] as { addr: string; len: number };
      return `${p.addr}/${p.len}`;
    }
  }
  return JSON.stringify(v);
}

function concat(parts: readonly Json[], types: readonly string[]): string {
  return parts.map((p, i) => component(p, types[i] ?? types[0] ?? '')).join(' . ');
}

function text(v: Json, types: readonly string[]): string {
  if (v && typeof v === 'object' && 'concat' in (v as Record<string, unknown>)) return concat((v as { concat: Json[] }).concat, types);
  return component(v, types[0] ?? '');
}

/** One element as read back: the model's key and value text, and what the kernel adds. */
export interface ElementRecord {
  /** The key as the model writes it (`a . b . c`). */
  readonly key: string;
  readonly keyParts: readonly string[];
  /** The value as the model writes it ('' for a set's element). */
  readonly value: string;
  readonly valueParts: readonly string[];
  /** Seconds until a dynamic element expires (0 when it has no timeout). */
  readonly expires: number;
  /** The element's counter, for `counter` sets. */
  readonly counter: { readonly packets: number; readonly bytes: number } | null;
}

/** Every set and map in nft's JSON listing, by name, as element records (pure). */
export function parseSets(objs: readonly Record<string, unknown>[]): Map<string, Map<string, ElementRecord>> {
  const out = new Map<string, Map<string, ElementRecord>>();
  for (const o of objs) {
    const body = (o['map'] ?? o['set']) as { name?: string; type?: string | string[]; map?: string; elem?: Json[] } | undefined;
    if (!body || typeof body.name !== 'string') continue;
    const ktypes = Array.isArray(body.type) ? body.type : [body.type ?? ''];
    const vtypes = (body.map ?? '').split(' . ');
    const els = new Map<string, ElementRecord>();
    for (const e of body.elem ?? []) {
      let key: Json = e;
      let value: Json = undefined;
      if (Array.isArray(e)) [key, value] = e as [Json, Json];
      let expires = 0;
      let counter: { packets: number; bytes: number } | null = null;
      if (key && typeof key === 'object' && 'elem' in (key as Record<string, unknown>)) {
        const inner = (key as { elem: { val: Json; expires?: number; counter?: { packets: number; bytes: number } } }).elem;
        expires = inner.expires ?? 0;
        counter = inner.counter ?? null;
        key = inner.val;
      }
      const k = text(key, ktypes);
      const v = value === undefined ? '' : text(value, vtypes);
      els.set(k, { key: k, keyParts: k.split(' . '), value: v, valueParts: v === '' ? [] : v.split(' . '), expires, counter });
    }
    out.set(body.name, els);
  }
  return out;
}

/** Byte layouts of the large dynamic maps, read through the netlink dump (Nft.elements). */
const LAYOUTS: Readonly<Record<string, { readonly key: readonly string[]; readonly value: readonly string[] }>> = {
  conn4: { key: ['mark', 'ipv4_addr', 'inet_service'], value: ['mark'] },
  closing4: { key: ['mark', 'ipv4_addr', 'inet_service'], value: [] },
  persist4: { key: ['mark', 'ipv4_addr'], value: ['mark'] },
  seen4: { key: ['mark', 'ipv4_addr', 'inet_service'], value: [] },
};
const SIZES: Readonly<Record<string, number>> = { mark: 4, ipv4_addr: 4, inet_service: 2 };
const LE = os.endianness() === 'LE';

/** Register bytes → the parts as the model writes them (marks in host order, in hex). */
function registerParts(types: readonly string[], b: Buffer): string[] | null {
  const out: string[] = [];
  let at = 0;
  for (const t of types) {
    const n = SIZES[t] ?? 0;
    if (at + n > b.length) return null;
    if (t === 'mark') out.push(hex(LE ? b.readUInt32LE(at) : b.readUInt32BE(at)));
    else if (t === 'ipv4_addr') out.push(`${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`);
    else out.push(String(b.readUInt16BE(at)));
    at += (n + 3) & ~3;
  }
  return out;
}

/** Raw elements of a set with a known layout → element records (pure). */
export function recordsOf(set: string, raw: readonly RawElement[]): Map<string, ElementRecord> {
  const layout = LAYOUTS[set];
  const out = new Map<string, ElementRecord>();
  if (!layout) return out;
  for (const e of raw) {
    const keyParts = registerParts(layout.key, e.key);
    const valueParts = layout.value.length > 0 && e.data ? registerParts(layout.value, e.data) : [];
    if (!keyParts || !valueParts) continue;
    const key = keyParts.join(' . ');
    out.set(key, { key, keyParts, value: valueParts.join(' . '), valueParts, expires: Math.floor(e.expiresMs / 1000), counter: e.counter });
  }
  return out;
}

/**
 * One set's or map's elements. A failed read rejects (FulcrumError E_NFT_READ with the
 * cause): it never reads as "empty", so nothing is ever concluded — let alone deleted —
 * from a list that did not happen. An object that does not exist is empty (the Nft
 * boundary says so).
 */
export async function readSet(nft: Nft, kind: TableKind, set: string): Promise<Map<string, ElementRecord>> {
  let objs: readonly Record<string, unknown>[];
  try {
    // The large dynamic maps straight from netlink where the boundary can: nft's listing
    // costs seconds per 100,000 elements.
    if (nft.dumpElements && LAYOUTS[set]) return recordsOf(set, await nft.dumpElements(kind, TABLE_NAME, set));
    objs = await nft.list(`${objectKind(kind, set)} ${kind} ${TABLE_NAME} ${set}`);
  } catch (err: unknown) {
    throw new FulcrumError(FailureCode.NFT_READ, `reading ${kind} ${TABLE_NAME} ${set} failed: ${errorMessage(err)}`, { cause: err });
  }
  return parseSets(objs).get(set) ?? new Map();
}

/** A set's elements as the model's key → value text (what a takeover diffs against). */
export function modelElements(records: ReadonlyMap<string, ElementRecord>): Map<string, string> {
  return new Map([...records.values()].map((r) => [r.key, r.value]));
}

const field = (line: string, name: string, from = 0): string | undefined => {
  const i = line.indexOf(` ${name}=`, from);
  if (i < 0) return undefined;
  const s = i + name.length + 2;
  const e = line.indexOf(' ', s);
  return line.slice(s, e < 0 ? undefined : e);
};

/**
 * /proc/net/nf_conntrack → the connections Fulcrum marked (mark ≠ 0). The state is the TCP
 * state (ESTABLISHED counts as active, as in IPVS), UDP for UDP.
 */
export function parseConntrack(textIn: string): KernelConn[] {
  const out: KernelConn[] = [];
  for (const line of textIn.split('\n')) {
    const m = field(line, 'mark');
    if (m === undefined || m === '0') continue;
    const mark = Number(m);
    if (!Number.isFinite(mark) || (mark & 0xfff) === 0) continue;
    const parts = line.split(/\s+/);
    const family: Family = parts[0] === 'ipv6' ? 'inet6' : 'inet';
    const proto = parts[2] ?? '';
    const expires = Number(parts[4] ?? 0);
    const state = proto === 'tcp' ? (parts[5] ?? '') : proto.toUpperCase();
    const src = field(line, 'src');
    const dst = field(line, 'dst');
    const sport = Number(field(line, 'sport') ?? 0);
    const dport = Number(field(line, 'dport') ?? 0);
    // The reply tuple follows the original one: its source is the real server.
    const second = src !== undefined ? line.indexOf(' src=', line.indexOf(' src=') + 1) : -1;
    const rsrc = second > 0 ? field(line, 'src', second) : undefined;
    const rsport = second > 0 ? Number(field(line, 'sport', second) ?? 0) : 0;
    out.push({
      mark, state, expires, family,
      ...(rsrc ? { server: { family, address: rsrc, port: rsport } } : {}),
      ...(src ? { client: { family, address: src, port: sport } } : {}),
      ...(dst ? { virtual: { family, address: dst, port: dport } } : {}),
    });
  }
  return out;
}
