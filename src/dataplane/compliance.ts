/**
 * The suite every DataPlane implementation runs (the fake, the userspace proxy, and later
 * the kernel planes): the control side of the boundary — keyed deltas, refusals with
 * stable codes that leave the table unchanged, stats that reflect what was applied.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ForwardingMethod } from '../model/types.js';
import { DEFAULT_TIMEOUTS, DataPlaneErrorCode, type DataPlane, type ServerSpec, type ServiceSpec } from './types.js';

export interface ComplianceHarness {
  readonly plane: DataPlane;
  /** A port the plane may use for a service on `address` (free right now). */
  freePort(): Promise<number>;
  /** The address services listen on (loopback for the proxy). */
  readonly address: string;
  readonly method: ForwardingMethod;
}

export function serviceSpec(address: string, port: number, method: ForwardingMethod, extra: Partial<ServiceSpec> = {}): ServiceSpec {
  return {
    key: `tcp ${address}:${port}`,
    endpoint: { kind: 'address', family: 'inet', address, port },
    protocol: 'tcp',
    listen: [{ family: 'inet', address, port }],
    scheduler: 'wrr',
    schedFlags: [],
    persistence: null,
    method,
    ops: false,
    timeouts: DEFAULT_TIMEOUTS,
    ...extra,
  };
}

export function serverSpec(address: string, port: number, weight: number, method: ForwardingMethod): ServerSpec {
  return { key: `${address}:${port}`, family: 'inet', address, port, weight, method, uthreshold: 0, lthreshold: 0 };
}

export function dataPlaneCompliance(name: string, make: () => Promise<ComplianceHarness>): void {
  const withPlane = async (fn: (h: ComplianceHarness) => Promise<void>): Promise<void> => {
    const h = await make();
    try {
      await fn(h);
    } finally {
      await h.plane.close(0);
    }
  };

  test(`${name}: applies keyed deltas and reports them in stats`, () => withPlane(async (h) => {
    const port = await h.freePort();
    const svc = serviceSpec(h.address, port, h.method);
    const r = await h.plane.apply({ ops: [
      { op: 'add-service', service: svc },
      { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.2', 9001, 3, h.method) },
      { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.3', 9002, 1, h.method) },
    ] });
    assert.deepEqual(r.failed, []);
    assert.equal(r.applied.length, 3);
    const s = h.plane.stats();
    assert.equal(s.length, 1);
    assert.equal(s[0]?.spec.key, svc.key);
    assert.deepEqual(s[0]?.servers.map((x) => [x.spec.key, x.spec.weight, x.active, x.inactive]), [
      ['127.0.0.2:9001', 3, 0, 0], ['127.0.0.3:9002', 1, 0, 0],
    ]);
    assert.equal(s[0]?.counters.conns, 0);
    assert.equal(h.plane.zero(svc.key), true, 'zero one service');
    assert.equal(h.plane.zero(), true, 'zero all');
    assert.equal(h.plane.zero('tcp 127.0.0.1:1'), false, 'zero an unknown service');

    await h.plane.apply({ ops: [{ op: 'weight', service: svc.key, key: '127.0.0.2:9001', weight: 0 }] });
    assert.equal(h.plane.stats()[0]?.servers[0]?.spec.weight, 0);
    await h.plane.apply({ ops: [{ op: 'edit-server', service: svc.key, server: { ...serverSpec('127.0.0.3', 9002, 5, h.method), uthreshold: 10 } }] });
    assert.equal(h.plane.stats()[0]?.servers[1]?.spec.uthreshold, 10);
    await h.plane.apply({ ops: [{ op: 'edit-service', service: { ...svc, scheduler: 'rr' } }] });
    assert.equal(h.plane.stats()[0]?.spec.scheduler, 'rr');
    assert.equal(h.plane.stats()[0]?.servers.length, 2, 'editing a service keeps its servers');
    await h.plane.apply({ ops: [{ op: 'remove-server', service: svc.key, key: '127.0.0.2:9001' }] });
    assert.deepEqual(h.plane.stats()[0]?.servers.map((x) => x.spec.key), ['127.0.0.3:9002']);
    await h.plane.apply({ ops: [{ op: 'remove-service', key: svc.key }] });
    assert.deepEqual(h.plane.stats(), []);
  }));

  test(`${name}: refuses bad ops with stable codes, applies the rest, table unchanged by refusals`, () => withPlane(async (h) => {
    const port = await h.freePort();
    const svc = serviceSpec(h.address, port, h.method);
    const r = await h.plane.apply({ ops: [
      { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.2', 1, 1, h.method) },
      { op: 'add-service', service: svc },
      { op: 'add-service', service: svc },
      { op: 'edit-server', service: svc.key, server: serverSpec('127.0.0.9', 1, 1, h.method) },
      { op: 'remove-server', service: svc.key, key: '127.0.0.9:1' },
      { op: 'weight', service: svc.key, key: '127.0.0.9:1', weight: 2 },
      { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.2', 1, 1, h.method) },
      { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.2', 1, 7, h.method) },
      { op: 'remove-service', key: 'tcp 127.0.0.1:1' },
    ] });
    assert.deepEqual(r.failed.map((f) => f.code), [
      DataPlaneErrorCode.NO_SERVICE, DataPlaneErrorCode.EXISTS, DataPlaneErrorCode.NO_SERVER, DataPlaneErrorCode.NO_SERVER,
      DataPlaneErrorCode.NO_SERVER, DataPlaneErrorCode.EXISTS, DataPlaneErrorCode.NO_SERVICE,
    ]);
    for (const f of r.failed) assert.ok(f.message.length > 0);
    assert.equal(r.applied.length, 2);
    assert.deepEqual(h.plane.stats()[0]?.servers.map((x) => [x.spec.key, x.spec.weight]), [['127.0.0.2:1', 1]]);
  }));

  test(`${name}: a closed plane refuses further plans`, async () => {
    const h = await make();
    await h.plane.close(0);
    const port = await h.freePort();
    const r = await h.plane.apply({ ops: [{ op: 'add-service', service: serviceSpec(h.address, port, h.method) }] });
    assert.equal(r.failed[0]?.code, DataPlaneErrorCode.CLOSED);
    assert.deepEqual(h.plane.stats(), []);
  });
}
