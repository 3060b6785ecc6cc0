import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseText, withTempDir } from '../testing/index.js';
import { runScript } from './script.js';

test('a script that cannot even be spawned is an outcome, never a rejection (NUL byte, missing program)', async () => {
  const nul = await runScript({ argv: ['/bin/echo', 'a\0b'], text: '/bin/echo a\0b' }, { timeoutMs: 1000 });
  assert.equal(nul.exitCode, null);
  assert.match(nul.error ?? '', /NUL byte/);
  const args = await runScript({ argv: ['/bin/echo'], text: '/bin/echo' }, { timeoutMs: 1000, args: ['x\0'] });
  assert.match(args.error ?? '', /NUL byte/);
  const missing = await runScript({ argv: ['/nonexistent/fulcrum-script'], text: '/nonexistent/fulcrum-script' }, { timeoutMs: 1000 });
  assert.equal(missing.exitCode, null);
  assert.ok(missing.error);
});

test('configuration: a NUL byte in a script path or argument is a located error, as `fulcrum check` reports it', () => {
  const r = parseText('vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n notify_master "/bin/echo a\\x00b"\n virtual_ipaddress { 10.0.0.1 }\n}\n');
  assert.equal(r.ok, false);
  const e = r.diagnostics.find((d) => d.severity === 'error');
  assert.match(e?.message ?? '', /NUL byte/);
  assert.equal(e?.loc?.line, 5);
});

test('a timed-out script gets SIGTERM first (it may clean up), then SIGKILL after the grace', async () => {
  await withTempDir(async (dir) => {
  const mark = path.join(dir, 'term');
  const script = path.join(dir, 's.sh');
  // Traps TERM, records it, and keeps running: only SIGKILL ends it.
  fs.writeFileSync(script, `#!/bin/sh\ntrap 'echo term > ${mark}' TERM\nwhile :; do sleep 0.05; done\n`, { mode: 0o755 });
  const out = await runScript({ argv: [script], text: script }, { timeoutMs: 200, killGraceMs: 300 });
  assert.equal(out.timedOut, true);
  assert.equal(fs.readFileSync(mark, 'utf8').trim(), 'term', 'the script saw SIGTERM');
  assert.equal(out.signal, 'SIGKILL', 'it ignored SIGTERM, so SIGKILL ended it');
  });
});
