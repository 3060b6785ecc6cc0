/**
 * Property test: random mutations of valid configurations never crash the parsers; they
 * return a model, or errors that each name file:line:col.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseIpvsadmRules, parseKeepalivedText, type ConfigFs } from '../src/config/index.js';
import { repoRoot } from '../src/testing/index.js';

/** No files at all: includes in mutated text resolve to nothing, never to the real disk. */
const emptyFs: ConfigFs = {
  size: () => { throw Object.assign(new Error('no such file'), { code: 'ENOENT' }); },
  read: () => { throw Object.assign(new Error('no such file'), { code: 'ENOENT' }); },
  realpath: (f) => { throw Object.assign(new Error(`no such file ${f}`), { code: 'ENOENT' }); },
  glob: () => [],
};

const root = repoRoot();
const goldenDir = path.join(root, 'test', 'fixtures', 'golden');
const seeds = [
  path.join(root, 'test', 'fixtures', 'seed', 'seed-keepalived-dr.conf'),
  ...fs.readdirSync(goldenDir).filter((f) => f.endsWith('.conf')).map((f) => path.join(goldenDir, f)),
].map((f) => fs.readFileSync(f, 'utf8'));

/** Fragments that stress the grammar when spliced in. */
const NASTY = ['{', '}', '"', "'", '#', '!', '\\', '$X=', '${X}', '$X', '~SEQ(I,1,3) ', '~LST(', '@', '@^', 'include x',
  '\n', ' ', '\t', '\0', '\u00ff', '::', '/', '-', '0', '65536', '-1', '1.5', 'real_server', 'virtual_server 1.2.3.4 80 {',
  'TCP_CHECK {', 'url {', 'fwmark', 'group', 'lb_kind PROXY', 'state BACKUP', 'priority 255', '999999999999999999999'];

type Mutation = (s: string) => string;
const mutation = (): fc.Arbitrary<Mutation> => fc.oneof(
  fc.tuple(fc.nat(), fc.nat({ max: 40 })).map(([at, len]): Mutation => (s) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + s.slice(i + len);
  }),
  fc.tuple(fc.nat(), fc.constantFrom(...NASTY)).map(([at, frag]): Mutation => (s) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + frag + s.slice(i);
  }),
  fc.tuple(fc.nat(), fc.string({ maxLength: 12 })).map(([at, str]): Mutation => (s) => {
    const i = at % (s.length + 1);
    return s.slice(0, i) + str + s.slice(i);
  }),
  fc.tuple(fc.nat(), fc.nat()).map(([a, b]): Mutation => (s) => {
    const lines = s.split('\n');
    const i = a % lines.length;
    const j = b % lines.length;
    [lines[i], lines[j]] = [lines[j] as string, lines[i] as string];
    return lines.join('\n');
  }),
  fc.nat().map((at): Mutation => (s) => s.slice(0, at % (s.length + 1))),
);

function assertLocated(diags: readonly { severity: string; loc?: { line: number; col: number; file: string } | undefined; message: string }[]): void {
  for (const d of diags) {
    if (d.severity !== 'error') continue;
    assert.ok(d.loc, `error without location: ${d.message}`);
    assert.ok(d.loc.line >= 1 && d.loc.col >= 1 && d.loc.file.length > 0, `bad location for: ${d.message}`);
  }
}

describe('parsers under random mutation', () => {
  it('keepalived.conf: a model or located errors, never an exception', () => {
    fc.assert(
      fc.property(fc.constantFrom(...seeds), fc.array(mutation(), { minLength: 1, maxLength: 6 }), (seed, muts) => {
        const text = muts.reduce((s, m) => m(s), seed);
        const r = parseKeepalivedText(text, 'fuzz.conf', { fs: emptyFs, configId: 'lb-a', env: {}, maxLines: 20_000, random: () => 0.5 });
        assert.equal(r.ok, !r.diagnostics.some((d) => d.severity === 'error'));
        assertLocated(r.diagnostics);
        assert.ok(r.config);
      }),
      { numRuns: 1500, seed: 20261121 },
    );
  });

  it('keepalived.conf: arbitrary text is handled', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 400, unit: 'binary' }), (text) => {
        const r = parseKeepalivedText(text, 'fuzz.conf', { fs: emptyFs, configId: 'x', env: {}, maxLines: 20_000 });
        assertLocated(r.diagnostics);
      }),
      { numRuns: 1000, seed: 7 },
    );
  });

  it('ipvsadm rules: a table or located errors, never an exception', () => {
    const seed = fs.readFileSync(path.join(root, 'test', 'fixtures', 'seed', 'seed-ipvsadm-rules.txt'), 'utf8');
    fc.assert(
      fc.property(fc.array(mutation(), { minLength: 1, maxLength: 6 }), (muts) => {
        const r = parseIpvsadmRules(muts.reduce((s, m) => m(s), seed), 'fuzz.rules');
        assertLocated(r.diagnostics);
      }),
      { numRuns: 1500, seed: 99 },
    );
  });
});
