/**
 * keepalived itself as the oracle of what a keepalived.conf means (issue 21). A corpus of
 * keepalived 2.2.7's 25 doc/samples and generated mutations of each (priorities, VRIDs,
 * advert_int, schedulers, forwarding methods, weights, delay_loop, comments, white space)
 * goes through `keepalived -t` (Debian's 2.2.7, in a network namespace with the interfaces
 * the samples name) and Fulcrum's reader:
 *  - every file keepalived accepts (exit 0) Fulcrum accepts;
 *  - and reads as the mutation wrote it: the changed field moved exactly as written (every
 *    instance's priority +1, every scheduler renamed …) and nothing else changed; comments
 *    and white space change nothing.
 * Files keepalived refuses are counted, with what Fulcrum says of them (docs/configuration.md
 * lists the differences). Runs as root (the namespace); CI runs it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../src/testing/index.js';
import { isRoot } from '../src/testing/netns.js';
import { ensureCommand } from '../src/testing/peers.js';
import { loadKeepalivedConfig } from '../src/config/index.js';
import type { FulcrumConfig } from '../src/model/types.js';

const skip = isRoot() ? false : 'needs root (a network namespace with the samples\' interfaces)';
const SAMPLES = path.join(repoRoot(), 'test', 'fixtures', 'keepalived-2.2.7-samples');
const SCHEDULERS = ['rr', 'wrr', 'lc', 'wlc', 'sh', 'dh', 'lblc', 'sed', 'nq'];
const METHODS: Record<string, string> = { NAT: 'DR', DR: 'TUN', TUN: 'NAT' };
/** keepalived's defaults derived from delay_loop: a checker's delay_loop and warmup, MISC_CHECK's misc_timeout. */
const DERIVED = ['delayLoop', 'warmup', 'timeout'];

interface Mutation {
  readonly name: string;
  readonly apply: (text: string) => string;
  /** What the mutant must read as, given the base's model (both with locations stripped). */
  readonly expect: (base: FulcrumConfig) => FulcrumConfig;
}

const mapInstances = (c: FulcrumConfig, f: (i: FulcrumConfig['vrrpInstances'][number]) => object): FulcrumConfig =>
  ({ ...c, vrrpInstances: c.vrrpInstances.map((i) => ({ ...i, ...f(i) })) }) as FulcrumConfig;
const mapServers = (c: FulcrumConfig, f: (v: FulcrumConfig['virtualServers'][number]) => object): FulcrumConfig =>
  ({ ...c, virtualServers: c.virtualServers.map((v) => ({ ...v, ...f(v) })) }) as FulcrumConfig;

