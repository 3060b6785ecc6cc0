/**
 * Shared scheduling state: two "workers" (two SharedState views over the same buffers, each
 * with its own ServiceScheduler, as two worker threads have) schedule as one director.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ServiceScheduler, type ServerFields } from '../../scheduling/service.js';
import { addrFold } from '../../scheduling/hash.js';
import type { Dest, FlowKey } from '../../scheduling/types.js';
import type { AnySchedulerName } from '../../scheduling/types.js';
import type { Persistence } from '../../model/types.js';
import { realServerKey } from '../../model/keys.js';
import { allocateShared, SharedDest, SharedState, type SharedBuffers } from './state.js';

const SERVERS = [
  { family: 'inet' as const, address: '10.0.0.1', port: 80, weight: 3, uthreshold: 0, lthreshold: 0 },
  { family: 'inet' as const, address: '10.0.0.2', port: 80, weight: 2, uthreshold: 0, lthreshold: 0 },
  { family: 'inet' as const, address: '10.0.0.3', port: 80, weight: 1, uthreshold: 0, lthreshold: 0 },
];

function worker(buf: SharedBuffers, w: number, scheduler: AnySchedulerName, persistence: Persistence | null = null, servers: ServerFields[] = SERVERS): { st: SharedState; sched: ServiceScheduler } {
  const st = new SharedState(buf, w);
  const bySlot = new Map<number, Dest>();
  const slotOf = new Map(servers.map((s, i) => [realServerKey(s), i]));
  const sched = new ServiceScheduler({ endpoint: { kind: 'address', family: 'inet', address: '10.9.9.9', port: 80 }, protocol: 'tcp', scheduler, schedFlags: [], persistence }, {
    position: st.position(0),
    templates: st.templateStore(0, (slot) => bySlot.get(slot)),
    makeDest: (rs) => {
      const slot = slotOf.get(realServerKey(rs)) as number;
      const d = new SharedDest(st, slot, realServerKey(rs), rs.family, rs.address, rs.port, addrFold(rs.address), rs);
      bySlot.set(slot, d);
      return d;
    },
  });
  sched.setServers(servers);
  return { st, sched };
}

function setup(scheduler: AnySchedulerName, persistence: Persistence | null = null, servers: ServerFields[] = SERVERS): { a: ServiceScheduler; b: ServiceScheduler; main: SharedState } {
  const buf = allocateShared({ services: 4, dests: 8, workers: 2, templateBuckets: 16 });
  const main = new SharedState(buf, -1);
  main.resetService(0);
  const a = worker(buf, 0, scheduler, persistence, servers).sched;
  const b = worker(buf, 1, scheduler, persistence, servers).sched;
  return { a, b, main };
}

const flow = (client: number): FlowKey => ({ saddrFold: client, sport: 1000 + client, daddrFold: 1, dport: 80 });
const name = (d: Dest | null): string => (d ? d.address.slice(-1) : '-');

test('wrr: picks alternating between two workers follow the one IPVS sequence (A A B A B C), exact in aggregate', () => {
  const { a, b } = setup('wrr');
  const seq: string[] = [];
  for (let i = 0; i < 12; i++) seq.push(name((i % 2 ? b : a).schedule(flow(i), `10.1.0.${i}`, 0)));
  assert.deepEqual(seq.join(''), '112123112123');
});

test('rr: one rotation over both workers', () => {
  const { a, b } = setup('rr');
  const seq: string[] = [];
  for (let i = 0; i < 6; i++) seq.push(name((i % 3 ? b : a).schedule(flow(i), `10.1.0.${i}`, 0)));
  assert.deepEqual(seq.join(''), '123123');
});

test('lc: a worker sees the connections the other one holds (per-worker counts would pick server 1 again)', () => {
  const equal = SERVERS.map((s) => ({ ...s, weight: 1 }));
  const { a, b, main } = setup('lc', null, equal);
  const held = [a.schedule(flow(1), '10.1.0.1', 0), a.schedule(flow(2), '10.1.0.2', 0)];
  assert.deepEqual(held.map(name), ['1', '2']);
  assert.equal(name(b.schedule(flow(3), '10.1.0.3', 0)), '3', 'b chooses the one server without connections');
  assert.deepEqual([0, 1, 2].map((s) => main.destCounts(s).active), [1, 1, 1]);
  a.finish(held[0] as Dest, '10.1.0.1', true, 0);
  assert.equal(name(b.schedule(flow(4), '10.1.0.4', 0)), '1');
});

test('thresholds hold across workers: -x 2 over two workers overloads the server at 2 in total', () => {
  const capped = SERVERS.map((s, i) => ({ ...s, weight: 1, uthreshold: i === 0 ? 2 : 0 }));
  const { a, b, main } = setup('rr', null, capped);
  const d1 = a.schedule(flow(1), 'c1', 0);
  b.schedule(flow(2), 'c2', 0);
  b.schedule(flow(3), 'c3', 0);
  const d4 = b.schedule(flow(4), 'c4', 0);
  assert.equal(name(d1), '1');
  assert.equal(name(d4), '1');
  assert.equal(main.destCounts(0).overloaded, true, 'one connection from each worker reaches the threshold');
  const next = [a.schedule(flow(5), 'c5', 0), b.schedule(flow(6), 'c6', 0), a.schedule(flow(7), 'c7', 0)].map(name);
  assert.ok(!next.includes('1'), `no new connection for the overloaded server (${next.join('')})`);
});

test('persistence: a client sticks to one server whichever worker accepts it; the template outlives the connection by its timeout', () => {
  const { a, b, main } = setup('rr', { timeout: 60, netmask: '255.255.255.255', prefixLength: 32 });
  const first = a.schedule(flow(1), '192.0.2.7', 100) as Dest;
  for (let i = 0; i < 5; i++) assert.equal((b.schedule(flow(10 + i), '192.0.2.7', 101 + i) as Dest).key, first.key, 'worker b follows the template');
  assert.equal(main.templateCounts(105).get((first as SharedDest).slot), 1);
  a.finish(first, '192.0.2.7', true, 110);
  assert.equal((a.schedule(flow(20), '192.0.2.7', 150) as Dest).key, first.key, 'within the timeout');
});

test('a worker that dies is taken out of every count and template reference', () => {
  const { a, b, main } = setup('rr', { timeout: 60, netmask: '255.255.255.255', prefixLength: 32 });
  a.schedule(flow(1), '192.0.2.1', 0);
  a.schedule(flow(2), '192.0.2.2', 0);
  const kept = b.schedule(flow(3), '192.0.2.3', 0) as Dest;
  const base = new Float64Array(1024);
  assert.equal(main.forgetWorker(0, base), 2, 'two connections lost with worker a');
  assert.deepEqual([0, 1, 2].map((s) => main.destCounts(s).active).reduce((x, y) => x + y, 0), 1, "only b's connection is left");
  // a's templates no longer control connections: they expire by their timeout.
  const counts = main.templateCounts(61);
  assert.equal([...counts.values()].reduce((x, y) => x + y, 0), 1, "at 61 s only the template of b's live connection is left");
  b.finish(kept, '192.0.2.3', true, 1);
});

test('a full template table is refused (the connection goes on without persistence), never unbounded', () => {
  const buf = allocateShared({ services: 1, dests: 4, workers: 1, templateBuckets: 1 });
  new SharedState(buf, -1).resetService(0);
  const w = worker(buf, 0, 'rr', { timeout: 60, netmask: '255.255.255.255', prefixLength: 32 }).sched;
  for (let i = 0; i < 6; i++) assert.ok(w.schedule(flow(i), `192.0.2.${i}`, 0));
  assert.equal(w.templatesRefused, 2, '4 ways in one bucket: the 5th and 6th clients get none');
});

test('retired slots are reset together: their counts, and every template pointing at them, in one pass', () => {
  const { a, main } = setup('rr', { timeout: 60, netmask: '255.255.255.255', prefixLength: 32 });
  const d1 = a.schedule(flow(1), '192.0.2.1', 0) as SharedDest;
  const d2 = a.schedule(flow(2), '192.0.2.2', 0) as SharedDest;
  a.finish(d1, '192.0.2.1', true, 1);
  a.finish(d2, '192.0.2.2', true, 1);
  assert.equal(main.templateCounts(2).size, 2);
  main.resetDests([d1.slot, d2.slot]);
  assert.equal(main.templateCounts(2).size, 0, 'no template points at a slot that may be handed out again');
  assert.deepEqual([d1.slot, d2.slot].map((s) => main.destCounts(s).active + main.destCounts(s).inactive), [0, 0]);
});
