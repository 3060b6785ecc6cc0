/**
 * The monitor with the director on a fake clock: how long a dying real server stays in
 * rotation and how long a recovered one stays out, keepalived's timing to the
 * millisecond; reload keeps checker state; notify scripts run in order; alerts are mailed
 * to a real SMTP server (the smtp-server package as a local sink).
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startSmtpSink } from '../testing/smtp.js';
import { parseKeepalivedText } from '../config/index.js';
import { Director } from '../director/index.js';
import { FakeDataPlane } from '../dataplane/index.js';
import type { FulcrumConfig } from '../model/types.js';
import { ScriptAndMailNotifier, smtpMailer, type NotifyReport } from '../notify/index.js';
import { FakeClock } from './clock.js';
import { FakeChecker } from './fake.js';
import { HealthMonitor } from './monitor.js';

function config(text: string): FulcrumConfig {
  const r = parseKeepalivedText(text);
  assert.ok(r.ok, JSON.stringify(r.diagnostics));
  return r.config;
}

const CONF = (extra = ''): string => `virtual_server 127.0.0.1 8080 {
  lb_algo rr
  lb_kind PROXY
  delay_loop 6
  real_server 127.0.0.2 80 {
    ${extra}
    TCP_CHECK {
      connect_timeout 3
      retry 2
      delay_before_retry 2
      warmup 0
    }
  }
  real_server 127.0.0.3 80 {
    TCP_CHECK {
      connect_timeout 3
      warmup 0
    }
  }
}
`;

async function rig(text: string, notifier?: ScriptAndMailNotifier): Promise<{ clock: FakeClock; plane: FakeDataPlane; checkers: Map<string, FakeChecker>; monitor: HealthMonitor; director: Director; inRotation: () => string[] }> {
  const clock = new FakeClock();
  const plane = new FakeDataPlane();
  const director = new Director(plane);
  const checkers = new Map<string, FakeChecker>();
  const cfg = config(text);
  await director.setConfig(cfg);
  const monitor = new HealthMonitor({
    clock,
    observe: (b) => void director.observeMany(b),
    createChecker: (_c, rs) => {
      const f = new FakeChecker();
      checkers.set(rs.address, f);
      return f;
    },
    ...(notifier ? { notifier } : {}),
  });
  monitor.setConfig(cfg);
  const inRotation = (): string[] => [...(plane.table.services.get('tcp 127.0.0.1:8080')?.servers.values() ?? [])].filter((s) => s.weight > 0).map((s) => s.address).sort();
  return { clock, plane, checkers, monitor, director, inRotation };
}

test('time out of rotation and back, on a fake clock: delay_loop + retries × delay_before_retry, and one delay_loop to return', async () => {
  const { clock, checkers, monitor, inRotation } = await rig(CONF());
  try {
    await clock.advance(0);
    assert.deepEqual(inRotation(), ['127.0.0.2', '127.0.0.3']);
    await clock.advance(1000);
    const rs = checkers.get('127.0.0.2');
    assert.ok(rs);
    rs.healthy = false; // dies 1 s after its last good check (at t=0)
    const died = clock.now();
    let out = -1;
    for (let t = 0; t < 30_000 && out < 0; t += 100) {
      await clock.advance(100);
      if (!inRotation().includes('127.0.0.2')) out = clock.now() - died;
    }
    // Next check at t=6 s fails, retries at 8 s and 10 s fail → out at 10 s: 9 s after it died.
    assert.equal(out, 9000);
    rs.healthy = true;
    const back = clock.now();
    let inAgain = -1;
    for (let t = 0; t < 30_000 && inAgain < 0; t += 100) {
      await clock.advance(100);
      if (inRotation().includes('127.0.0.2')) inAgain = clock.now() - back;
    }
    // Down checkers are probed every delay_loop: the next check is at 16 s.
    assert.equal(inAgain, 6000);
  } finally {
    monitor.stop();
  }
});

test('reload keeps a down checker down (state carried by key); alpha starts a new server out of rotation', async () => {
  const { clock, checkers, monitor, director, inRotation } = await rig(CONF());
  try {
    const rs = checkers.get('127.0.0.2');
    assert.ok(rs);
    rs.healthy = false;
    await clock.advance(20_000);
    assert.deepEqual(inRotation(), ['127.0.0.3']);
    const before = checkers.get('127.0.0.2');
    const cfg = config(CONF().replace('real_server 127.0.0.3 80 {', 'real_server 127.0.0.4 80 {\n    alpha\n    TCP_CHECK {\n      warmup 0\n    }\n  }\n  real_server 127.0.0.3 80 {'));
    await director.setConfig(cfg);
    monitor.setConfig(cfg);
    assert.equal(checkers.get('127.0.0.2'), before, 'same runner, same checker');
    assert.deepEqual(inRotation(), ['127.0.0.3'], '.2 still down; .4 (alpha) not in before its first check');
    await clock.advance(0);
    assert.deepEqual(inRotation(), ['127.0.0.3', '127.0.0.4'], 'first check (warmup 0) passed: .4 in; .2 still down');
  } finally {
    monitor.stop();
  }
});

test('notify_up/notify_down run in order with their arguments; an alert mail reaches a real SMTP server', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-notify-'));
  const log = path.join(dir, 'log');
  const script = path.join(dir, 'notify.sh');
  fs.writeFileSync(script, `#!/bin/sh\nsleep 0.1\necho "$@" >> ${log}\n`, { mode: 0o755 });
  const smtp = await startSmtpSink();
  const { mails, port } = smtp;
  const reports: NotifyReport[] = [];
  const notifier = new ScriptAndMailNotifier(smtpMailer, (r) => reports.push(r));
  const text = `global_defs {
  router_id LB_TEST
  notification_email {
    ops@example.test
  }
  notification_email_from lb@example.test
  smtp_server 127.0.0.1 ${port}
  smtp_connect_timeout 5
}
` + CONF(`notify_up "${script} up 127.0.0.2"\n    notify_down "${script} down 127.0.0.2"`);
  const { clock, checkers, monitor } = await rig(text, notifier);
  try {
    const rs = checkers.get('127.0.0.2');
    assert.ok(rs);
    rs.healthy = false;
    await clock.advance(12_000);
    rs.healthy = true;
    await clock.advance(6000);
    rs.healthy = false;
    await clock.advance(12_000);
    await notifier.idle();
    assert.equal(fs.readFileSync(log, 'utf8'), 'down 127.0.0.2\nup 127.0.0.2\ndown 127.0.0.2\n', 'in order, never concurrently');
    assert.equal(mails.length, 3);
    assert.match(mails[0] ?? '', /Subject: \[LB_TEST\] Realserver \[127\.0\.0\.2:80\] of virtual server \[tcp 127\.0\.0\.1:8080\] - DOWN/);
    assert.match(mails[0] ?? '', /To: ops@example\.test/);
    assert.match(mails[1] ?? '', /- UP/);
    assert.deepEqual(reports.map((r) => `${r.type}:${r.ok}`), ['script:true', 'mail:true', 'script:true', 'mail:true', 'script:true', 'mail:true']);
  } finally {
    monitor.stop();
    await smtp.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('flapping: retries keep an intermittently failing server in; `rise 3` keeps a flapping dead one out', async () => {
  const { clock, checkers, monitor, inRotation } = await rig(CONF().replace('      retry 2\n', '      retry 2\n      rise 3\n'));
  try {
    const rs = checkers.get('127.0.0.2');
    assert.ok(rs);
    // fail, ok, fail, ok, … never 3 failures in a row: retry 2 absorbs every one.
    rs.queue.push(...Array.from({ length: 20 }, (_, i) => i % 2 === 1));
    for (let i = 0; i < 200 && rs.queue.length > 0; i++) {
      await clock.advance(1000);
      assert.ok(inRotation().includes('127.0.0.2'), `still in at ${clock.now()} ms`);
    }
    assert.equal(rs.queue.length, 0);
    rs.healthy = false;
    await clock.advance(20_000);
    assert.ok(!inRotation().includes('127.0.0.2'), 'down after 3 failures in a row');
    // Now it flaps: ok, ok, fail, ok, ok, fail … never 3 successes in a row.
    rs.queue.push(...Array.from({ length: 12 }, (_, i) => i % 3 !== 2));
    for (let i = 0; i < 200 && rs.queue.length > 0; i++) {
      await clock.advance(1000);
      assert.ok(!inRotation().includes('127.0.0.2'), `still out at ${clock.now()} ms`);
    }
    assert.equal(rs.queue.length, 0);
    rs.healthy = true;
    await clock.advance(18_000);
    assert.ok(inRotation().includes('127.0.0.2'), 'back after 3 successes in a row');
  } finally {
    monitor.stop();
  }
});

test('quorum_down/quorum_up run when the live weight crosses quorum', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-quorum-'));
  const log = path.join(dir, 'log');
  const script = path.join(dir, 'q.sh');
  fs.writeFileSync(script, `#!/bin/sh\necho "$@" >> ${log}\n`, { mode: 0o755 });
  const notifier = new ScriptAndMailNotifier(() => null, () => undefined);
  const cfg = config(CONF().replace('  delay_loop 6\n', `  delay_loop 6\n  quorum 2\n  quorum_up "${script} up"\n  quorum_down "${script} down"\n`));
  const clock = new FakeClock();
  const plane = new FakeDataPlane();
  const director = new Director(plane, (vs, up) => notifier.quorumChanged({ service: 'svc', up, script: up ? vs.quorumUp : vs.quorumDown }, cfg.global));
  const checkers = new Map<string, FakeChecker>();
  const monitor = new HealthMonitor({ clock, observe: (b) => void director.observeMany(b), createChecker: (_c, rs) => { const f = new FakeChecker(); checkers.set(rs.address, f); return f; } });
  try {
    await director.setConfig(cfg);
    monitor.setConfig(cfg);
    const rs = checkers.get('127.0.0.3');
    assert.ok(rs);
    rs.healthy = false;
    await clock.advance(12_000);
    rs.healthy = true;
    await clock.advance(6000);
    await notifier.idle();
    assert.equal(fs.readFileSync(log, 'utf8'), 'down\nup\n');
  } finally {
    monitor.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a runtime change goes through only the servers it touched; a removed server stops, the rest keep their checkers', async () => {
  const { clock, checkers, monitor } = await rig(CONF());
  try {
    const first = new Map(checkers);
    const cfg0 = config(CONF());
    monitor.setConfig(cfg0);
    // What a reload with the same text does: new objects, same checkers by key, none made.
    assert.equal(checkers.get('127.0.0.2'), first.get('127.0.0.2'));
    const created = (): number => [...checkers.values()].filter((c) => ![...first.values()].includes(c)).length;
    assert.equal(created(), 0);
    const vs = cfg0.virtualServers[0];
    assert.ok(vs);
    // The same service object again: nothing re-synced, nothing stopped.
    monitor.setConfig({ ...cfg0 });
    assert.equal(created(), 0);
    // One real server's checker changed (a new object for it and its service, as applyOverlay makes).
    const [a, b] = vs.realServers;
    assert.ok(a && b);
    const a2 = { ...a, checkers: a.checkers.map((c) => ({ ...c, timing: { ...c.timing, connectTimeout: 9 } })) };
    monitor.setConfig({ ...cfg0, virtualServers: [{ ...vs, realServers: [a2, b] }] });
    assert.equal(created(), 1);
    assert.equal(checkers.get('127.0.0.3'), first.get('127.0.0.3'));
    // The server removed: its checker probes no more; the other keeps probing.
    const b3 = checkers.get('127.0.0.3');
    assert.ok(b3);
    monitor.setConfig({ ...cfg0, virtualServers: [{ ...vs, realServers: [a2] }] });
    const before = b3.calls;
    const live = checkers.get('127.0.0.2');
    assert.ok(live);
    const liveBefore = live.calls;
    await clock.advance(20_000);
    assert.equal(b3.calls, before);
    assert.ok(live.calls > liveBefore);
  } finally {
    monitor.stop();
  }
});

test('a real server object seen before comes back (a runtime change undone, a removed server restored): its checkers follow the object, not a remembered entry', async () => {
  const { clock, checkers, monitor } = await rig(CONF());
  try {
    const cfg0 = config(CONF());
    monitor.setConfig(cfg0);
    const vs = cfg0.virtualServers[0];
    assert.ok(vs);
    const [a, b] = vs.realServers;
    assert.ok(a && b);
    const made = new Set(checkers.values());
    const created = (): FakeChecker[] => [...checkers.values()].filter((c) => !made.has(c));
    // a → a2 (another checker configuration) → a again: each step makes a checker.
    const a2 = { ...a, checkers: a.checkers.map((c) => ({ ...c, timing: { ...c.timing, connectTimeout: 9 } })) };
    monitor.setConfig({ ...cfg0, virtualServers: [{ ...vs, realServers: [a2, b] }] });
    const forA2 = checkers.get('127.0.0.2');
    assert.equal(created().length, 1);
    monitor.setConfig({ ...cfg0, virtualServers: [{ ...vs, realServers: [a, b] }] });
    assert.notEqual(checkers.get('127.0.0.2'), forA2, 'the undone change made a checker for the old configuration again');
    made.add(forA2 as FakeChecker);
    assert.equal(created().length, 1);
    // b removed, then the same object restored: it is checked again, by a new checker.
    const oldB = checkers.get('127.0.0.3');
    assert.ok(oldB);
    monitor.setConfig({ ...cfg0, virtualServers: [{ ...vs, realServers: [a] }] });
    monitor.setConfig({ ...cfg0, virtualServers: [{ ...vs, realServers: [a, b] }] });
    const newB = checkers.get('127.0.0.3');
    assert.ok(newB && newB !== oldB);
    const stopped = oldB.calls;
    await clock.advance(20_000);
    assert.equal(oldB.calls, stopped, 'the removed entry stays stopped');
    assert.ok(newB.calls > 0, 'the restored server is probed');
  } finally {
    monitor.stop();
  }
});

test('one real server object in two services: an entry (and checker) for each', async () => {
  const clock = new FakeClock();
  const made: string[] = [];
  const monitor = new HealthMonitor({ clock, observe: () => undefined, createChecker: (_c, rs) => { made.push(`${rs.address}:${rs.port}`); return new FakeChecker(); } });
  try {
    const cfg = config(CONF());
    const vs = cfg.virtualServers[0];
    assert.ok(vs && vs.endpoint.kind === 'address');
    const other = { ...vs, endpoint: { ...vs.endpoint, port: 8081 } };
    monitor.setConfig({ ...cfg, virtualServers: [vs] });
    assert.equal(made.length, 2);
    monitor.setConfig({ ...cfg, virtualServers: [vs, other] });
    assert.equal(made.length, 4, 'the second service has checkers of its own');
  } finally {
    monitor.stop();
  }
});
