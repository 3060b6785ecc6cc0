/**
 * Sub-second director failover: two Fulcrum directors, VRRPv3 with advert_int 0.1, a real
 * server behind each, a client loop against the VIP; the master crashes. Also a director
 * that runs VRRP only (no virtual_server), like `keepalived --vrrp`. Runs as root.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { repoRoot, testOnce, withTempDir } from '../src/testing/index.js';
import { isRoot, testLab } from '../src/testing/netns.js';
import path from 'node:path';
import { apiRequest } from '../src/api/client.js';
import { logEvent, measureFailover, sleep, startFulcrum, startObserver, vrrpInstance, type Proc } from '../src/testing/vrrp-lab.js';
import { ensureCommand } from '../src/testing/peers.js';
import { errorCode } from '../src/errors/index.js';
import type { Lab } from '../src/testing/netns.js';

const skip = isRoot() ? false : 'needs root (network namespaces, raw sockets); CI runs as root';
const PREFIX = `fvf${process.pid % 10000}`;

test('sub-second failover: the client loop through a Fulcrum pair sees at most 400 ms of outage when the master crashes; the listener follows the VIP', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, PREFIX);
  await withTempDir(async (dir) => {
    lab.host('c', '10.66.0.9');
    lab.host('d1', '10.66.0.2');
    lab.host('d2', '10.66.0.3');
    const r = await measureFailover(lab, dir, 'fulcrum', '10.66.0.100', { advert: 0.1, priorities: [254, 250] });
    t.diagnostic(`outage ${r.outageMs.toFixed(0)} ms (master down interval ${r.expectedMs.toFixed(0)} ms), ${r.failed}/${r.tries} tries failed, ${r.before} → ${r.after}`);
    assert.equal(r.before, 'd1');
    assert.equal(r.after, 'd2');
    assert.ok(r.failed > 0, 'the crash was seen by the client');
    assert.ok(r.outageMs <= 400, `outage ${r.outageMs} ms`);
    // The master's last advert came at most one interval before the crash, so the backup
    // cannot have taken over sooner than Master_Down_Interval − advert_int after it.
    assert.ok(r.outageMs >= r.expectedMs - 100, `outage ${r.outageMs} ms is shorter than the master-down interval allows: the backup did not wait`);
  });
});

/** Two directors with `--workers 2`, VRRPv3 at advert 0.1 and a proxied service on the VIP; d1 MASTER. */
async function workersPair(lab: Lab, dir: string, vip: string): Promise<{ d1: Proc & { socket: string }; d2: Proc & { socket: string } }> {
  lab.host('c', vip.replace(/\.\d+$/, '.9'));
  lab.host('d1', vip.replace(/\.\d+$/, '.2'));
  lab.host('d2', vip.replace(/\.\d+$/, '.3'));
  const conf = (priority: number): string => vrrpInstance({ vrid: 71, priority, version: 3, advert: 0.1, vip: `${vip}/24` })
    + `virtual_server ${vip} 8080 {\n  lb_algo rr\n  lb_kind PROXY\n  real_server 127.0.0.1 9000 {\n    weight 1\n  }\n}\n`;
  const env = { ...process.env, FULCRUM_FAULT_INJECTION: '1' };
  const procs: (Proc & { socket: string })[] = [];
  for (const [i, host] of (['d1', 'd2'] as const).entries()) {
    lab.spawn(host, process.execPath, ['-e', `require('net').createServer((s)=>s.end(${JSON.stringify(`${host}\n`)})).listen(9000,'127.0.0.1')`]);
    const p = startFulcrum(lab, host, dir, conf(i === 0 ? 254 : 250), ['--workers', '2'], env);
    await p.waitLine(logEvent('vrrp-transition', { to: i === 0 ? 'MASTER' : 'BACKUP' }), 10_000);
    procs.push(p);
  }
  return { d1: procs[0] as Proc & { socket: string }, d2: procs[1] as Proc & { socket: string } };
}

/** Listening sockets on `port` in a host's namespace (one per data-plane worker). */
function listeners(lab: Lab, host: string, port: number): number {
  return lab.exec(host, 'ss', ['-Hltn', `sport = :${port}`]).split('\n').filter((l) => l.trim() !== '').length;
}

