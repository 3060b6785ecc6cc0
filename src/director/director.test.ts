import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { FakeDataPlane } from '../dataplane/fake.js';
import { RoutingDataPlane } from '../dataplane/routing.js';
import { DataPlaneErrorCode, type PlanOp } from '../dataplane/types.js';
import type { FulcrumConfig } from '../model/types.js';
import { errorsOf, parseText } from '../testing/index.js';
import { Director, DIRECTOR_CHANNEL, type DirectorEvent } from './director.js';
import { nextQuorumState } from './desired.js';

function cfg(text: string): FulcrumConfig {
  const r = parseText(text);
  assert.deepEqual(errorsOf(r), []);
  return r.config;
}

const TCP = 'TCP_CHECK {\n connect_timeout 1\n }';
function conf(opts: { weights?: number[]; vsExtra?: string; rsExtra?: string; checks?: boolean } = {}): FulcrumConfig {
  const ws = opts.weights ?? [3, 2, 1];
  return cfg(`virtual_server 10.0.0.1 80 {
  lb_algo wrr
  lb_kind NAT
  ${opts.vsExtra ?? ''}
${ws.map((w, i) => `  real_server 10.0.1.${i + 1} 80 {\n weight ${w}\n ${opts.rsExtra ?? ''}\n ${opts.checks === false ? '' : TCP}\n }`).join('\n')}
}`);
}

const SVC = 'tcp 10.0.0.1:80';
const ops = (p: { ops: readonly PlanOp[] } | undefined): string[] => (p?.ops ?? []).map((o) => {
  switch (o.op) {
    case 'add-service': case 'edit-service': return `${o.op} ${o.service.key}`;
    case 'remove-service': return `${o.op} ${o.key}`;
    case 'add-server': case 'edit-server': return `${o.op} ${o.server.key} w${o.server.weight}`;
    case 'remove-server': return `${o.op} ${o.key}`;
    case 'weight': return `${o.op} ${o.key} w${o.weight}`;
    case 'load': return `${o.op} ${o.key} l${o.load}`;
  }
});

test('director: start applies the whole table; a reload applies only the difference', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setConfig(conf());
  assert.deepEqual(ops(plane.history[0]), [
    `add-service ${SVC}`, 'add-server 10.0.1.1:80 w3', 'add-server 10.0.1.2:80 w2', 'add-server 10.0.1.3:80 w1',
  ]);
  await d.setConfig(conf());
  assert.equal(plane.history.length, 1, 'an identical reload changes nothing');
  await d.setConfig(conf({ weights: [3, 5, 1] }));
  assert.deepEqual(ops(plane.history[1]), ['weight 10.0.1.2:80 w5']);
  await d.setConfig(conf({ weights: [3, 5] }));
  assert.deepEqual(ops(plane.history[2]), ['remove-server 10.0.1.3:80']);
  await d.setConfig(conf({ weights: [3, 5], vsExtra: 'lb_algo rr' }));
  assert.deepEqual(ops(plane.history[3]), [`edit-service ${SVC}`]);
  await d.setConfig(conf({ weights: [3, 5], vsExtra: 'lb_algo rr', rsExtra: 'uthreshold 100' }));
  assert.deepEqual(ops(plane.history[4]), ['edit-server 10.0.1.1:80 w3', 'edit-server 10.0.1.2:80 w5']);
  await d.setConfig(cfg(''));
  assert.deepEqual(ops(plane.history[5]), [`remove-service ${SVC}`]);
});

test('director: failed health → removed; inhibit_on_failure → weight 0; alpha starts down; no checkers → always up', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setConfig(conf());
  await d.observe(SVC, '10.0.1.2:80', { alive: false });
  assert.deepEqual(ops(plane.history.at(-1)), ['remove-server 10.0.1.2:80']);
  await d.observe(SVC, '10.0.1.2:80', { alive: true, weight: 7 });
  assert.deepEqual(ops(plane.history.at(-1)), ['add-server 10.0.1.2:80 w7']);

  const p2 = new FakeDataPlane();
  const d2 = new Director(p2);
  await d2.setConfig(conf({ vsExtra: 'inhibit_on_failure' }));
  await d2.observe(SVC, '10.0.1.1:80', { alive: false });
  assert.deepEqual(ops(p2.history.at(-1)), ['weight 10.0.1.1:80 w0']);

  const p3 = new FakeDataPlane();
  const d3 = new Director(p3);
  await d3.setConfig(conf({ vsExtra: 'alpha' }));
  assert.deepEqual(ops(p3.history[0]), [`add-service ${SVC}`], 'alpha: no server until its first success');
  await d3.observe(SVC, '10.0.1.3:80', { alive: true });
  assert.deepEqual(ops(p3.history.at(-1)), ['add-server 10.0.1.3:80 w1']);

  const p4 = new FakeDataPlane();
  const d4 = new Director(p4);
  await d4.setConfig(conf({ checks: false }));
  await d4.observe(SVC, '10.0.1.1:80', { alive: false });
  assert.equal(p4.history.length, 1, 'a server without checkers ignores observations (keepalived: always alive)');
});

