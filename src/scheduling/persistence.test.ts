import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { VirtualServer } from '../model/types.js';
import { flowOf, testDests } from './compliance.js';
import { maskAddress } from '../model/index.js';
import { persistenceAddress } from '../model/address.js';
import { AgentWeightFeedback, PersistenceTable, ServiceScheduler, unbindConn, type Dest, type FlowKey } from './index.js';

const vsBase = (over: Partial<VirtualServer>): VirtualServer => ({
  endpoint: { kind: 'address', family: 'inet', address: '10.0.0.100', port: 80 }, protocol: 'tcp', scheduler: 'rr', schedFlags: [],
  method: 'proxy', persistence: null, ops: false, delayLoop: 60, quorum: 1, hysteresis: 0, inhibitOnFailure: false, alpha: false,
  omega: false, haSuspend: false,
  realServers: ['10.1.0.1', '10.1.0.2', '10.1.0.3'].map((address) => ({
    family: 'inet' as const, address, port: 80, weight: 1, method: 'proxy' as const, uthreshold: 0, lthreshold: 0, inhibitOnFailure: false, alpha: false, checkers: [],
  })),
  ...over,
});
const flowFrom = (client: number, port: number, dport = 80): FlowKey => ({ saddrFold: client, sport: port, daddrFold: 0x0a000064, dport });

