/**
 * The kernel data plane beyond IPv4 TCP, end to end in network namespaces: IPv6 (DR and
 * NAT), UDP (DR and NAT), firewall-mark services (the operator's own rule sets the mark: a
 * netdev ingress chain before Fulcrum's for DR, an inet prerouting chain before its nat
 * chain for NAT) and port-0 services (PCC: every port of the VIP, one real server per
 * client). Root only (CI runs as root; skipped with the reason otherwise).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, until, type Lab } from '../src/testing/netns.js';
import { adm, answersFromAll, byDirection, capture, curl, drLab, natLab, nftElements, serveHttp, startDirector, udpAsk, udpServer } from '../src/testing/lvs-lab.js';
import { testOnce, withTempDir } from '../src/testing/index.js';
import { conn6Key } from '../src/dataplane/nft/ruleset.js';

const skip = isRoot() ? false : 'needs root (network namespaces, nftables)';
const names = (answers: readonly string[]): Set<string> => new Set(answers.map((a) => a.split(' ')[0] ?? ''));

const DR = { net: '10.64.0', v6: 'fd64' };
const NAT = { net: '10.65', v6: 'fd65' };

const check = (port: number): string => `    TCP_CHECK {\n      connect_timeout 1\n      connect_port ${port}\n    }\n`;

/** A virtual_server block: `head` (`fd64::100 80`, `fwmark 7`), its extra lines, two real servers. */
function service(head: string, kind: 'DR' | 'NAT', servers: readonly [string, number][], o: { protocol?: 'TCP' | 'UDP'; extra?: string; checkPort?: number } = {}): string {
  const rs = servers.map(([addr, port]) => `  real_server ${addr} ${port} {\n${o.protocol === 'UDP' ? '' : check(o.checkPort ?? port)}  }\n`).join('');
  return `virtual_server ${head} {\n  delay_loop 1\n  lb_algo rr\n  lb_kind ${kind}\n  protocol ${o.protocol ?? 'TCP'}\n${o.extra ?? ''}${rs}}\n`;
}

/** UDP questions from c to `vip`:`port` (6 new flows a round) until both real servers answered: the answers. */
async function udpFromBoth(lab: Lab, vip: string, port: number): Promise<string[]> {
  let answers: string[] = [];
  await until(() => {
    answers = udpAsk(lab, 'c', vip, port, 6).filter((a) => a !== 'timeout');
    return names(answers).size === 2;
  }, 20_000, 'UDP answers from both real servers', 100);
  return answers;
}

/** The operator's own table `op`: mark TCP to VIP ports 80 and 8080 with 7 in a chain hooked by `hook`. */
function operatorMark(lab: Lab, family: 'netdev' | 'inet', hook: string, vip: string): void {
  lab.exec('d', 'nft', ['add', 'table', family, 'op']);
  lab.exec('d', 'nft', ['add', 'chain', family, 'op', 'tagging', `{ ${hook} }`]);
  lab.exec('d', 'nft', ['add', 'rule', family, 'op', 'tagging', 'ip', 'daddr', vip, 'tcp', 'dport', '{ 80, 8080 }', 'meta', 'mark', 'set', '7']);
}

