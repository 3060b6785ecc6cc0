/**
 * Active-active directors over BGP and ECMP, end to end in network namespaces: a router
 * running BIRD 2 (`merge paths on`, L4 multipath hashing), Fulcrum directors (DR, mh with
 * mh-port) each announcing the VIP through its own gobgpd, two real servers and a client,
 * all on one segment (the router forwards the client's packets back onto it: a router on
 * a stick). Root only (CI runs as root).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isRoot, testLab, until } from '../src/testing/netns.js';
import { curl, echoServer, httpServer, longLived } from '../src/testing/lvs-lab.js';
import type { Proc } from '../src/testing/vrrp-lab.js';
import { withTempDir } from '../src/testing/index.js';
import { BGP_VIP, bgpLab, hopsOf, nextHops, type DirectorName } from '../src/testing/bgp-lab.js';
import { apiRequest } from '../src/api/client.js';
import type { BgpStatus } from '../src/bgp/index.js';
import type { ServiceStats } from '../src/dataplane/index.js';

const skip = isRoot() ? false : 'needs root (network namespaces, nftables, BGP on port 179); CI runs as root';
const PREFIX = `fbg${process.pid % 10000}`;
const VIP = BGP_VIP;

async function bgpStatus(socket: string): Promise<BgpStatus> {
  return (await apiRequest<BgpStatus>({ socketPath: socket }, 'GET', '/v1/bgp')).body;
}

/** New connections a director has scheduled on the service vip:7000 (its counters). */
async function connections(socket: string): Promise<number> {
  const stats = (await apiRequest<ServiceStats[]>({ socketPath: socket }, 'GET', '/v1/stats')).body;
  return stats.filter((s) => s.spec.key === `tcp ${VIP}:7000`).reduce((n, s) => n + s.counters.conns, 0);
}

/** HTTP requests on fresh connections, back to back, for `seconds`: prints {ok, failed, reasons}. */
function requestLoop(url: string, seconds: number): string {
  return `
const http = require('http');
let ok = 0, failed = 0; const reasons = [];
const end = Date.now() + ${seconds * 1000};
function one() {
  if (Date.now() > end) { console.log(JSON.stringify({ ok, failed, reasons: reasons.slice(0, 5) })); process.exit(0); }
  const req = http.get(${JSON.stringify(url)}, { agent: false, timeout: 2000 }, (res) => { res.resume(); res.on('end', () => { ok++; setImmediate(one); }); });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { failed++; reasons.push(e.message); setTimeout(one, 10); });
}
one();
`;
}

function lines(p: Proc['child']): { next(pred: (l: string) => boolean, ms: number): Promise<string> } {
  const seen: string[] = [];
  const waiters: { pred: (l: string) => boolean; res: (l: string) => void }[] = [];
  let buf = '';
  p.stdout?.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      seen.push(l);
      for (const w of [...waiters]) if (w.pred(l)) { waiters.splice(waiters.indexOf(w), 1); w.res(l); }
    }
  });
  return {
    next: (pred, ms) => new Promise((resolve, reject) => {
      const hit = seen.find(pred);
      if (hit !== undefined) return resolve(hit);
      const t = setTimeout(() => reject(new Error(`no matching line in ${ms} ms (got: ${seen.slice(-3).join(' | ')})`)), ms);
      waiters.push({ pred, res: (l) => { clearTimeout(t); resolve(l); } });
    }),
  };
}

