/**
 * A table of malformed inputs: each must give a located error (file:line:col) and never
 * crash, through the library and through `fulcrum check`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { loadKeepalivedConfig } from '../src/config/index.js';
import { main } from '../src/cli/index.js';
import { errorsOf, repoRoot, withTempDir, writeTree } from '../src/testing/index.js';

interface Case {
  readonly name: string;
  readonly files: Record<string, string | Uint8Array>;
  /** Expected first error: code, file (relative), line, column. */
  readonly want: [string, string, number, number];
}

const VS = 'virtual_server 10.0.0.1 80 {\n  lb_algo rr\n';
const cases: Case[] = [
  { name: 'unclosed brace', files: { 'k.conf': `${VS}  real_server 10.0.1.1 80 {\n    weight 1\n}\n` }, want: ['E_SYNTAX', 'k.conf', 1, 28] },
  { name: 'extra closing brace', files: { 'k.conf': `${VS}}\n}\n` }, want: ['E_SYNTAX', 'k.conf', 4, 1] },
  { name: 'unterminated quote', files: { 'k.conf': `${VS}  quorum_up "/bin/x\n}\n` }, want: ['E_SYNTAX', 'k.conf', 3, 13] },
  { name: 'bad virtual address', files: { 'k.conf': 'virtual_server 10.0.0.256 80 {\n}\n' }, want: ['E_BAD_VALUE', 'k.conf', 1, 16] },
  { name: 'bad real-server address', files: { 'k.conf': `${VS}  real_server web1 80 {\n  }\n}\n` }, want: ['E_BAD_VALUE', 'k.conf', 3, 15] },
  { name: 'bad VIP prefix', files: { 'k.conf': 'vrrp_instance V {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n  10.0.0.1/33\n }\n}\n' }, want: ['E_BAD_VALUE', 'k.conf', 5, 3] },
  { name: 'a block hung off a value keyword (one-line block)', files: { 'k.conf': `${VS}  real_server 10.0.1.1 80 {\n    weight 3 TCP_CHECK {\n    }\n  }\n}\n` }, want: ['E_SYNTAX', 'k.conf', 4, 24] },
  { name: 'bad number', files: { 'k.conf': `${VS}  delay_loop 6s\n}\n` }, want: ['E_BAD_VALUE', 'k.conf', 3, 14] },
  { name: 'number out of range', files: { 'k.conf': `${VS}  real_server 10.0.1.1 80 {\n    weight 65536\n  }\n}\n` }, want: ['E_RANGE', 'k.conf', 4, 12] },
  { name: 'negative port', files: { 'k.conf': 'virtual_server 10.0.0.1 -80 {\n}\n' }, want: ['E_RANGE', 'k.conf', 1, 25] },
  { name: 'unknown lb_algo', files: { 'k.conf': 'virtual_server 10.0.0.1 80 {\n  lb_algo fastest\n}\n' }, want: ['E_BAD_VALUE', 'k.conf', 2, 11] },
  // (A real server listed twice is a located warning, as keepalived repairs it; a virtual server twice is an error.)
  { name: 'duplicate virtual servers', files: { 'k.conf': `${VS}}\n${VS}}\n` }, want: ['E_DUPLICATE', 'k.conf', 4, 1] },
  { name: 'include loop', files: { 'k.conf': 'include a.conf\n', 'a.conf': 'include b.conf\n', 'b.conf': 'include a.conf\n' }, want: ['E_INCLUDE_LOOP', 'b.conf', 1, 9] },
  { name: 'self include', files: { 'k.conf': '\ninclude k.conf\n' }, want: ['E_INCLUDE_LOOP', 'k.conf', 2, 9] },
  { name: 'missing include', files: { 'k.conf': 'global_defs {\n}\ninclude /nonexistent/fulcrum/x.conf\n' }, want: ['E_FILE', 'k.conf', 3, 9] },
  { name: 'missing main file', files: {}, want: ['E_FILE', 'k.conf', 1, 1] },
  { name: 'directory as include', files: { 'k.conf': 'include sub\n', 'sub/x': '' }, want: ['E_FILE', 'k.conf', 1, 9] },
  { name: 'binary garbage', files: { 'k.conf': Uint8Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256) }, want: ['E_BINARY', 'k.conf', 1, 58] },
  { name: 'control-character garbage without NUL', files: { 'k.conf': '\x01\x02\x03\x04\x05\x06\x07\x08\x0e\x0f'.repeat(50) }, want: ['E_BINARY', 'k.conf', 1, 1] },
  { name: 'block where a value belongs', files: { 'k.conf': `${VS}  delay_loop {\n  }\n}\n` }, want: ['E_MISSING', 'k.conf', 3, 14] },
  { name: 'value where a block belongs', files: { 'k.conf': `${VS}  real_server 10.0.1.1 80\n}\n` }, want: ['E_SYNTAX', 'k.conf', 3, 27] },
  { name: 'brace without keyword', files: { 'k.conf': 'global_defs {\n}\n{\n}\n' }, want: ['E_SYNTAX', 'k.conf', 3, 1] },
  { name: 'runaway ~SEQ', files: { 'k.conf': '~SEQ(I, 0, 1, 999999999) virtual_server 10.0.0.1 ${I} {}\n' }, want: ['E_LIMIT', 'k.conf', 1, 1] },
];

