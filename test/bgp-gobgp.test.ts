/**
 * The Announcer compliance suite against a real gobgpd (Debian's package, installed on
 * demand), which Fulcrum starts itself with its API on loopback. Its neighbours are
 * loopback addresses nothing listens on: connect attempts are refused on this host and
 * nothing leaves it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { announcerCompliance } from '../src/bgp/compliance.js';
import { BgpErrorCode } from '../src/bgp/index.js';
import { GoBgpAnnouncer } from '../src/sys/gobgp.js';
import { ensureCommand } from '../src/testing/peers.js';

const gobgpd = ensureCommand('gobgpd', 'gobgpd');

announcerCompliance('GoBGP (gobgpd, its own process)', () => {
  const announcer = new GoBgpAnnouncer({ gobgpd });
  return Promise.resolve({ announcer, neighbors: ['127.61.9.1', '127.61.9.2'], cleanup: () => announcer.close() });
});

test('GoBGP: a missing gobgpd is a clear error naming the Debian package', async () => {
  const a = new GoBgpAnnouncer({ gobgpd: '/nonexistent/gobgpd' });
  await assert.rejects(a.configure({ localAs: 65001, routerId: '10.0.0.1', listenPort: -1, neighbors: [] }), (err: unknown) => {
    assert.equal((err as { code?: string }).code, BgpErrorCode.MISSING);
    assert.match((err as Error).message, /apt-get install gobgpd/);
    return true;
  });
  await a.close();
});
