/** `fulcrum check` as an operator runs it: the real binary, exit codes, output. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it, test } from 'node:test';
import { repoRoot, withTempDir, writeTree } from '../src/testing/index.js';

const root = repoRoot();
const seedConf = path.join(root, 'test', 'fixtures', 'seed', 'seed-keepalived-dr.conf');
const seedRules = path.join(root, 'test', 'fixtures', 'seed', 'seed-ipvsadm-rules.txt');

function fulcrum(...args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'fulcrum.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('fulcrum check', () => {
  it('accepts the seed keepalived.conf with a one-line summary and located warnings', () => {
    const r = fulcrum('check', '-f', seedConf);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${seedConf}: OK — 1 VRRP instance, 1 virtual server (2 real servers), 2 warnings\n`);
    assert.match(r.err, /seed-keepalived-dr\.conf:35:1: warning W_DEPRECATED: 'nb_get_retry'/);
    assert.equal(fulcrum('check', '-q', '-f', seedConf).err, '');
  });

  it('reads a 160,000-line block without overflowing the stack (issue 17: "Maximum call stack size exceeded")', async () => {
    await withTempDir((dir) => {
      const lines = ['virtual_server 127.0.0.1 80 {', '  lb_kind PROXY'];
      for (let i = 0; i < 160_000; i++) lines.push(`  real_server 10.${1 + (i >> 16)}.${(i >> 8) & 255}.${i & 255} 80 { weight 1 }`);
      lines.push('}');
      writeTree(dir, { 'big.conf': `${lines.join('\n')}\n` });
      const r = spawnSync(process.execPath, [path.join(root, 'bin', 'fulcrum.js'), 'check', '-f', path.join(dir, 'big.conf')], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(r.status, 0, r.stderr.slice(0, 500));
      assert.match(r.stdout, /1 virtual server \(160000 real servers\)/);
    });
  });

  it('a reader that goes away (`| head -1`) ends the output quietly: no EPIPE, the check\'s own exit code', async () => {
    await withTempDir(async (dir) => {
      const lines = ['virtual_server 127.0.0.1 80 {', '  lb_kind PROXY'];
      for (let i = 0; i < 2_000; i++) lines.push(`  real_server 10.1.${i >> 8}.${i & 255} 80 { weight 1 }`);
      lines.push('}');
      writeTree(dir, { 'many.conf': `${lines.join('\n')}\n` });
      const child = spawn(process.execPath, [path.join(root, 'bin', 'fulcrum.js'), 'check', '-f', path.join(dir, 'many.conf'), '--dump'], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
      let first = '';
      let err = '';
      child.stdout.once('data', (c: Buffer) => {
        first = c.toString('utf8');
        child.stdout.destroy();
      });
      child.stderr.on('data', (c: Buffer) => { err += c.toString('utf8'); });
      const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
      assert.match(first, /^\{/);
      assert.equal(code, 0, err.slice(0, 500));
      assert.doesNotMatch(err, /EPIPE|internal error/);
    });
  });

  it('--dump prints the normalized model', () => {
    const r = fulcrum('check', '-f', seedConf, '--dump');
    assert.equal(r.code, 0, r.err);
    const m = JSON.parse(r.out) as {
      vrrpInstances: { vrid: number; priority: number; auth: { type: string; pass: string }; virtualIpAddresses: { address: string }[] }[];
      virtualServers: { endpoint: { address: string; port: number }; protocol: string; scheduler: string; method: string;
        realServers: { checkers: { type: string; conn: { connectPort: number }; timing: { connectTimeout: number; retry: number; delayBeforeRetry: number } }[] }[] }[];
    };
    assert.equal(m.vrrpInstances.length, 1);
    assert.deepEqual([m.vrrpInstances[0]?.vrid, m.vrrpInstances[0]?.priority, m.vrrpInstances[0]?.auth.type, m.vrrpInstances[0]?.virtualIpAddresses[0]?.address],
      [100, 100, 'PASS', '10.0.0.210']);
    const v = m.virtualServers[0];
    assert.deepEqual([v?.endpoint.address, v?.endpoint.port, v?.protocol, v?.scheduler, v?.method], ['10.0.0.210', 80, 'tcp', 'rr', 'dr']);
    assert.equal(v?.realServers.length, 2);
    for (const rs of v?.realServers ?? []) {
      const c = rs.checkers[0];
      assert.deepEqual([c?.type, c?.timing.connectTimeout, c?.timing.retry, c?.timing.delayBeforeRetry, c?.conn.connectPort], ['TCP_CHECK', 10, 3, 3, 80]);
    }
    assert.doesNotMatch(r.out, /"loc"/);
    assert.match(fulcrum('check', '-f', seedConf, '--dump', '--locations').out, /"loc"/);
  });

  it('--ipvsadm validates a rules file', () => {
    const r = fulcrum('check', '--ipvsadm', seedRules);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `${seedRules}: OK — 13 commands, 5 virtual servers (8 real servers), 0 warnings\n`);
    const d = JSON.parse(fulcrum('check', '--ipvsadm', seedRules, '--dump').out) as { virtualServers: unknown[] };
    assert.equal(d.virtualServers.length, 5);
  });

  it('exits 1 with every located error for a bad file, 2 for bad usage', async () => {
    await withTempDir((dir) => {
      writeTree(dir, { 'bad.conf': 'virtual_server 10.0.0.1 80 {\n  lb_algo nope\n  real_server 10.0.1.1 8080 {\n  }\n  real_server 10.0.1.1 8080 {\n  }\n', 'bad.rules': '-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80\n' });
      const f = path.join(dir, 'bad.conf');
      const r = fulcrum('check', '-f', f);
      assert.equal(r.code, 1);
      assert.equal(r.out, '');
      assert.deepEqual(r.err.trim().split('\n'), [
        `${f}:1:28: error E_SYNTAX: 'virtual_server': block of 'virtual_server' opened here is never closed (expected a matching '}')`,
        `${f}:2:11: error E_BAD_VALUE: 'lb_algo': unknown scheduler 'nope' (expected rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|mh|fo|ovf|twos|agent)`,
        `${f}:1:1: warning W_ADJUSTED: 'protocol': no protocol: TCP here, but keepalived 2.2.7 reports this and serves UDP — write protocol TCP or UDP (expected protocol TCP|UDP|SCTP)`,
        `${f}:5:3: warning W_ADJUSTED: 'real_server': real server 10.0.1.1:8080 is already in tcp 10.0.0.1:80 (at ${f}:3:3): this one is removed (as keepalived does)`,
        `fulcrum check: ${f}: 2 errors, 2 warnings`,
      ]);
      const rr = fulcrum('check', '--ipvsadm', path.join(dir, 'bad.rules'));
      assert.equal(rr.code, 1);
      assert.match(rr.err, /bad\.rules:2:1: error E_CONTRADICTION: Service already exists/);
      assert.equal(fulcrum('check').code, 2);
      assert.equal(fulcrum('check', '-f', f, '--ipvsadm', f).code, 2);
      assert.equal(fulcrum('nonsense').code, 2);
      assert.equal(fulcrum('--version').out.trim(), '0.1.0');
    });
  });
});

test('run: API option checks name the option; default paths are system paths for root, XDG ones otherwise', async () => {
  const { apiSettings, defaultPaths } = await import('../src/cli/run.js');
  assert.equal(apiSettings({ file: 'f', drainTimeout: '1', logLevel: 'info', apiListen: '127.0.0.1:9180' }), '--api-listen needs --api-token-file: requests over TCP must carry a bearer token');
  assert.match(String(apiSettings({ file: 'f', drainTimeout: '1', logLevel: 'info', apiListen: 'localhost' })), /^--api-listen: 'localhost' is not HOST:PORT/);
  assert.match(String(apiSettings({ file: 'f', drainTimeout: '1', logLevel: 'info', apiTokenFile: '/nonexistent/token' })), /^--api-token-file: ENOENT/);
  assert.equal(apiSettings({ file: 'f', drainTimeout: '1', logLevel: 'info', apiOpen: 'metrics,stats' }), "--api-open: 'stats' is not metrics, dashboard or none");
  assert.deepEqual(defaultPaths({}, 0), { socket: '/run/fulcrum/fulcrum.sock', state: '/var/lib/fulcrum/runtime.json' });
  assert.deepEqual(defaultPaths({ XDG_RUNTIME_DIR: '/run/user/1000', XDG_STATE_HOME: '/home/op/.state' }, 1000), { socket: '/run/user/1000/fulcrum.sock', state: '/home/op/.state/fulcrum/runtime.json' });
});

describe('start-up bundle (issue 22)', () => {
  // Every module the command loads, as file URLs, through a load hook registered first. The
  // hook writes with writeSync: on Node 22+ hooks run on a thread of their own, whose
  // process.stderr output is lost when the command exits.
  const hook = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent('import { writeSync } from "node:fs"; export async function load(u, c, n) { if (u.startsWith("file:")) writeSync(2, "LOADED " + u + "\\\\n"); return n(u, c); }'));`)}`;
  const loaded = (...args: string[]): { code: number | null; files: string[]; err: string } => {
    const r = spawnSync(process.execPath, ['--import', hook, path.join(root, 'bin', 'fulcrum.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
    const files = r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => path.relative(root, new URL(l.slice(7)).pathname));
    return { code: r.status, files, err: r.stderr };
  };

  // Our compiled code loaded from outside the bundle (packages in node_modules may load: on
  // Node 22+ the hook sees require() too).
  const outsideBundle = (f: string): boolean => f.startsWith('dist/') && !/^dist\/src\/cli\/main\.bundle(\.[\w-]+)?\.js$/.test(f);

  it('check and adm run from dist/src/cli/main.bundle*.js alone; run still loads the compiled tree', () => {
    const c = loaded('check', '-f', seedConf);
    assert.equal(c.code, 0, c.err);
    assert.ok(c.files.includes('dist/src/cli/main.bundle.check.js'), c.files.join(' '));
    assert.deepEqual(c.files.filter(outsideBundle), []);
    // adm against a socket that does not exist: it loads its modules, then fails to connect.
    const a = loaded('adm', '--socket', path.join(root, 'no-such-fulcrum.sock'), '-L', '-n');
    assert.notEqual(a.code, 0);
    assert.match(a.err, /no-such-fulcrum\.sock/);
    assert.ok(a.files.includes('dist/src/cli/main.bundle.adm.js'), a.files.join(' '));
    assert.deepEqual(a.files.filter(outsideBundle), []);
    // Subcommands outside the bundle go through the compiled modules beside it.
    const r = loaded('run', '-f', path.join(root, 'no-such.conf'), '--api-socket', 'none');
    assert.notEqual(r.code, 0);
    assert.ok(r.files.includes('dist/src/cli/run.js'), r.files.join(' '));
  });

  it("requires Node's own modules instead of importing them (no ES module facade of node:http)", async () => {
    const { requireBuiltins } = await import(path.join(root, 'cli-bundle.config.mjs')) as { requireBuiltins: (code: string) => string | null };
    const out = requireBuiltins([
      'import fs from "node:fs";',
      'import * as os from "node:os";',
      'import { channel, subscribe as sub } from "node:diagnostics_channel";',
      'import { Resolver } from "node:dns/promises";',
      'import { x as y } from "./main.bundle.paths.js";',
      'import "./side-effect.js";',
      'fs.readFileSync(os.tmpdir());',
    ].join('\n'));
    assert.equal(out, [
      'import { createRequire as __createRequire } from "node:module";',
      'const __requireBuiltin = __createRequire(import.meta.url);',
      'const fs = __requireBuiltin("node:fs");',
      'const os = __requireBuiltin("node:os");',
      'const { channel, subscribe: sub } = __requireBuiltin("node:diagnostics_channel");',
      'const { Resolver } = __requireBuiltin("node:dns/promises");',
      'import { x as y } from "./main.bundle.paths.js";',
      'import "./side-effect.js";',
      'fs.readFileSync(os.tmpdir());',
    ].join('\n'));
    assert.equal(requireBuiltins('import { x } from "./a.js";\nx();'), null);
    // The bundle as built: node:module (to make the require) is the only builtin imported.
    const dir = path.join(root, 'dist', 'src', 'cli');
    const chunks = fs.readdirSync(dir).filter((f) => /^main\.bundle(\.[\w-]+)?\.js$/.test(f));
    assert.ok(chunks.length >= 3, chunks.join(' '));
    for (const f of chunks) {
      const imported = [...fs.readFileSync(path.join(dir, f), 'utf8').matchAll(/^import\s[^;]*?from\s+"(node:[\w/]+)";$/gm)].map((m) => m[1]);
      assert.deepEqual(imported.filter((m) => m !== 'node:module'), [], f);
    }
  });
});
