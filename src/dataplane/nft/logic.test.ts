/**
 * The kernel plane's logic without root: NftDataPlane over FakeNft (an in-memory nftables)
 * and FakeKernelHost. Drains and trash, failed reads and transactions, takeover, poll —
 * every kernel call made to fail on demand, and never a deletion concluded from a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { FakeNft } from '../../sys/fake-nft.js';
import { FakeKernelHost } from '../../sys/kernel-host.js';
import { FAILURE_CHANNEL, type InternalFailure } from '../../errors/index.js';
import { serverSpec, serviceSpec } from '../compliance.js';
import { DataPlaneErrorCode } from '../types.js';
import { NftDataPlane } from './plane.js';
import { ingressChain, ingressDevice } from './ruleset.js';

const VIP = '10.80.0.1';
const svc = serviceSpec(VIP, 80, 'dr');
const r1 = serverSpec('10.80.0.11', 80, 1, 'dr');
const r2 = serverSpec('10.80.0.12', 80, 1, 'dr');

function setup(): { nft: FakeNft; host: FakeKernelHost; plane: NftDataPlane } {
  const nft = new FakeNft();
  const host = new FakeKernelHost();
  host.routes.set('default', 'eth0');
  host.addresses.set(VIP, 'eth0');
  return { nft, host, plane: new NftDataPlane({ nft, host, pollMs: 3_600_000 }) };
}

/** The backend mark the kernel uses for `address` (from be4). */
function markOf(nft: FakeNft, address: string): string {
  const m = [...nft.elements('netdev', 'be4')].find(([, v]) => v === address);
  assert.ok(m, `${address} is in be4`);
  return m[0];
}

function failures(): { list: InternalFailure[]; stop: () => void } {
  const list: InternalFailure[] = [];
  const fn = (m: unknown): void => { list.push(m as InternalFailure); };
  subscribe(FAILURE_CHANNEL, fn);
  return { list, stop: () => unsubscribe(FAILURE_CHANNEL, fn) };
}

test('a failed read never drops a draining DR server whose connections are open; it is reported, and the trash goes once the read succeeds', async () => {
  const { nft, plane } = setup();
  try {
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }, { op: 'add-server', service: svc.key, server: r2 }] });
    assert.deepEqual(r.failed, []);
    const m2 = markOf(nft, r2.address);
    // The kernel forwards a connection to r2.
    nft.kernelSet('netdev', 'conn4', `0x00001000 . 10.9.9.9 . 40000`, m2, { expires: 800 });
    await plane.poll();
    assert.equal(plane.stats()[0]?.servers.find((s) => s.spec.key === r2.key)?.active, 1);
    // r2 is removed while its connection lives: it stays in be4 (IPVS's trash), out of `alive`.
    await plane.apply({ ops: [{ op: 'remove-server', service: svc.key, key: r2.key }] });
    assert.equal(nft.elements('netdev', 'be4').get(m2), r2.address);
    assert.ok(!nft.elements('netdev', 'alive').has(m2));

    // Every read the poll makes fails in turn: the backend stays each time.
    const f = failures();
    try {
      for (const set of ['closing4', 'conn4', 'client6', 'cport6', 'closing6', 'conn6', 'conns', 'pkts', 'nodest']) {
        nft.failList = (what) => (what.endsWith(` ${set}`) ? new Error(`EIO reading ${set}`) : null);
        await assert.rejects(plane.poll(), (err: unknown) => (err as { code?: string }).code === 'E_NFT_READ', set);
        assert.equal(nft.elements('netdev', 'be4').get(m2), r2.address, `still forwarding after a failed read of ${set}`);
      }
    } finally {
      f.stop();
      nft.failList = null;
    }
    // The connection ends: the next successful poll forgets the trash.
    nft.kernelSet('netdev', 'conn4', `0x00001000 . 10.9.9.9 . 40000`, undefined);
    await plane.poll();
    assert.ok(!nft.elements('netdev', 'be4').has(m2), 'the trash is gone once no connection uses it');
  } finally {
    await plane.close(0);
  }
});

