/**
 * FakeNft: an in-memory nftables for tests of the kernel plane's logic without root. It
 * understands the subset of nft's syntax Fulcrum writes (tables, set and map declarations,
 * chains and rules by name, element add/delete, flush, delete table) and answers `list`
 * with the JSON shapes nft prints, so the plane's planner, poll, trash and takeover run
 * unchanged against it.
 *
 * Like the kernel, a transaction is all or nothing: commands apply to a copy, which
 * replaces the state only when every command succeeded. Tests stand in for the kernel's own
 * writes (connection entries, counters) with `kernelSet`, and inject failures with
 * `failRun` / `failList` — every call the plane makes can fail on demand.
 */
import type { Nft } from './nft.js';
import { NftError } from './nft.js';

interface FakeSet {
  readonly kind: 'set' | 'map';
  readonly type: string[];
  readonly map: string | undefined;
  /** key text → element */
  readonly elems: Map<string, { value: string; expires: number; counter: { packets: number; bytes: number } | null }>;
}

interface FakeTable {
  readonly sets: Map<string, FakeSet>;
  readonly chains: Map<string, number>;
}

type State = Map<string, FakeTable>;

function clone(s: State): State {
  const out: State = new Map();
  for (const [k, t] of s) {
    const sets = new Map<string, FakeSet>();
    for (const [n, x] of t.sets) sets.set(n, { ...x, elems: new Map([...x.elems].map(([ek, ev]) => [ek, { ...ev }])) });
    out.set(k, { sets, chains: new Map(t.chains) });
  }
  return out;
}

/** Split `a, b, c` at top-level commas (element lists have no nesting). */
function splitElements(body: string): string[] {
  return body.split(',').map((x) => x.trim()).filter((x) => x !== '');
}

export class FakeNft implements Nft {
  readonly name = 'fake';
  private state: State = new Map();
  /** Every transaction the plane sent, in order, accepted or not. */
  readonly runs: string[][] = [];
  /** Every `list` the plane asked for. */
  readonly lists: string[] = [];
  /** Return an error to refuse a transaction (nothing changes). */
  failRun: ((commands: readonly string[]) => Error | null) | null = null;
  /** Return an error to make a listing fail. */
  failList: ((what: string) => Error | null) | null = null;

  run(commands: readonly string[]): Promise<void> {
    this.runs.push([...commands]);
    const injected = this.failRun?.(commands) ?? null;
    if (injected) return Promise.reject(injected);
    const next = clone(this.state);
    for (const c of commands) {
      const err = this.exec(next, c);
      if (err !== null) return Promise.reject(new NftError(`nft: ${err} in: ${c.slice(0, 200)}`, err));
    }
    this.state = next;
    return Promise.resolve();
  }

  list(what: string): Promise<readonly Record<string, unknown>[]> {
    this.lists.push(what);
    const injected = this.failList?.(what) ?? null;
    if (injected) return Promise.reject(injected);
    const w = what.split(/\s+/);
    if (w[0] === 'tables') {
      return Promise.resolve([...this.state.keys()].filter((k) => k.startsWith(`${w[1]} `)).map((k) => ({ table: { family: w[1], name: k.split(' ')[1] } })));
    }
    if (w[0] === 'table') {
      const t = this.state.get(`${w[1]} ${w[2]}`);
      if (!t) return Promise.resolve([]);
      return Promise.resolve([
        { table: { family: w[1], name: w[2] } },
        ...[...t.chains.keys()].map((name) => ({ chain: { family: w[1], table: w[2], name } })),
        ...[...t.sets].map(([name, s]) => this.json(w[1] as string, w[2] as string, name, s)),
      ]);
    }
    if (w[0] === 'set' || w[0] === 'map') {
      const s = this.state.get(`${w[1]} ${w[2]}`)?.sets.get(w[3] ?? '');
      return Promise.resolve(s ? [this.json(w[1] as string, w[2] as string, w[3] as string, s)] : []);
    }
    return Promise.reject(new NftError(`fake nft: cannot list '${what}'`, what));
  }

  /** The elements of a set as key → value text (tests' view of "the kernel"). */
  elements(kind: string, set: string, table = 'fulcrum'): Map<string, string> {
    const s = this.state.get(`${kind} ${table}`)?.sets.get(set);
    return new Map([...(s?.elems ?? new Map())].map(([k, v]) => [k, v.value]));
  }

  hasTable(kind: string, table = 'fulcrum'): boolean {
    return this.state.has(`${kind} ${table}`);
  }

  chains(kind: string, table = 'fulcrum'): string[] {
    return [...(this.state.get(`${kind} ${table}`)?.chains.keys() ?? [])];
  }

