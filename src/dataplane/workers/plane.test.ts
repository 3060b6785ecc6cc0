/**
 * The userspace proxy on worker threads under one control plane: the DataPlane compliance
 * suite, exact wrr over the workers together, persistence across workers, a plan that one
 * worker cannot prepare applied by none, a worker crash contained and repaired.
 */
import fs from 'node:fs';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { dataPlaneCompliance, serverSpec, serviceSpec } from '../compliance.js';
import { DataPlaneErrorCode } from '../types.js';
import { fetchText, freePort, startServer, waitFor, type TestServer } from '../../testing/net.js';
import { WorkersDataPlane } from './plane.js';

async function make(workers = 2): Promise<WorkersDataPlane> {
  const p = new WorkersDataPlane({ workers, faults: true, limits: { services: 64, dests: 256, templateBuckets: 1024 } });
  await p.ready();
  return p;
}

dataPlaneCompliance('workers (2)', async () => ({ plane: await make(), freePort: () => freePort(), address: '127.0.0.1', method: 'proxy' }));

async function withServers<T>(names: string[], fn: (s: TestServer[]) => Promise<T>): Promise<T> {
  const servers: TestServer[] = [];
  try {
    for (const n of names) servers.push(await startServer(n));
    return await fn(servers);
  } finally {
    for (const s of servers) await s.close();
  }
}

test('workers: wrr 3:2:1 over 600 connections is exact over both workers together; counters are their sum', () => withServers(['a', 'b', 'c'], async (rs) => {
  const plane = await make();
  try {
    const port = await freePort();
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, ...rs.map((s, i) => ({ op: 'add-server' as const, service: svc.key, server: serverSpec('127.0.0.1', s.port, 3 - i, 'proxy') }))] });
    assert.deepEqual(r.failed, []);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 600; i++) {
      const n = (await fetchText(port)).trim();
      seen[n] = (seen[n] ?? 0) + 1;
    }
    assert.deepEqual(seen, { a: 300, b: 200, c: 100 });
    await new Promise((res) => setTimeout(res, 1200)); // every worker publishes its counters once a second
    // No persistent service: the shared template table is not walked for the counts.
    const state = (plane as unknown as { state: { templateCounts: () => Map<number, number> } }).state;
    let walks = 0;
    const walk = state.templateCounts.bind(state);
    state.templateCounts = () => {
      walks++;
      return walk();
    };
    const st = plane.stats()[0];
    assert.equal(walks, 0);
    assert.equal(st?.counters.conns, 600);
    assert.deepEqual(st?.servers.map((x) => x.counters.conns), [300, 200, 100]);
    assert.ok(plane.workers().every((w) => w.alive));
  } finally {
    await plane.close(0);
  }
}));

test('workers: a weight change is published in the shared state — no worker is sent it — and every worker\'s next choice follows it; a plan sent later keeps it', () => withServers(['a', 'b', 'c'], async (rs) => {
  const plane = await make();
  try {
    const port = await freePort();
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    const servers = rs.map((s, i) => serverSpec('127.0.0.1', s.port, 3 - i, 'proxy'));
    assert.deepEqual((await plane.apply({ ops: [{ op: 'add-service', service: svc }, ...servers.map((server) => ({ op: 'add-server' as const, service: svc.key, server }))] })).failed, []);
    const split = async (n: number): Promise<Record<string, number>> => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const k = (await fetchText(port)).trim();
        seen[k] = (seen[k] ?? 0) + 1;
      }
      return seen;
    };
    assert.deepEqual(await split(60), { a: 30, b: 20, c: 10 });
    const sent = plane.plans.sent;
    const key = (i: number): string => servers[i]?.key ?? '';
    const r = await plane.apply({ ops: [{ op: 'weight', service: svc.key, key: key(0), weight: 0 }, { op: 'weight', service: svc.key, key: key(2), weight: 2 }] });
    assert.equal(r.applied.length, 2);
    assert.deepEqual([plane.plans.sent - sent, plane.plans.published], [0, 1], 'published, not sent');
    assert.deepEqual([...(plane.held.services.get(svc.key)?.servers.values() ?? [])].map((x) => x.weight), [0, 2, 2]);
    assert.deepEqual(await split(60), { b: 30, c: 30 }, 'both workers follow the new weights at once, exactly');
    // Weights alone, one of them for a server the service does not have: that one is refused
    // with its code, the other applied, the table otherwise as it was.
    const bad = await plane.apply({ ops: [{ op: 'weight', service: svc.key, key: '127.0.0.9:1', weight: 4 }, { op: 'weight', service: svc.key, key: key(2), weight: 2 }] });
    assert.deepEqual([bad.failed.map((f) => f.code), bad.applied.length], [[DataPlaneErrorCode.NO_SERVER], 1]);
    assert.deepEqual([plane.plans.sent - sent, plane.plans.published], [0, 2]);
    assert.deepEqual([...(plane.held.services.get(svc.key)?.servers.values() ?? [])].map((x) => x.weight), [0, 2, 2]);
    // A plan the workers are sent (a threshold edit of b) carries b's weight, and c's published weight stays.
    const b = { ...(servers[1] as NonNullable<(typeof servers)[number]>), weight: 1, uthreshold: 1000 };
    assert.deepEqual((await plane.apply({ ops: [{ op: 'edit-server', service: svc.key, server: b }] })).failed, []);
    assert.equal(plane.plans.sent - sent, 1);
    assert.deepEqual(await split(60), { b: 20, c: 40 });
  } finally {
    await plane.close(0);
  }
}));

