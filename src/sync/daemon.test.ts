import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FakeSyncSegment } from '../sys/fake-sync.js';
import { DEFAULT_TIMEOUTS, type DataPlane, type SyncedFlow, type SyncInstallResult } from '../dataplane/types.js';
import { FakeDataPlane } from '../dataplane/fake.js';
import { SyncDaemon, defaultSyncConfig } from './daemon.js';
import { SyncReceiver, SyncSender } from './engine.js';
import { encodeMessages } from './codec.js';
import { toEntry } from './translate.js';

const flow = (i: number, o: Partial<SyncedFlow> = {}): SyncedFlow => ({
  template: false, protocol: 'tcp', family: 'inet', method: 'dr', client: `10.9.${i >> 8}.${i & 255}`, cport: 1024 + i,
  virtual: '10.99.0.1', vport: 80, fwmark: 0, server: '10.0.2.11', dport: 80, state: 'established', timeout: 900, ...o,
});

/** A plane whose flows a test sets and whose installs it reads. */
class SyncPlane {
  flows: SyncedFlow[] = [];
  installed: SyncedFlow[] = [];
  failInstall: Error | null = null;
  readonly base = new FakeDataPlane();
  syncExport(): Promise<SyncedFlow[]> {
    return Promise.resolve([...this.flows]);
  }
  syncInstall(flows: readonly SyncedFlow[]): Promise<SyncInstallResult> {
    if (this.failInstall) return Promise.reject(this.failInstall);
    this.installed.push(...flows);
    return Promise.resolve({ installed: flows.length, unchanged: 0, refused: new Map() });
  }
  plane(): DataPlane {
    const b = this.base as unknown as DataPlane;
    return Object.assign(Object.create(b) as DataPlane, { syncExport: () => this.syncExport(), syncInstall: (f: readonly SyncedFlow[]) => this.syncInstall(f) });
  }
}

test('sender: new flows go at once, unchanged ones at half their timeout (or the refresh period), changed ones again, vanished ones are forgotten', () => {
  const s = new SyncSender();
  const f = [flow(1), flow(2, { timeout: 10 })];
  assert.equal(s.due(f, 0).length, 2);
  assert.equal(s.due(f, 1).length, 0);
  assert.equal(s.due(f, 10).length, 1, 'the 10 s flow is refreshed after max(10, 5) s');
  assert.equal(s.due([flow(1, { server: '10.0.2.12' }), f[1] as SyncedFlow], 11).length, 1, 'a flow that moved goes again');
  assert.equal(s.due([flow(1, { server: '10.0.2.12', state: 'closing' })], 12).length, 1, 'a state change goes again');
  assert.equal(s.size, 1, 'a flow the plane no longer holds is forgotten');
  assert.equal(s.due([flow(1, { server: '10.0.2.12', state: 'closing' })], 12 + 29).length, 0);
  assert.equal(s.due([flow(1, { server: '10.0.2.12', state: 'closing' })], 12 + 30).length, 1, 'every flow goes once per full cycle (30 s)');
  const long = new SyncSender({ fullCycleSec: 10_000 });
  long.due([flow(1)], 0);
  assert.equal(long.due([flow(1)], 449).length, 0);
  assert.equal(long.due([flow(1)], 450).length, 1, 'and at half its timeout');
  const short = new SyncSender({ refreshSec: 30 });
  short.due([flow(1)], 0);
  assert.equal(short.due([flow(1)], 30).length, 1, 'sync_refresh_period shorter than half the timeout');
  s.reset();
  assert.equal(s.due([flow(1)], 13).length, 1, 'after a reset (a new master) everything goes');
});

