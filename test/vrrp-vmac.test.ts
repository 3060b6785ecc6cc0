/**
 * use_vmac against keepalived's use_vmac (issue 21): a Fulcrum and a keepalived on one
 * segment, each putting the VIP on a macvlan with the virtual router MAC 00:00:5e:00:01:VRID.
 * The adverts come from that MAC, the client resolves the VIP to it, and a failover in either
 * direction leaves the client's neighbour entry as it was — the point of a virtual MAC.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { withTempDir } from '../src/testing/index.js';
import { isRoot, testLab, until } from '../src/testing/netns.js';
import { curl, httpServer, listening } from '../src/testing/lvs-lab.js';
import { logEvent, startFulcrum, startKeepalived, vrrpInstance } from '../src/testing/vrrp-lab.js';
import { ensureCommand } from '../src/testing/peers.js';

const skip = isRoot() ? false : 'needs root (network namespaces, raw sockets, macvlan); CI runs as root';
const PREFIX = `fvm${process.pid % 10000}`;

test('use_vmac with keepalived: the VIP lives on vrrp.76 with MAC 00:00:5e:00:01:4c on whichever is MASTER; adverts come from that MAC; the client\'s neighbour entry never changes across failover and back', { skip, timeout: 90_000 }, async (t) => {
  ensureCommand('tcpdump', 'tcpdump');
  const lab = testLab(t, PREFIX);
  await withTempDir(async (dir) => {
    lab.host('c', '10.71.0.9');
    lab.host('d1', '10.71.0.2');
    lab.host('k', '10.71.0.3');
    for (const h of ['d1', 'k']) httpServer(lab, h, 8080);
    for (const h of ['d1', 'k']) await listening(lab, h, 8080);
    const vip = '10.71.0.100';
    const mac = '00:00:5e:00:01:4c';
    const inst = (priority: number): string => vrrpInstance({ vrid: 76, priority, version: 3, advert: 0.1, vip: `${vip}/24`, extra: '  use_vmac\n' });
    const vmacOf = (host: string): string => lab.exec(host, 'ip', ['-d', 'link', 'show', 'vrrp.76']);
    const neighbour = (): string => lab.exec('c', 'ip', ['neigh', 'show', vip]).trim();

    let d1 = startFulcrum(lab, 'd1', dir, inst(200));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    // keepalived leaves arp_announce alone: a reply from the VIP that leaves by eth0 would make
    // eth0 ask for the client with the VIP as sender, mapping the VIP to eth0's MAC in the
    // client. An operator sets it by hand; Fulcrum sets it with the vmac (asserted below).
    lab.exec('k', 'sysctl', ['-qw', 'net.ipv4.conf.eth0.arp_announce=2']);
    const k = startKeepalived(lab, 'k', dir, inst(100));
    await k.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000);
    const link = vmacOf('d1');
    assert.match(link, /macvlan mode private/);
    assert.match(link, new RegExp(`link/ether ${mac}`));
    assert.match(lab.exec('d1', 'ip', ['-4', 'addr', 'show', 'dev', 'vrrp.76']), /10\.71\.0\.100\/24/, 'the VIP is on the vmac');
    assert.doesNotMatch(lab.exec('d1', 'ip', ['-4', 'addr', 'show', 'dev', 'eth0']), /10\.71\.0\.100/);
    assert.equal(lab.exec('d1', 'cat', ['/proc/sys/net/ipv4/conf/eth0/arp_ignore']).trim(), '1', 'the base interface answers ARP only for its own addresses');
    assert.equal(lab.exec('d1', 'cat', ['/proc/sys/net/ipv4/conf/eth0/arp_announce']).trim(), '2', 'and asks with its own address');
    assert.match(vmacOf('k'), new RegExp(`link/ether ${mac}`), 'keepalived made the same interface');

    assert.equal(curl(lab, 'c', `http://${vip}:8080/`), 'd1 10.71.0.9');
    assert.match(neighbour(), new RegExp(`lladdr ${mac}`), 'the client resolved the VIP to the virtual MAC');
    // Three adverts as the client sees them, with their Ethernet header.
    const seen = lab.exec('c', 'timeout', ['5', 'tcpdump', '-i', 'eth0', '-n', '-e', '-c', '3', 'ip proto 112'], 8000).trim().split('\n');
    assert.equal(seen.length, 3, seen.join('\n'));
    for (const l of seen) assert.match(l, new RegExp(`^\\S+ ${mac} > 01:00:5e:00:00:12, .*10\\.71\\.0\\.2 > 224\\.0\\.0\\.18`), 'an advert from the virtual MAC, with the base address');

    // Fulcrum stops: keepalived takes over on its own vrrp.76; the client's entry is the same MAC.
    d1.child.kill('SIGTERM');
    await new Promise((r) => d1.child.once('exit', r));
    await k.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000);
    assert.throws(() => vmacOf('d1'), 'Fulcrum removed its vmac at stop');
    assert.deepEqual(['arp_ignore', 'arp_filter', 'arp_announce'].map((k) => lab.exec('d1', 'cat', [`/proc/sys/net/ipv4/conf/eth0/${k}`]).trim()), ['0', '0', '0'], 'and put the base\'s ARP settings back');
    await until(() => curl(lab, 'c', `http://${vip}:8080/`, 1) === 'k 10.71.0.9', 10_000, 'keepalived answering on the VIP');
    assert.match(neighbour(), new RegExp(`lladdr ${mac}`));

    // Fulcrum returns with the higher priority and preempts.
    const mark = k.lines.length;
    d1 = startFulcrum(lab, 'd1', dir, inst(200));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    await k.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000, mark);
    await until(() => curl(lab, 'c', `http://${vip}:8080/`, 1) === 'd1 10.71.0.9', 10_000, 'Fulcrum answering on the VIP again');
    assert.match(neighbour(), new RegExp(`lladdr ${mac}`));
  });
});

test('use_vmac over IPv6 with keepalived: the VIP on vrrp.78 with MAC 00:00:5e:00:02:4e; adverts from that MAC and the interface\'s link-local; the client\'s neighbour entry is the virtual MAC before and after failover', { skip, timeout: 90_000 }, async (t) => {
  ensureCommand('tcpdump', 'tcpdump');
  const lab = testLab(t, `${PREFIX}6`);
  await withTempDir(async (dir) => {
    lab.host('c', '10.73.0.9');
    lab.host('d1', '10.73.0.2');
    lab.host('k', '10.73.0.3');
    lab.exec('c', 'ip', ['-6', 'addr', 'add', 'fd00:73::9/64', 'dev', 'eth0', 'nodad']);
    for (const h of ['d1', 'k']) httpServer(lab, h, 8080);
    for (const h of ['d1', 'k']) await listening(lab, h, 8080);
    const vip = 'fd00:73::100';
    const mac = '00:00:5e:00:02:4e';
    const url = `http://[${vip}]:8080/`;
    const inst = (priority: number): string => vrrpInstance({ vrid: 78, priority, version: 3, advert: 0.1, vip: `${vip}/64`, extra: '  use_vmac\n' });
    const neighbour = (): string => lab.exec('c', 'ip', ['-6', 'neigh', 'show', vip]).trim();
    const d1 = startFulcrum(lab, 'd1', dir, inst(200));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    const k = startKeepalived(lab, 'k', dir, inst(100));
    await k.waitLine((l) => /Entering BACKUP STATE/.test(l), 10_000);
    assert.match(lab.exec('d1', 'ip', ['-d', 'link', 'show', 'vrrp.78']), new RegExp(`link/ether ${mac}`));
    assert.match(lab.exec('d1', 'ip', ['-6', 'addr', 'show', 'dev', 'vrrp.78']), /fd00:73::100\/64/);
    const seen = lab.exec('c', 'timeout', ['5', 'tcpdump', '-i', 'eth0', '-n', '-e', '-c', '3', 'ip6 proto 112'], 8000).trim().split('\n');
    assert.equal(seen.length, 3, seen.join('\n'));
    for (const l of seen) assert.match(l, new RegExp(`^\\S+ ${mac} > 33:33:00:00:00:12, .*fe80::\\S+ > ff02::12`), 'an advert from the virtual MAC and a link-local');
    await until(() => curl(lab, 'c', url, 1) === 'd1 fd00:73::9', 10_000, 'Fulcrum answering on the VIP');
    assert.match(neighbour(), new RegExp(`lladdr ${mac}`), 'the client resolved the VIP to the virtual MAC');
    d1.child.kill('SIGTERM');
    await new Promise((r) => d1.child.once('exit', r));
    await k.waitLine((l) => /Entering MASTER STATE/.test(l), 10_000);
    assert.throws(() => lab.exec('d1', 'ip', ['link', 'show', 'vrrp.78']), 'Fulcrum removed its vmac at stop');
    await until(() => curl(lab, 'c', url, 1) === 'k fd00:73::9', 10_000, 'keepalived answering on the VIP');
    assert.match(neighbour(), new RegExp(`lladdr ${mac}`));
  });
});