test('workers: persistence holds whichever worker accepts — 20 clients × 6 connections, each on one real server', () => withServers(['a', 'b', 'c'], async (rs) => {
  const plane = await make();
  try {
    const port = await freePort();
    const svc = serviceSpec('127.0.0.1', port, 'proxy', { persistence: { timeout: 300, netmask: '255.255.255.255', prefixLength: 32 } });
    await plane.apply({ ops: [{ op: 'add-service', service: svc }, ...rs.map((s) => ({ op: 'add-server' as const, service: svc.key, server: serverSpec('127.0.0.1', s.port, 1, 'proxy') }))] });
    const by = new Map<string, Set<string>>();
    for (let round = 0; round < 6; round++) {
      for (let c = 0; c < 20; c++) {
        const from = `127.0.3.${10 + c}`;
        const n = await new Promise<string>((resolve, reject) => {
          const s = net.connect({ port, host: '127.0.0.1', localAddress: from });
          let buf = '';
          s.on('data', (d) => { buf += d.toString(); });
          s.on('end', () => resolve(buf.trim()));
          s.on('error', reject);
        });
        const set = by.get(from) ?? new Set<string>();
        set.add(n);
        by.set(from, set);
      }
    }
    for (const [c, set] of by) assert.equal(set.size, 1, `${c} stayed on one server (${[...set].join(',')})`);
    const spread = new Set([...by.values()].map((s) => [...s][0]));
    assert.equal(spread.size, 3, 'and the clients are spread over all three');
    assert.equal(plane.stats()[0]?.servers.reduce((n, x) => n + x.persistent, 0), 20, 'one template per client, shared');
    assert.ok(plane.stats()[0]?.servers.every((x) => x.persistent > 0));
  } finally {
    await plane.close(0);
  }
}));

test('workers: a service one worker cannot listen for is refused by all (no worker serves half a change)', async () => {
  const plane = await make();
  const blocker = net.createServer();
  try {
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen({ port, host: '127.0.0.1', exclusive: true }, r));
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.1', 1, 1, 'proxy') }] });
    assert.deepEqual(r.applied, []);
    assert.equal(r.failed[0]?.code, DataPlaneErrorCode.LISTEN);
    assert.equal(r.failed[1]?.code, DataPlaneErrorCode.NO_SERVICE, 'its server depended on it');
    assert.equal(plane.held.services.size, 0);
  } finally {
    blocker.close();
    await plane.close(0);
  }
});

test('workers: a worker that throws is restarted, the other serves meanwhile, its connections are counted as lost', () => withServers(['a', 'b'], async (rs) => {
  const plane = await make();
  try {
    const port = await freePort();
    const svc = serviceSpec('127.0.0.1', port, 'proxy', { scheduler: 'rr' });
    await plane.apply({ ops: [{ op: 'add-service', service: svc }, ...rs.map((s) => ({ op: 'add-server' as const, service: svc.key, server: serverSpec('127.0.0.1', s.port, 1, 'proxy') }))] });
    // The relay's sockets are bare descriptors: the dead worker's listener and epoll set are
    // closed by the control plane (its FdRegistry), the new worker opens its own.
    const fds = (): number => fs.readdirSync('/proc/self/fd').length;
    const before = fds();
    assert.equal(plane.crashWorker(0), true);
    await waitFor(() => (plane.workers()[0]?.restarts ?? 0) === 1, 5000, 'worker 0 to be restarted');
    let ok = 0;
    for (let i = 0; i < 40; i++) if ((await fetchText(port).catch(() => '')).trim() !== '') ok++;
    assert.equal(ok, 40, 'served throughout and after');
    await waitFor(() => plane.workers().every((w) => w.alive), 5000, 'both workers alive again');
    assert.equal(plane.held.services.size, 1, 'the table is unchanged');
    await waitFor(() => fds() === before, 5000, `as many descriptors open as before the crash (${before})`);
  } finally {
    await plane.close(0);
  }
}));

test('workers: pipes held for spliced bulk are reported by each worker and summed, and go back to 0 when the connection ends', { timeout: 60_000 }, async () => {
  // A real server that streams until its client goes: every buffer on the way fills.
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const srv = net.createServer((s) => {
    s.on('error', () => undefined);
    const pump = (): void => {
      while (!s.destroyed && s.write(chunk));
    };
    s.on('drain', pump);
    pump();
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const plane = await make();
  try {
    const port = await freePort();
    const svc = serviceSpec('127.0.0.1', port, 'proxy');
    const r = await plane.apply({ ops: [{ op: 'add-service', service: svc }, { op: 'add-server', service: svc.key, server: serverSpec('127.0.0.1', (srv.address() as net.AddressInfo).port, 1, 'proxy') }] });
    assert.deepEqual(r.failed, []);
    assert.equal(plane.pipes(), 0);
    // A reader that stops after its first bytes: the response direction is spliced by then,
    // and its pipe stays open (full) while the reader waits.
    const c = net.connect(port, '127.0.0.1');
    c.on('error', () => undefined);
    let got = 0;
    c.on('data', (d: Buffer) => {
      got += d.length;
      c.pause();
    });
    await waitFor(() => got > 0, 5000, 'first bytes');
    await waitFor(() => plane.pipes() === 1, 5000, 'a worker to report its pipe');
    c.destroy();
    await waitFor(() => plane.pipes() === 0, 5000, 'the pipe closed and reported');
  } finally {
    await plane.close(0);
    srv.close();
  }
});