test('BGP + ECMP: three directors announce the VIP through gobgpd; BIRD spreads flows over all three; a SIGKILLed director and a fourth one that joins break no flow; health gates the announcement; a clean stop fails no request', { skip, timeout: 240_000 }, (t) => withTempDir(async (dir) => {
  const lab = testLab(t, PREFIX);
  const L = await bgpLab(lab, dir);
  const procs = L.procs;
  const start = L.start;
  // d2 tracks a link of its own (track_interface; a veth pair, this kernel has no dummy
  // driver): taking it down withdraws d2's routes while its BGP session stays up.
  lab.exec('d2', 'ip', ['link', 'add', 'trk0', 'type', 'veth', 'peer', 'name', 'trk1']);
  lab.exec('d2', 'ip', ['link', 'set', 'trk1', 'up']);
  lab.exec('d2', 'ip', ['link', 'set', 'trk0', 'up']);
  const t0 = Date.now();
  for (const d of ['d1', 'd2', 'd3'] as const) start(d, d === 'd2' ? '  track_interface trk0\n' : '');
  await until(() => nextHops(lab).length === 3, 30_000, 'the router to have three next hops for the VIP', 50);
  t.diagnostic(`three next hops on the router ${Date.now() - t0} ms after the directors started: ${nextHops(lab).join(', ')}`);
  assert.deepEqual(nextHops(lab), hopsOf('d1', 'd2', 'd3'));
  // Sessions are read every second: the status follows within one read.
  let st = await bgpStatus((procs.get('d1') as { socket: string }).socket);
  for (let i = 0; i < 50 && st.sessions[0]?.state !== 'established'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    st = await bgpStatus((procs.get('d1') as { socket: string }).socket);
  }
  assert.equal(st.sessions[0]?.state, 'established', JSON.stringify(st.sessions));
  assert.deepEqual(st.routes.map((r) => [r.prefix, r.announced, r.communities]), [[`${VIP}/32`, true, [65001 * 65536 + 100]]]);
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 20_000, 'the VIP to answer', 100);
  const ti = Date.now();
  lab.exec('d2', 'ip', ['link', 'set', 'trk0', 'down']);
  await until(() => nextHops(lab).length === 2, 10_000, 'd2 to withdraw when its tracked interface goes down', 20);
  t.diagnostic(`track_interface: d2 withdrawn ${Date.now() - ti} ms after trk0 went down (links are read every second)`);
  assert.deepEqual(nextHops(lab), hopsOf('d1', 'd3'));
  const st2a = await bgpStatus(L.socket('d2'));
  assert.equal(st2a.sessions[0]?.state, 'established', 'the session stays up');
  assert.match(st2a.routes[0]?.reason ?? '', /interface trk0 down \(track_interface\)/);
  lab.exec('d2', 'ip', ['link', 'set', 'trk0', 'up']);
  await until(() => nextHops(lab).length === 3, 10_000, 'd2 to announce again once trk0 is up', 20);

  // 300 long-lived flows spread over the three directors.
  const client = lab.spawn('c', process.execPath, ['-e', longLived(VIP, 7000, 300, 250, 16)]);
  const out = lines(client);
  await out.next((l) => l === 'connected', 20_000);
  // The kernel plane reads its counters on its poll: wait for them to show the flows.
  let spread: number[] = [];
  for (let i = 0; i < 100; i++) {
    spread = await Promise.all((['d1', 'd2', 'd3'] as const).map(async (d) => connections((procs.get(d) as { socket: string }).socket)));
    if (spread.reduce((a, b) => a + b, 0) >= 300) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  t.diagnostic(`new connections per director: ${spread.join(' / ')}`);
  for (const n of spread) assert.ok(n > 0, `every director scheduled connections: ${spread.join(' / ')}`);

  // SIGKILL d3 (every process in its namespace): its sessions close, the router withdraws it.
  await new Promise((r) => setTimeout(r, 1500));
  const tk = Date.now();
  lab.crash('d3');
  await until(() => nextHops(lab).length === 2, 15_000, 'the router to drop the dead director', 20);
  t.diagnostic(`the router dropped d3 ${Date.now() - tk} ms after the SIGKILL`);
  // A dead machine forwards nothing: its kernel rules go with its link.
  lab.plug('d3', false);
  assert.deepEqual(nextHops(lab), hopsOf('d1', 'd2'));

  // A fourth director joins under the same load.
  await new Promise((r) => setTimeout(r, 1000));
  const tj = Date.now();
  start('d4');
  await until(() => nextHops(lab).length === 3, 30_000, 'the router to add the fourth director', 50);
  t.diagnostic(`d4 joined the router's next hops ${Date.now() - tj} ms after it started`);
  assert.deepEqual(nextHops(lab), hopsOf('d1', 'd2', 'd4'));
  const result = JSON.parse(await out.next((l) => l.startsWith('{'), 60_000)) as { n: number; broken: number; reasons: string[]; by: Record<string, number>; lines: number };
  t.diagnostic(`300 flows: ${result.broken} broken (${result.reasons.join(', ')}); servers ${JSON.stringify(result.by)}; ${result.lines} lines answered`);
  const d4conns = await connections((procs.get('d4') as { socket: string }).socket);
  t.diagnostic(`flows d4 forwarded after joining: it scheduled ${d4conns} of them`);
  t.diagnostic(`flows the router moved off the dead d3: the ${spread[2] ?? 0} it had scheduled; broken among all 300: ${result.broken}`);
  assert.ok(d4conns > 0, 'the fourth director joined while the flows were running and forwarded some of them');
  assert.equal(result.n, 300);
  assert.equal(result.broken, 0, `no flow broke: ${result.reasons.join(', ')}`);

  // Health: r2 fails its check everywhere → out of rotation, the VIP stays announced.
  lab.crash('r2');
  const live = (d: DirectorName): Promise<string[]> => apiRequest<ServiceStats[]>({ socketPath: (procs.get(d) as { socket: string }).socket }, 'GET', '/v1/stats')
    .then((r) => r.body.filter((s) => s.spec.key === `tcp ${VIP}:80`).flatMap((s) => s.servers.filter((x) => x.spec.weight > 0).map((x) => x.spec.address)));
  for (const d of ['d1', 'd2', 'd4'] as const) {
    for (let i = 0; ; i++) {
      const l = await live(d);
      if (l.length === 1) break;
      if (i > 100) assert.fail(`${d} still has ${l.join(', ')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  assert.deepEqual(nextHops(lab), hopsOf('d1', 'd2', 'd4'), 'the VIP stays announced with one real server up');
  // r1 too: no real server → quorum lost on every director → withdrawn from the router.
  const tq = Date.now();
  lab.crash('r1');
  await until(() => nextHops(lab).length === 0, 20_000, 'the VIP to be withdrawn once no real server is up', 50);
  t.diagnostic(`route withdrawn ${Date.now() - tq} ms after the last real server died (checks every 1 s, connect_timeout 1)`);
  const st2 = await bgpStatus((procs.get('d1') as { socket: string }).socket);
  assert.equal(st2.routes[0]?.announced, false);
  assert.match(st2.routes[0]?.reason ?? '', /has no quorum/);
  // Back: r1 answers again → announced again.
  echoServer(lab, 'r1', 7000);
  httpServer(lab, 'r1', 80);
  const tu = Date.now();
  await until(() => nextHops(lab).length === 3, 30_000, 'the VIP to come back once a real server is up', 50);
  t.diagnostic(`route back on the router ${Date.now() - tu} ms after a real server came back`);

  // A clean stop of d1 under a request loop: withdraw, keep forwarding 2 s, then close.
  await until(() => curl(lab, 'c', `http://${VIP}/`) !== null, 10_000, 'the VIP to answer', 100);
  const loop = lab.spawn('c', process.execPath, ['-e', requestLoop(`http://${VIP}/`, 5)]);
  const loopOut = lines(loop);
  await new Promise((r) => setTimeout(r, 1500));
  const ts = Date.now();
  (procs.get('d1') as Proc).child.kill('SIGTERM');
  await until(() => nextHops(lab).length === 2, 10_000, 'the router to drop the stopping director', 20);
  t.diagnostic(`clean stop: the router dropped d1 ${Date.now() - ts} ms after SIGTERM`);
  const loopResult = JSON.parse(await loopOut.next((l) => l.startsWith('{'), 30_000)) as { ok: number; failed: number; reasons: string[] };
  t.diagnostic(`request loop across the clean stop: ${loopResult.ok} ok, ${loopResult.failed} failed ${loopResult.reasons.join(', ')}`);
  assert.ok(loopResult.ok > 50, `requests went through: ${loopResult.ok}`);
  // The loop outlived the stop's grace (2 s after the withdraw): it ran on the other two.
  assert.equal(loopResult.failed, 0, loopResult.reasons.join(', '));
}));
