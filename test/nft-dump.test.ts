/**
 * The kernel plane reads its large dynamic maps straight from nf_tables over netlink
 * (src/sys/nft-dump.ts). Here, in a network namespace with the plane's own declarations, the
 * records it reads that way are compared element by element with nft's JSON listing of the
 * same maps — keys, values and that a timeout is running. Root only (CI runs as root).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { isRoot, testLab } from '../src/testing/netns.js';
import { ensureKernelTools } from '../src/testing/lvs-lab.js';
import { repoRoot } from '../src/testing/index.js';

const skip = isRoot() ? false : 'needs root (network namespaces, nftables)';

test('netlink dump of conn4, closing4, persist4 and seen4 (with its counters) reads exactly what nft -j lists', { skip, timeout: 120_000 }, async (t) => {
  ensureKernelTools();
  const lab = testLab(t, `fnd${process.pid % 10000}`);
  lab.host('d', '10.64.0.2');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-dump-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'tables.nft');
  const els: string[] = [];
  for (let k = 0; k < 5000; k++) els.push(`0x${(0x1000 * (1 + (k % 3))).toString(16).padStart(8, '0')} . 10.${k >> 16}.${(k >> 8) & 255}.${k & 255} . ${1024 + (k % 60000)} timeout 900s : 0x0000${(0x1001 + (k % 2)).toString(16)}`);
  fs.writeFileSync(file, [
    'table netdev fulcrum {',
    '  map conn4 { type mark . ipv4_addr . inet_service : mark; flags dynamic, timeout; timeout 900s; size 65536; }',
    '  set closing4 { type mark . ipv4_addr . inet_service; flags dynamic, timeout; timeout 120s; size 65536; }',
    '  map persist4 { type mark . ipv4_addr : mark; flags dynamic, timeout; timeout 360s; size 65536; }',
    '  set seen4 { type mark . ipv4_addr . inet_service; flags dynamic, timeout; counter; timeout 900s; size 65536; }',
    '}',
    `add element netdev fulcrum conn4 { ${els.join(', ')} }`,
    'add element netdev fulcrum closing4 { 0x00001000 . 10.0.0.1 . 1024 timeout 100s, 0xfffff000 . 255.255.255.255 . 65535 }',
    'add element netdev fulcrum persist4 { 0x00002000 . 10.9.0.0 timeout 300s : 0x00002003, 0xdeadbeef . 1.2.3.4 : 0x80000001 }',
    'add element netdev fulcrum seen4 { 0x00001000 . 10.0.0.1 . 1024 counter packets 1 bytes 60 timeout 100s, 0x00001000 . 10.0.0.2 . 1025 counter packets 4000000000 bytes 6000000000000 }',
    '',
  ].join('\n'));
  lab.exec('d', 'nft', ['-f', file]);
  const script = `
const { libNft, commandNft } = await import(${JSON.stringify(path.join(repoRoot(), 'dist', 'src', 'sys', 'nft.js'))});
const { readSet } = await import(${JSON.stringify(path.join(repoRoot(), 'dist', 'src', 'dataplane', 'nft', 'read.js'))});
const lib = libNft(); const cmd = commandNft();
if (!lib.dumpElements) throw new Error('libnftables boundary has no netlink dump');
const out = {};
for (const set of ['conn4', 'closing4', 'persist4', 'seen4', 'absent4']) {
  const strip = (m) => [...m.values()].map((r) => [r.key, r.value, r.expires > 0, r.counter]).sort();
  out[set] = { dump: strip(await readSet(lib, 'netdev', set)), list: strip(await readSet(cmd, 'netdev', set)) };
}
console.log(JSON.stringify(out));`;
  const res = JSON.parse(execFileSync('ip', ['netns', 'exec', `${lab.prefix}-d`, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8', maxBuffer: 1 << 26 })) as Record<string, { dump: unknown[]; list: unknown[] }>;
  assert.equal(res['conn4']?.dump.length, 5000);
  assert.equal(res['closing4']?.dump.length, 2);
  assert.equal(res['persist4']?.dump.length, 2);
  assert.deepEqual(res['seen4']?.dump, [
    ['0x00001000 . 10.0.0.1 . 1024', '', true, { packets: 1, bytes: 60 }],
    ['0x00001000 . 10.0.0.2 . 1025', '', true, { packets: 4000000000, bytes: 6000000000000 }],
  ], 'seen4: each flow with its packet count');
  assert.equal(res['absent4']?.dump.length, 0, 'a set that does not exist reads as empty');
  for (const set of Object.keys(res)) assert.deepEqual(res[set]?.dump, res[set]?.list, `${set}: the dump and nft's listing agree`);
});