test('--workers 2 with VRRP: the backup takes over and opens the VIP listener on every worker', { skip, timeout: 90_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}w`);
  await withTempDir(async (dir) => {
    const vip = '10.67.0.100';
    const { d2 } = await workersPair(lab, dir, vip);
    assert.equal(listeners(lab, 'd1', 8080), 2, 'the master listens on the VIP in both workers');
    assert.equal(listeners(lab, 'd2', 8080), 0, 'the backup does not');
    lab.crash('d1');
    await d2.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 5000);
    let n = 0;
    for (let i = 0; i < 100 && n < 2; i++) {
      n = listeners(lab, 'd2', 8080);
      if (n < 2) await sleep(20);
    }
    assert.equal(n, 2, 'both of the new master\'s workers listen on the VIP');
    let ok = 0;
    for (let i = 0; i < 20; i++) if (lab.exec('c', process.execPath, ['-e', `const s=require('net').connect(8080,'${vip}');s.on('data',(d)=>{process.stdout.write(d);s.destroy()});s.on('error',()=>process.exit(1))`]).trim() === 'd2') ok++;
    assert.equal(ok, 20, 'and it answers');
    const st = await apiRequest<{ workers: { alive: boolean }[] }>({ socketPath: path.join(dir, 'd2.sock') }, 'GET', '/v1/status');
    assert.equal(st.body.workers.filter((w) => w.alive).length, 2);
  });
});

test('a 10-second CPU stall of the master\'s control plane: VRRP keeps advertising (its own process), the backup never takes over', { skip, timeout: 90_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}s`);
  await withTempDir(async (dir) => {
    const vip = '10.68.0.100';
    const { d2 } = await workersPair(lab, dir, vip);
    const obs = startObserver(lab, 'c');
    await obs.next((a) => a.vrid === 71, 5000);
    const d2From = d2.lines.length;
    const stall = await apiRequest({ socketPath: path.join(dir, 'd1.sock') }, 'POST', '/v1/debug/stall', { ms: 10_000 }, { timeoutMs: 30_000 });
    assert.equal(stall.status, 200);
    const d1ip = lab.hosts.get('d1')?.ipv4;
    const during = obs.adverts.filter((a) => a.vrid === 71 && a.src === d1ip);
    const gaps = during.slice(1).map((a, i) => a.t - (during[i] as { t: number }).t);
    const worst = Math.max(...gaps.slice(-90));
    t.diagnostic(`${during.length} adverts from the master; worst gap ${worst.toFixed(0)} ms during the control-plane stall (advert_int 100 ms, master down after ~310 ms)`);
    assert.ok(during.length >= 90, `the master advertised throughout (${during.length})`);
    assert.ok(worst < 300, `no gap that would let the backup take over (${worst.toFixed(0)} ms)`);
    assert.ok(!d2.lines.slice(d2From).some(logEvent('vrrp-transition', { to: 'MASTER' })), 'the backup stayed BACKUP');
  });
});

