import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ServiceState } from '../director/index.js';
import { parseText } from '../testing/index.js';
import type { FulcrumConfig } from '../model/types.js';
import { FakeAnnouncer } from './fake.js';
import { decideRoutes, diffRoutes } from './plan.js';
import { BgpSpeaker, type BgpEvent } from './speaker.js';

const CONF = `fulcrum_bgp {
 local_as 65001
 router_id 10.0.1.2
 neighbor 10.0.1.1 {
  remote_as 65000
 }
}
virtual_server 10.99.0.1 80 {
 lb_kind DR
 announce bgp med 5
 real_server 10.0.2.1 80 {
 }
}
virtual_server 10.99.0.1 443 {
 lb_kind DR
 announce bgp med 5
 real_server 10.0.2.1 443 {
 }
}
virtual_server 10.99.0.2 80 {
 lb_kind DR
 real_server 10.0.2.1 80 {
 }
}
vrrp_instance VI_1 {
 interface eth0
 virtual_router_id 1
 priority 100
 virtual_ipaddress {
  10.99.0.9/32
 }
 announce bgp community no-export
}
`;

function config(text = CONF): FulcrumConfig {
  const r = parseText(text);
  if (!r.config) throw new Error('bad test config');
  return r.config;
}

function states(cfg: FulcrumConfig, up: Record<string, Partial<Pick<ServiceState, 'quorumUp' | 'served' | 'held'>>> = {}): ServiceState[] {
  return cfg.virtualServers.map((vs) => {
    const ep = vs.endpoint;
    const key = ep.kind === 'address' ? `${vs.protocol} ${ep.address}:${ep.port}` : 'x';
    const listen = ep.kind === 'address' ? [{ family: ep.family, address: ep.address }] : [];
    return { key, vs, listen, quorumUp: true, served: true, held: true, ...up[key] };
  });
}

test('decisions: a VIP is announced while any of its announcing services is up, with why; VRRP addresses while MASTER', () => {
  const cfg = config();
  const all = decideRoutes(cfg, { services: states(cfg), instanceState: () => 'BACKUP' });
  assert.deepEqual([...all.values()].map((d) => [d.route.prefix, d.announce, d.reason]), [
    ['10.99.0.1/32', true, 'tcp 10.99.0.1:80 has quorum; tcp 10.99.0.1:443 has quorum'],
    ['10.99.0.9/32', false, 'VI_1 is BACKUP'],
  ]);
  assert.equal(all.get('10.99.0.1/32')?.route.med, 5);
  const one = decideRoutes(cfg, { services: states(cfg, { 'tcp 10.99.0.1:80': { quorumUp: false } }), instanceState: () => 'MASTER' });
  assert.deepEqual([...one.values()].map((d) => [d.announce, d.reason]), [[true, 'tcp 10.99.0.1:443 has quorum'], [true, 'VI_1 is MASTER']]);
  assert.deepEqual(one.get('10.99.0.9/32')?.route.communities, [0xffffff01]);
  const none = decideRoutes(cfg, { services: states(cfg, { 'tcp 10.99.0.1:80': { quorumUp: false }, 'tcp 10.99.0.1:443': { held: false } }), instanceState: () => null });
  assert.deepEqual([...none.values()].map((d) => [d.announce, d.reason]), [
    [false, 'tcp 10.99.0.1:80 has no quorum; the data plane does not hold tcp 10.99.0.1:443'],
    [false, 'VI_1 is not running'],
  ]);
  // The diff: what the speaker holds and should not, what it lacks or holds with other attributes.
  const held = [{ ...(one.get('10.99.0.1/32')?.route ?? assert.fail()), med: 9 }, { prefix: '10.99.0.7/32', family: 'inet' as const, address: '10.99.0.7', prefixLength: 32, communities: [] }];
  const d = diffRoutes(held, one);
  assert.deepEqual([d.announce.map((r) => `${r.prefix} med ${r.med}`), d.withdraw], [['10.99.0.1/32 med 5', '10.99.0.9/32 med undefined'], ['10.99.0.7/32']]);
});