test('DR over IPv6: both real servers answer, see the client address, and no reply passes the director', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = 'fd64::100';
  const lab = drLab(t, 'fkm1', { ...DR, vip: VIP });
  await serveHttp(lab, [80]);
  const d = await startDirector(lab, 'd', dir, `global_defs {\n  lvs_timeouts tcp 900 tcpfin 3\n}\n${service(`${VIP} 80`, 'DR', [['fd64::11', 80], ['fd64::12', 80]])}`);
  const dump = await capture(lab, 'd', 'ip6 and tcp port 80');
  const answers = await answersFromAll(lab, 'c', `http://[${VIP}]/`, 2, 4);
  for (const a of answers) assert.match(a, /^r[12] fd64::1$/, 'each real server saw the client address');
  const { requests, replies } = byDirection(await dump.stop(), VIP, 80);
  assert.ok(requests.length >= 4, `the director saw the requests (${requests.length} packets)`);
  assert.deepEqual(replies, [], 'no reply packet went through the director');
  assert.match(nftElements(lab, 'd', 'netdev', 'be6'), /fd64::11/);
  // The connection table names the client (IPv6 flows are keyed by hash; the client is kept
  // beside them), and forgets it when the flow expires (tcpfin 3 s here).
  await until(() => /\[fd64::1\]:\d+ +\[fd64::100\]:80 +\[fd64::1[12]\]:80/.test(adm(d.socket, ['-L', '-n', '-c'])), 5000, 'a listed IPv6 DR connection with its client', 200);
  await until(() => !nftElements(lab, 'd', 'netdev', 'client6').includes('fd64::1'), 10_000, 'client entries dropped with their flows', 200);
  // Connection sync installs another director's IPv6 flows under keys computed in
  // TypeScript (conn6Key): the kernel must find them. Four client ports pinned to r2, as a
  // sync install writes them (conn6 with client6/cport6), all reach r2 — new flows would
  // alternate (wrr 1:1) — and the kernel added no entry of its own for them.
  const svcMark = Number(/fd64::100 \. tcp \. 80 : (0x[0-9a-f]+)/.exec(nftElements(lab, 'd', 'netdev', 'svc6'))?.[1]);
  const r2Mark = /(0x[0-9a-f]+) : fd64::12/.exec(nftElements(lab, 'd', 'netdev', 'be6'))?.[1];
  assert.ok(svcMark > 0 && r2Mark, `the service and r2 have their marks (both real servers are up: health checks leave from the director's own address, not the deprecated VIP):\n${nftElements(lab, 'd', 'netdev', 'svc6')}${nftElements(lab, 'd', 'netdev', 'be6')}`);
  const ports = [41001, 41002, 41003, 41004];
  const keys = ports.map((p) => conn6Key(svcMark, 'fd64::1', p));
  lab.exec('d', 'nft', [[
    `add element netdev fulcrum conn6 { ${keys.map((k) => `${k} timeout 60s : ${r2Mark}`).join(', ')} }`,
    `add element netdev fulcrum client6 { ${keys.map((k) => `${k} : fd64::1`).join(', ')} }`,
    `add element netdev fulcrum cport6 { ${keys.map((k, i) => `${k} : ${ports[i] ?? 0}`).join(', ')} }`,
  ].join('; ')]);
  const others = (): string[] => (nftElements(lab, 'd', 'netdev', 'conn6').match(/0x[0-9a-f]{8} \. \d+ \. \d+/g) ?? []).filter((k) => !keys.includes(k));
  const before = others();
  const pinned = ports.map((p) => lab.exec('c', 'curl', ['-s', '-g', '-m', '2', '--local-port', String(p), `http://[${VIP}]/`]).split(' ')[0]);
  assert.deepEqual(pinned, ['r2', 'r2', 'r2', 'r2'], 'every pinned flow reached the server its entry names');
  assert.deepEqual(others().filter((k) => !before.includes(k)), [], 'the kernel found the entries: it made none of its own');
}));

testOnce('NAT over IPv6: VIP port 80 maps to the real servers\' 8080 and they see the true client address', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = 'fd65:1::100';
  const lab = natLab(t, 'fkm2', { ...NAT, vip: VIP });
  await serveHttp(lab, [8080]);
  await startDirector(lab, 'd', dir, service(`${VIP} 80`, 'NAT', [['fd65::11', 8080], ['fd65::12', 8080]]));
  for (const a of await answersFromAll(lab, 'c', `http://[${VIP}]/`, 2, 4)) assert.match(a, /^r[12] fd65:1::1$/);
  assert.match(nftElements(lab, 'd', 'inet', 'nat6'), /fd65::11 \. 8080/);
  // Replies come in and go out on the same device: the kernel redirects the real servers to
  // the (on-link) client, and an IPv6 host accepts that; Fulcrum drops those redirects.
  const more = Array.from({ length: 10 }, () => curl(lab, 'c', `http://[${VIP}]/`));
  assert.deepEqual(more.filter((a) => a === null), [], 'every later request answered too');
  assert.match(lab.exec('d', 'nft', ['list', 'chain', 'inet', 'fulcrum', 'noredirect']), /nd-redirect .* counter packets [1-9]/, 'a redirect was held back');
}));

