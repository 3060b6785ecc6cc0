/**
 * The suite every `Bpf` implementation runs: FakeBpf in the unit tests (fake-bpf.test.ts),
 * libbpf against the kernel with the real program inside a test namespace
 * (bpf-kernel-suite.ts, started by test/kernel-xdp.test.ts). What the XDP plane relies on:
 * element writes, reads and deletes; dumps; per-CPU values; maps pinned and reused by the
 * next load; XDP attach, query, name and detach; unpinning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Bpf } from './bpf.js';
import { BACKEND_SIZE, COUNTERS_SIZE, serviceKey, SVC_KEY_SIZE, SVC_VAL_SIZE, u32Key } from '../dataplane/xdp/layout.js';

export interface BpfHarness {
  readonly bpf: Bpf;
  readonly objectPath: string;
  /** A fresh pin directory (on a bpf filesystem for the real one). */
  readonly pinDir: string;
  /** A device without an XDP program that the suite may attach to. */
  readonly ifindex: number;
}

export function bpfCompliance(name: string, make: () => BpfHarness): void {
  test(`${name}: map elements — write, read, dump, delete; a missing key reads null and deletes false`, () => {
    const h = make();
    const obj = h.bpf.load(h.objectPath, h.pinDir);
    try {
      const services = obj.mapFd('services');
      const key = serviceKey('inet', '192.0.2.1', 'tcp', 80);
      const value = Buffer.alloc(SVC_VAL_SIZE, 7);
      assert.equal(h.bpf.lookup(services, key, SVC_VAL_SIZE), null);
      h.bpf.update(services, key, value);
      assert.deepEqual(h.bpf.lookup(services, key, SVC_VAL_SIZE), value);
      const other = serviceKey('inet6', '2001:db8::1', 'udp', 53);
      h.bpf.update(services, other, Buffer.alloc(SVC_VAL_SIZE, 9));
      const dumped = h.bpf.dump(services, SVC_KEY_SIZE, SVC_VAL_SIZE).map((e) => e.key.toString('hex')).sort();
      assert.deepEqual(dumped, [key.toString('hex'), other.toString('hex')].sort());
      assert.equal(h.bpf.delete(services, key), true);
      assert.equal(h.bpf.delete(services, key), false);
      assert.equal(h.bpf.lookup(services, key, SVC_VAL_SIZE), null);
      // An array map: every index exists, zeroed until written.
      const backends = obj.mapFd('backends');
      assert.deepEqual(h.bpf.lookup(backends, u32Key(5), BACKEND_SIZE), Buffer.alloc(BACKEND_SIZE));
      // A per-CPU map: one value per possible CPU.
      const cpus = h.bpf.possibleCpus();
      assert.ok(cpus >= 1);
      assert.equal(h.bpf.lookup(obj.mapFd('svc_stats'), u32Key(1), COUNTERS_SIZE * cpus)?.length, COUNTERS_SIZE * cpus);
    } finally {
      obj.close();
      h.bpf.unpin(h.pinDir);
    }
  });

  test(`${name}: a second load reuses the maps pinned by the first; unpin forgets them`, () => {
    const h = make();
    const key = serviceKey('inet', '192.0.2.2', 'tcp', 443);
    const first = h.bpf.load(h.objectPath, h.pinDir);
    h.bpf.update(first.mapFd('services'), key, Buffer.alloc(SVC_VAL_SIZE, 1));
    first.close();
    const second = h.bpf.load(h.objectPath, h.pinDir);
    assert.deepEqual(h.bpf.lookup(second.mapFd('services'), key, SVC_VAL_SIZE), Buffer.alloc(SVC_VAL_SIZE, 1), 'the pinned map came back');
    second.close();
    h.bpf.unpin(h.pinDir);
    const third = h.bpf.load(h.objectPath, h.pinDir);
    assert.equal(h.bpf.lookup(third.mapFd('services'), key, SVC_VAL_SIZE), null, 'a fresh map after unpinning');
    third.close();
    h.bpf.unpin(h.pinDir);
  });

  test(`${name}: XDP attach, query by id and name, refuse a second attach, detach`, () => {
    const h = make();
    const obj = h.bpf.load(h.objectPath, h.pinDir);
    try {
      assert.equal(h.bpf.xdpAttached(h.ifindex), 0);
      h.bpf.xdpAttach(h.ifindex, obj.progFd('xdp_root'));
      const id = h.bpf.xdpAttached(h.ifindex);
      assert.ok(id > 0);
      assert.equal(h.bpf.programName(id), 'xdp_root');
      assert.throws(() => h.bpf.xdpAttach(h.ifindex, obj.progFd('xdp_balancer')), 'a device that has a program is not taken over');
      assert.equal(h.bpf.xdpAttached(h.ifindex), id);
      // The root's program array takes the balancer (what an upgrade swaps).
      h.bpf.update(obj.mapFd('root_progs'), u32Key(0), u32Key(obj.progFd('xdp_balancer')));
      h.bpf.xdpDetach(h.ifindex);
      assert.equal(h.bpf.xdpAttached(h.ifindex), 0);
    } finally {
      obj.close();
      h.bpf.unpin(h.pinDir);
    }
  });
}