test('the background poll reports a failed read with its stable code (and keeps going)', async () => {
  const nft = new FakeNft();
  const host = new FakeKernelHost();
  host.routes.set('default', 'eth0');
  host.addresses.set(VIP, 'eth0');
  const plane = new NftDataPlane({ nft, host, pollMs: 20 });
  const f = failures();
  try {
    await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }] });
    nft.failList = () => new Error('EIO');
    const deadline = Date.now() + 5000;
    while (plane.pollFailures < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    assert.ok(plane.pollFailures >= 2, 'the poll ran again after a failure');
    assert.ok(f.list.some((x) => x.component === 'nftables' && x.code === 'E_NFT_READ'));
  } finally {
    f.stop();
    await plane.close(0);
  }
});

test('a failed conntrack read (NAT) is a failed poll, not zero connections', async () => {
  const { nft, host, plane } = setup();
  try {
    const nsvc = serviceSpec(VIP, 81, 'nat');
    await plane.apply({ ops: [{ op: 'add-service', service: nsvc }, { op: 'add-server', service: nsvc.key, server: serverSpec('10.80.0.11', 8080, 1, 'nat') }] });
    host.conntrackFailure = new Error('EACCES');
    await assert.rejects(plane.poll(), (err: unknown) => (err as { code?: string }).code === 'E_CONNTRACK_READ');
    host.conntrackFailure = null;
    await plane.poll();
  } finally {
    await plane.close(0);
  }
});

test('every transaction the plane sends can fail: nothing changes, the ops are refused with E_DP_KERNEL, and a retry applies them', async () => {
  const { nft, plane } = setup();
  try {
    nft.failRun = () => new Error('ENOBUFS');
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }] });
    assert.deepEqual(r.applied, []);
    assert.ok(r.failed.every((x) => x.code === DataPlaneErrorCode.KERNEL));
    assert.equal(nft.hasTable('netdev'), false);
    assert.deepEqual(plane.stats(), []);
    nft.failRun = null;
    const again = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }, { op: 'add-server', service: svc.key, server: r2 }] });
    assert.deepEqual(again.failed, []);
    assert.equal(nft.elements('netdev', 'be4').size, 2);
    // A weight change refused by the kernel keeps the old weight in the plane's table.
    nft.failRun = () => new Error('EBUSY');
    const w = await plane.apply({ ops: [{ op: 'weight', service: svc.key, key: r1.key, weight: 7 }] });
    assert.equal(w.failed[0]?.code, DataPlaneErrorCode.KERNEL);
    assert.equal(plane.stats()[0]?.servers.find((x) => x.spec.key === r1.key)?.spec.weight, 1);
  } finally {
    nft.failRun = null;
    await plane.close(0);
  }
});

test('takeover: a second plane adopts the table a previous run left, keeps its ids and sends only the difference', async () => {
  const { nft, host, plane } = setup();
  await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }, { op: 'add-server', service: svc.key, server: r2 }] });
  const be4 = nft.elements('netdev', 'be4');
  // The first run leaves the table (as --keep-forwarding or a crash would).
  const keep = new NftDataPlane({ nft, host, pollMs: 3_600_000, keepOnClose: true });
  await keep.close(0);
  const runsBefore = nft.runs.length;
  const next = new NftDataPlane({ nft, host, pollMs: 3_600_000 });
  try {
    const r = await next.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }, { op: 'add-server', service: svc.key, server: r2 }] });
    assert.deepEqual(r.failed, []);
    assert.deepEqual(nft.elements('netdev', 'be4'), be4, 'the same marks: connection entries stay valid');
    const sent = nft.runs.slice(runsBefore).flat();
    assert.ok(!sent.some((c) => c.startsWith('delete table')), 'the table is never replaced');
    assert.ok(!sent.some((c) => /^(add|delete) element netdev fulcrum be4 /.test(c)), 'no backend element re-sent');
    // A failed listing during takeover refuses the plan instead of starting from nothing.
    const third = new NftDataPlane({ nft, host, pollMs: 3_600_000 });
    nft.failList = () => new Error('EIO');
    const t = await third.apply({ ops: [{ op: 'add-service', service: svc }] });
    assert.equal(t.applied.length, 0);
    nft.failList = null;
    await third.close(0).catch(() => undefined);
  } finally {
    await next.close(0);
  }
});

test('ingress chain names: every valid device name becomes an nft identifier and reads back', () => {
  for (const d of ['eth0', 'eth0.100', 'veth-a@x', 'br_x1', 'a_x40b']) {
    const c = ingressChain(d);
    assert.match(c, /^in_[A-Za-z0-9_.-]+$/, d);
    assert.equal(ingressDevice(c), d);
  }
  assert.equal(ingressChain('eth0'), 'in_eth0', 'plain names unchanged (existing tables are taken over)');
});

