/**
 * The suite every Announcer runs (FakeAnnouncer here, GoBGP against a real gobgpd in
 * test/bgp-gobgp.test.ts): routes are keyed by prefix, an announce replaces the route with
 * the same prefix, withdrawing an absent prefix is no error, configure is idempotent and
 * follows the neighbour list by keyed diff, close withdraws everything.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeOf } from './plan.js';
import type { Announcer, SpeakerConfig } from './types.js';

export interface AnnouncerHarness {
  readonly announcer: Announcer;
  /** Neighbours the speaker may be told about (they need not answer). */
  readonly neighbors: readonly string[];
  cleanup(): Promise<void>;
}

const LOC = { file: 'compliance', line: 1, col: 1 };

export function announcerCompliance(name: string, make: () => Promise<AnnouncerHarness>): void {
  const cfg = (h: AnnouncerHarness, n: number): SpeakerConfig => ({
    localAs: 65001, routerId: '10.255.0.1', listenPort: -1,
    neighbors: h.neighbors.slice(0, n).map((address, i) => ({ address, remoteAs: 65000 + i, port: 1791, holdTime: 9 })),
  });
  const run = (what: string, fn: (h: AnnouncerHarness) => Promise<void>): void => {
    test(`${name}: ${what}`, async () => {
      const h = await make();
      try {
        await fn(h);
      } finally {
        await h.cleanup();
      }
    });
  };

  run('announce, replace and withdraw routes by prefix; withdrawing an absent prefix is no error', async (h) => {
    const a = h.announcer;
    await a.configure(cfg(h, 1));
    assert.deepEqual(await a.routes(), []);
    const r1 = routeOf('inet', '10.99.99.99', 32, { communities: [65000 * 65536 + 7], med: 10, loc: LOC });
    const r2 = routeOf('inet6', '2001:db8::99', 128, { communities: [], loc: LOC });
    await a.announce(r1);
    await a.announce(r2);
    const got = new Map((await a.routes()).map((r) => [r.prefix, r]));
    assert.deepEqual([...got.keys()].sort(), ['10.99.99.99/32', '2001:db8::99/128']);
    assert.deepEqual(got.get('10.99.99.99/32')?.communities, [65000 * 65536 + 7]);
    assert.equal(got.get('10.99.99.99/32')?.med, 10);
    assert.equal(got.get('2001:db8::99/128')?.med, undefined);
    // The same prefix with other attributes replaces the route; it is not a second one.
    await a.announce(routeOf('inet', '10.99.99.99', 32, { communities: [], med: 20, loc: LOC }));
    const again = await a.routes();
    assert.equal(again.filter((r) => r.prefix === '10.99.99.99/32').length, 1);
    assert.equal(again.find((r) => r.prefix === '10.99.99.99/32')?.med, 20);
    assert.deepEqual(again.find((r) => r.prefix === '10.99.99.99/32')?.communities, []);
    await a.withdraw('10.99.99.99/32');
    await a.withdraw('10.99.99.98/32');
    assert.deepEqual((await a.routes()).map((r) => r.prefix), ['2001:db8::99/128']);
  });

  run('configure is idempotent and follows the neighbour list; sessions name every neighbour', async (h) => {
    const a = h.announcer;
    await a.configure(cfg(h, 2));
    await a.configure(cfg(h, 2));
    assert.deepEqual((await a.sessions()).map((s) => [s.neighbor, s.remoteAs]).sort(), [[h.neighbors[0], 65000], [h.neighbors[1], 65001]]);
    await a.configure(cfg(h, 1));
    const s = await a.sessions();
    assert.deepEqual(s.map((x) => x.neighbor), [h.neighbors[0]]);
    assert.notEqual(s[0]?.state, 'established', 'nothing answers this neighbour');
    assert.equal(s[0]?.upSince, null);
  });

  run('a route announced with a next hop keeps it; close withdraws everything', async (h) => {
    const a = h.announcer;
    await a.configure(cfg(h, 1));
    await a.announce(routeOf('inet', '10.99.99.1', 32, { communities: [], nextHop: '10.255.0.9', loc: LOC }));
    assert.equal((await a.routes())[0]?.nextHop, '10.255.0.9');
    await a.close();
  });
}
