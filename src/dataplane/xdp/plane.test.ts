import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeBpf } from '../../sys/fake-bpf.js';
import { FakeXdpHost } from '../../sys/xdp-host.js';
import { dataPlaneCompliance, serverSpec, serviceSpec } from '../compliance.js';
import { DataPlaneErrorCode, type SyncedFlow } from '../types.js';
import { XdpDataPlane } from './plane.js';
import {
  addressBytes, BackendFlag, connEntry, decodeBackend, deviceValue, MAX_SLOTS, serviceKey, templateEntry, u32Key,
} from './layout.js';

const PIN = '/fake/bpf/fulcrum';

function lab(): { bpf: FakeBpf; host: FakeXdpHost; plane: (o?: { keepOnClose?: boolean; mono?: () => bigint }) => XdpDataPlane } {
  const bpf = new FakeBpf(2);
  const host = new FakeXdpHost();
  host.links.set('eth0', { ifindex: 2, mac: '02:00:00:00:00:02' });
  host.routes.set('default', { device: 'eth0', gateway: null, source: '10.0.0.2' });
  host.addresses.set('10.0.0.100', 'eth0');
  host.neighbourTable.set('10.0.0.11@eth0', '02:00:00:00:00:11');
  host.neighbourTable.set('10.0.0.12@eth0', '02:00:00:00:00:12');
  const plane = (o: { keepOnClose?: boolean; mono?: () => bigint } = {}): XdpDataPlane => new XdpDataPlane({
    bpf, host, objectPath: '/fake/fulcrum_xdp.o', pinDir: PIN, pollMs: 3_600_000, keepOnClose: o.keepOnClose ?? false, now: () => 0,
    monoNs: o.mono ?? (() => 0n),
  });
  return { bpf, host, plane };
}

dataPlaneCompliance('XdpDataPlane (FakeBpf)', () => {
  const l = lab();
  let port = 7000;
  return Promise.resolve({ plane: l.plane(), address: '127.0.0.1', method: 'dr' as const, freePort: () => Promise.resolve(port++) });
});

const VIP = '10.0.0.100';
const svc = serviceSpec(VIP, 80, 'dr', { plane: 'xdp' });
const rs = (last: number, weight: number): ReturnType<typeof serverSpec> => serverSpec(`10.0.0.${last}`, 80, weight, 'dr');

/** The slot table of service `id` as written: backend ids. */
function slotsOf(bpf: FakeBpf, id: number, n: number): number[] {
  const m = bpf.entries(PIN, 'slots');
  return Array.from({ length: n }, (_, i) => m.get(u32Key(id * MAX_SLOTS + i).toString('hex'))?.readUInt32LE(0) ?? 0);
}

test('XDP plane: a DR service becomes a services entry, a wrr slot table and resolved backends; xdp_root on the VIP device', async () => {
  const { bpf, plane } = lab();
  const p = plane();
  const r = await p.apply({ ops: [
    { op: 'add-service', service: svc },
    { op: 'add-server', service: svc.key, server: rs(11, 3) },
    { op: 'add-server', service: svc.key, server: rs(12, 1) },
  ] });
  assert.deepEqual(r.failed, []);
  const services = bpf.entries(PIN, 'services');
  const v = services.get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'));
  assert.ok(v, 'the service key is written');
  const id = v.readUInt32LE(0);
  assert.equal(v.readUInt32LE(4), 32, 'wrr: 32 slots');
  assert.equal(v.readUInt32LE(48), 0x46554c43, 'the default hash_seed, as every director has it');
  const slots = slotsOf(bpf, id, 32);
  const backends = new Map([...bpf.entries(PIN, 'backends')].map(([k, b]) => [Buffer.from(k, 'hex').readUInt32LE(0), decodeBackend(b)]));
  const idOf = (addr: string): number => [...backends].find(([, b]) => b.address === addr)?.[0] ?? -1;
  assert.equal(slots.filter((x) => x === idOf('10.0.0.11')).length, 24, 'weight 3 of 4: 24 of 32 slots');
  assert.equal(slots.filter((x) => x === idOf('10.0.0.12')).length, 8);
  for (const b of backends.values()) assert.equal(b.flags, BackendFlag.live | BackendFlag.resolved);
  assert.equal(bpf.programName(bpf.xdpAttached(2)), 'xdp_root', 'xdp_root attached to the VIP device');
  // The balancer is in the root's program array.
  assert.ok(bpf.entries(PIN, 'root_progs').get(u32Key(0).toString('hex')));

  // A drain: the server leaves the slots, stays a live backend (its flows go on).
  await p.apply({ ops: [{ op: 'weight', service: svc.key, key: '10.0.0.12:80', weight: 0 }] });
  assert.equal(slotsOf(bpf, id, 32).filter((x) => x === idOf('10.0.0.12')).length, 0);
  // A removal with a connection still on it: trashed (not live) until the connection ends.
  const conn = connEntry({ client: '10.0.0.1', sport: 40000, service: id, dport: 80, backend: idOf('10.0.0.12'), closing: false, lastNs: 0n, packets: 1 });
  bpf.update(p['fd']('conns'), conn.key, conn.value);
  await p.apply({ ops: [{ op: 'remove-server', service: svc.key, key: '10.0.0.12:80' }] });
  const trashed = (): number | undefined => decodeBackend(bpf.lookup(p['fd']('backends'), u32Key(idOf('10.0.0.12')), 64) ?? Buffer.alloc(64)).flags;
  assert.equal(trashed(), BackendFlag.resolved, 'trashed: resolved, not live');
  await p.poll();
  assert.equal(trashed(), BackendFlag.resolved, 'kept while its connection lives');
  assert.equal((await p.connections()).length, 1);
  bpf.delete(p['fd']('conns'), conn.key);
  await p.poll();
  assert.equal(trashed(), 0, 'freed once its connections ended');
  await p.close(0);
  assert.equal(bpf.xdpAttached(2), 0, 'detached on close');
  assert.equal(bpf.pinned.has(PIN), false, 'unpinned on close');
});