const MUTATIONS: readonly Mutation[] = [
  {
    name: 'priority+1',
    apply: (t) => t.replace(/^(\s*priority\s+)(\d+)\s*$/gm, (m, a: string, n: string) => (Number(n) < 254 ? `${a}${Number(n) + 1}` : m)),
    expect: (b) => mapInstances(b, (i) => ({ priority: i.priority < 254 ? i.priority + 1 : i.priority })),
  },
  {
    // Accept mode off in every instance: keepalived then drops the VIPs' traffic while MASTER.
    name: 'no_accept',
    apply: (t) => t.replace(/^(\s*vrrp_instance\s+\S+\s*\{)\s*$/gm, '$1\n    no_accept'),
    expect: (b) => mapInstances(b, () => ({ accept: false })),
  },
  {
    // A virtual MAC interface for every instance with an interface.
    name: 'use_vmac',
    apply: (t) => t.replace(/^(\s*vrrp_instance\s+\S+\s*\{)\s*$/gm, '$1\n    use_vmac'),
    expect: (b) => mapInstances(b, (i) => (i.interface !== undefined ? { vmac: { name: `vrrp.${i.vrid}`, xmitBase: false } } : {})),
  },
  {
    name: 'vrid+17',
    apply: (t) => t.replace(/^(\s*virtual_router_id\s+)(\d+)\s*$/gm, (_m, a: string, n: string) => `${a}${((Number(n) + 16) % 255) + 1}`),
    expect: (b) => mapInstances(b, (i) => ({ vrid: ((i.vrid + 16) % 255) + 1 })),
  },
  {
    name: 'advert_int 3',
    apply: (t) => t.replace(/^(\s*advert_int\s+)(\d+)\s*$/gm, '$13'),
    expect: (b) => b, // checked per instance below: every instance with an advert_int line reads 3
  },
  {
    name: 'scheduler',
    apply: (t) => t.replace(/^(\s*lb_algo\s+)(\w+)\s*$/gm, (_m, a: string, s: string) => `${a}${SCHEDULERS[(SCHEDULERS.indexOf(s) + 1) % SCHEDULERS.length] ?? 'rr'}`),
    expect: (b) => mapServers(b, (v) => ({ scheduler: SCHEDULERS[(SCHEDULERS.indexOf(v.scheduler) + 1) % SCHEDULERS.length] ?? 'rr' })),
  },
  {
    name: 'lb_kind',
    apply: (t) => t.replace(/^(\s*lb_kind\s+)(NAT|DR|TUN)\s*$/gm, (_m, a: string, k: string) => `${a}${METHODS[k] ?? k}`),
    expect: (b) => b, // checked below: each virtual server's method moved NAT → DR → TUN → NAT
  },
  {
    name: 'weight+2',
    apply: (t) => t.replace(/^(\s*weight\s+)(\d+)\s*$/gm, (_m, a: string, n: string) => `${a}${Number(n) + 2}`),
    expect: (b) => b, // checked below: real servers' weights +2
  },
  {
    name: 'delay_loop+3',
    apply: (t) => t.replace(/^(\s*delay_loop\s+)(\d+)\s*$/gm, (_m, a: string, n: string) => `${a}${Number(n) + 3}`),
    expect: (b) => b, // checked below: every virtual server's delay_loop +3 (its checkers' delay_loop and warmup default to it)
  },
  {
    name: 'comments',
    apply: (t) => t.split('\n').flatMap((l, i) => (l.trimEnd().endsWith('{') ? [l, i % 2 === 0 ? '    # a comment line' : '    ! another one'] : [l])).join('\n'),
    expect: (b) => b,
  },
  {
    name: 'whitespace',
    apply: (t) => t.split('\n').map((l) => `${l.replace(/^ {4}/, '\t').replace(/^ {2}/, '\t')}${l.trim() === '' ? '' : '   '}`).join('\n'),
    expect: (b) => b,
  },
];

/** The model without source locations (they move with every inserted line), and without `ignore`'s fields. */
function strip(c: FulcrumConfig, ignore: readonly string[] = []): unknown {
  return JSON.parse(JSON.stringify(c, (k, v: unknown) => (k === 'loc' || k === 'locations' || ignore.includes(k) ? undefined : v)));
}

test('keepalived -t as the oracle: every file keepalived 2.2.7 accepts, of its samples and their mutations, Fulcrum accepts and reads as written', { skip, timeout: 300_000 }, async (t) => {
  const keepalived = ensureCommand('keepalived', 'keepalived');
  const ns = `fkd${process.pid % 100000}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-kdiff-'));
  const ip = (...a: string[]): void => { execFileSync('ip', a, { stdio: 'ignore' }); };
  try {
    try {
      ip('netns', 'del', ns);
    } catch {
      // not left over
    }
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    for (let i = 0; i < 4; i++) {
      ip('-n', ns, 'link', 'add', `eth${i}`, 'type', 'veth', 'peer', 'name', `peer${i}`);
      ip('-n', ns, 'link', 'set', `eth${i}`, 'up');
    }
    ip('-n', ns, 'addr', 'add', '192.168.200.10/24', 'dev', 'eth0');
    const corpus: { name: string; file: string; base?: string; mutation?: Mutation }[] = [];
    for (const f of fs.readdirSync(SAMPLES).filter((x) => x.startsWith('keepalived.conf')).sort()) {
      const text = fs.readFileSync(path.join(SAMPLES, f), 'utf8');
      const baseFile = path.join(dir, f);
      fs.writeFileSync(baseFile, text);
      corpus.push({ name: f, file: baseFile });
      for (const m of MUTATIONS) {
        const mutated = m.apply(text);
        if (mutated === text) continue;
        const file = path.join(dir, `${f}.${m.name.replace(/\W+/g, '_')}`);
        fs.writeFileSync(file, mutated);
        corpus.push({ name: `${f} [${m.name}]`, file, base: baseFile, mutation: m });
      }
    }
    assert.ok(corpus.length >= 150, `a corpus of at least 150 files (${corpus.length})`);
    const kAccepts = (file: string): boolean => spawnSync('ip', ['netns', 'exec', ns, keepalived, '-t', '-f', file], { stdio: 'ignore', timeout: 20_000 }).status === 0;
    let accepted = 0;
    const refusedByKeepalived: string[] = [];
    const models = new Map<string, FulcrumConfig>();
    const read = (file: string): { ok: boolean; config: FulcrumConfig | null; errors: string[] } => {
      const r = loadKeepalivedConfig(file, { configId: 'fulcrum-diff' });
      return { ok: r.ok, config: r.ok ? r.config : null, errors: r.diagnostics.filter((d) => d.severity === 'error').map((d) => d.message) };
    };
    for (const c of corpus) {
      const fr = read(c.file);
      if (!kAccepts(c.file)) {
        refusedByKeepalived.push(`${c.name}: Fulcrum ${fr.ok ? 'accepts' : `refuses (${fr.errors[0] ?? ''})`}`);
        continue;
      }
      accepted++;
      assert.ok(fr.ok && fr.config, `keepalived accepts ${c.name}; Fulcrum refuses it: ${fr.errors.join('; ')}`);
      models.set(c.file, fr.config);
      if (!c.base || !c.mutation) continue;
      const base = models.get(c.base) ?? read(c.base).config;
      if (!base) continue; // the base itself is one keepalived refuses: no reference to compare with
      const got = fr.config;
      const m = c.mutation;
      if (m.name === 'advert_int 3') {
        const text = fs.readFileSync(c.file, 'utf8');
        if (/^\s*advert_int\s+3\s*$/m.test(text)) assert.ok(got.vrrpInstances.some((i) => i.advertInt === 3), `${c.name}: advert_int 3 read`);
        assert.deepEqual(strip({ ...got, vrrpInstances: got.vrrpInstances.map((i) => ({ ...i, advertInt: 0 })) } as FulcrumConfig),
          strip({ ...base, vrrpInstances: base.vrrpInstances.map((i) => ({ ...i, advertInt: 0 })) } as FulcrumConfig), `${c.name}: only advert_int changed`);
      } else if (m.name === 'lb_kind') {
        got.virtualServers.forEach((v, k) => {
          const b = base.virtualServers[k];
          assert.ok(b);
          const want = { nat: 'dr', dr: 'tun', tun: 'nat' }[b.method as 'nat' | 'dr' | 'tun'] ?? b.method;
          assert.equal(v.method, want, `${c.name}: virtual server ${k} method`);
        });
      } else if (m.name === 'weight+2') {
        got.virtualServers.forEach((v, k) => v.realServers.forEach((r, j) => {
          const b = base.virtualServers[k]?.realServers[j];
          assert.ok(b);
          assert.equal(r.weight, b.weight + 2, `${c.name}: real server ${r.address}:${r.port} weight`);
        }));
      } else if (m.name === 'delay_loop+3') {
        got.virtualServers.forEach((v, k) => assert.equal(v.delayLoop, (base.virtualServers[k]?.delayLoop ?? NaN) + 3, `${c.name}: virtual server ${k} delay_loop`));
        assert.deepEqual(strip(got, DERIVED), strip(base, DERIVED), `${c.name}: only delay_loop changed`);
      } else {
        assert.deepEqual(strip(got), strip(m.expect(base)), `${c.name}: reads as the mutation wrote it, nothing else changed`);
      }
    }
    t.diagnostic(`${corpus.length} files: keepalived -t accepts ${accepted}, every one of them accepted and read as written by Fulcrum; keepalived refuses ${refusedByKeepalived.length}`);
    for (const r of refusedByKeepalived.filter((x) => !x.includes('['))) t.diagnostic(`keepalived refuses ${r}`);
    assert.ok(accepted >= 100, `most of the corpus is valid keepalived (${accepted})`);
  } finally {
    try {
      ip('netns', 'del', ns);
    } catch {
      // gone
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