test('every host call the plane makes can fail: a failed route, address or tunnel lookup refuses the plan with nothing changed, and a retry applies it; a failed tunnel removal at stop is reported', async () => {
  const { nft, host, plane } = setup();
  const f = failures();
  try {
    for (const call of ['routeDevice', 'addressDevice', 'ensureTunnel'] as const) {
      host.fail = (c) => (c === call ? new Error(`${call} failed`) : null);
      const tsvc = serviceSpec(VIP, 90, call === 'ensureTunnel' ? 'tun' : 'dr');
      const rs = serverSpec('10.80.0.21', 90, 1, call === 'ensureTunnel' ? 'tun' : 'dr');
      const before = nft.runs.length;
      const r = await plane.apply({ ops: [{ op: 'add-service', service: tsvc }, { op: 'add-server', service: tsvc.key, server: rs }] });
      assert.deepEqual(r.applied, [], call);
      assert.ok(r.failed.every((x) => x.code === DataPlaneErrorCode.KERNEL), `${call}: ${r.failed.map((x) => x.code).join()}`);
      assert.equal(nft.runs.length, before, `${call}: no transaction was sent`);
      assert.equal(plane.stats().length, 0, `${call}: nothing in the table`);
      host.fail = null;
      const ok = await plane.apply({ ops: [{ op: 'add-service', service: tsvc }, { op: 'add-server', service: tsvc.key, server: rs }] });
      assert.deepEqual(ok.failed, [], call);
      await plane.apply({ ops: [{ op: 'remove-service', key: tsvc.key }] });
    }
    await plane.apply({ ops: [{ op: 'add-service', service: serviceSpec(VIP, 91, 'tun') }, { op: 'add-server', service: `tcp ${VIP}:91`, server: serverSpec('10.80.0.22', 91, 1, 'tun') }] });
    host.fail = (c) => (c === 'removeTunnel' ? new Error('EBUSY') : null);
    await plane.close(0);
    assert.ok(f.list.some((x) => x.component === 'nftables' && /EBUSY/.test(x.message)), 'the failed removal is reported');
  } finally {
    f.stop();
    host.fail = null;
    await plane.close(0);
  }
});

test('sync: the plane exports its DR flows and templates with the service and server they use, and installs another director\'s by address', async () => {
  const a = setup();
  const b = setup();
  try {
    // The backup knows the same service, but its ids differ: another service came first.
    const other = serviceSpec('10.80.0.2', 81, 'dr');
    await b.plane.apply({ ops: [{ op: 'add-service', service: other }, { op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r2 }, { op: 'add-server', service: svc.key, server: r1 }] });
    await a.plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }, { op: 'add-server', service: svc.key, server: r2 }] });
    const m1 = markOf(a.nft, r1.address);
    a.nft.kernelSet('netdev', 'conn4', '0x00001000 . 10.9.9.9 . 40000', m1, { expires: 800 });
    a.nft.kernelSet('netdev', 'conn4', '0x00001000 . 10.9.9.8 . 40001', m1, { expires: 100 });
    a.nft.kernelSet('netdev', 'closing4', '0x00001000 . 10.9.9.8 . 40001', '', { expires: 100 });
    a.nft.kernelSet('netdev', 'persist4', '0x00001000 . 10.9.9.0', m1, { expires: 300 });
    assert.deepEqual(await a.plane.syncExport(), [], 'connections come from the poll, which has not run; no persistent service: no templates');
    await a.plane.apply({ ops: [{ op: 'edit-service', service: { ...svc, persistence: { timeout: 900, netmask: '255.255.255.0', prefixLength: 24 } } }] });
    await a.plane.poll();
    const flows = await a.plane.syncExport();
    assert.deepEqual(flows.map((f) => [f.template, f.client, f.cport, f.virtual, f.vport, f.server, f.dport, f.state, f.timeout, f.method]).sort(), [
      [false, '10.9.9.8', 40001, VIP, 80, '10.80.0.11', 80, 'closing', 120, 'dr'],
      [false, '10.9.9.9', 40000, VIP, 80, '10.80.0.11', 80, 'established', 900, 'dr'],
      [true, '10.9.9.0', 0, VIP, 80, '10.80.0.11', 80, 'other', 900, 'dr'],
    ].sort());
    const unknown = { ...flows[0] as (typeof flows)[number], virtual: '10.80.0.99' };
    const gone = { ...flows[0] as (typeof flows)[number], server: '10.80.0.13', client: '10.9.9.7' };
    const r = await b.plane.syncInstall([...flows, unknown, gone]);
    assert.equal(r.installed, 3);
    assert.deepEqual([...r.refused], [['no-service', 1], ['no-server', 1]]);
    // On the backup the service is id 2 and r1 its second server: the entries carry its marks.
    const bm1 = markOf(b.nft, r1.address);
    assert.equal(bm1, '0x00002002');
    const conns = b.nft.elements('netdev', 'conn4');
    assert.equal(conns.get('0x00002000 . 10.9.9.9 . 40000'), bm1);
    assert.equal(conns.get('0x00002000 . 10.9.9.8 . 40001'), bm1);
    assert.ok(b.nft.elements('netdev', 'closing4').has('0x00002000 . 10.9.9.8 . 40001'));
    assert.equal(b.nft.elements('netdev', 'persist4').get('0x00002000 . 10.9.9.0'), bm1);
    // A refresh soon after changes nothing in the kernel; a flow that moved is rewritten.
    const runs = b.nft.runs.length;
    const again = await b.plane.syncInstall(flows);
    assert.deepEqual([again.installed, again.unchanged], [0, 3]);
    assert.equal(b.nft.runs.length, runs, 'no transaction for an unchanged refresh');
    const moved = flows.map((f) => (f.cport === 40000 ? { ...f, server: '10.80.0.12' } : f));
    assert.equal((await b.plane.syncInstall(moved)).installed, 1);
    assert.equal(b.nft.elements('netdev', 'conn4').get('0x00002000 . 10.9.9.9 . 40000'), markOf(b.nft, r2.address));
  } finally {
    await a.plane.close(0);
    await b.plane.close(0);
  }
});

