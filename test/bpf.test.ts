/**
 * The Bpf boundary against the kernel: the compliance suite (src/sys/bpf-compliance.ts) with
 * libbpf through koffi and the real XDP program, in a test namespace. Root only.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, testLab } from '../src/testing/netns.js';
import { repoRoot } from '../src/testing/index.js';
import { ensureXdpProgram, testBpfDir } from '../src/testing/xdp-lab.js';

const skip = isRoot() ? false : 'needs root (network namespaces, bpf)';
test('libbpf: the Bpf compliance suite against the kernel, with the real program, in a namespace', { skip, timeout: 120_000 }, (t) => {
  ensureXdpProgram();
  const lab = testLab(t, 'fkx6');
  lab.host('a', '10.62.9.1');
  const bpfDir = testBpfDir(t, 'fkx6');
  const ifindex = (JSON.parse(lab.exec('a', 'ip', ['-j', 'link', 'show', 'dev', 'eth0'])) as { ifindex: number }[])[0]?.ifindex ?? 0;
  const suite = path.join(repoRoot(), 'dist', 'src', 'sys', 'bpf-kernel-suite.js');
  // A test runner of its own (without this runner's NODE_TEST_CONTEXT, which would make it report to us in binary).
  const env: NodeJS.ProcessEnv = { ...process.env, FULCRUM_BPF_PIN_DIR: bpfDir, FULCRUM_BPF_IFINDEX: String(ifindex) };
  delete env['NODE_TEST_CONTEXT'];
  const r = spawnSync('ip', ['netns', 'exec', `${lab.prefix}-a`, process.execPath, '--test', '--test-reporter=spec', suite], { encoding: 'utf8', timeout: 90_000, env });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /ℹ pass 3\n/);
});