  /**
   * The kernel's own writes: a dynamic element (a connection entry, a counter). `value`
   * undefined removes the element.
   */
  kernelSet(kind: string, set: string, key: string, value: string | undefined, o: { expires?: number; counter?: { packets: number; bytes: number } } = {}): void {
    const s = this.state.get(`${kind} fulcrum`)?.sets.get(set);
    if (!s) throw new Error(`fake nft: no ${kind} set ${set}`);
    if (value === undefined) s.elems.delete(key);
    else s.elems.set(key, { value, expires: o.expires ?? 0, counter: o.counter ?? null });
  }

  private json(family: string, table: string, name: string, s: FakeSet): Record<string, unknown> {
    const part = (k: string): unknown => {
      const parts = k.split(' . ');
      return parts.length > 1 ? { concat: parts } : k;
    };
    const elem = [...s.elems].map(([k, e]) => {
      const key = e.expires > 0 || e.counter ? { elem: { val: part(k), ...(e.expires > 0 ? { expires: e.expires } : {}), ...(e.counter ? { counter: e.counter } : {}) } } : part(k);
      return s.kind === 'map' ? [key, part(e.value)] : key;
    });
    const body = { family, table, name, type: s.type.length === 1 ? s.type[0] : s.type, ...(s.map !== undefined ? { map: s.map } : {}), ...(elem.length > 0 ? { elem } : {}) };
    return s.kind === 'map' ? { map: body } : { set: body };
  }

  /** Apply one command to `st`; the error text, or null. */
  private exec(st: State, c: string): string | null {
    let m = /^add table (\w+) (\S+)/.exec(c);
    if (m) {
      const k = `${m[1]} ${m[2]}`;
      if (!st.has(k)) st.set(k, { sets: new Map(), chains: new Map() });
      return null;
    }
    m = /^delete table (\w+) (\S+)$/.exec(c);
    if (m) return st.delete(`${m[1]} ${m[2]}`) ? null : 'No such file or directory';
    m = /^add (set|map) (\w+) (\S+) (\S+) \{ (.*) \}$/.exec(c);
    if (m) {
      const t = st.get(`${m[2]} ${m[3]}`);
      if (!t) return 'No such file or directory (table)';
      if (t.sets.has(m[4] as string)) return null;
      const decl = /^(type|typeof) ([^;:]+?)(?: : ([^;]+))?;/.exec(m[5] as string);
      if (!decl) return `cannot parse declaration '${m[5]}'`;
      const type = (decl[2] as string).split(' . ');
      t.sets.set(m[4] as string, { kind: m[1] as 'set' | 'map', type, map: decl[3], elems: new Map() });
      return null;
    }
    m = /^add chain (\w+) (\S+) (\S+)/.exec(c);
    if (m) {
      const t = st.get(`${m[1]} ${m[2]}`);
      if (!t) return 'No such file or directory (table)';
      if (!t.chains.has(m[3] as string)) t.chains.set(m[3] as string, 0);
      return null;
    }
    m = /^(flush chain|add rule) (\w+) (\S+) (\S+)/.exec(c);
    if (m) {
      const t = st.get(`${m[2]} ${m[3]}`);
      if (!t?.chains.has(m[4] as string)) return 'No such file or directory (chain)';
      t.chains.set(m[4] as string, m[1] === 'flush chain' ? 0 : (t.chains.get(m[4] as string) ?? 0) + 1);
      return null;
    }
    m = /^(add|delete) element (\w+) (\S+) (\S+) \{ (.*) \}$/.exec(c);
    if (m) {
      const s = st.get(`${m[2]} ${m[3]}`)?.sets.get(m[4] as string);
      if (!s) return 'No such file or directory (set)';
      for (const e of splitElements(m[5] as string)) {
        const i = s.kind === 'map' ? e.lastIndexOf(' : ') : -1;
        // `key timeout 30s`: the element's own timeout (read back as its expiry).
        const tm = / timeout (\d+)s$/.exec(i >= 0 ? e.slice(0, i) : e);
        const key = (i >= 0 ? e.slice(0, i) : e).replace(/ timeout \d+s$/, '');
        if (m[1] === 'delete') {
          if (!s.elems.delete(key)) return `No such file or directory (element ${key})`;
          continue;
        }
        const value = i >= 0 ? e.slice(i + 3) : '';
        const old = s.elems.get(key);
        if (old && old.value !== value) return `File exists (element ${key})`;
        s.elems.set(key, { value, expires: tm ? Number(tm[1]) : old?.expires ?? 0, counter: null });
      }
      return null;
    }
    return `fake nft: unknown command '${c.slice(0, 80)}'`;
  }
}