test('sync threshold: DR flows carry the packets the kernel counted in seen4, and the sender holds back those under 3; a flow seen4 lacks goes at once', async () => {
  const { SyncSender } = await import('../../sync/engine.js');
  const { nft, plane } = setup();
  try {
    await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }] });
    const m1 = markOf(nft, r1.address);
    for (const [port, packets] of [[40001, 1], [40002, 3], [40003, null]] as const) {
      nft.kernelSet('netdev', 'conn4', `0x00001000 . 10.9.9.9 . ${port}`, m1, { expires: 800 });
      if (packets !== null) nft.kernelSet('netdev', 'seen4', `0x00001000 . 10.9.9.9 . ${port}`, '', { expires: 800, counter: { packets, bytes: 60 * packets } });
    }
    await plane.poll();
    const flows = await plane.syncExport();
    assert.deepEqual(flows.map((f) => [f.cport, f.packets]).sort(), [[40001, 1], [40002, 3], [40003, undefined]]);
    const sender = new SyncSender();
    assert.deepEqual(sender.due(flows, 0).map((f) => f.cport).sort(), [40002, 40003], 'a lone SYN is not synchronised');
    nft.kernelSet('netdev', 'seen4', '0x00001000 . 10.9.9.9 . 40001', '', { expires: 800, counter: { packets: 4, bytes: 240 } });
    assert.deepEqual(sender.due(await plane.syncExport(), 1).map((f) => f.cport), [40001], 'it goes once it has its third packet');
    assert.ok(nft.runs.flat().some((c) => /^add rule netdev fulcrum out4 meta l4proto != udp update @seen4 \{ meta mark & 0xfffff000 \. ip saddr \. th sport timeout 900s counter \}$/.test(c)), 'every forwarded IPv4 packet is counted');
  } finally {
    await plane.close(0);
  }
});