test('sender: a flow whose plane counts packets goes once it has sync_threshold (3) of them; one that does not count goes at once', () => {
  const s = new SyncSender();
  assert.equal(s.due([flow(1, { packets: 1 }), flow(2)], 0).length, 1, 'one packet: held back (a SYN alone is never synced)');
  assert.equal(s.due([flow(1, { packets: 2 })], 1).length, 0);
  assert.equal(s.due([flow(1, { packets: 3 })], 2).length, 1, 'the third packet: sent');
  assert.equal(s.due([flow(1, { packets: 64 })], 3).length, 0, 'then refreshed on time, not by packets');
  const strict = new SyncSender({ threshold: 10 });
  assert.equal(strict.due([flow(1, { packets: 9 })], 0).length, 0);
  assert.equal(strict.due([flow(1, { packets: 10 })], 0).length, 1);
});

test('receiver: queues by flow identity (a newer entry replaces a queued one), bounds the queue, counts what it refuses', () => {
  const r = new SyncReceiver({ syncid: 3, maxPending: 3, timeouts: DEFAULT_TIMEOUTS });
  const msg = (flows: SyncedFlow[], syncid = 3): Buffer => encodeMessages(flows.map(toEntry), { syncid })[0] as Buffer;
  assert.equal(r.receive(msg([flow(1), flow(2)]), 100), 2);
  assert.equal(r.receive(msg([flow(1, { server: '10.0.2.12' })]), 101), 1);
  assert.equal(r.queued, 2);
  assert.equal(r.receive(msg([flow(3), flow(4), flow(5)]), 102), 1);
  assert.equal(r.counts.refused.get('overflow'), 2);
  assert.equal(r.receive(msg([flow(6)], 4), 103), 0);
  assert.equal(r.counts.refused.get('syncid'), 1);
  assert.equal(r.receive(Buffer.from('garbage'), 104), 0);
  assert.equal(r.counts.refused.get('bad-size'), 1);
  const local = encodeMessages([{ ...toEntry(flow(7)), flags: 1 }], { syncid: 3 })[0] as Buffer;
  assert.equal(r.receive(local, 105), 0);
  assert.equal(r.counts.refused.get('method'), 1, 'a LOCALNODE connection is held by no plane');
  const t = r.take();
  assert.equal(t.since, 100);
  assert.equal(t.flows.find((x) => x.cport === 1025)?.server, '10.0.2.12');
  assert.equal(r.queued, 0);
  assert.equal(r.counts.messages, 4, 'accepted datagrams (the LOCALNODE one was well formed)');
  const proxied = encodeMessages([{ ...toEntry(flow(8)), flags: 1 | 0x1000 }], { syncid: 3 })[0] as Buffer;
  assert.equal(r.receive(proxied, 106), 1, 'a LOCALNODE template is a proxied service\'s');
  assert.deepEqual(r.take().flows.map((x) => [x.template, x.method]), [[true, 'proxy']]);
});

