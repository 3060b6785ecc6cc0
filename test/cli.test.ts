/** `fulcrum check` as an operator runs it: the real binary, exit codes, output. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
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
  // Every module the command loads: ES modules as file URLs through a load hook registered
  // first (it writes with writeSync: on Node 22+ hooks run on a thread of their own, whose
  // process.stderr output is lost when the command exits), CommonJS ones from require's cache
  // when the process exits (a preload).
  const hook = `data:text/javascript,${encodeURIComponent(`import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent('import { writeSync } from "node:fs"; export async function load(u, c, n) { if (u.startsWith("file:")) writeSync(2, "LOADED " + u + "\\\\n"); return n(u, c); }'));`)}`;
  const loaded = (...args: string[]): { code: number | null; files: string[]; err: string } => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-loaded-'));
    const preload = path.join(dir, 'required.cjs');
    fs.writeFileSync(preload, `process.on('exit', () => { for (const f of Object.keys(require.cache)) require('node:fs').writeSync(2, 'LOADED ' + require('node:url').pathToFileURL(f).href + '\\n'); });\n`);
    const r = spawnSync(process.execPath, ['--require', preload, '--import', hook, path.join(root, 'bin', 'fulcrum.js'), ...args], { encoding: 'utf8', timeout: 30_000 });
    const files = [...new Set(r.stderr.split('\n').filter((l) => l.startsWith('LOADED ')).map((l) => path.relative(root, new URL(l.slice(7)).pathname)))];
    fs.rmSync(dir, { recursive: true, force: true });
    return { code: r.status, files, err: r.stderr };
  };

  // Our compiled code loaded from outside the bundle (packages in node_modules may load).
  const outsideBundle = (f: string): boolean => f.startsWith('dist/') && !/^dist\/src\/cli\/main\.(bundle(\.[\w-]+)?|import)\.cjs$/.test(f);

  it('check and adm run from dist/src/cli/main.bundle*.cjs alone; run still loads the compiled tree', () => {
    const c = loaded('check', '-f', seedConf);
    assert.equal(c.code, 0, c.err);
    assert.ok(c.files.includes('dist/src/cli/main.bundle.check.cjs'), c.files.join(' '));
    assert.deepEqual(c.files.filter(outsideBundle), []);
    // adm against a socket that does not exist: it loads its modules, then fails to connect.
    const a = loaded('adm', '--socket', path.join(root, 'no-such-fulcrum.sock'), '-L', '-n');
    assert.notEqual(a.code, 0);
    assert.match(a.err, /no-such-fulcrum\.sock/);
    assert.ok(a.files.includes('dist/src/cli/main.bundle.adm.cjs'), a.files.join(' '));
    assert.deepEqual(a.files.filter(outsideBundle), []);
    // Subcommands outside the bundle go through the compiled modules beside it.
    const r = loaded('run', '-f', path.join(root, 'no-such.conf'), '--api-socket', 'none');
    assert.notEqual(r.code, 0);
    assert.match(r.err, /no-such\.conf/);
    assert.ok(r.files.includes('dist/src/cli/run.js'), r.files.join(' '));
  });

  it('is CommonJS in strict mode, with no ES import of its own; dynamic imports of the tree go through the helper', async () => {
    const { importsThroughHelper } = await import(path.join(root, 'cli-bundle.config.mjs')) as { importsThroughHelper: (code: string) => string | null };
    assert.equal(importsThroughHelper([
      '"use strict";',
      'const a = await import("./run.js");',
      "const b = (await import('./sub/demo.js')).runDemo;",
      'const c = await import("commander");',
    ].join('\n')), [
      '"use strict";',
      'const __importTree = require("./main.import.cjs");',
      'const a = await __importTree("./run.js");',
      "const b = (await __importTree('./sub/demo.js')).runDemo;",
      'const c = await import("commander");',
    ].join('\n'));
    assert.equal(importsThroughHelper('const x = require("./main.bundle.paths.cjs");'), null);
    // The bundle as built.
    const dir = path.join(root, 'dist', 'src', 'cli');
    const chunks = fs.readdirSync(dir).filter((f) => /^main\.bundle(\.[\w-]+)?\.cjs$/.test(f));
    assert.ok(chunks.length >= 3, chunks.join(' '));
    for (const f of chunks) {
      const code = fs.readFileSync(path.join(dir, f), 'utf8');
      assert.ok(code.startsWith('"use strict";\n'), `${f} is not strict`);
      assert.deepEqual([...code.matchAll(/^import\s.*$|\bimport\(.*$/gm)].map((m) => m[0]), [], f);
    }
    assert.match(fs.readFileSync(path.join(dir, 'main.bundle.cjs'), 'utf8'), /__importTree\("\.\/run\.js"\)/);
  });

  it('keeps a V8 code cache per chunk and Node; a bad or stale one is replaced; an unwritable place is no error', async () => {
    await withTempDir((dir) => {
      // The launcher and the bundle, copied as a package would hold them (the compiled tree is
      // older than the bundle, so the bundle runs).
      const cliDir = path.join(dir, 'dist', 'src', 'cli');
      fs.mkdirSync(path.join(dir, 'bin'), { recursive: true });
      fs.mkdirSync(cliDir, { recursive: true });
      for (const f of ['fulcrum.js', 'package.json']) fs.copyFileSync(path.join(root, 'bin', f), path.join(dir, 'bin', f));
      const from = path.join(root, 'dist', 'src', 'cli');
      const files = ['main.js', ...fs.readdirSync(from).filter((f) => /^main\.(bundle(\.[\w-]+)?|import)\.cjs$/.test(f))];
      for (const [i, f] of files.entries()) {
        fs.copyFileSync(path.join(from, f), path.join(cliDir, f));
        fs.utimesSync(path.join(cliDir, f), 1_700_000_000 + i, 1_700_000_000 + i);
      }
      const cacheDir = path.join(dir, 'dist', 'code-cache');
      const run = (env: Record<string, string> = {}): { code: number | null; out: string; err: string } => {
        const r = spawnSync(process.execPath, [path.join(dir, 'bin', 'fulcrum.js'), 'check', '-f', seedConf], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, ...env } });
        return { code: r.status, out: r.stdout, err: r.stderr };
      };
      const expected = fulcrum('check', '-f', seedConf);
      assert.equal(expected.code, 0, expected.err);
      const same = (r: { code: number | null; out: string; err: string }, what: string): void => {
        assert.deepEqual(r, expected, what);
      };
      const cached = (): Map<string, { bytes: Buffer; mtime: number }> => new Map(fs.readdirSync(cacheDir).map((f) => [f, { bytes: fs.readFileSync(path.join(cacheDir, f)), mtime: fs.statSync(path.join(cacheDir, f)).mtimeMs }]));
      const forChunk = (chunk: string): string[] => [...cached().keys()].filter((f) => f.startsWith(`${chunk}.${process.version}-${process.arch}.`));

      same(run({ FULCRUM_CODE_CACHE: '0' }), 'the cache turned off');
      assert.equal(fs.existsSync(cacheDir), false, 'FULCRUM_CODE_CACHE=0 writes nothing');

      same(run(), 'the first run, which writes the cache');
      const first = cached();
      for (const chunk of ['main.bundle.cjs', 'main.bundle.paths.cjs', 'main.bundle.check.cjs']) {
        const size = fs.statSync(path.join(cliDir, chunk)).size;
        assert.deepEqual(forChunk(chunk).map((f) => f.endsWith('.v8') && f.includes(`.${size}-`)), [true], `${chunk}: ${[...first.keys()].join(' ')}`);
      }
      assert.ok(![...first.keys()].some((f) => f.endsWith('.tmp')), 'no temporary file is left');

      same(run(), 'the second run, from the cache');
      assert.deepEqual(cached(), first, 'a cache V8 accepted is not written again');

      // A damaged cache: V8 refuses it, the chunk compiles from its source, and a good one replaces it.
      const [check] = forChunk('main.bundle.check.cjs');
      assert.ok(check !== undefined);
      fs.writeFileSync(path.join(cacheDir, check), 'not a code cache');
      same(run(), 'a damaged cache');
      const replaced = cached();
      assert.notEqual(replaced.get(check)?.bytes.toString('latin1'), 'not a code cache', 'the damaged cache is replaced');
      same(run(), 'the replaced cache');
      assert.deepEqual(cached(), replaced, 'and V8 accepts the replacement');

      // A cache directory others can write is neither read nor written: a damaged cache there
      // stays as it is (read, V8 would refuse it and it would be replaced, as above).
      fs.chmodSync(cacheDir, 0o777);
      fs.writeFileSync(path.join(cacheDir, check), 'not a code cache');
      same(run(), 'a cache directory others can write');
      assert.equal(fs.readFileSync(path.join(cacheDir, check), 'utf8'), 'not a code cache');
      fs.chmodSync(cacheDir, 0o755);
      same(run(), 'the same directory, 0755 again');
      assert.notEqual(fs.readFileSync(path.join(cacheDir, check)).toString('latin1'), 'not a code cache');
      assert.equal(fs.statSync(path.join(cacheDir, check)).mode & 0o777 & ~0o644, 0, 'a cache file is 0644 at most');

      // A rebuilt chunk (another size and time): a cache of its own; the old one goes.
      fs.appendFileSync(path.join(cliDir, 'main.bundle.check.cjs'), '// rebuilt\n');
      same(run(), 'a rebuilt chunk');
      const now = forChunk('main.bundle.check.cjs');
      assert.equal(now.length, 1, now.join(' '));
      assert.notEqual(now[0], check);

      // Nowhere to write (the cache directory's place taken by a file): the command is unchanged.
      fs.rmSync(cacheDir, { recursive: true });
      fs.writeFileSync(cacheDir, '');
      same(run(), 'no place for the cache');
      assert.equal(fs.readFileSync(cacheDir, 'utf8'), '');
      assert.deepEqual(fs.readdirSync(path.join(dir, 'dist')).sort(), ['code-cache', 'src']);

      // A checkout (TypeScript beside it) whose compiled tree is newer than its bundle runs the
      // tree — here a tree of main.js alone, so the import of its first module fails; an
      // installed package (no TypeScript) runs its bundle whatever the files' times.
      fs.utimesSync(path.join(cliDir, 'main.js'), 1_800_000_000, 1_800_000_000);
      same(run(), 'an installed package with a newer main.js');
      fs.mkdirSync(path.join(dir, 'src', 'cli'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'src', 'cli', 'main.ts'), '');
      const stale = run();
      assert.notEqual(stale.code, 0);
      assert.match(stale.err, /ERR_MODULE_NOT_FOUND[\s\S]*dist\/src\/cli\/main\.js|dist\/src\/cli\/main\.js[\s\S]*ERR_MODULE_NOT_FOUND/);
    });
  });
});