test('director: a real server removed and re-added starts afresh, not with its old verdict', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setConfig(conf());
  await d.observe(SVC, '10.0.1.3:80', { alive: false });
  await d.setConfig(conf({ weights: [3, 2] }));
  await d.setConfig(conf());
  assert.deepEqual(ops(plane.history.at(-1)), ['add-server 10.0.1.3:80 w1']);
  // A verdict that arrives after its server went (a check that was under way) is not kept either.
  await d.setConfig(conf({ weights: [3, 2] }));
  await d.observe(SVC, '10.0.1.3:80', { alive: false });
  await d.setConfig(conf());
  assert.deepEqual(ops(plane.history.at(-1)), ['add-server 10.0.1.3:80 w1']);
  // Nor the verdicts of a whole service that went and came back.
  await d.observe(SVC, '10.0.1.1:80', { alive: false });
  await d.setConfig(cfg(''));
  await d.setConfig(conf());
  assert.deepEqual(ops(plane.history.at(-1)), [`add-service ${SVC}`, 'add-server 10.0.1.1:80 w3', 'add-server 10.0.1.2:80 w2', 'add-server 10.0.1.3:80 w1']);
  // A later verdict on an unchanged service still counts (its result is not taken from before).
  await d.observe(SVC, '10.0.1.2:80', { alive: false });
  assert.deepEqual(ops(plane.history.at(-1)), ['remove-server 10.0.1.2:80']);
});

test('quorum with hysteresis (truth table)', () => {
  const q = { quorum: 4, hysteresis: 1 };
  assert.equal(nextQuorumState(q, 4, undefined), true);
  assert.equal(nextQuorumState(q, 3, undefined), false);
  assert.equal(nextQuorumState(q, 3, true), true, 'stays up down to quorum − hysteresis');
  assert.equal(nextQuorumState(q, 2, true), false);
  assert.equal(nextQuorumState(q, 4, false), false, 'comes back only at quorum + hysteresis');
  assert.equal(nextQuorumState(q, 5, false), true);
});

test('director: quorum lost → sorry server replaces the live servers; regained → back, with events', async () => {
  const seen: DirectorEvent[] = [];
  const onMsg = (m: unknown): void => { seen.push(m as DirectorEvent); };
  subscribe(DIRECTOR_CHANNEL, onMsg);
  try {
    const plane = new FakeDataPlane();
    const d = new Director(plane);
    await d.setConfig(conf({ weights: [1, 1, 1], vsExtra: 'quorum 2\n sorry_server 10.0.9.9 8080' }));
    await d.observe(SVC, '10.0.1.1:80', { alive: false });
    assert.deepEqual(ops(plane.history.at(-1)), ['remove-server 10.0.1.1:80']);
    await d.observe(SVC, '10.0.1.2:80', { alive: false });
    assert.deepEqual(ops(plane.history.at(-1)), ['remove-server 10.0.1.2:80', 'remove-server 10.0.1.3:80', 'add-server 10.0.9.9:8080 w1']);
    assert.ok(seen.some((e) => e.type === 'quorum' && !e.up && e.liveWeight === 1));
    await d.observe(SVC, '10.0.1.1:80', { alive: true });
    assert.deepEqual(ops(plane.history.at(-1)), ['remove-server 10.0.9.9:8080', 'add-server 10.0.1.1:80 w1', 'add-server 10.0.1.3:80 w1']);
    assert.ok(seen.some((e) => e.type === 'quorum' && e.up));
  } finally {
    unsubscribe(DIRECTOR_CHANNEL, onMsg);
  }
});

test('director: sorry_server_inhibit keeps the sorry server at weight 0 while up', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setConfig(conf({ weights: [1], vsExtra: 'sorry_server 10.0.9.9 80\n sorry_server_inhibit' }));
  assert.ok(ops(plane.history[0]).includes('add-server 10.0.9.9:80 w0'));
  await d.observe(SVC, '10.0.1.1:80', { alive: false });
  assert.deepEqual(ops(plane.history.at(-1)), ['remove-server 10.0.1.1:80', 'weight 10.0.9.9:80 w1']);
});

test('director: ops the plane refused stay pending and are retried', async () => {
  const plane = new FakeDataPlane();
  plane.failWhen((op) => (op.op === 'add-service' ? DataPlaneErrorCode.LISTEN : null));
  const d = new Director(plane);
  const r1 = await d.setConfig(conf({ weights: [1] }));
  assert.deepEqual(r1.failed.map((f) => f.code), [DataPlaneErrorCode.LISTEN, DataPlaneErrorCode.NO_SERVICE]);
  assert.equal(d.pendingFailures.length, 2);
  plane.failWhen(null);
  const r2 = await d.reconcile();
  assert.deepEqual(r2.failed, []);
  assert.deepEqual(ops({ ops: r2.applied }), [`add-service ${SVC}`, 'add-server 10.0.1.1:80 w1']);
  assert.equal(d.pendingFailures.length, 0);
});