testOnce('track_file moves the VIP: the master\'s file reads 1 (weight 0) → FAULT and the backup takes the VIP and its virtual_routes; 0 → it preempts back; vrrp_notify_fifo has every state change', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}t`);
  await withTempDir(async (dir) => {
    lab.host('d1', '10.67.0.2');
    lab.host('d2', '10.67.0.3');
    const file = path.join(dir, 'd1.track');
    const fifo = path.join(dir, 'd1.fifo');
    const tracked = `global_defs {\n  vrrp_notify_fifo ${fifo}\n}\ntrack_file maint {\n  file ${file}\n  weight 0\n  init_file 0 overwrite\n}\n`;
    // A route that moves with the VIP.
    const vr = '  virtual_routes {\n    10.98.0.0/24 via 10.67.0.1 dev eth0\n  }\n';
    const route = (host: string): string => lab.exec(host, 'ip', ['-4', 'route', 'show', '10.98.0.0/24']).trim();
    const d1 = startFulcrum(lab, 'd1', dir, tracked + vrrpInstance({ vrid: 72, priority: 200, version: 3, advert: 0.1, vip: '10.67.0.100/24', extra: `  track_file {\n    maint\n  }\n${vr}` }));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    const d2 = startFulcrum(lab, 'd2', dir, vrrpInstance({ vrid: 72, priority: 100, version: 3, advert: 0.1, vip: '10.67.0.100/24', extra: vr }));
    await d2.waitLine(logEvent('vrrp-transition', { to: 'BACKUP' }), 10_000);
    assert.ok(lab.addresses('d1').includes('10.67.0.100'));
    assert.match(route('d1'), /via 10\.67\.0\.1 dev eth0/, 'virtual_routes on the master');
    assert.equal(route('d2'), '', 'not on the backup');
    const fs = await import('node:fs');
    assert.equal(fs.readFileSync(file, 'utf8').trim(), '0', 'init_file wrote the file');
    fs.writeFileSync(file, '1\n');
    await d1.waitLine(logEvent('vrrp-transition', { to: 'FAULT' }), 5_000);
    await d2.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 5_000);
    assert.ok(lab.addresses('d2').includes('10.67.0.100'), 'the backup holds the VIP');
    assert.ok(!lab.addresses('d1').includes('10.67.0.100'), 'the faulted master released it');
    assert.match(route('d2'), /via 10\.67\.0\.1 dev eth0/, 'the route moved with the VIP');
    assert.equal(route('d1'), '');
    fs.writeFileSync(file, '0\n');
    await d2.waitLine(logEvent('vrrp-transition', { from: 'MASTER', to: 'BACKUP' }), 8_000);
    assert.ok(lab.addresses('d1').includes('10.67.0.100'), 'back on d1 after it preempted');
    // The FIFO Fulcrum created holds every change, in order, in keepalived's format. d1's
    // last line (MASTER) is written by its notify queue after the advert that sent d2 back:
    // read until it is there (bounded).
    const fd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const buf = Buffer.alloc(4096);
    let text = '';
    try {
      for (let i = 0; i < 50 && text.trim().split('\n').length < 5; i++) {
        try {
          text += buf.subarray(0, fs.readSync(fd, buf)).toString();
        } catch (err: unknown) {
          if (errorCode(err) !== 'EAGAIN') throw err;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      fs.closeSync(fd);
    }
    const lines = text.trim().split('\n');
    assert.deepEqual(lines, ['INSTANCE "VI_1" BACKUP 200', 'INSTANCE "VI_1" MASTER 200', 'INSTANCE "VI_1" FAULT 200', 'INSTANCE "VI_1" BACKUP 200', 'INSTANCE "VI_1" MASTER 200']);
  });
});

testOnce('garp_master_refresh: a master re-announces its VIP every second (2 gratuitous ARPs each), as a neighbour on the segment sees; static_ipaddress and static_routes are in place while it runs and gone after it stops', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}g`);
  await withTempDir(async (dir) => {
    const tcpdump = ensureCommand('tcpdump', 'tcpdump');
    lab.host('c', '10.68.0.9');
    lab.host('d1', '10.68.0.2');
    const statics = 'static_ipaddress {\n  10.68.5.5/32 dev eth0\n}\nstatic_routes {\n  10.99.0.0/24 via 10.68.0.1 dev eth0\n}\nstatic_rules {\n  from 10.68.5.5 table 100 priority 1000\n}\n';
    const d1 = startFulcrum(lab, 'd1', dir, statics + vrrpInstance({ vrid: 73, priority: 200, version: 3, advert: 0.1, vip: '10.68.0.100/24',
      extra: '  garp_master_delay 0\n  garp_master_refresh 1\n  garp_master_refresh_repeat 2\n' }));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    await sleep(500);
    const cap = lab.spawn('c', tcpdump, ['-i', 'eth0', '-n', '-l', 'arp']);
    let out = '';
    let err = '';
    cap.stdout?.on('data', (c: Buffer) => { out += c.toString(); });
    cap.stderr?.on('data', (c: Buffer) => { err += c.toString(); });
    // Count from when tcpdump listens, for 3.3 s.
    for (let i = 0; i < 100 && !err.includes('listening on'); i++) await sleep(50);
    assert.match(err, /listening on/);
    await sleep(3300);
    cap.kill('SIGTERM');
    await new Promise((r) => cap.once('exit', r));
    const garps = out.split('\n').filter((l) => /who-has 10\.68\.0\.100 .*tell 10\.68\.0\.100|Reply 10\.68\.0\.100 is-at/.test(l));
    t.diagnostic(`${garps.length} gratuitous ARPs in 3.3 s`);
    assert.ok(garps.length >= 4 && garps.length <= 8, `3 refreshes × 2 expected in 3.3 s: ${garps.length}\n${out}`);
    // Static address, route and rule: present while the director runs, whatever the VRRP state.
    assert.match(lab.exec('d1', 'ip', ['-4', 'route', 'show', '10.99.0.0/24']), /10\.99\.0\.0\/24 via 10\.68\.0\.1 dev eth0/);
    assert.ok(lab.addresses('d1').includes('10.68.5.5'));
    assert.match(lab.exec('d1', 'ip', ['-4', 'rule', 'show']), /^1000:\s+from 10\.68\.5\.5 lookup 100/m);
    d1.child.kill('SIGTERM');
    await new Promise((r) => d1.child.once('exit', r));
    assert.equal(lab.exec('d1', 'ip', ['-4', 'route', 'show', '10.99.0.0/24']).trim(), '', 'the static route is removed at stop');
    assert.ok(!lab.addresses('d1').includes('10.68.5.5'), 'the static address too');
    assert.doesNotMatch(lab.exec('d1', 'ip', ['-4', 'rule', 'show']), /10\.68\.5\.5/);
  });
});