test('XDP plane: refuses fwmark services and NAT with stable codes', async () => {
  const { plane } = lab();
  const p = plane();
  const fw = { ...svc, key: 'fwmark 7', endpoint: { kind: 'fwmark' as const, family: 'inet' as const, mark: 7 }, listen: [] };
  const r = await p.apply({ ops: [
    { op: 'add-service', service: fw },
    { op: 'add-service', service: { ...svc, method: 'nat' } },
    { op: 'add-service', service: svc },
    { op: 'add-server', service: svc.key, server: { ...rs(11, 1), method: 'nat' } },
  ] });
  assert.deepEqual(r.failed.map((f) => f.code), [DataPlaneErrorCode.UNSUPPORTED, DataPlaneErrorCode.UNSUPPORTED, DataPlaneErrorCode.UNSUPPORTED]);
  assert.match(r.failed[0]?.message ?? '', /firewall mark/);
  await p.close(0);
});

test('XDP plane: an unresolved real server is solicited, written unresolved, and resolved by the poll', async () => {
  const { bpf, host, plane } = lab();
  const p = plane();
  await p.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(13, 1) }] });
  assert.deepEqual(host.solicited, ['10.0.0.13@eth0']);
  const b = (): number => decodeBackend([...bpf.entries(PIN, 'backends').values()][0] ?? Buffer.alloc(64)).flags;
  assert.equal(b(), BackendFlag.live);
  host.neighbourTable.set('10.0.0.13@eth0', '02:00:00:00:00:13');
  await p.poll();
  assert.equal(b(), BackendFlag.live | BackendFlag.resolved);
  await p.close(0);
});

test('XDP plane: a new run takes over the pinned maps — same service and backend ids, xdp_root kept', async () => {
  const { bpf, plane } = lab();
  const first = plane({ keepOnClose: true });
  await first.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) }, { op: 'add-server', service: svc.key, server: rs(12, 1) }] });
  const before = new Map(bpf.entries(PIN, 'backends'));
  const svcBefore = bpf.entries(PIN, 'services').get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'))?.readUInt32LE(0);
  const rootId = bpf.xdpAttached(2);
  await first.close(0);
  assert.equal(bpf.xdpAttached(2), rootId, 'kept attached');
  const second = plane();
  // The order differs: ids must come from the pinned maps, not from the order.
  await second.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(12, 1) }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  assert.equal(bpf.loads, 2);
  assert.equal(bpf.entries(PIN, 'services').get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'))?.readUInt32LE(0), svcBefore);
  assert.deepEqual(new Map(bpf.entries(PIN, 'backends')), before, 'each real server kept its id');
  assert.equal(bpf.xdpAttached(2), rootId, 'xdp_root not re-attached');
  await second.close(0);
});

