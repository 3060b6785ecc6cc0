/**
 * The daemon's transactions without root or sockets: a FakeDataPlane, VRRP on a FakeSegment
 * with a FakeClock, configuration files in a temporary directory. A reload or a runtime
 * change is in effect everywhere or nowhere; what is refused is logged, counted and never
 * persisted; a state file never prevents a start; an empty file never removes everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { FakeDataPlane } from '../dataplane/fake.js';
import { FakeAnnouncer } from '../bgp/index.js';
import { DataPlaneErrorCode } from '../dataplane/types.js';
import { FakeClock } from '../health/index.js';
import { FakeSegment, type FakeHost } from '../sys/index.js';
import { FileRuntimeStore, MemoryRuntimeStore } from '../runtime/index.js';
import { parseIpvsadmLine, splitLine } from '../config/ipvsadm/index.js';
import { DiagnosticSink } from '../errors/index.js';
import { withTempDir } from '../testing/index.js';
import { Daemon, type DaemonOptions } from './daemon.js';
import { DAEMON_CHANNEL, type DaemonEvent } from './events.js';

const SVC = 'tcp 10.0.0.1:80';
const vs = (weights: number[], extra = ''): string => `virtual_server 10.0.0.1 80 {\n lb_kind NAT\n ${extra}\n${weights.map((w, i) => ` real_server 10.0.1.${i + 1} 80 { weight ${w} }`).join('\n')}\n}\n`;
const vrrp = (name: string, iface: string, vrid: number): string => `vrrp_instance ${name} {\n state BACKUP\n interface ${iface}\n virtual_router_id ${vrid}\n priority 100\n advert_int 1\n virtual_ipaddress { 10.0.0.${100 + vrid}/24 }\n}\n`;

function cmd(line: string) {
  const sink = new DiagnosticSink();
  const c = parseIpvsadmLine(splitLine(line, 'test', 1), sink);
  assert.ok(c, line);
  return c;
}

interface Rig {
  dir: string;
  file: string;
  plane: FakeDataPlane;
  host: FakeHost;
  clock: FakeClock;
  events: DaemonEvent[];
  daemon: Daemon;
  write(text: string): void;
}

async function rig(dir: string, text: string, o: Partial<DaemonOptions> = {}, fn: (r: Rig) => Promise<void>): Promise<void> {
  const file = path.join(dir, 'keepalived.conf');
  fs.writeFileSync(file, text);
  const clock = new FakeClock();
  const seg = new FakeSegment();
  const host = seg.host('d1', [
    { name: 'eth0', mac: '02:00:00:00:00:01', addresses: [{ family: 'inet', address: '10.0.0.2', prefixLength: 24 }] },
    { name: 'eth1', mac: '02:00:00:00:00:02', addresses: [{ family: 'inet', address: '10.1.0.2', prefixLength: 24 }] },
  ]);
  host.now = () => clock.now();
  const plane = new FakeDataPlane();
  const events: DaemonEvent[] = [];
  const onEvent = (m: unknown): void => { events.push(m as DaemonEvent); };
  subscribe(DAEMON_CHANNEL, onEvent);
  const daemon = new Daemon({ configFile: file, plane, drainMs: 0, vrrp: { host, clock }, health: { clock }, ...o });
  try {
    await fn({ dir, file, plane, host, clock, events, daemon, write: (t) => fs.writeFileSync(file, t) });
  } finally {
    unsubscribe(DAEMON_CHANNEL, onEvent);
    await daemon.stop();
  }
}

const label = (e: DaemonEvent): string => (e.type === 'runtime' || e.type === 'runtime-rejected' ? `${e.type} ${e.source}` : e.type);
const weights = (p: FakeDataPlane): number[] => [...(p.held.services.get(SVC)?.servers.values() ?? [])].map((s) => s.weight);

test('reload: a VRRP preparation that fails rejects the whole reload — counted, logged, the data plane and VRRP as they were', () => withTempDir((dir) =>
  rig(dir, vs([1, 2]) + vrrp('VI_1', 'eth0', 1), {}, async (r) => {
    assert.deepEqual((await r.daemon.start()).errors, []);
    assert.deepEqual(weights(r.plane), [1, 2]);
    // The new file changes a weight and adds an instance whose socket cannot be opened.
    r.host.denyRaw = true;
    r.write(vs([5, 2]) + vrrp('VI_1', 'eth0', 1) + vrrp('VI_2', 'eth1', 2));
    const out = await r.daemon.reload();
    assert.equal(out.ok, false);
    assert.match(out.errors[0] ?? '', /VRRP cannot take the new configuration: .*CAP_NET_RAW/);
    assert.deepEqual(weights(r.plane), [1, 2], 'the data plane never saw the new weight');
    assert.deepEqual(r.daemon.vrrpStatus().map((i) => i.name), ['VI_1'], 'VRRP kept its instances');
    assert.deepEqual(r.daemon.reloads, { ...r.daemon.reloads, ok: 0, failed: 1 });
    assert.ok(r.events.some((e) => e.type === 'reload-rejected'));
    assert.equal(r.daemon.configuration?.vrrpInstances.length, 1, 'the running configuration stays');
    // Once it can, the same file reloads whole.
    r.host.denyRaw = false;
    assert.equal((await r.daemon.reload()).ok, true);
    assert.deepEqual(weights(r.plane), [5, 2]);
    assert.deepEqual(r.daemon.vrrpStatus().map((i) => i.name).sort(), ['VI_1', 'VI_2']);
  })));

test('reload: a change the data plane refuses for good is rolled back everywhere and rejected; a retryable one is not', () => withTempDir((dir) =>
  rig(dir, vs([1, 2]), {}, async (r) => {
    await r.daemon.start();
    r.plane.failWhen((op) => (op.op === 'add-service' && op.service.key === 'tcp 10.0.0.9:80' ? DataPlaneErrorCode.PERMISSION : null));
    r.write(vs([7, 2]) + 'virtual_server 10.0.0.9 80 {\n lb_kind NAT\n real_server 10.0.1.9 80 { weight 1 }\n}\n');
    const out = await r.daemon.reload();
    assert.equal(out.ok, false);
    assert.match(out.errors[0] ?? '', /injected E_DP_PERMISSION/);
    assert.deepEqual(weights(r.plane), [1, 2], 'the weight that did apply was rolled back');
    assert.deepEqual([...r.plane.held.services.keys()], [SVC]);
    assert.deepEqual(r.daemon.configuration?.virtualServers.length, 1);
    assert.equal(r.daemon.reloads.failed, 1);
    // An address not yet on the host (LISTEN) is not a reason to reject: applied, retried.
    r.plane.failWhen((op) => (op.op === 'add-service' && op.service.key === 'tcp 10.0.0.9:80' ? DataPlaneErrorCode.LISTEN : null));
    const again = await r.daemon.reload();
    assert.equal(r.daemon.reloads.ok, 1);
    assert.equal(again.ok, false, 'reported as not fully applied');
    assert.deepEqual(weights(r.plane), [7, 2]);
  })));

test('an empty file (or one that expands to nothing) is refused at start and on reload, unless allowed explicitly', () => withTempDir(async (dir) => {
  await rig(dir, '# nothing here\n', {}, async (r) => {
    const out = await r.daemon.start();
    assert.equal(out.ok, false);
    assert.match(out.errors[0] ?? '', /keepalived\.conf:1:1: error E_EMPTY_CONFIG: the configuration defines no virtual_server and no vrrp_instance/);
  });
  await rig(dir, vs([1, 2]), {}, async (r) => {
    await r.daemon.start();
    for (const text of ['', '\n\n', '@never virtual_server 10.0.0.1 80 { lb_kind NAT }\n', 'global_defs {\n router_id x\n}\n']) {
      r.write(text);
      const out = await r.daemon.reload();
      assert.equal(out.ok, false, JSON.stringify(text));
      assert.match(out.errors.join('\n'), /E_EMPTY_CONFIG/);
      assert.deepEqual(weights(r.plane), [1, 2], 'every service stays');
    }
  });
  await rig(dir, 'global_defs {\n router_id x\n}\n', { allowEmpty: true }, async (r) => {
    assert.equal((await r.daemon.start()).ok, true);
  });
}));

test('runtime: a change the planes cannot apply is refused with the reason, rolled back, and what is saved is what runs', () => withTempDir((dir) =>
  rig(dir, vs([1, 2]), { runtime: new FileRuntimeStore(path.join(dir, 'state.json')) }, async (r) => {
    await r.daemon.start();
    r.plane.failWhen((op) => (op.op === 'add-server' && op.server.key === '10.0.1.7:80' ? DataPlaneErrorCode.UNSUPPORTED : null));
    const out = await r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 9'), cmd('-a -t 10.0.0.1:80 -r 10.0.1.7:80 -m -w 1')], 'test');
    assert.equal(out.ok, false);
    if (!out.ok) {
      assert.equal(out.status, 'conflict');
      assert.match(out.reason, /cannot apply it: injected E_DP_UNSUPPORTED/);
    }
    assert.deepEqual(weights(r.plane), [1, 2], 'the edit that applied was rolled back');
    // Saved while the plane applied it, then saved over with the overlay in effect.
    assert.deepEqual(new FileRuntimeStore(path.join(dir, 'state.json')).load(), r.daemon.runtime.overlay, 'the saved overlay is the running one');
    assert.deepEqual(r.daemon.runtime.overlay.servers, []);
    // A change that applies is saved, then acknowledged.
    r.plane.failWhen(null);
    const ok = await r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 9')], 'test');
    assert.equal(ok.ok, true);
    assert.match(JSON.stringify(new FileRuntimeStore(path.join(dir, 'state.json')).load()), /"weight":9/);
  })));

test('runtime: a change that cannot be saved is refused as unavailable, names the file, and is rolled back', () => withTempDir(async (dir) => {
  // The state file's directory is a regular file: every save fails (ENOTDIR).
  fs.writeFileSync(path.join(dir, 'blocker'), '');
  const state = path.join(dir, 'blocker', 'state.json');
  await rig(dir, vs([1, 2]), { runtime: new FileRuntimeStore(state) }, async (r) => {
    await r.daemon.start();
    const out = await r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 9')], 'test');
    assert.equal(out.ok, false);
    if (!out.ok) {
      assert.equal(out.status, 'unavailable');
      assert.ok(out.reason.startsWith(`cannot save the runtime changes to ${state}: `), out.reason);
    }
    assert.deepEqual(weights(r.plane), [1, 2], 'the plane is back to the running configuration');
    assert.deepEqual(r.daemon.runtime.overlay.servers, []);
  });
}));

test('runtime: concurrent changes are committed together (one plan, one save), each batch refused or accepted on its own, in order with reloads', () => withTempDir((dir) => {
  const store = new MemoryRuntimeStore();
  return rig(dir, vs([1, 2, 3]), { runtime: store }, async (r) => {
    await r.daemon.start();
    const plans = r.plane.history.length;
    // Four callers at once: the second batch's first command is valid, its second is not.
    const [a, b, c, d] = await Promise.all([
      r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 5')], 'a'),
      r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 7'), cmd('-e -t 10.0.0.1:80 -r 10.0.1.9:80 -m -w 1')], 'b'),
      r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.3:80 -m -w 8')], 'c'),
      r.daemon.change([cmd('-Z -t 10.0.0.1:80')], 'd'),
    ]);
    assert.equal(a.ok, true);
    assert.deepEqual(b, { ok: false, reason: 'No such destination', status: 'not-found', index: 1 });
    assert.equal(c.ok, true);
    assert.equal(d.ok, true);
    assert.deepEqual(weights(r.plane), [5, 2, 8], 'a and c applied; none of the refused batch b');
    assert.equal(r.plane.history.length - plans, 1, 'one plan for the group');
    assert.equal(store.saves, 1, 'one durable save for the group');
    assert.deepEqual(r.daemon.commits, { changes: 3, commits: 1, largestGroup: 3 });
    assert.deepEqual(r.events.filter((e) => e.type === 'runtime' || e.type === 'runtime-rejected').map(label),
      ['runtime-rejected b', 'runtime a', 'runtime c', 'runtime d']);

    // A reload queued between two changes closes the group: the later change applies after it.
    r.events.length = 0;
    r.write(vs([1, 2, 4]));
    const [e, , f] = await Promise.all([
      r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 6')], 'e'),
      r.daemon.reload(),
      r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 9')], 'f'),
    ]);
    assert.equal(e.ok && f.ok, true);
    assert.deepEqual(r.events.filter((x) => x.type === 'runtime' || x.type === 'reloaded').map(label), ['runtime e', 'reloaded', 'runtime f']);
    assert.deepEqual(weights(r.plane), [6, 9, 8], 'the runtime edits stay over the reloaded file');
    assert.equal(store.saves, 3);

    // The data plane refuses the grouped change: each batch is committed again alone.
    r.plane.failWhen((op) => (op.op === 'add-server' && op.server.key === '10.0.1.7:80' ? DataPlaneErrorCode.UNSUPPORTED : null));
    const [g, h] = await Promise.all([
      r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.3:80 -m -w 2')], 'g'),
      r.daemon.change([cmd('-a -t 10.0.0.1:80 -r 10.0.1.7:80 -m -w 1')], 'h'),
    ]);
    assert.equal(g.ok, true);
    assert.equal(h.ok, false);
    if (!h.ok) assert.match(h.reason, /cannot apply it: injected E_DP_UNSUPPORTED/);
    assert.deepEqual(weights(r.plane), [6, 9, 2]);
    assert.deepEqual(store.load(), r.daemon.runtime.overlay, 'what is saved is what runs: g, not h');
    assert.deepEqual(r.daemon.runtime.overlay.servers.map((x) => x.key).sort(), ['10.0.1.1:80', '10.0.1.2:80', '10.0.1.3:80']);
  });
}));

test('runtime: a 4,000-command batch is checked and applied as one change (one reconcile)', () => withTempDir((dir) =>
  rig(dir, vs([1]), { allowEmpty: true }, async (r) => {
    await r.daemon.start();
    const lines: string[] = [];
    for (let i = 0; i < 400; i++) {
      lines.push(`-A -t 10.9.${i >> 8}.${i & 255}:80 -s wrr`);
      for (let k = 1; k <= 9; k++) lines.push(`-a -t 10.9.${i >> 8}.${i & 255}:80 -r 10.8.${k}.${i & 255}:80 -m -w ${k}`);
    }
    const before = r.plane.history.length;
    const out = await r.daemon.change(lines.map(cmd), 'test');
    assert.equal(out.ok, true);
    assert.equal(r.plane.history.length - before, 1, 'one plan for the whole batch');
    assert.equal(r.plane.held.services.size, 401);
    assert.equal(r.plane.held.services.get('tcp 10.9.1.143:80')?.servers.size, 9);
    // A refusal anywhere in the batch leaves everything as it was, and names the line.
    const bad = await r.daemon.change([cmd('-A -t 10.7.0.1:80'), cmd('-a -t 10.7.0.2:80 -r 10.8.0.1:80 -m')], 'test');
    assert.deepEqual(bad, { ok: false, reason: 'Service not defined', status: 'not-found', index: 1 });
    assert.equal(r.plane.held.services.has('tcp 10.7.0.1:80'), false);
  })));

test('a state file never prevents a start: unreadable → set aside; entries the planes cannot apply → kept, not applied, reported', () => withTempDir(async (dir) => {
  const state = path.join(dir, 'state.json');
  fs.writeFileSync(state, '{ not json');
  await rig(dir, vs([1, 2]), { runtime: new FileRuntimeStore(state) }, async (r) => {
    const out = await r.daemon.start();
    assert.equal(out.ok, true);
    assert.ok(r.events.some((e) => e.type === 'notice' && /not JSON.*starting without runtime changes.*rejected-/.test(e.message)));
    assert.ok(fs.readdirSync(dir).some((f) => f.startsWith('state.json.rejected-')), 'the bad file is kept for the operator');
  });
  // A saved change to a service the plane refuses (an injected UNSUPPORTED) is set aside.
  fs.writeFileSync(state, JSON.stringify({
    version: 1, timeouts: { tcp: 0, tcpfin: 0, udp: 0 }, drains: [],
    services: [{ key: 'tcp 10.0.0.5:80', state: 'added', id: { kind: 'address', protocol: 'tcp', family: 'inet', address: '10.0.0.5', port: 80 }, options: { scheduler: 'rr', schedFlags: [], persistence: null, ops: false } }],
    servers: [{ service: 'tcp 10.0.0.1:80', key: '10.0.1.1:80', state: 'edited', server: { family: 'inet', address: '10.0.1.1', port: 80, method: 'nat', weight: 4, uthreshold: 0, lthreshold: 0 } }],
  }));
  await rig(dir, vs([1, 2]), { runtime: new FileRuntimeStore(state) }, async (r) => {
    r.plane.failWhen((op) => (op.op === 'add-service' && op.service.key === 'tcp 10.0.0.5:80' ? DataPlaneErrorCode.UNSUPPORTED : null));
    const out = await r.daemon.start();
    assert.equal(out.ok, true, out.errors.join('\n'));
    assert.deepEqual(weights(r.plane), [4, 2], 'the entry that applies is in effect');
    assert.equal(r.plane.held.services.has('tcp 10.0.0.5:80'), false);
    assert.ok(r.daemon.runtime.stale.some((m) => /tcp 10\.0\.0\.5:80 are kept but not applied: injected E_DP_UNSUPPORTED/.test(m)));
    assert.equal(r.daemon.runtime.overlay.services.length, 1, 'kept in the overlay (and the file)');
  });
}));

test('the memory store sets aside by forgetting (for tests and --state-file-less runs)', () => {
  const m = new MemoryRuntimeStore();
  assert.equal(m.setAside(), null);
});

test('bgp: the VIP is announced once the service is up, withdrawn when a runtime change takes its quorum, and withdrawn before the plane closes on a stop', () => withTempDir(async (dir) => {
  const announcer = new FakeAnnouncer();
  const bgp = 'fulcrum_bgp {\n local_as 65001\n router_id 10.0.0.2\n neighbor 10.0.0.254 {\n  remote_as 65000\n }\n shutdown_grace 0.05\n}\n';
  await rig(dir, bgp + vs([1, 1], 'announce bgp'), { announcer: () => announcer }, async (r) => {
    await r.daemon.start();
    const wait = async (pred: () => boolean, what: string): Promise<void> => {
      for (let i = 0; i < 200 && !pred(); i++) await new Promise((res) => setTimeout(res, 5));
      assert.ok(pred(), what);
    };
    await wait(() => announcer.calls.includes('announce 10.0.0.1/32'), `announced: ${announcer.calls.join(', ')}`);
    assert.match(JSON.stringify(r.daemon.bgp.status().routes), /"reason":"tcp 10\.0\.0\.1:80 has quorum"/);
    const out = await r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 0'), cmd('-e -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 0')], 'test');
    assert.equal(out.ok, true);
    await wait(() => announcer.calls.includes('withdraw 10.0.0.1/32'), `withdrawn: ${announcer.calls.join(', ')}`);
    assert.ok(r.events.some((e) => e.type === 'bgp-route' && !e.announced && /has no quorum/.test(e.reason)), 'the withdraw is an event with its reason');
    await r.daemon.change([cmd('-e -t 10.0.0.1:80 -r 10.0.1.1:80 -m -w 1')], 'test');
    await wait(() => announcer.calls.filter((c) => c === 'announce 10.0.0.1/32').length === 2, 'announced again');
    // A stop: the withdraw comes first, the plane closes after the grace.
    let closedAt = -1;
    const close = r.plane.close.bind(r.plane);
    r.plane.close = () => { closedAt = announcer.calls.length; return close(); };
    await r.daemon.stop();
    const w = announcer.calls.lastIndexOf('withdraw 10.0.0.1/32');
    assert.ok(w >= 0 && closedAt > w, `withdrawn (call ${w}) before the plane closed (after call ${closedAt}): ${announcer.calls.join(', ')}`);
    assert.equal(announcer.closed, true);
  });
}));
