import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dataPlaneCompliance, serverSpec, serviceSpec } from './compliance.js';
import { FakeDataPlane } from './fake.js';
import { RoutingDataPlane } from './routing.js';

let port = 30000;
dataPlaneCompliance('routing (proxy + kernel fakes)', () => Promise.resolve({
  plane: new RoutingDataPlane([{ methods: ['proxy'], make: () => new FakeDataPlane() }, { methods: ['nat', 'dr', 'tun'], make: () => new FakeDataPlane() }]),
  freePort: () => Promise.resolve(port++),
  address: '127.0.0.1',
  method: 'dr',
}));

test('routing: services go to the plane of their method, the kernel plane is built on first use, a method change moves a service', async () => {
  const proxy = new FakeDataPlane();
  const kernel = new FakeDataPlane();
  let built = 0;
  const p = new RoutingDataPlane([{ methods: ['proxy'], make: () => proxy }, { methods: ['nat', 'dr', 'tun'], make: () => { built++; return kernel; } }]);
  const a = serviceSpec('127.0.0.1', 1, 'proxy');
  await p.apply({ ops: [{ op: 'add-service', service: a }, { op: 'add-server', service: a.key, server: serverSpec('127.0.0.2', 1, 1, 'proxy') }] });
  assert.equal(built, 0, 'a proxy-only configuration never builds the kernel plane');
  await p.apply({ ops: [{ op: 'edit-service', service: { ...a, method: 'nat' } }] });
  assert.equal(built, 1);
  assert.deepEqual(proxy.stats(), []);
  assert.deepEqual(kernel.stats().map((s) => [s.spec.key, s.servers.length]), [[a.key, 1]], 'moved with its real server');
});

test('routing: a slot with `accepts` takes only the services it says yes to; choosing another plane moves the service', async () => {
  const xdp = new FakeDataPlane();
  const nft = new FakeDataPlane();
  let usable = true;
  const p = new RoutingDataPlane([
    { methods: ['dr', 'tun'], accepts: (s) => s.plane === 'xdp' && usable, make: () => xdp },
    { methods: ['nat', 'dr', 'tun'], make: () => nft },
  ]);
  const a = serviceSpec('127.0.0.1', 1, 'dr', { plane: 'xdp' });
  const b = serviceSpec('127.0.0.1', 2, 'dr');
  const c = serviceSpec('127.0.0.1', 3, 'nat', { plane: 'xdp' });
  await p.apply({ ops: [{ op: 'add-service', service: a }, { op: 'add-service', service: b }, { op: 'add-service', service: c }] });
  assert.deepEqual(xdp.stats().map((s) => s.spec.key), [a.key]);
  assert.deepEqual(nft.stats().map((s) => s.spec.key), [b.key, c.key], 'DR without the choice, and NAT, stay on nftables');
  await p.apply({ ops: [{ op: 'edit-service', service: { ...a, plane: undefined } }] });
  assert.deepEqual(xdp.stats(), [], 'dropping the choice moves it to nftables');
  usable = false;
  const d = serviceSpec('127.0.0.1', 4, 'dr', { plane: 'xdp' });
  await p.apply({ ops: [{ op: 'add-service', service: d }] });
  assert.ok(nft.stats().some((s) => s.spec.key === d.key), 'XDP unusable: the service goes to nftables');
});