test('director: concurrent changes are applied one at a time, in order', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await Promise.all([d.setConfig(conf({ weights: [1] })), d.setConfig(conf({ weights: [2] })), d.setConfig(conf({ weights: [3] }))]);
  assert.deepEqual(plane.history.map(ops), [[`add-service ${SVC}`, 'add-server 10.0.1.1:80 w1'], ['weight 10.0.1.1:80 w2'], ['weight 10.0.1.1:80 w3']]);
});

test('director: a virtual_server_group expands to listen addresses; lvs_timeouts reach the spec', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setConfig(cfg(`global_defs { lvs_timeouts udp 30 }
virtual_server_group G {
  127.0.0.1-3 5353
  127.0.0.1 5354
}
virtual_server group G {
  lb_kind PROXY
  protocol UDP
  persistence_timeout 60
  real_server 127.0.0.1 53 {
  }
}`));
  const add = plane.history[0]?.ops[0];
  assert.ok(add?.op === 'add-service');
  assert.deepEqual(add.service.listen.map((l) => `${l.address}:${l.port}`), ['127.0.0.1:5353', '127.0.0.2:5353', '127.0.0.3:5353', '127.0.0.1:5354']);
  assert.deepEqual(add.service.timeouts, { tcp: 900, tcpfin: 120, udp: 30 });
});

test('director: a listen address VRRP manages carries the device it goes on (its dev, else the instance interface)', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setConfig(cfg(`vrrp_instance V {
  interface eth0
  virtual_router_id 9
  virtual_ipaddress {
    10.0.0.1/32
    10.0.0.2/32 dev eth1
  }
}
${['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((a) => `virtual_server ${a} 80 {\n  lb_kind DR\n  real_server 10.0.1.1 80 {\n  }\n}`).join('\n')}`));
  const listen = (plane.history[0]?.ops ?? []).flatMap((o) => (o.op === 'add-service' ? o.service.listen : []));
  assert.deepEqual(listen.map((l) => `${l.address} ${l.device ?? '-'}`), ['10.0.0.1 eth0', '10.0.0.2 eth1', '10.0.0.3 -']);
});

test('director: a gate keeps a service out of the plane while its health and quorum go on, and lets it back whole', async () => {
  const plane = new FakeDataPlane();
  const d = new Director(plane);
  await d.setGate(() => false);
  await d.setConfig(conf({ weights: [1, 1] }));
  assert.equal(plane.history.length, 0);
  await d.observe(SVC, '10.0.1.1:80', { alive: false });
  const r = await d.setGate((spec) => spec.listen.some((l) => l.address === '10.0.0.1'));
  assert.deepEqual(ops(plane.history.at(-1)), ['add-service tcp 10.0.0.1:80', 'add-server 10.0.1.2:80 w1']);
  assert.equal(r.failed.length, 0);
  await d.setGate(() => false);
  assert.deepEqual(ops(plane.history.at(-1)), ['remove-service tcp 10.0.0.1:80']);
});

test('director: a move between planes whose add fails converges — the director re-adds what the plane lacks instead of retrying an edit forever', async () => {
  const kernel = new FakeDataPlane();
  const proxy = new FakeDataPlane();
  const plane = new RoutingDataPlane([
    { methods: ['proxy'], make: () => proxy },
    { methods: ['nat', 'dr', 'tun'], make: () => kernel },
  ]);
  const d = new Director(plane);
  await d.setConfig(conf({ checks: false }));
  assert.ok(kernel.held.services.has(SVC));
  // NAT → PROXY, and the proxy cannot add the service (its address is busy).
  proxy.failWhen((op) => (op.op === 'add-service' ? DataPlaneErrorCode.LISTEN : null));
  const moved = conf({ checks: false, vsExtra: 'lb_kind PROXY' });
  const r1 = await d.setConfig(moved);
  assert.ok(r1.failed.length > 0);
  assert.equal(plane.held.services.has(SVC), false, 'the plane says it holds nothing for the service');
  // The next reconcile plans an add (what the plane lacks), not the old edit.
  const r2 = await d.reconcile();
  assert.equal(r2.failed[0]?.op.op, 'add-service');
  assert.notEqual(r2.failed[0]?.code, DataPlaneErrorCode.NO_SERVICE);
  // Once the address is free, it converges: the service and its servers are in the proxy.
  proxy.failWhen(null);
  const r3 = await d.reconcile();
  assert.deepEqual(r3.failed, []);
  assert.deepEqual([...(proxy.held.services.get(SVC)?.servers.keys() ?? [])], ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80']);
  assert.equal(kernel.held.services.has(SVC), false);
  const r4 = await d.reconcile();
  assert.deepEqual([r4.applied.length, r4.failed.length], [0, 0], 'nothing left to do');
});
