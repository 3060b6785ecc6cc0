/**
 * Golden files: realistic configurations, in the styles people write them, compile to
 * stable JSON. `UPDATE_GOLDEN=1 npm test` rewrites the .json files (review the diff).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadKeepalivedConfig } from '../src/config/index.js';
import { canonicalJson } from '../src/cli/index.js';
import { formatDiagnostic } from '../src/errors/index.js';
import { repoRoot } from '../src/testing/index.js';

const dir = path.join(repoRoot(), 'test', 'fixtures', 'golden');

describe('golden configurations', () => {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.conf')).sort();
  it('has fixtures', () => assert.ok(files.length >= 5));
  for (const f of files) {
    it(`${f} compiles to its golden JSON`, () => {
      const r = loadKeepalivedConfig(path.join(dir, f), { configId: 'lb-a', env: {} });
      const diagnostics = r.diagnostics.map((d) => formatDiagnostic({ ...d, loc: d.loc && { ...d.loc, file: path.relative(dir, d.loc.file) } }));
      const actual = canonicalJson({ ok: r.ok, diagnostics, config: r.config }) + '\n';
      const goldenPath = path.join(dir, f.replace(/\.conf$/, '.json'));
      if (process.env['UPDATE_GOLDEN'] === '1') fs.writeFileSync(goldenPath, actual);
      assert.ok(fs.existsSync(goldenPath), `missing ${goldenPath}: run UPDATE_GOLDEN=1 npm test`);
      assert.equal(actual, fs.readFileSync(goldenPath, 'utf8'));
      // Stable: a second load gives byte-identical output.
      const again = loadKeepalivedConfig(path.join(dir, f), { configId: 'lb-a', env: {} });
      assert.equal(canonicalJson(again.config), canonicalJson(r.config));
    });
  }
});