test('speaker: follows quorum by keyed deltas, retries a speaker that is down, withdraws everything on stop', async () => {
  const cfg = config();
  let st = states(cfg);
  const fake = new FakeAnnouncer();
  const events: BgpEvent[] = [];
  const sp = new BgpSpeaker({
    makeAnnouncer: () => fake, inputs: () => ({ services: st, instanceState: () => 'BACKUP' }), onEvent: (e) => events.push(e),
    retryMs: { first: 10, max: 20 }, pollMs: 60_000,
  });
  await sp.setConfig(cfg);
  assert.deepEqual(fake.calls, ['configure', 'announce 10.99.0.1/32']);
  assert.deepEqual(sp.status().routes.map((r) => [r.prefix, r.wanted, r.announced]), [['10.99.0.1/32', true, true], ['10.99.0.9/32', false, false]]);
  await sp.kick();
  assert.equal(fake.calls.length, 2, 'nothing to change: no call but the read');
  st = states(cfg, { 'tcp 10.99.0.1:80': { quorumUp: false }, 'tcp 10.99.0.1:443': { quorumUp: false } });
  await sp.kick();
  assert.deepEqual(fake.calls.slice(2), ['withdraw 10.99.0.1/32']);
  assert.deepEqual(events.filter((e) => e.type === 'bgp-route').map((e) => e.type === 'bgp-route' && [e.prefix, e.announced, e.reason]), [
    ['10.99.0.1/32', true, 'tcp 10.99.0.1:80 has quorum; tcp 10.99.0.1:443 has quorum'],
    ['10.99.0.1/32', false, 'tcp 10.99.0.1:80 has no quorum; tcp 10.99.0.1:443 has no quorum'],
  ]);
  // The speaker goes away: reported, retried with backoff; once back, the route is announced again.
  fake.down = true;
  st = states(cfg);
  await sp.kick();
  assert.equal(sp.status().speaker?.up, false);
  assert.equal(sp.status().counters.failures, 1);
  fake.down = false;
  for (let i = 0; i < 100 && !sp.status().routes.some((r) => r.announced); i++) await new Promise((r) => setTimeout(r, 5));
  assert.equal(sp.status().speaker?.up, true);
  assert.deepEqual(fake.calls.slice(-2), ['configure', 'announce 10.99.0.1/32']);
  assert.deepEqual(events.filter((e) => e.type === 'bgp-speaker').map((e) => e.type === 'bgp-speaker' && e.up), [true, false, true]);
  // A prefix the speaker refuses does not hold up the others.
  fake.refuse.add('10.99.0.9/32');
  await sp.kick();
  await sp.withdrawAll();
  assert.deepEqual(sp.status().routes.map((r) => [r.prefix, r.announced, r.reason]), [['10.99.0.1/32', false, 'the director is stopping'], ['10.99.0.9/32', false, 'the director is stopping']]);
  st = states(cfg);
  await sp.kick();
  assert.equal(sp.status().routes.some((r) => r.announced), false, 'withdrawn stays withdrawn while stopping');
  await sp.stop();
  assert.equal(fake.closed, true);
});

test('speaker: fulcrum_bgp removed by a reload withdraws and closes the speaker', async () => {
  const cfg = config();
  const fake = new FakeAnnouncer();
  const sp = new BgpSpeaker({ makeAnnouncer: () => fake, inputs: () => ({ services: states(cfg), instanceState: () => null }), pollMs: 60_000 });
  await sp.setConfig(cfg);
  const { bgp: _b, ...rest } = cfg;
  await sp.setConfig({ ...rest, virtualServers: [] });
  assert.deepEqual(fake.calls, ['configure', 'announce 10.99.0.1/32', 'close']);
  assert.deepEqual(sp.status(), { enabled: false, speaker: null, sessions: [], routes: [], counters: { announced: 1, withdrawn: 0, failures: 0 } });
  await sp.stop();
});

test('speaker: a track_interface that goes down withdraws every route with the reason; back up, they return', async () => {
  const cfg = config(CONF.replace(' neighbor 10.0.1.1 {', ' track_interface eth1\n neighbor 10.0.1.1 {'));
  assert.deepEqual(cfg.bgp?.trackInterfaces, ['eth1']);
  const fake = new FakeAnnouncer();
  let up = true;
  const sp = new BgpSpeaker({ makeAnnouncer: () => fake, inputs: () => ({ services: states(cfg), instanceState: () => 'MASTER' }), linkUp: (i) => i !== 'eth1' || up, pollMs: 60_000 });
  await sp.setConfig(cfg);
  assert.deepEqual(sp.status().routes.map((r) => r.announced), [true, true]);
  up = false;
  await sp.kick();
  assert.deepEqual(sp.status().routes.map((r) => [r.announced, r.reason]), [[false, 'interface eth1 down (track_interface)'], [false, 'interface eth1 down (track_interface)']]);
  up = true;
  await sp.kick();
  assert.deepEqual(sp.status().routes.map((r) => r.announced), [true, true]);
  await sp.stop();
});