test('sync (IPv6 DR): flows keyed by the kernel\'s hashes are exported with their client (client6/cport6) and installed under the keys the backup\'s kernel computes', async () => {
  const { conn6Key } = await import('./ruleset.js');
  const VIP6 = 'fd80::1';
  const s6 = serviceSpec(VIP6, 80, 'dr', { key: `tcp [${VIP6}]:80`, endpoint: { kind: 'address', family: 'inet6', address: VIP6, port: 80 }, listen: [{ family: 'inet6', address: VIP6, port: 80 }] });
  const six = (a: string): ReturnType<typeof serverSpec> => ({ ...serverSpec(a, 80, 1, 'dr'), family: 'inet6' });
  const [a1, a2] = [six('fd80::11'), six('fd80::12')];
  const mk = (): ReturnType<typeof setup> => {
    const x = setup();
    x.host.addresses.set(VIP6, 'eth0');
    return x;
  };
  const a = mk();
  const b = mk();
  try {
    await a.plane.apply({ ops: [{ op: 'add-service', service: s6 }, { op: 'add-server', service: s6.key, server: a1 }, { op: 'add-server', service: s6.key, server: a2 }] });
    // On the backup an IPv4 service came first: the IPv6 one has another id there.
    await b.plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-service', service: s6 }, { op: 'add-server', service: s6.key, server: a2 }, { op: 'add-server', service: s6.key, server: a1 }] });
    const mark2 = [...a.nft.elements('netdev', 'be6')].find(([, v]) => v === a2.address)?.[0] ?? '';
    const svcA = Number(mark2) & 0xfffff000;
    for (const [client, port, closing] of [['fd90::9', 40000, false], ['fd90::8', 40001, true]] as const) {
      const k = conn6Key(svcA, client, port);
      a.nft.kernelSet('netdev', 'conn6', k, mark2, { expires: 800 });
      a.nft.kernelSet('netdev', 'client6', k, client);
      a.nft.kernelSet('netdev', 'cport6', k, String(port));
      a.nft.kernelSet('netdev', 'seen6', k, '', { expires: 800, counter: { packets: 5, bytes: 300 } });
      if (closing) a.nft.kernelSet('netdev', 'closing6', k, '', { expires: 100 });
    }
    await a.plane.poll();
    const flows = await a.plane.syncExport();
    assert.deepEqual(flows.map((f) => [f.family, f.client, f.cport, f.virtual, f.server, f.state, f.packets]).sort(), [
      ['inet6', 'fd90::8', 40001, VIP6, 'fd80::12', 'closing', 5],
      ['inet6', 'fd90::9', 40000, VIP6, 'fd80::12', 'established', 5],
    ]);
    const r = await b.plane.syncInstall(flows);
    assert.deepEqual([r.installed, [...r.refused]], [2, []]);
    const bMark = [...b.nft.elements('netdev', 'be6')].find(([, v]) => v === a2.address)?.[0] ?? '';
    const svcB = Number(bMark) & 0xfffff000;
    assert.notEqual(svcB, svcA, 'the two directors\' ids differ');
    const k9 = conn6Key(svcB, 'fd90::9', 40000);
    const k8 = conn6Key(svcB, 'fd90::8', 40001);
    assert.equal(b.nft.elements('netdev', 'conn6').get(k9), bMark);
    assert.equal(b.nft.elements('netdev', 'conn6').get(k8), bMark);
    assert.ok(b.nft.elements('netdev', 'closing6').has(k8) && !b.nft.elements('netdev', 'closing6').has(k9));
    assert.equal(b.nft.elements('netdev', 'client6').get(k9), 'fd90::9');
    assert.equal(b.nft.elements('netdev', 'cport6').get(k9), '40000');
    // The backup lists them with their clients, as it lists its own.
    await b.plane.poll();
    const listed = (await b.plane.connections()).map((c) => `${c.client?.address ?? '?'}:${c.client?.port ?? '?'}`).sort();
    assert.deepEqual(listed, ['fd90::8:40001', 'fd90::9:40000']);
    assert.equal((await b.plane.syncInstall(flows)).unchanged, 2, 'a refresh soon after writes nothing');
  } finally {
    await a.plane.close(0);
    await b.plane.close(0);
  }
});