test('daemon: following a VRRP instance, the master sends and the backup installs; roles swap with the state; a hostile sender changes nothing', async () => {
  const seg = new FakeSyncSegment();
  const state = new Map([['d1', 'MASTER'], ['d2', 'BACKUP']]);
  const p1 = new SyncPlane();
  const p2 = new SyncPlane();
  const mk = (host: string, p: SyncPlane): SyncDaemon => new SyncDaemon({
    plane: p.plane(), transport: seg.transport(host), instanceState: () => state.get(host) ?? null, sendIntervalMs: 3_600_000, installIntervalMs: 3_600_000,
  });
  const d1 = mk('d1', p1);
  const d2 = mk('d2', p2);
  const cfg = { ...defaultSyncConfig('eth0'), instance: 'VI_1', syncid: 9 };
  try {
    await d1.configure(cfg);
    await d2.configure(cfg);
    assert.equal(d1.status().role, 'master');
    assert.equal(d2.status().role, 'backup');
    p1.flows = Array.from({ length: 100 }, (_, i) => flow(i));
    await d1.sendTick();
    assert.equal(d1.status().sent.entries, 100);
    assert.equal(d1.status().sent.messages, Math.ceil(100 / 40));
    await d2.installTick();
    assert.equal(p2.installed.length, 100);
    assert.equal(d2.status().received.peer, 'd1');
    assert.equal(d2.status().installed, 100);
    // Nothing new: nothing sent.
    await d1.sendTick();
    assert.equal(d1.status().sent.entries, 100);
    // A third party sends junk and another syncid: counted, nothing installed.
    seg.inject('evil', cfg, Buffer.from([1, 2, 3]));
    seg.inject('evil', cfg, encodeMessages([toEntry(flow(500))], { syncid: 8 })[0] as Buffer);
    await d2.installTick();
    assert.equal(p2.installed.length, 100);
    assert.deepEqual(d2.status().refused, { 'short-header': 1, syncid: 1 });
    assert.equal(d2.status().received.peer, 'd1', 'a refused datagram is not a peer');
    // A send failure is counted and everything goes again next round.
    seg.failNextSend = new Error('ENOBUFS');
    p1.flows.push(flow(200));
    await d1.sendTick();
    assert.equal(d1.status().sent.errors, 1);
    await d1.sendTick();
    assert.equal(d1.status().sent.entries, 100 + 101);
    // An install failure is reported, the daemon goes on.
    p2.failInstall = new Error('nft refused');
    await d2.installTick();
    p2.failInstall = null;
    // Takeover: d2 MASTER, d1 BACKUP. The new master tells everything it holds.
    state.set('d1', 'BACKUP');
    state.set('d2', 'MASTER');
    await d1.followRole();
    await d2.followRole();
    assert.equal(d1.status().role, 'backup');
    assert.equal(d2.status().role, 'master');
    p2.flows = [flow(1), flow(2)];
    await d2.sendTick();
    await d1.installTick();
    assert.deepEqual(p1.installed.map((f) => f.cport), [1025, 1026]);
    // Stopped: no sockets, nothing received.
    await d1.stop();
    assert.equal(d1.status().role, 'stopped');
    await d2.sendTick();
    assert.equal(p1.installed.length, 2);
  } finally {
    await d1.stop();
    await d2.stop();
  }
});

test('daemon: without an instance it runs the roles asked for; a plane without sync counts flows as unsupported', async () => {
  const seg = new FakeSyncSegment();
  const plain = new FakeDataPlane();
  const d = new SyncDaemon({ plane: plain, transport: seg.transport('a'), sendIntervalMs: 3_600_000, installIntervalMs: 3_600_000 });
  const peer = new SyncPlane();
  const m = new SyncDaemon({ plane: peer.plane(), transport: seg.transport('b'), sendIntervalMs: 3_600_000, installIntervalMs: 3_600_000 });
  try {
    await d.configure({ ...defaultSyncConfig('eth0'), master: false, backup: true });
    assert.equal(d.status().role, 'backup');
    await m.configure({ ...defaultSyncConfig('eth0'), master: true, backup: false });
    assert.equal(m.status().role, 'master');
    peer.flows = [flow(1)];
    await m.sendTick();
    await d.installTick();
    assert.deepEqual(d.status().refused, { unsupported: 1 });
    await d.configure({ ...defaultSyncConfig('eth0') });
    assert.equal(d.status().role, 'master+backup');
  } finally {
    await d.stop();
    await m.stop();
  }
});

test('daemon: the configured threshold (fulcrum_sync_threshold) decides when a counted flow is sent', async () => {
  const seg = new FakeSyncSegment();
  const peer = new SyncPlane();
  const m = new SyncDaemon({ plane: peer.plane(), transport: seg.transport('b'), sendIntervalMs: 3_600_000, installIntervalMs: 3_600_000 });
  try {
    await m.configure({ ...defaultSyncConfig('eth0'), master: true, backup: false });
    peer.flows = [flow(1, { packets: 1 })];
    await m.sendTick();
    assert.equal(m.status().sent.entries, 0, 'the default, 3: a one-packet flow waits');
    await m.configure({ ...defaultSyncConfig('eth0'), master: true, backup: false, threshold: 1 });
    await m.sendTick();
    assert.equal(m.status().sent.entries, 1, 'threshold 1: it goes');
  } finally {
    await m.stop();
  }
});
