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

test('GoBGP: a gobgpd that dies is restarted and its routes announced again; the failure is reported, nothing else waits', async () => {
  const { BgpSpeaker } = await import('../src/bgp/index.js');
  const { parseText } = await import('../src/testing/index.js');
  const { FAILURE_CHANNEL } = await import('../src/errors/index.js');
  const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
  const parsed = parseText(`fulcrum_bgp {\n local_as 65001\n router_id 10.255.0.1\n listen_port -1\n neighbor 127.61.9.1 {\n  remote_as 65000\n  port 1791\n }\n}\nvirtual_server 127.61.9.10 80 {\n lb_kind PROXY\n announce bgp\n real_server 127.0.0.1 80 {\n }\n}\n`);
  const config = parsed.config ?? assert.fail('config');
  const vs = config.virtualServers[0] ?? assert.fail('vs');
  const failures: string[] = [];
  const onFailure = (m: unknown): void => { failures.push((m as { code: string }).code); };
  subscribe(FAILURE_CHANNEL, onFailure);
  const announcer = new GoBgpAnnouncer({ gobgpd });
  const sp = new BgpSpeaker({
    makeAnnouncer: () => announcer,
    inputs: () => ({ services: [{ key: 'tcp 127.61.9.10:80', vs, listen: [{ family: 'inet', address: '127.61.9.10' }], quorumUp: true, served: true, held: true }], instanceState: () => null }),
    pollMs: 100, retryMs: { first: 100, max: 400 },
  });
  try {
    await sp.setConfig(config);
    assert.deepEqual((await announcer.routes()).map((r) => r.prefix), ['127.61.9.10/32']);
    const pid = Number(/pid (\d+)/.exec(announcer.name)?.[1]);
    assert.ok(pid > 0, announcer.name);
    process.kill(pid, 'SIGKILL');
    const until = Date.now() + 15_000;
    for (;;) {
      const st = sp.status();
      const again = /pid (\d+)/.exec(st.speaker?.name ?? '')?.[1];
      if (st.speaker?.up === true && again !== undefined && Number(again) !== pid && st.routes[0]?.announced === true) break;
      if (Date.now() > until) assert.fail(`not restarted: ${JSON.stringify(st)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual((await announcer.routes()).map((r) => r.prefix), ['127.61.9.10/32'], 'the new gobgpd originates the route again');
    assert.ok(failures.includes(BgpErrorCode.SPEAKER), failures.join(', '));
  } finally {
    unsubscribe(FAILURE_CHANNEL, onFailure);
    await sp.stop();
  }
});

/** An operator's gobgpd (started here, its API on a free loopback port). */
async function operatorsGobgpd(): Promise<{ api: string; stop(): Promise<void> }> {
  const { spawn } = await import('node:child_process');
  const { freePort } = await import('../src/testing/net.js');
  const port = await freePort();
  const child = spawn(gobgpd, ['--api-hosts', `127.0.0.1:${port}`, '--log-level', 'warn', '--pprof-disable'], { stdio: 'ignore' });
  return {
    api: `127.0.0.1:${port}`,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    }),
  };
}

announcerCompliance('GoBGP (an operator\'s gobgpd, api HOST:PORT)', async () => {
  const g = await operatorsGobgpd();
  const announcer = new GoBgpAnnouncer({ api: g.api });
  return { announcer, neighbors: ['127.61.9.1', '127.61.9.2'], cleanup: async () => { await announcer.close(); await g.stop(); } };
});

test('GoBGP api mode: another AS on the operator\'s gobgpd is refused, its own neighbours are kept, ours are taken back at close', async () => {
  const g = await operatorsGobgpd();
  try {
    const theirs = new GoBgpAnnouncer({ api: g.api });
    await theirs.configure({ localAs: 65100, routerId: '10.255.0.7', listenPort: -1, neighbors: [{ address: '127.61.9.7', remoteAs: 65000, port: 1791 }] });
    // Fulcrum against the operator's speaker: another AS is refused, nothing changed.
    const mine = new GoBgpAnnouncer({ api: g.api });
    await assert.rejects(mine.configure({ localAs: 65001, routerId: '10.255.0.1', listenPort: -1, neighbors: [] }), (err: unknown) => {
      assert.equal((err as { code?: string }).code, BgpErrorCode.REFUSED);
      assert.match((err as Error).message, /runs AS 65100 router id 10\.255\.0\.7; fulcrum_bgp says AS 65001/);
      return true;
    });
    // Their own route is theirs: Fulcrum neither reads it back nor withdraws it.
    const { routeOf } = await import('../src/bgp/index.js');
    await theirs.announce(routeOf('inet', '10.77.0.1', 32, { communities: [], loc: { file: 't', line: 1, col: 1 } }));
    // The same AS: our neighbour is added beside theirs; at close ours goes, theirs stays.
    await mine.configure({ localAs: 65100, routerId: '10.255.0.7', listenPort: -1, neighbors: [{ address: '127.61.9.8', remoteAs: 65000, port: 1791 }] });
    assert.deepEqual((await mine.sessions()).map((s) => s.neighbor).sort(), ['127.61.9.7', '127.61.9.8']);
    assert.deepEqual(await mine.routes(), []);
    await mine.announce(routeOf('inet', '10.99.0.1', 32, { communities: [], loc: { file: 't', line: 1, col: 1 } }));
    assert.deepEqual((await mine.routes()).map((r) => r.prefix), ['10.99.0.1/32']);
    await mine.close();
    assert.deepEqual((await theirs.routes()).map((r) => r.prefix), ['10.77.0.1/32'], 'their route stays, ours is gone');
    assert.deepEqual((await theirs.sessions()).map((s) => s.neighbor), ['127.61.9.7']);
    await theirs.close();
  } finally {
    await g.stop();
  }
});