test('UDP over DR: new flows reach both real servers, whose answers come from the VIP straight to the client', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = '10.64.0.100';
  const lab = drLab(t, 'fkm3', { ...DR, vip: VIP });
  for (const r of ['r1', 'r2']) udpServer(lab, r, VIP, 53);
  await startDirector(lab, 'd', dir, service(`${VIP} 53`, 'DR', [['10.64.0.11', 53], ['10.64.0.12', 53]], { protocol: 'UDP' }));
  const dump = await capture(lab, 'd', 'udp port 53');
  const answers = await udpFromBoth(lab, VIP, 53);
  for (const a of answers) assert.match(a, /^r[12] 10\.64\.0\.1$/);
  const { requests, replies } = byDirection(await dump.stop(), VIP, 53);
  assert.ok(requests.length > 0, 'the director saw the questions');
  assert.deepEqual(replies, [], 'no answer went through the director');
  assert.match(nftElements(lab, 'd', 'netdev', 'conn4'), /10\.64\.0\.1 \. \d+ timeout 5m/, 'UDP flows hold the udp timeout (300 s)');
}));

testOnce('UDP over NAT: VIP port 53 maps to the real servers\' 5353; answers return through the director', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = '10.65.1.100';
  const lab = natLab(t, 'fkm4', { ...NAT, vip: VIP });
  for (const r of ['r1', 'r2']) udpServer(lab, r, '0.0.0.0', 5353);
  await startDirector(lab, 'd', dir, service(`${VIP} 53`, 'NAT', [['10.65.0.11', 5353], ['10.65.0.12', 5353]], { protocol: 'UDP' }));
  const answers = await udpFromBoth(lab, VIP, 53);
  for (const a of answers) assert.match(a, /^r[12] 10\.65\.1\.1$/);
  assert.match(lab.exec('d', 'cat', ['/proc/net/nf_conntrack']), /udp .* dst=10\.65\.1\.100 sport=\d+ dport=53 src=10\.65\.0\.1[12] dst=10\.65\.1\.1 sport=5353/);
}));

test('DR firewall-mark service: the ports the operator marks go to one real server per client; others are not forwarded', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = '10.64.0.100';
  const lab = drLab(t, 'fkm5', { ...DR, vip: VIP });
  await serveHttp(lab, [80, 8080, 8081]);
  // The operator's rule, as with iptables -t mangle for IPVS: mark VIP:80 and VIP:8080 with 7
  // before Fulcrum's ingress chain (priority -500) classifies the packet.
  operatorMark(lab, 'netdev', 'type filter hook ingress device "eth0" priority -510;', VIP);
  await startDirector(lab, 'd', dir, service('fwmark 7', 'DR', [['10.64.0.11', 80], ['10.64.0.12', 80]], { extra: '  persistence_timeout 30\n' }));
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'service up', 100);
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) {
    for (const port of [80, 8080]) seen.add((curl(lab, 'c', `http://${VIP}:${port}/`) ?? 'failed').split(' ')[0] ?? '');
  }
  assert.equal(seen.size, 1, `both marked ports answered by one real server: ${[...seen].join(',')}`);
  assert.match([...seen][0] ?? '', /^r[12]$/);
  const templates = nftElements(lab, 'd', 'netdev', 'persist4');
  assert.equal([...templates.matchAll(/ \. 10\.64\.0\.1 timeout 30s/g)].length, 1, `one template for the port group:\n${templates}`);
  assert.equal(curl(lab, 'c', `http://${VIP}:8081/`, 1), null, 'an unmarked port is not forwarded (the director itself refuses it)');
}));

