/**
 * The kernel data plane, LVS-DR, end to end in network namespaces: a client, a director
 * running `fulcrum run` with lb_kind DR, and real servers with the VIP on lo (set up by
 * `fulcrum realserver`). Root only (CI runs as root; skipped with the reason otherwise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { isRoot, until, type Lab } from '../src/testing/netns.js';
import { adm, answersFromAll, byDirection, capture, curl, drChurn, drLab, nftElements, serveHttp, startDirector } from '../src/testing/lvs-lab.js';
import { httpLoopScript } from '../src/testing/http-loop.js';
import { testOnce, withTempDir } from '../src/testing/index.js';

const skip = isRoot() ? false : 'needs root (network namespaces, nftables)';
const VIP = '10.61.0.100';

/** Client, director and `servers` real servers serving HTTP on port 80. */
async function webLab(t: { after(fn: () => Promise<void>): void }, prefix: string, servers: number): Promise<Lab> {
  const lab = drLab(t, prefix, { net: '10.61.0', v6: 'fd61', vip: VIP, servers });
  await serveHttp(lab, [80], Array.from({ length: servers }, (_, i) => `r${i + 1}`));
  return lab;
}

function drConfig(servers: number, extra = '', algo = 'rr'): string {
  const rs = Array.from({ length: servers }, (_, i) => `  real_server 10.61.0.${11 + i} 80 {\n    weight 1\n    TCP_CHECK {\n      connect_timeout 1\n    }\n  }\n`).join('');
  return `virtual_server ${VIP} 80 {\n  delay_loop 1\n  lb_algo ${algo}\n  lb_kind DR\n  protocol TCP\n${extra}${rs}}\n`;
}

test('DR: the client reaches both real servers, which see its address; replies bypass the director', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const lab = await webLab(t, 'fkd1', 2);
  await startDirector(lab, 'd', dir, drConfig(2));
  const dump = await capture(lab, 'd', 'tcp port 80');
  const answers = await answersFromAll(lab, 'c', `http://${VIP}/`, 2, 4);
  for (const a of answers) assert.match(a, /^r[12] 10\.61\.0\.1$/, 'each real server saw the client address');
  const seen = await dump.stop();
  const { requests, replies } = byDirection(seen, VIP, 80);
  assert.ok(requests.length >= 4, `the director saw the requests (${requests.length} packets)`);
  assert.deepEqual(replies, [], 'no reply packet went through the director');
}));

test('DR: weight changes, a drain and a removal under a request loop fail no request', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const lab = await webLab(t, 'fkd2', 3);
  const d = await startDirector(lab, 'd', dir, drConfig(3, '', 'wrr'));
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'service up', 100);
  const loop = lab.spawn('c', process.execPath, ['-e', httpLoopScript(`http://${VIP}/`, 300, 10)]);
  let out = '';
  loop.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
  await drChurn(d.socket, `${VIP}:80`, ['10.61.0.11:80', '10.61.0.12:80', '10.61.0.13:80']);
  await until(() => out.includes('}'), 60_000, 'the loop to finish', 100);
  const r = JSON.parse(out) as { ok: number; failed: number; by: Record<string, number>; errors: string[] };
  assert.equal(r.failed, 0, `failed requests: ${r.errors.join('; ')}`);
  assert.ok(r.ok >= 300, `${r.ok} requests answered`);
  assert.ok((r.by['r1'] ?? 0) > (r.by['r2'] ?? 0), `weight 5 took more than the drained server: ${JSON.stringify(r.by)}`);
  // The plane's view (read from the kernel's connection table and counters within a second):
  // the closed connections of the loop sit in FIN timeout as inactive, and r1 scheduled some.
  await sleep(1200);
  const row = adm(d.socket, ['-L', '-n', '--stats']).split('\n').find((l) => l.includes('10.61.0.11:80')) ?? '';
  assert.ok(Number(row.trim().split(/\s+/)[2]) > 0, `r1 counted connections: ${row}`);
  const list = adm(d.socket, ['-L', '-n']).split('\n').find((l) => l.includes('10.61.0.11:80')) ?? '';
  assert.ok(Number(list.trim().split(/\s+/)[5]) > 0, `r1 has inactive (closing) connections: ${list}`);
  // The slot table now: r2 (drained) holds none; r1 (weight 5) more than r3 (weight 2), as wrr deals them.
  const marks = new Map([...nftElements(lab, 'd', 'netdev', 'be4').matchAll(/(0x[0-9a-f]+) : (10\.61\.0\.\d+)/g)].map((m) => [m[2], m[1]]));
  const slots = [...nftElements(lab, 'd', 'netdev', 'slots').matchAll(/: (0x[0-9a-f]+)/g)].map((m) => m[1]);
  const count = (ip: string): number => slots.filter((x) => x === marks.get(ip)).length;
  assert.equal(slots.length, 32);
  assert.equal(count('10.61.0.12'), 0, 'the drained server holds no slot');
  assert.ok(count('10.61.0.11') > count('10.61.0.13') && count('10.61.0.13') > 0, `slots r1 ${count('10.61.0.11')}, r3 ${count('10.61.0.13')}`);
}));

testOnce('DR: persistence keeps a client on one real server for the timeout, then expires', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const lab = await webLab(t, 'fkd3', 2);
  await startDirector(lab, 'd', dir, drConfig(2, '  persistence_timeout 2\n'));
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'service up', 100);
  const held = new Set<string>();
  for (let i = 0; i < 8; i++) held.add((curl(lab, 'c', `http://${VIP}/`) ?? 'failed').split(' ')[0] ?? '');
  assert.equal(held.size, 1, `one server while persistent: ${[...held].join(',')}`);
  assert.match(nftElements(lab, 'd', 'netdev', 'persist4'), /10\.61\.0\.1 .*timeout 2s/);
  await sleep(3500);
  assert.doesNotMatch(nftElements(lab, 'd', 'netdev', 'persist4'), /10\.61\.0\.1/, 'the template expired');
  const after = new Set<string>();
  for (let i = 0; i < 8; i++) {
    after.add((curl(lab, 'c', `http://${VIP}/`) ?? 'failed').split(' ')[0] ?? '');
    await sleep(2200);
    if (after.size === 2) break;
  }
  assert.equal(after.size, 2, 'after expiry the client was scheduled afresh');
}));
