/**
 * The kernel data plane, LVS-NAT, end to end in network namespaces: the client on its own
 * subnet, the director routing between it and the real servers' subnet (their default
 * route), port mapping VIP:80 → RIP:8080; full NAT (`fullnat_source`) for real servers
 * that do not route through the director; a health-check failure removing a real server
 * from the kernel's tables. Root only.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, until, type Lab } from '../src/testing/netns.js';
import { answersFromAll, curl, natLab, nftElements, serveHttp, startDirector } from '../src/testing/lvs-lab.js';
import { withTempDir } from '../src/testing/index.js';

const skip = isRoot() ? false : 'needs root (network namespaces, nftables)';
const VIP = '10.62.1.100';

/** The NAT lab with real servers serving HTTP on 8080; with `viaDirector` false they cannot reach the client. */
async function webLab(t: { after(fn: () => Promise<void>): void }, prefix: string, viaDirector: boolean): Promise<Lab> {
  const lab = natLab(t, prefix, { net: '10.62', v6: 'fd62', vip: VIP, viaDirector });
  await serveHttp(lab, [8080]);
  return lab;
}

const natConfig = (extra = '', delay = 1): string => `virtual_server ${VIP} 80 {
  delay_loop ${delay}
  lb_algo rr
  lb_kind NAT
  protocol TCP
${extra}  real_server 10.62.0.11 8080 {
    TCP_CHECK {
      connect_timeout 1
      retry 0
    }
  }
  real_server 10.62.0.12 8080 {
    TCP_CHECK {
      connect_timeout 1
      retry 0
    }
  }
}
`;

const answers = (lab: Lab, n: number): Promise<string[]> => answersFromAll(lab, 'c', `http://${VIP}/`, 2, n);

test('NAT: VIP:80 is mapped to the real servers\' port 8080 and they see the true client address', { skip, timeout: 90_000 }, (t) => withTempDir(async (dir) => {
  const lab = await webLab(t, 'fkn1', true);
  await startDirector(lab, 'd', dir, natConfig());
  for (const a of await answers(lab, 4)) assert.match(a, /^r[12] 10\.62\.1\.1$/);
  assert.match(nftElements(lab, 'd', 'inet', 'nat4'), /10\.62\.0\.11 \. 8080/);
  const ct = lab.exec('d', 'cat', ['/proc/net/nf_conntrack']);
  assert.match(ct, /dst=10\.62\.1\.100 sport=\d+ dport=80 src=10\.62\.0\.1[12] dst=10\.62\.1\.1 sport=8080/, 'conntrack holds the mapping');
}));

test('NAT: full NAT reaches real servers that do not route through the director; they see the director', { skip, timeout: 90_000 }, (t) => withTempDir(async (dir) => {
  const lab = await webLab(t, 'fkn2', false);
  await startDirector(lab, 'd', dir, natConfig('  fullnat_source 10.62.0.2\n'));
  for (const a of await answers(lab, 4)) assert.match(a, /^r[12] 10\.62\.0\.2$/);
}));

test('NAT: a real server that stops answering leaves the kernel tables within the checker interval', { skip, timeout: 90_000 }, (t) => withTempDir(async (dir) => {
  const lab = await webLab(t, 'fkn3', true);
  await startDirector(lab, 'd', dir, natConfig('', 1));
  await answers(lab, 2);
  assert.match(nftElements(lab, 'd', 'inet', 'nat4'), /10\.62\.0\.12 \. 8080/);
  const killedAt = Date.now();
  lab.crash('r2');
  const took = await until(() => !nftElements(lab, 'd', 'inet', 'nat4').includes('10.62.0.12'), 10_000, 'r2 removed from nat4', 50);
  // delay_loop 1, retry 0, connect_timeout 1: the next check fails within about 2 s.
  assert.ok(Date.now() - killedAt < 4000, `removed ${took} ms after the crash`);
  const after = new Set<string>();
  for (let i = 0; i < 6; i++) after.add((curl(lab, 'c', `http://${VIP}/`) ?? 'failed').split(' ')[0] ?? '');
  assert.deepEqual([...after], ['r1'], 'every request now goes to r1');
}));
