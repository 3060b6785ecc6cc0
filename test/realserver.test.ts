/**
 * `fulcrum realserver` on a fresh namespace: start → status ok → ARP for the VIP unanswered
 * → stop → everything as it was. And LVS-TUN end to end through the tunnel devices it
 * makes (VXLAN here: this kernel has no ipip). Root only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, testLab } from '../src/testing/netns.js';
import { answersFromAll, ensureKernelTools, httpServer, listening, realserver, startDirector } from '../src/testing/lvs-lab.js';
import { withTempDir } from '../src/testing/index.js';

const skip = isRoot() ? false : 'needs root (network namespaces, sysctls)';
const VIP = '10.63.0.100';
const SYSCTLS = ['all.arp_ignore', 'all.arp_announce', 'eth0.arp_ignore', 'eth0.arp_announce', 'all.rp_filter'].map((s) => `net.ipv4.conf.${s}`);

test('realserver: start, status ok, no ARP answer for the VIP, stop restores everything', { skip, timeout: 60_000 }, (t) => withTempDir(async (dir) => {
  ensureKernelTools();
  const lab = testLab(t, 'frs1');
  lab.host('c', '10.63.0.1');
  lab.host('r', '10.63.0.11');
  const snapshot = (): string => [
    lab.exec('r', 'sysctl', SYSCTLS),
    lab.exec('r', 'ip', ['-br', 'addr', 'show']),
    lab.exec('r', 'ip', ['route', 'show', 'table', 'all']),
  ].join('\n');
  const before = snapshot();
  const args = ['--vip', VIP, '--state-dir', dir];
  const start = realserver(lab, 'r', ['start', ...args]);
  assert.equal(start.code, 0, start.out);
  assert.match(start.out, /arp_ignore=1.*VIP added to lo/s);
  const status = realserver(lab, 'r', ['status', ...args]);
  assert.equal(status.code, 0, status.out);
  assert.doesNotMatch(status.out, /FAIL/);
  assert.match(status.out, /ok {3}VIP 10\.63\.0\.100\/32 on lo/);
  // The IBM Dispatcher check, from the outside: the VIP gets no ARP answer; the server's own address does.
  const arping = (target: string): boolean => {
    try {
      lab.exec('c', 'arping', ['-c', '2', '-w', '2', '-I', 'eth0', target], 8000);
      return true;
    } catch {
      return false;
    }
  };
  assert.equal(arping('10.63.0.11'), true, 'control: the real server answers ARP for its own address');
  assert.equal(arping(VIP), false, 'nobody answers ARP for the VIP');
  assert.equal(realserver(lab, 'r', ['start', ...args]).code, 0, 'a second start is harmless');
  const stop = realserver(lab, 'r', ['stop', ...args]);
  assert.equal(stop.code, 0, stop.out);
  assert.equal(snapshot(), before, 'sysctls, addresses and routes are as before start');
  const after = realserver(lab, 'r', ['status', ...args]);
  assert.equal(after.code, 1);
  assert.match(after.out, /FAIL VIP 10\.63\.0\.100\/32 on lo/);
  // A stray route and the VIP on the interface are caught.
  lab.exec('r', 'ip', ['route', 'add', `${VIP}/32`, 'dev', 'eth0']);
  const stray = realserver(lab, 'r', ['status', ...args]);
  assert.match(stray.out, /FAIL no stray route for the VIP: 10\.63\.0\.100 dev eth0/);
}));

test('TUN: the director reaches both real servers through per-server tunnel devices (VXLAN here)', { skip, timeout: 90_000 }, (t) => withTempDir(async (dir) => {
  ensureKernelTools();
  const lab = testLab(t, 'frs2');
  lab.host('c', '10.63.0.1');
  lab.host('d', '10.63.0.2');
  lab.exec('d', 'ip', ['addr', 'add', `${VIP}/32`, 'dev', 'eth0']);
  for (const [name, addr] of [['r1', '10.63.0.11'], ['r2', '10.63.0.12']] as const) {
    lab.host(name, addr);
    const r = realserver(lab, name, ['start', '--vip', VIP, '--mode', 'tun', '--state-dir', dir + '/' + name]);
    assert.equal(r.code, 0, r.out);
    const st = realserver(lab, name, ['status', '--vip', VIP, '--mode', 'tun', '--state-dir', dir + '/' + name]);
    assert.equal(st.code, 0, st.out);
    httpServer(lab, name, 80);
    await listening(lab, name, 80);
  }
  const d = await startDirector(lab, 'd', dir, `virtual_server ${VIP} 80 {\n  delay_loop 1\n  lb_algo rr\n  lb_kind TUN\n  real_server 10.63.0.11 80 {\n  }\n  real_server 10.63.0.12 80 {\n  }\n}\n`);
  const seen = await answersFromAll(lab, 'c', `http://${VIP}/`, 2).catch((e: unknown) => {
    console.log(d.lines.join('\n'), lab.exec('d', 'ip', ['-d', 'link', 'show']), lab.exec('d', 'ip', ['neigh']), lab.exec('d', 'nft', ['list', 'ruleset']).slice(0, 3000), lab.exec('r1', 'ip', ['-d', '-s', 'link', 'show']), lab.exec('r1', 'sysctl', ['-a']).split('\n').filter((l) => /rp_filter|arp_/.test(l)).join('\n'));
    throw e;
  });
  for (const a of seen) assert.match(a, /^r[12] 10\.63\.0\.1$/, 'the real server saw the client');
  const links = lab.exec('d', 'ip', ['-d', 'link', 'show']);
  assert.equal((links.match(/vxlan id \d+ remote 10\.63\.0\.1[12]/g) ?? []).length, 2, 'one tunnel device per real server');
  // The real servers received the requests on their tunnel device.
  assert.match(lab.exec('r1', 'ip', ['-s', 'link', 'show', 'fulcrum0']), /RX:.*\n\s+[1-9]\d*/);
}));