test('XDP plane: what a previous run left and the new configuration lacks is dropped at the first poll, not before', async () => {
  const { bpf, plane } = lab();
  const other = serviceSpec(VIP, 443, 'dr', { plane: 'xdp' });
  const first = plane({ keepOnClose: true });
  await first.apply({ ops: [
    { op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) },
    { op: 'add-service', service: other }, { op: 'add-server', service: other.key, server: rs(12, 1) },
  ] });
  await first.close(0);
  const second = plane();
  await second.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  const has443 = (): boolean => bpf.entries(PIN, 'services').has(serviceKey('inet', VIP, 'tcp', 443).toString('hex'));
  assert.equal(has443(), true, 'kept until the first poll (another plan may still claim it)');
  await second.poll();
  assert.equal(has443(), false, 'dropped at the first poll');
  const live = [...bpf.entries(PIN, 'backends').values()].map(decodeBackend).filter((b) => b.flags !== 0).map((b) => b.address);
  assert.deepEqual(live, ['10.0.0.11'], 'the unclaimed real server is freed');
  await second.close(0);
});

test('XDP plane: connection sync — flows and templates exported with packet counts, installed on another director by address, a refresh unchanged', async () => {
  const a = lab();
  const master = a.plane({ mono: () => 10_000_000_000n });
  const persistent = { ...svc, persistence: { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' } };
  await master.apply({ ops: [{ op: 'add-service', service: persistent }, { op: 'add-server', service: svc.key, server: rs(11, 1) }, { op: 'add-server', service: svc.key, server: rs(12, 1) }] });
  const id = a.bpf.entries(PIN, 'services').get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'))?.readUInt32LE(0) ?? 0;
  const be12 = [...a.bpf.entries(PIN, 'backends')].find(([, v]) => decodeBackend(v).address === '10.0.0.12')?.[0] ?? '';
  const bid = Buffer.from(be12, 'hex').readUInt32LE(0);
  const c = connEntry({ client: '10.0.0.1', sport: 40000, service: id, dport: 80, backend: bid, closing: false, lastNs: 9_000_000_000n, packets: 5 });
  a.bpf.update(master['fd']('conns'), c.key, c.value);
  const t = templateEntry({ client: addressBytes('10.0.0.1'), service: id, backend: bid, lastNs: 9_000_000_000n });
  a.bpf.update(master['fd']('templates'), t.key, t.value);
  await master.poll();
  assert.equal(master.stats()[0]?.servers.find((x) => x.spec.address === '10.0.0.12')?.persistent, 1, 'the template counted for its server');
  const flows = await master.syncExport();
  assert.deepEqual(flows.map((f) => [f.template, f.client, f.cport, f.virtual, f.vport, f.server, f.dport, f.state, f.packets]), [
    [false, '10.0.0.1', 40000, VIP, 80, '10.0.0.12', 80, 'established', 5],
    [true, '10.0.0.1', 0, VIP, 80, '10.0.0.12', 80, 'other', undefined],
  ]);

  // The backup: another host, its own ids (the servers added in the other order).
  const b = lab();
  const backup = b.plane({ mono: () => 50_000_000_000n });
  await backup.apply({ ops: [{ op: 'add-service', service: persistent }, { op: 'add-server', service: svc.key, server: rs(12, 1) }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  const r = await backup.syncInstall([...flows, { ...(flows[0] as SyncedFlow), server: '10.0.0.99' }, { ...(flows[0] as SyncedFlow), vport: 81 }]);
  assert.equal(r.installed, 2);
  assert.deepEqual([...r.refused], [['no-server', 1], ['no-service', 1]]);
  const localId = [...b.bpf.entries(PIN, 'backends')].find(([, v]) => decodeBackend(v).address === '10.0.0.12')?.[0] ?? '';
  const conns = [...b.bpf.entries(PIN, 'conns').values()];
  assert.equal(conns.length, 1);
  assert.equal(conns[0]?.readUInt32LE(0), Buffer.from(localId, 'hex').readUInt32LE(0), 'installed on the backup\'s id for that real server');
  assert.equal(b.bpf.entries(PIN, 'templates').size, 1);
  const again = await backup.syncInstall(flows);
  assert.equal(again.unchanged, 2, 'a refresh with time left rewrites nothing');
  await master.close(0);
  await backup.close(0);
});

test('XDP plane: each device it attaches to gets its MAC in the devices map (frames for other hosts pass)', async () => {
  const { bpf, plane } = lab();
  const p = plane();
  await p.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  assert.deepEqual(bpf.entries(PIN, 'devices').get(u32Key(2).toString('hex')), deviceValue('02:00:00:00:00:02'));
  await p.close(0);
});

test('XDP plane: a refused map write fails the service\'s ops with E_DP_KERNEL and leaves the table as it was; the retry applies', async () => {
  const { bpf, plane } = lab();
  const p = plane();
  await p.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  bpf.refuseUpdates = new Error('ENOSPC');
  const other = serviceSpec(VIP, 443, 'dr', { plane: 'xdp' });
  const r = await p.apply({ ops: [{ op: 'add-service', service: other }, { op: 'add-server', service: other.key, server: rs(12, 1) }] });
  assert.deepEqual(r.applied, []);
  assert.deepEqual(r.failed.map((f) => f.code), [DataPlaneErrorCode.KERNEL, DataPlaneErrorCode.KERNEL]);
  assert.deepEqual([...p.held.services.keys()], [svc.key], 'the table holds only what the kernel took');
  bpf.refuseUpdates = null;
  const again = await p.apply({ ops: [{ op: 'add-service', service: other }, { op: 'add-server', service: other.key, server: rs(12, 1) }] });
  assert.deepEqual(again.failed, []);
  assert.ok(bpf.entries(PIN, 'services').has(serviceKey('inet', VIP, 'tcp', 443).toString('hex')));
  await p.close(0);
});

test('XDP plane: the per-CPU counters are summed into stats — connections, packets, bytes, drops for want of a server', async () => {
  const { bpf, plane } = lab();
  const p = plane();
  await p.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  const id = bpf.entries(PIN, 'services').get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'))?.readUInt32LE(0) ?? 0;
  const perCpu = (cpus: number[][]): Buffer => Buffer.concat(cpus.map((c) => {
    const b = Buffer.alloc(32);
    c.forEach((x, i) => b.writeBigUInt64LE(BigInt(x), i * 8));
    return b;
  }));
  bpf.update(p['fd']('svc_stats'), u32Key(id), perCpu([[2, 10, 1000, 3], [1, 5, 500, 4]]));
  await p.poll();
  const s = p.stats()[0];
  assert.deepEqual([s?.counters.conns, s?.counters.inPkts, s?.counters.inBytes, s?.dropped], [3, 15, 1500, 7]);
  assert.equal(p.zero(svc.key), true);
  assert.equal(p.stats()[0]?.counters.conns, 0, 'zeroed');
  await p.poll();
  assert.equal(p.stats()[0]?.counters.conns, 0, 'still zero: the kernel counts on, the plane subtracts');
  await p.close(0);
});

test('XDP plane: a flow that has sent only its SYN is SYN_RECV — inactive, listed with the 60 s timeout, not synchronised', async () => {
  const { bpf, plane } = lab();
  const p = plane({ mono: () => 5_000_000_000n });
  await p.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  const id = bpf.entries(PIN, 'services').get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'))?.readUInt32LE(0) ?? 0;
  const bid = Buffer.from([...bpf.entries(PIN, 'backends').keys()][0] ?? '', 'hex').readUInt32LE(0);
  const half = connEntry({ client: '10.0.0.1', sport: 40001, service: id, dport: 80, backend: bid, closing: false, synOnly: true, lastNs: 5_000_000_000n, packets: 3 });
  const full = connEntry({ client: '10.0.0.1', sport: 40002, service: id, dport: 80, backend: bid, closing: false, lastNs: 5_000_000_000n, packets: 3 });
  bpf.update(p['fd']('conns'), half.key, half.value);
  bpf.update(p['fd']('conns'), full.key, full.value);
  await p.poll();
  assert.deepEqual(p.stats()[0]?.servers.map((s) => [s.active, s.inactive]), [[1, 1]]);
  assert.deepEqual((await p.connections()).map((c) => [c.client.port, c.state, c.expires]).sort(), [[40001, 'SYN_RECV', 60], [40002, 'ESTABLISHED', 900]]);
  assert.deepEqual((await p.syncExport()).map((f) => f.cport), [40002]);
  await p.close(0);
});

test('XDP plane: hash_seed reaches the program (directors that must agree hash alike)', async () => {
  const { bpf, plane } = lab();
  const p = plane();
  await p.apply({ ops: [{ op: 'add-service', service: { ...svc, scheduler: 'sh', hashSeed: 42 } }, { op: 'add-server', service: svc.key, server: rs(11, 1) }] });
  assert.equal(bpf.entries(PIN, 'services').get(serviceKey('inet', VIP, 'tcp', 80).toString('hex'))?.readUInt32LE(48), 42);
  await p.close(0);
});