testOnce('track_process moves the VIP: the tracked process exits → FAULT on the master (weight 0) and the backup takes the VIP; it runs again → the master preempts back', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}p`);
  await withTempDir(async (dir) => {
    const fs = await import('node:fs');
    const { spawn } = await import('node:child_process');
    // A process with a name of its own (comm is the executable's name): a copy of sleep.
    const name = `fvp${process.pid % 100000}`;
    const exe = path.join(dir, name);
    fs.copyFileSync('/bin/sleep', exe);
    fs.chmodSync(exe, 0o755);
    const startProc = (): ReturnType<typeof spawn> => spawn(exe, ['600'], { stdio: 'ignore' });
    let proc = startProc();
    t.after(() => { proc.kill('SIGKILL'); });
    lab.host('d1', '10.70.0.2');
    lab.host('d2', '10.70.0.3');
    const tracked = `vrrp_track_process svc {\n  process ${name}\n  weight 0\n}\n`;
    const d1 = startFulcrum(lab, 'd1', dir, tracked + vrrpInstance({ vrid: 75, priority: 200, version: 3, advert: 0.1, vip: '10.70.0.100/24', extra: '  track_process {\n    svc\n  }\n' }));
    await d1.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    const d2 = startFulcrum(lab, 'd2', dir, vrrpInstance({ vrid: 75, priority: 100, version: 3, advert: 0.1, vip: '10.70.0.100/24' }));
    await d2.waitLine(logEvent('vrrp-transition', { to: 'BACKUP' }), 10_000);
    proc.kill('SIGKILL');
    await d1.waitLine(logEvent('vrrp-transition', { to: 'FAULT' }), 5_000);
    await d2.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 5_000);
    assert.ok(lab.addresses('d2').includes('10.70.0.100'), 'the backup holds the VIP');
    assert.ok(!lab.addresses('d1').includes('10.70.0.100'));
    proc = startProc();
    await d2.waitLine(logEvent('vrrp-transition', { from: 'MASTER', to: 'BACKUP' }), 8_000);
    assert.ok(lab.addresses('d1').includes('10.70.0.100'), 'back on d1 once the process runs');
  });
});

test('net_namespace: started in one namespace, the director runs in the one its file names (the same PID) — the VIP is there, not where it started; a missing namespace is a clear error; a reload cannot change it', { skip, timeout: 60_000 }, async (t) => {
  const lab = testLab(t, `${PREFIX}n`);
  await withTempDir(async (dir) => {
    const fs = await import('node:fs');
    const { execFileSync, spawnSync } = await import('node:child_process');
    lab.host('a', '10.72.0.2');
    const b = lab.host('b', '10.72.0.3');
    const conf = (ns: string): string => `net_namespace ${ns}\n${vrrpInstance({ vrid: 77, priority: 200, version: 3, advert: 0.1, vip: '10.72.0.100/24' })}`;
    const d = startFulcrum(lab, 'a', dir, conf(b.ns));
    await d.waitLine(logEvent('vrrp-transition', { to: 'MASTER' }), 10_000);
    assert.ok(lab.addresses('b').includes('10.72.0.100'), 'the VIP is in the named namespace');
    assert.ok(!lab.addresses('a').includes('10.72.0.100'), 'not where it was started');
    const pid = d.child.pid ?? 0;
    assert.equal(execFileSync('ip', ['netns', 'identify', String(pid)], { encoding: 'utf8' }).trim(), b.ns, 'the process started in a is now in b, same PID');
    const st = await apiRequest<{ vrrp: { name: string; state: string }[] }>({ socketPath: d.socket }, 'GET', '/v1/status');
    assert.deepEqual(st.body.vrrp.map((v) => [v.name, v.state]), [['VI_1', 'MASTER']], 'the API answers on its socket');
    // A reload naming another namespace is refused; the director stays where it is.
    fs.writeFileSync(path.join(dir, 'a.conf'), conf(lab.hosts.get('a')?.ns ?? 'x'));
    const mark = d.lines.length;
    d.child.kill('SIGHUP');
    const rejected = await d.waitLine(logEvent('reload-rejected'), 10_000, mark);
    assert.match(rejected, /net_namespace cannot change on reload/);
    assert.ok(lab.addresses('b').includes('10.72.0.100'));
    // A namespace that does not exist: a located refusal at start, nothing running.
    const missing = path.join(dir, 'missing.conf');
    fs.writeFileSync(missing, conf(`${PREFIX}-nonesuch`));
    const r = spawnSync(process.execPath, [path.join(repoRoot(), 'bin', 'fulcrum.js'), 'run', '-f', missing, '--api-socket', path.join(dir, 'm.sock')], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`net_namespace ${PREFIX}-nonesuch: no such network namespace`));
  });
});