test('sync (IPv6 NAT): conntrack\'s IPv6 NAT connections are exported and installed through the conntrack writer as IPv6 entries', async () => {
  const { FakeConntrack } = await import('../../sys/ctnetlink.js');
  const VIP6 = 'fd80::1';
  const nsvc = serviceSpec(VIP6, 80, 'nat', { key: `tcp [${VIP6}]:80`, endpoint: { kind: 'address', family: 'inet6', address: VIP6, port: 80 }, listen: [{ family: 'inet6', address: VIP6, port: 80 }] });
  const six = (a: string): ReturnType<typeof serverSpec> => ({ ...serverSpec(a, 8080, 1, 'nat'), family: 'inet6' });
  const ct = new FakeConntrack();
  const mk = (conntrack?: InstanceType<typeof FakeConntrack>): ReturnType<typeof setup> => {
    const nft = new FakeNft();
    const host = new FakeKernelHost();
    host.routes.set('default', 'eth0');
    host.addresses.set(VIP6, 'eth0');
    return { nft, host, plane: new NftDataPlane({ nft, host, pollMs: 3_600_000, ...(conntrack ? { conntrack } : {}) }) };
  };
  const master = mk();
  const backup = mk(ct);
  try {
    await master.plane.apply({ ops: [{ op: 'add-service', service: nsvc }, { op: 'add-server', service: nsvc.key, server: six('fd80::11') }, { op: 'add-server', service: nsvc.key, server: six('fd80::12') }] });
    await backup.plane.apply({ ops: [{ op: 'add-service', service: nsvc }, { op: 'add-server', service: nsvc.key, server: six('fd80::12') }, { op: 'add-server', service: nsvc.key, server: six('fd80::11') }] });
    master.host.conntrackText = 'ipv6     10 tcp      6 431999 ESTABLISHED src=fd90::9 dst=fd80::1 sport=40000 dport=80 src=fd80::12 dst=fd90::9 sport=8080 dport=40000 [ASSURED] mark=4098 zone=0 use=2';
    await master.plane.poll();
    const flows = await master.plane.syncExport();
    assert.deepEqual(flows.map((f) => [f.family, f.method, f.client, f.cport, f.virtual, f.vport, f.server, f.dport, f.state]), [
      ['inet6', 'nat', 'fd90::9', 40000, VIP6, 80, 'fd80::12', 8080, 'established'],
    ]);
    const r = await backup.plane.syncInstall(flows);
    assert.deepEqual([r.installed, [...r.refused]], [1, []]);
    const e = ct.entries.get('tcp fd90::9:40000 fd80::1:80');
    // On the backup fd80::12 is the service's first server: mark 0x1001.
    assert.deepEqual([e?.family, e?.server, e?.dport, e?.mark], ['inet6', 'fd80::12', 8080, 0x1001]);
  } finally {
    await master.plane.close(0);
    await backup.plane.close(0);
  }
});

test('sync: when the kernel holds an entry the plane did not write, the install reads the maps and writes again; NAT without a conntrack writer is refused as unsupported, a flow of the other family as no-service', async () => {
  const { nft, plane } = setup();
  try {
    await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: r1 }, { op: 'add-server', service: svc.key, server: r2 }] });
    // Traffic here made an entry for this flow, towards r2.
    nft.kernelSet('netdev', 'conn4', '0x00001000 . 10.9.9.9 . 40000', markOf(nft, r2.address), { expires: 900 });
    const flow = { template: false, protocol: 'tcp' as const, family: 'inet' as const, method: 'dr' as const, client: '10.9.9.9', cport: 40000, virtual: VIP, vport: 80, fwmark: 0, server: r1.address, dport: 80, state: 'established' as const, timeout: 900 };
    const r = await plane.syncInstall([flow, { ...flow, method: 'nat', cport: 1 }, { ...flow, family: 'inet6', cport: 2 }]);
    assert.equal(r.installed, 1);
    assert.deepEqual([...r.refused], [['unsupported', 1], ['no-service', 1]]);
    assert.equal(nft.elements('netdev', 'conn4').get('0x00001000 . 10.9.9.9 . 40000'), markOf(nft, r1.address), 'the master\'s choice wins');
  } finally {
    await plane.close(0);
  }
});