/** The first error's code and location, with the file relative to `dir`. */
function firstError(dir: string, diags: ReturnType<typeof errorsOf>): [string, string, number, number] | undefined {
  const e = diags[0];
  if (!e?.loc) return undefined;
  return [e.code, path.relative(dir, e.loc.file), e.loc.line, e.loc.col];
}

describe('malformed configurations', () => {
  for (const c of cases) {
    it(`${c.name}: located error, no crash`, async () => {
      await withTempDir(async (dir) => {
        writeTree(dir, c.files);
        const main_ = path.join(dir, 'k.conf');
        const r = loadKeepalivedConfig(main_, { configId: 't', env: {} });
        assert.equal(r.ok, false);
        assert.deepEqual(firstError(dir, errorsOf(r)), c.want);
        for (const d of errorsOf(r)) assert.ok(d.loc && d.loc.line >= 1 && d.loc.col >= 1, `unlocated: ${d.message}`);
        // Through the CLI: exit 1, the located error first on stderr, nothing on stdout.
        const out: string[] = [];
        const err: string[] = [];
        const code = await main(['check', '-f', main_], { out: (t) => out.push(t), err: (t) => err.push(t) });
        assert.equal(code, 1);
        assert.deepEqual(out, []);
        const want = c.want;
        assert.ok(err.some((l) => l.startsWith(`${path.join(dir, want[1])}:${want[2]}:${want[3]}: error ${want[0]}`)), err.join('\n'));
      });
    });
  }

  it('a 50 MB file is refused with a located error, without reading it into memory', async () => {
    await withTempDir((dir) => {
      const f = path.join(dir, 'huge.conf');
      const fd = fs.openSync(f, 'w');
      const chunk = Buffer.from('virtual_server 10.0.0.1 80 {\n}\n'.repeat(32768));
      let written = 0;
      while (written < 50 * 1024 * 1024) written += fs.writeSync(fd, chunk);
      fs.closeSync(fd);
      const bin = path.join(repoRoot(), 'bin', 'fulcrum.js');
      let status = 0;
      let stderr = '';
      try {
        execFileSync(process.execPath, [bin, 'check', '-f', f], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
      } catch (err: unknown) {
        const e = err as { status: number; stderr: string };
        status = e.status;
        stderr = e.stderr;
      }
      assert.equal(status, 1);
      assert.match(stderr, new RegExp(`^${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1:1: error E_TOO_LARGE: `, 'm'));
      assert.doesNotMatch(stderr, /at .*\.js:\d+/);
    });
  });
});
