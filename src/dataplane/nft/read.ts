/**
 * Reading the kernel back: a set or map's elements as the text keys and values the model
 * uses (so a takeover can diff against what is there), counters, connection entries, and
 * /proc/net/nf_conntrack lines (NAT connection counts). Pure parsing plus one `list`.
 */
import type { Family } from '../../model/types.js';
import type { ListenAddress } from '../types.js';
import type { Nft } from '../../sys/nft.js';
import { hex, type TableKind, TABLE_NAME } from './model.js';
import { objectKind } from './ruleset.js';

/** One connection the kernel holds for a backend (mark). */
export interface KernelConn {
  readonly mark: number;
  readonly key?: string;
  readonly state: string;
  readonly expires: number;
  readonly family: Family;
  readonly client?: ListenAddress;
  readonly virtual?: ListenAddress;
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

/**
 * A set's or map's elements: key text → value text ('' for a set). Counter sets give
 * "packets bytes" as the value; with `expires`, map values are "value|seconds left".
 */
export async function readElements(nft: Nft, kind: TableKind, set: string, expires = false): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let objs: readonly Record<string, unknown>[];
  try {
    objs = await nft.list(`${objectKind(kind, set)} ${kind} ${TABLE_NAME} ${set}`);
  } catch {
    objs = [];
  }
  for (const o of objs) {
    const body = (o['map'] ?? o['set']) as { type?: string | string[]; map?: string; elem?: Json[] } | undefined;
    if (!body) continue;
    const ktypes = Array.isArray(body.type) ? body.type : [body.type ?? ''];
    const vtypes = (body.map ?? '').split(' . ');
    for (const e of body.elem ?? []) {
      let key: Json = e;
      let value: Json = undefined;
      if (Array.isArray(e)) [key, value] = e as [Json, Json];
      let left = 0;
      let counter: { packets: number; bytes: number } | null = null;
      if (key && typeof key === 'object' && 'elem' in (key as Record<string, unknown>)) {
        const inner = (key as { elem: { val: Json; expires?: number; counter?: { packets: number; bytes: number } } }).elem;
        left = inner.expires ?? 0;
        counter = inner.counter ?? null;
        key = inner.val;
      }
      const k = text(key, ktypes);
      let v = value === undefined ? '' : text(value, vtypes);
      if (counter) v = `${counter.packets} ${counter.bytes}`;
      if (expires) v = `${v}|${left}`;
      out.set(k, v);
    }
  }
  return out;
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
    out.push({
      mark, state, expires, family,
      ...(src ? { client: { family, address: src, port: sport } } : {}),
      ...(dst ? { virtual: { family, address: dst, port: dport } } : {}),
    });
  }
  return out;
}