testOnce('NAT firewall-mark service: marked ports keep their port on the real servers, which see the client', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = '10.65.1.100';
  const lab = natLab(t, 'fkm6', { ...NAT, vip: VIP });
  await serveHttp(lab, [80, 8080]);
  // The operator's mark, before Fulcrum's nat prerouting chain (priority -101).
  operatorMark(lab, 'inet', 'type filter hook prerouting priority -150;', VIP);
  await startDirector(lab, 'd', dir, service('fwmark 7', 'NAT', [['10.65.0.11', 0], ['10.65.0.12', 0]], { checkPort: 80 }));
  for (const port of [80, 8080]) {
    for (const a of await answersFromAll(lab, 'c', `http://${VIP}:${port}/`, 2)) assert.match(a, /^r[12] 10\.65\.1\.1$/);
  }
  assert.match(nftElements(lab, 'd', 'inet', 'nat4a'), /10\.65\.0\.11/, 'port 0: the client\'s port is kept');
}));

test('DR port-0 service (PCC): every port of the VIP, one real server per client across ports', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = '10.64.0.100';
  const lab = drLab(t, 'fkm7', { ...DR, vip: VIP });
  lab.host('c2', '10.64.0.3');
  lab.host('c3', '10.64.0.4');
  await serveHttp(lab, [80, 8443]);
  await startDirector(lab, 'd', dir, service(`${VIP} 0`, 'DR', [['10.64.0.11', 0], ['10.64.0.12', 0]], { extra: '  persistence_timeout 60\n', checkPort: 80 }));
  await until(() => curl(lab, 'c', `http://${VIP}:8443/`) !== null, 20_000, 'service up', 100);
  const chosen: string[] = [];
  for (const c of ['c', 'c2', 'c3']) {
    const got = new Set<string>();
    for (const port of [80, 8443, 80, 8443]) {
      const a = curl(lab, c, `http://${VIP}:${port}/`) ?? 'failed';
      assert.match(a, new RegExp(`^r[12] ${lab.hosts.get(c)?.ipv4.replace(/\./g, '\\.') ?? ''}$`));
      got.add(a.split(' ')[0] ?? '');
    }
    assert.equal(got.size, 1, `${c} stayed on one real server over both ports: ${[...got].join(',')}`);
    chosen.push([...got][0] ?? '');
  }
  assert.equal(new Set(chosen).size, 2, `different clients were spread: ${chosen.join(',')}`);
  const templates = nftElements(lab, 'd', 'netdev', 'persist4');
  for (const a of ['10.64.0.1', '10.64.0.3', '10.64.0.4']) assert.ok(templates.includes(`${a} `), `a template for ${a}:\n${templates}`);
}));

test('DR on a VRRP address: in the kernel while BACKUP, classified on the VRRP interface, forwarding once MASTER', { skip, timeout: 120_000 }, (t) => withTempDir(async (dir) => {
  const VIP = '10.64.0.100';
  const lab = drLab(t, 'fkm8', { ...DR, vip: VIP, directorVip: false });
  await serveHttp(lab, [80]);
  const vrrp = `vrrp_instance VI_1 {\n  state BACKUP\n  interface eth0\n  virtual_router_id 58\n  priority 100\n  advert_int 1\n  virtual_ipaddress {\n    ${VIP}/32\n  }\n}\n`;
  await startDirector(lab, 'd', dir, vrrp + service(`${VIP} 80`, 'DR', [['10.64.0.11', 80], ['10.64.0.12', 80]]));
  // BACKUP for 3 × advert_int + skew: the address is not here, the service already is.
  assert.doesNotMatch(lab.exec('d', 'ip', ['-br', 'addr', 'show', 'eth0']), /10\.64\.0\.100/, 'BACKUP holds no VIP');
  assert.match(nftElements(lab, 'd', 'netdev', 'svc4'), /10\.64\.0\.100 \. tcp \. 80/);
  assert.match(lab.exec('d', 'nft', ['list', 'chain', 'netdev', 'fulcrum', 'in_eth0']), /hook ingress device "eth0"/);
  await until(() => lab.exec('d', 'ip', ['-br', 'addr', 'show', 'eth0']).includes(VIP), 10_000, 'MASTER with the VIP', 100);
  for (const a of await answersFromAll(lab, 'c', `http://${VIP}/`, 2, 4)) assert.match(a, /^r[12] 10\.64\.0\.1$/);
}));