describe('persistence templates', () => {
  it('masks the client by the granularity', () => {
    assert.equal(maskAddress('192.168.7.200', 24), '192.168.7.0');
    assert.equal(maskAddress('192.168.7.200', 32), '192.168.7.200');
    assert.equal(maskAddress('2001:db8:1:2:3:4:5:6', 64), '2001:db8:1:2::');
  });

  it('a non-contiguous IPv4 mask (ipvsadm -M 255.0.255.0) masks each client with its bits', () => {
    assert.equal(persistenceAddress('10.1.2.3', { prefixLength: 16, mask: '255.0.255.0' }), '10.0.2.0');
    assert.equal(persistenceAddress('10.1.2.3', { prefixLength: 24 }), '10.1.2.0');
    const s = new ServiceScheduler(vsBase({ persistence: { timeout: 300, prefixLength: 16, netmask: '255.0.255.0', mask: '255.0.255.0' } }));
    const first = s.schedule(flowFrom(1, 1000), '10.1.2.3', 0);
    // Same bits under the mask (10.x.2.y): the same server; other bits: round robin moves on.
    assert.equal(s.schedule(flowFrom(2, 1000), '10.9.2.77', 1), first);
    assert.notEqual(s.schedule(flowFrom(3, 1000), '10.1.3.3', 1), first);
  });

  it('expires `timeout` after last use once no connection remains (fake clock)', () => {
    const [d] = testDests([1]) as [Dest];
    const t = new PersistenceTable();
    t.bind('a', d, 300, 0);
    t.release('a', d, 10);
    assert.equal(t.lookup('a', 299), d);
    assert.equal(t.lookup('a', 300), null);
    // Reuse refreshes the timer.
    t.bind('b', d, 300, 0);
    t.release('b', d, 1);
    t.bind('b', d, 300, 200);
    t.release('b', d, 201);
    assert.equal(t.lookup('b', 499), d);
    assert.equal(t.lookup('b', 500), null);
    assert.equal(t.size, 0);
  });

  it('outlives a long connection: re-armed while it controls connections', () => {
    const [d] = testDests([1]) as [Dest];
    const t = new PersistenceTable();
    t.bind('k', d, 100, 0);
    assert.equal(t.lookup('k', 250), d); // connection still open at 100 and 200
    t.release('k', d, 250); // next timer firing: 300
    assert.equal(t.lookup('k', 299), d);
    assert.equal(t.lookup('k', 300), null);
  });

  it('quiescent servers: templates kept by default, dropped with expire_quiescent_template; removed servers: dropped', () => {
    const [a] = testDests([1]) as [Dest];
    const keep = new PersistenceTable({ expireQuiescentTemplate: false });
    const drop = new PersistenceTable({ expireQuiescentTemplate: true });
    keep.bind('k', a, 60, 0);
    drop.bind('k', a, 60, 0);
    a.weight = 0;
    assert.equal(keep.lookup('k', 1), a);
    assert.equal(drop.lookup('k', 1), null);
    a.available = false;
    assert.equal(keep.lookup('k', 2), null);
  });

  it('PPC: a client sticks to one server on one service port', () => {
    const s = new ServiceScheduler(vsBase({ persistence: { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' } }));
    const first = s.schedule(flowFrom(1, 1000), '192.0.2.1', 0);
    for (let p = 1001; p < 1010; p++) assert.equal(s.schedule(flowFrom(1, p), '192.0.2.1', 1), first);
    const other = s.schedule(flowFrom(2, 1000), '192.0.2.2', 1);
    assert.notEqual(other, first); // rr moved on for a new client
  });

  it('PCC (port 0): one client, one server, across every port of the VIP', () => {
    const pcc = vsBase({ endpoint: { kind: 'address', family: 'inet', address: '10.0.0.100', port: 0 }, persistence: { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' } });
    const s = new ServiceScheduler(pcc);
    const d = s.schedule(flowFrom(1, 5000, 80), '192.0.2.1', 0);
    assert.equal(s.schedule(flowFrom(1, 5001, 443), '192.0.2.1', 0), d);
    assert.equal(s.schedule(flowFrom(1, 5002, 8080), '192.0.2.1', 0), d);
  });

  it('granularity groups a subnet; firewall-mark services share one template across ports', () => {
    const fw = vsBase({ endpoint: { kind: 'fwmark', family: 'inet', mark: 8 }, persistence: { timeout: 600, prefixLength: 24, netmask: '255.255.255.0' } });
    const s = new ServiceScheduler(fw);
    const d = s.schedule(flowFrom(1, 1, 80), '198.51.100.7', 0);
    assert.equal(s.schedule(flowFrom(2, 2, 443), '198.51.100.200', 1), d);
    assert.notEqual(s.schedule(flowFrom(3, 3, 443), '198.51.101.1', 1), d);
  });

  it('a reload keeps connection counts and templates of unchanged servers', () => {
    const vs = vsBase({ scheduler: 'lc', persistence: { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' } });
    const s = new ServiceScheduler(vs);
    const d = s.schedule(flowOf(1), '192.0.2.9', 0) as Dest;
    assert.equal(d.active, 1);
    s.setServers([...vs.realServers.slice(0, 2).map((r) => ({ ...r, weight: 5 })), { ...vs.realServers[2]!, address: '10.1.0.9' }]);
    assert.equal(s.dest(d.key), d);
    assert.equal(d.active, 1);
    assert.equal(d.weight, 5);
    assert.equal(s.schedule(flowOf(2), '192.0.2.9', 1), d);
    unbindConn(d, true);
    assert.equal(s.dests.length, 3);
  });
});

describe('agent weight feedback', () => {
  it('maps load to spare capacity; -1 takes a server out at once', () => {
    assert.equal(AgentWeightFeedback.weightFor(10, 0), 10);
    assert.equal(AgentWeightFeedback.weightFor(10, 75), 3);
    assert.equal(AgentWeightFeedback.weightFor(10, 99), 1);
    assert.equal(AgentWeightFeedback.weightFor(10, 100), 0);
    const f = new AgentWeightFeedback();
    assert.equal(f.observe('a', 10, -1, 'wlc'), 0);
    assert.equal(f.observe('a', 10, -1, 'wlc'), null);
  });
  it('smooths readings: one spike does not move a weight, a sustained change does', () => {
    const f = new AgentWeightFeedback({ alpha: 0.3, minChange: 0.3 });
    assert.equal(f.observe('a', 10, 20, 'wrr'), 8); // the first reading sets the weight
    assert.equal(f.observe('a', 10, 20, 'wrr'), null);
    assert.equal(f.observe('a', 10, 100, 'wrr'), null); // spike: smoothed 44 → 6, change 2 < 3
    for (let i = 0; i < 3; i++) assert.equal(f.observe('a', 10, 20, 'wrr'), null); // settles back
    assert.equal(f.observe('a', 10, 80, 'wrr'), null); // sustained rise: 6 (change 2)
    assert.equal(f.observe('a', 10, 80, 'wrr'), 5); // 5 (change 3)
  });
  it('round robin ignores agents', () => {
    assert.equal(new AgentWeightFeedback().observe('a', 10, 90, 'rr'), null);
  });
});