test('sync (NAT): conntrack\'s NAT connections are exported with their real server; installed through the conntrack writer with the backup\'s own mark; full NAT is not', async () => {
  const { FakeConntrack } = await import('../../sys/ctnetlink.js');
  const nsvc = serviceSpec(VIP, 80, 'nat');
  const n1 = serverSpec('10.80.0.11', 8080, 1, 'nat');
  const n2 = serverSpec('10.80.0.12', 8080, 1, 'nat');
  const master = setup();
  const ct = new FakeConntrack();
  const backup = (() => {
    const nft = new FakeNft();
    const host = new FakeKernelHost();
    host.routes.set('default', 'eth0');
    host.addresses.set(VIP, 'eth0');
    return { nft, host, plane: new NftDataPlane({ nft, host, pollMs: 3_600_000, conntrack: ct }) };
  })();
  try {
    await master.plane.apply({ ops: [{ op: 'add-service', service: nsvc }, { op: 'add-server', service: nsvc.key, server: n1 }, { op: 'add-server', service: nsvc.key, server: n2 }] });
    await backup.plane.apply({ ops: [{ op: 'add-service', service: serviceSpec('10.80.0.2', 81, 'nat') }, { op: 'add-service', service: nsvc }, { op: 'add-server', service: nsvc.key, server: n2 }, { op: 'add-server', service: nsvc.key, server: n1 }] });
    master.host.conntrackText = [
      'ipv4     2 tcp      6 431999 ESTABLISHED src=10.9.9.9 dst=10.80.0.1 sport=40000 dport=80 src=10.80.0.12 dst=10.9.9.9 sport=8080 dport=40000 [ASSURED] mark=4098 zone=0 use=2',
      'ipv4     2 tcp      6 100 TIME_WAIT src=10.9.9.8 dst=10.80.0.1 sport=40001 dport=80 src=10.80.0.11 dst=10.9.9.8 sport=8080 dport=40001 [ASSURED] mark=4097 zone=0 use=2',
      'ipv4     2 tcp      6 50 SYN_RECV src=10.9.9.7 dst=10.80.0.1 sport=40002 dport=80 src=10.80.0.11 dst=10.9.9.7 sport=8080 dport=40002 mark=4097 zone=0 use=2',
      'ipv4     2 tcp      6 50 ESTABLISHED src=10.9.9.6 dst=10.1.1.1 sport=1 dport=22 src=10.1.1.1 dst=10.9.9.6 sport=22 dport=1 [ASSURED] mark=0 zone=0 use=2',
    ].join('\n');
    await master.plane.poll();
    const flows = await master.plane.syncExport();
    assert.deepEqual(flows.map((f) => [f.method, f.client, f.cport, f.virtual, f.vport, f.server, f.dport, f.state]).sort(), [
      ['nat', '10.9.9.8', 40001, VIP, 80, '10.80.0.11', 8080, 'closing'],
      ['nat', '10.9.9.9', 40000, VIP, 80, '10.80.0.12', 8080, 'established'],
    ], 'half-open and unmarked connections are not synchronised');
    const r = await backup.plane.syncInstall(flows);
    assert.equal(r.installed, 2);
    const e = ct.entries.get('tcp 10.9.9.9:40000 10.80.0.1:80');
    // On the backup the service is id 2 and n2 its first server: mark 0x2001.
    assert.deepEqual([e?.server, e?.dport, e?.mark, e?.tcpState], ['10.80.0.12', 8080, 0x2001, 3]);
    assert.equal(ct.entries.get('tcp 10.9.9.8:40001 10.80.0.1:80')?.tcpState, 4, 'closing → FIN_WAIT');
    // A refresh right after is not written again.
    const again = await backup.plane.syncInstall(flows);
    assert.deepEqual([again.installed, again.unchanged], [0, 2]);
    // NAT persistence templates live in the inet table's persist4, on both directors.
    await master.plane.apply({ ops: [{ op: 'edit-service', service: { ...nsvc, persistence: { timeout: 600, netmask: '255.255.255.255', prefixLength: 32 } } }] });
    master.nft.kernelSet('inet', 'persist4', '0x00001000 . 10.9.9.9', '0x00001002', { expires: 500 });
    const tpl = (await master.plane.syncExport()).filter((f) => f.template);
    assert.deepEqual(tpl.map((f) => [f.method, f.client, f.server, f.dport, f.timeout]), [['nat', '10.9.9.9', '10.80.0.12', 8080, 600]]);
    assert.equal((await backup.plane.syncInstall(tpl)).installed, 1);
    assert.equal(backup.nft.elements('inet', 'persist4').get('0x00002000 . 10.9.9.9'), '0x00002001');
    // Full NAT: the real server sees this director's address, which the backup does not have.
    await backup.plane.apply({ ops: [{ op: 'edit-service', service: { ...nsvc, snat: '10.80.0.2' } }] });
    const full = await backup.plane.syncInstall(flows.map((f) => ({ ...f, cport: f.cport + 10 })));
    assert.deepEqual([full.installed, full.refused.get('unsupported')], [0, 2]);
  } finally {
    await master.plane.close(0);
    await backup.plane.close(0);
  }
});
