import { test } from 'node:test';
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { FakeClock } from '../health/index.js';
import type { FulcrumConfig, ScriptSpec } from '../model/types.js';
import type { ScriptOutcome } from '../notify/script.js';
import { FakeSegment, SysErrorCode, type FakeHost, type NotifyFifo } from '../sys/index.js';
import { parseText } from '../testing/index.js';
import { encodeAdvert } from './codec.js';
import { VRRP_CHANNEL, VrrpNode, type VrrpEvent } from './node.js';

function conf(text: string): FulcrumConfig {
  const r = parseText(text);
  assert.ok(r.ok, r.diagnostics.map((d) => d.message).join('\n'));
  return r.config;
}

function instance(o: { priority: number; state?: string; version?: number; pass?: string; extra?: string; name?: string; vrid?: number; vip?: string; advert?: string }): string {
  return `vrrp_instance ${o.name ?? 'VI_1'} {
    state ${o.state ?? 'BACKUP'}
    interface eth0
    virtual_router_id ${o.vrid ?? 51}
    priority ${o.priority}
    advert_int ${o.advert ?? '1'}
    version ${o.version ?? 2}
    ${o.pass !== undefined ? `authentication { auth_type PASS\n auth_pass ${o.pass} }` : ''}
    virtual_ipaddress { ${o.vip ?? '10.0.0.100/24'} }
    ${o.extra ?? ''}
  }`;
}

interface Rig {
  clock: FakeClock;
  seg: FakeSegment;
  hosts: FakeHost[];
  nodes: VrrpNode[];
  held: string[][];
  scripts: { argv: string; args: string[]; at: number }[];
  exit: Map<string, number>;
  /** Scripts whose runner throws (sync) or rejects (async) instead of returning an outcome. */
  broken: Map<string, 'throw' | 'reject'>;
  events: VrrpEvent[];
  /** Tracked files' contents by path (absent: the file does not exist). */
  files: Map<string, string>;
  /** Lines written to notify FIFOs, by path. */
  fifos: Map<string, string[]>;
  states(): string[];
  done(): void;
}

function rig(n: number): Rig {
  const clock = new FakeClock();
  const seg = new FakeSegment();
  const hosts = Array.from({ length: n }, (_, k) => {
    const h = seg.host(`h${k}`, [{ name: 'eth0', mac: `02:00:00:00:00:0${k + 1}`, addresses: [{ family: 'inet', address: `10.0.0.${k + 1}`, prefixLength: 24 }, { family: 'inet6', address: `fe80::${k + 1}`, prefixLength: 64 }] }]);
    h.now = () => clock.now();
    return h;
  });
  const held: string[][] = hosts.map(() => []);
  const scripts: Rig['scripts'] = [];
  const exit = new Map<string, number>();
  const broken = new Map<string, 'throw' | 'reject'>();
  const run = (spec: ScriptSpec, o: { args?: readonly string[] }): Promise<ScriptOutcome> => {
    scripts.push({ argv: spec.argv.join(' '), args: [...(o.args ?? [])], at: clock.now() });
    const how = broken.get(spec.argv.join(' '));
    if (how === 'throw') throw new Error('spawn EINVAL');
    if (how === 'reject') return Promise.reject(new Error('spawn EMFILE'));
    const code = exit.get(spec.argv.join(' ')) ?? 0;
    return Promise.resolve({ exitCode: code, signal: null, timedOut: false, ms: 0, output: '' });
  };
  const files = new Map<string, string>();
  const fifos = new Map<string, string[]>();
  const openFifo = (p: string): NotifyFifo => {
    const lines = fifos.get(p) ?? [];
    fifos.set(p, lines);
    return { path: p, dropped: 0, write: (l) => { lines.push(l); return true; }, close: () => undefined };
  };
  const nodes = hosts.map((host, k) => new VrrpNode({
    host, clock, runScript: run, onHeldChange: (s) => { held[k] = [...s]; },
    readFile: (p) => files.get(p) ?? null, writeFile: (p, t) => { files.set(p, t); }, openFifo,
  }));
  const events: VrrpEvent[] = [];
  const sub = (m: unknown): void => { events.push(m as VrrpEvent); };
  subscribe(VRRP_CHANNEL, sub);
  return {
    files, fifos,
    clock, seg, hosts, nodes, held, scripts, exit, broken, events,
    states: () => nodes.map((x) => x.status().map((s) => s.state).join(',')),
    done: () => unsubscribe(VRRP_CHANNEL, sub),
  };
}

test('election by priority, VIP takeover with gratuitous ARPs, failover timed by Master_Down_Interval', async () => {
  const r = rig(2);
  try {
    r.nodes[0]!.start(conf(instance({ priority: 150, state: 'MASTER', pass: 'sa5pw' })));
    r.nodes[1]!.start(conf(instance({ priority: 100, pass: 'sa5pw' })));
    await r.clock.advance(3000 + (106 * 1000) / 256);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    assert.deepEqual(r.hosts[0]!.addresses('eth0'), ['10.0.0.1', 'fe80::1', '10.0.0.100']);
    assert.deepEqual(r.hosts[1]!.addresses('eth0'), ['10.0.0.2', 'fe80::2']);
    assert.deepEqual(r.held, [['10.0.0.100'], []]);
    assert.equal(r.hosts[0]!.announced.length, 5, 'garp_master_repeat 5 at once');
    await r.clock.advance(5000);
    assert.equal(r.hosts[0]!.announced.length, 10, 'and 5 more after garp_master_delay');
    assert.equal(r.nodes[1]!.status()[0]!.master, '10.0.0.1');
    // The master dies silently: the backup takes over 3·1 s + (256−100)/256 s after its last advert.
    const last = Math.floor(r.clock.now() / 1000) * 1000;
    r.hosts[0]!.up = false;
    await r.clock.advance(6000);
    const t = r.events.find((e) => e.type === 'transition' && e.instance === 'VI_1' && e.to === 'MASTER' && e.reason === 'master-down' && r.nodes[1]!.status()[0]!.becameMaster === 1);
    assert.ok(t);
    const took = r.nodes[1]!.status()[0]!.since - (last + (106 * 1000) / 256);
    assert.ok(Math.abs(took - 3609.375) < 1001, `takeover after ${took} ms`);
    assert.deepEqual(r.held[1], ['10.0.0.100']);
    assert.deepEqual(r.hosts[1]!.announced.slice(0, 5).map((a) => a.address), Array(5).fill('10.0.0.100'));
  } finally {
    r.done();
  }
});

test('lvs_sync_daemon following the instance: a returning master obeys the lower-priority master for one full sync cycle (32 s), then preempts', async () => {
  const r = rig(2);
  try {
    const sync = 'global_defs {\n lvs_sync_daemon eth0 VI_1\n}\n';
    const a = conf(sync + instance({ priority: 200 }));
    r.nodes[0]!.start(a);
    r.nodes[1]!.start(conf(sync + instance({ priority: 100 })));
    await r.clock.advance(40_000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP'], 'no master at start: no hold (the hold only obeys a lower master)');
    await r.nodes[0]!.stop();
    await r.clock.advance(1000);
    assert.equal(r.states()[1], 'MASTER');
    const again = new VrrpNode({ host: r.hosts[0]!, clock: r.clock, onHeldChange: () => undefined });
    r.nodes[0] = again;
    const back = r.clock.now();
    again.start(a);
    await r.clock.advance(30_000);
    assert.deepEqual(r.states(), ['BACKUP', 'MASTER'], 'still receiving the table 30 s after its return');
    await r.clock.advance(6_000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP'], 'takes over once the cycle is over');
    const took = again.status()[0]!.since - back;
    assert.ok(took >= 32_000 && took < 36_000, `took over ${took} ms after its return`);
    await again.stop();
    await r.nodes[1]!.stop();
  } finally {
    r.done();
  }
});

test('graceful stop sends priority 0: the backup takes over after the skew alone; preemption on return, none with nopreempt', async () => {
  for (const nopreempt of [false, true]) {
    const r = rig(2);
    try {
      const a = conf(instance({ priority: 200, extra: nopreempt ? 'nopreempt' : '' }));
      r.nodes[0]!.start(a);
      r.nodes[1]!.start(conf(instance({ priority: 100 })));
      await r.clock.advance(4000);
      assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
      const stopAt = r.clock.now();
      await r.nodes[0]!.stop();
      assert.deepEqual(r.hosts[0]!.addresses('eth0'), ['10.0.0.1', 'fe80::1']);
      await r.clock.advance(1000);
      assert.equal(r.states()[1], 'MASTER');
      assert.equal(r.nodes[1]!.status()[0]!.since - stopAt, (156 * 1000) / 256);
      // A comes back (a new process).
      const again = new VrrpNode({ host: r.hosts[0]!, clock: r.clock, onHeldChange: () => undefined });
      r.nodes[0] = again;
      again.start(a);
      await r.clock.advance(5000);
      assert.deepEqual(r.states(), nopreempt ? ['BACKUP', 'MASTER'] : ['MASTER', 'BACKUP']);
      await again.stop();
      await r.nodes[1]!.stop();
    } finally {
      r.done();
    }
  }
});

test('equal priority: two masters meeting (a healed split) — the higher primary address wins', async () => {
  const r = rig(2);
  try {
    r.hosts[0]!.up = false;
    r.nodes[0]!.start(conf(instance({ priority: 100, version: 3 })));
    r.nodes[1]!.start(conf(instance({ priority: 100, version: 3 })));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'MASTER']);
    r.hosts[0]!.up = true;
    await r.clock.advance(2000);
    assert.deepEqual(r.states(), ['BACKUP', 'MASTER']);
  } finally {
    r.done();
  }
});

test('authentication mismatch: both drop and count the other\'s adverts, both end up MASTER', async () => {
  const r = rig(2);
  try {
    r.nodes[0]!.start(conf(instance({ priority: 150, pass: 'one' })));
    r.nodes[1]!.start(conf(instance({ priority: 100, pass: 'two' })));
    await r.clock.advance(8000);
    assert.deepEqual(r.states(), ['MASTER', 'MASTER']);
    for (const n of r.nodes) assert.ok((n.drops()['auth-mismatch'] ?? 0) >= 3, JSON.stringify(n.drops()));
    const logged = r.events.filter((e) => e.type === 'dropped' && e.reason === 'auth-mismatch');
    assert.equal(logged.length, 2, 'logged once per sender per 10 s');
  } finally {
    r.done();
  }
});

test('malformed packets from a third host are dropped, counted by reason, and never change state', async () => {
  const r = rig(2);
  try {
    r.nodes[0]!.start(conf(instance({ priority: 150, pass: 'pw' })));
    r.nodes[1]!.start(conf(instance({ priority: 100, pass: 'pw' })));
    await r.clock.advance(5000);
    const before = r.nodes.map((n) => n.status()[0]!);
    const good = (o: Partial<{ vrid: number; priority: number; addresses: string[]; password: string | undefined; version: 2 | 3; intervalCs: number }> = {}): Buffer =>
      encodeAdvert({ version: 2, family: 'inet', vrid: 51, priority: 254, intervalCs: 100, addresses: ['10.0.0.100'], password: 'pw', src: '10.0.0.9', dst: '224.0.0.18', ...o });
    const flip = (b: Buffer, i: number): Buffer => { const c = Buffer.from(b); c[i] = (c[i] ?? 0) ^ 0x55; return c; };
    const send = (payload: Buffer, ttl = 255): void => r.seg.inject({ family: 'inet', src: '10.0.0.9', dst: '224.0.0.18', payload, ttl });
    send(good(), 64);
    send(good().subarray(0, 5));
    send(flip(good(), 0));
    send(Buffer.from([0x23, ...good().subarray(1)]));
    send(flip(good(), 7));
    send(good({ vrid: 52 }));
    send(good({ addresses: ['10.0.0.100', '10.0.0.101'] }));
    send(good({ addresses: ['10.0.0.99'] }));
    send(good({ password: 'nope' }));
    send(good({ intervalCs: 300 }));
    send(good({ version: 3 }));
    r.seg.inject({ family: 'inet', src: '10.0.0.9', dst: '224.0.0.18', payload: Buffer.alloc(0), raw: Buffer.alloc(10) });
    await r.clock.advance(10);
    const want = {
      'bad-ttl': 1, truncated: 2, 'bad-version': 2, 'bad-type': 1, 'bad-checksum': 1, 'unknown-vrid': 1,
      'address-count-mismatch': 1, 'address-mismatch': 1, 'auth-mismatch': 1, 'interval-mismatch': 1,
    };
    for (const n of r.nodes) assert.deepEqual(n.drops(), want);
    const after = r.nodes.map((n) => n.status()[0]!);
    assert.deepEqual(after.map((s) => [s.state, s.master, s.transitions]), before.map((s) => [s.state, s.master, s.transitions]));
    // A well-formed higher-priority advert from the third host does move the master.
    send(good());
    await r.clock.advance(10);
    assert.deepEqual(r.states(), ['BACKUP', 'BACKUP']);
  } finally {
    r.done();
  }
});

test('tracking: a failing weighted script lowers priority and hands over; a down interface means FAULT', async () => {
  const r = rig(2);
  try {
    const script = 'vrrp_script chk {\n script "/bin/check"\n interval 1\n weight -60\n fall 2\n rise 2\n}\n';
    r.nodes[0]!.start(conf(script + instance({ priority: 150, extra: 'track_script { chk }' })));
    r.nodes[1]!.start(conf(instance({ priority: 100 })));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    r.exit.set('/bin/check', 1);
    await r.clock.advance(2500);
    assert.equal(r.nodes[0]!.status()[0]!.priority, 90);
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['BACKUP', 'MASTER'], 'priority 90 < 100: the backup preempts');
    r.exit.set('/bin/check', 0);
    await r.clock.advance(6000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP'], 'recovered: preempts back');
    r.hosts[0]!.setLink('eth0', false);
    await r.clock.advance(10);
    assert.equal(r.states()[0], 'FAULT');
    assert.deepEqual(r.nodes[0]!.status()[0]!.faults, ['interface eth0 is down']);
    assert.deepEqual(r.hosts[0]!.addresses('eth0'), ['10.0.0.1', 'fe80::1']);
    await r.clock.advance(4000);
    assert.equal(r.states()[1], 'MASTER', 'the link is down, so no goodbye: the backup times out');
    r.hosts[0]!.setLink('eth0', true);
    await r.clock.advance(10);
    assert.equal(r.states()[0], 'BACKUP');
  } finally {
    r.done();
  }
});

test('sync group: members change state together; notify scripts run in order with keepalived\'s arguments', async () => {
  const r = rig(2);
  try {
    const text = (prio: number): string => `
      vrrp_sync_group G { group { VI_1 VI_2 } notify "/bin/group" }
      ${instance({ name: 'VI_1', vrid: 51, priority: prio, extra: 'notify_master "/bin/m1"\nnotify_backup "/bin/b1"\nnotify "/bin/any"' })}
      ${instance({ name: 'VI_2', vrid: 52, priority: prio, vip: '10.0.0.200/24', extra: 'track_interface { eth1 }' })}`;
    r.hosts[0]!.setLink('eth0', true);
    r.nodes[0]!.start(conf(text(150)));
    await r.clock.advance(10);
    // eth1 does not exist on host 0: VI_2 faults and takes VI_1 with it.
    assert.deepEqual(r.states()[0], 'FAULT,FAULT');
    assert.match(r.nodes[0]!.status()[0]!.faults.join(), /sync group G: VI_2 is in FAULT/);
    await r.nodes[0]!.stop();
    const r2 = rig(2);
    try {
      const good = (prio: number): string => text(prio).replace('track_interface { eth1 }', '');
      r2.nodes[0]!.start(conf(good(150)));
      r2.nodes[1]!.start(conf(good(100)));
      await r2.clock.advance(5000);
      assert.deepEqual(r2.states(), ['MASTER,MASTER', 'BACKUP,BACKUP']);
      // A higher priority for VI_1 alone on host 1 moves both instances there.
      r2.nodes[1]!.reload(conf(good(100).replace('priority 100', 'priority 200')));
      await r2.clock.advance(5000);
      assert.deepEqual(r2.states(), ['BACKUP,BACKUP', 'MASTER,MASTER']);
      const seq = r2.scripts.map((s) => `${s.argv} ${s.args.join(' ')}`.trim());
      assert.ok(seq.includes('/bin/m1'));
      assert.ok(seq.includes('/bin/any INSTANCE VI_1 MASTER 150'));
      assert.ok(seq.includes('/bin/group GROUP G MASTER 150'));
      assert.ok(seq.indexOf('/bin/m1') < seq.indexOf('/bin/any INSTANCE VI_1 MASTER 150'), 'specific script first, then notify');
    } finally {
      r2.done();
    }
  } finally {
    r.done();
  }
});

test('without CAP_NET_RAW start fails with E_SYS_PERMISSION and leaves nothing running', () => {
  const r = rig(1);
  try {
    r.hosts[0]!.denyRaw = true;
    assert.throws(() => r.nodes[0]!.start(conf(instance({ priority: 100 }))), (e: unknown) => (e as { code?: string }).code === SysErrorCode.PERMISSION);
    assert.equal(r.clock.pending, 0);
  } finally {
    r.done();
  }
});

test('unicast_peer: adverts go to each peer (no multicast group joined), and the election works over them', async () => {
  const r = rig(2);
  try {
    const uni = (prio: number, src: string, peer: string): string => instance({ priority: prio, version: 3, extra: `unicast_src_ip ${src}\nunicast_peer {\n ${peer}\n}` });
    r.nodes[0]!.start(conf(uni(150, '10.0.0.1', '10.0.0.2')));
    r.nodes[1]!.start(conf(uni(100, '10.0.0.2', '10.0.0.1')));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    assert.ok(r.seg.channels.every((c) => c.o.group === undefined), 'no multicast group joined');
    assert.equal(r.nodes[1]!.status()[0]!.master, '10.0.0.1');
    assert.ok(r.nodes[1]!.status()[0]!.advertsReceived >= 1);
    // A multicast advert from elsewhere does not reach a unicast-only instance.
    r.seg.inject({ family: 'inet', src: '10.0.0.9', dst: '224.0.0.18', payload: encodeAdvert({ version: 3, family: 'inet', vrid: 51, priority: 254, intervalCs: 100, addresses: ['10.0.0.100'], src: '10.0.0.9', dst: '224.0.0.18' }) });
    await r.clock.advance(10);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
  } finally {
    r.done();
  }
});

test('a notify or track script whose runner throws or rejects is reported; the node, the notify queue and the script loop go on', async () => {
  const r = rig(1);
  const failures: unknown[] = [];
  const onFailure = (m: unknown): void => { failures.push(m); };
  subscribe('fulcrum:failure', onFailure);
  try {
    r.broken.set('/bin/notify-master', 'throw');
    r.broken.set('/bin/notify-any', 'reject');
    r.broken.set('/bin/check', 'throw');
    r.nodes[0]!.start(conf(`vrrp_script chk { script /bin/check
      interval 1
      weight -20 }
      ${instance({ priority: 150, state: 'MASTER', extra: 'notify_master /bin/notify-master\nnotify /bin/notify-any\nnotify_backup /bin/notify-backup\ntrack_script { chk }' })}`));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER']);
    const checks = r.scripts.filter((x) => x.argv === '/bin/check').length;
    assert.ok(checks >= 4, `the track script kept its schedule (${checks} runs)`);
    assert.ok(r.scripts.some((x) => x.argv === '/bin/notify-any'), 'the notify after a throwing one still ran');
    // A later transition's notify still runs: the queue did not die with the first one.
    r.broken.clear();
    r.nodes[0]!.reload(conf(instance({ priority: 150, state: 'MASTER', extra: 'notify_master /bin/notify-master\nnotify_backup /bin/notify-backup' })));
    await r.nodes[0]!.stop();
    assert.ok(failures.length >= 3, `failures reported (${failures.length})`);
  } finally {
    unsubscribe('fulcrum:failure', onFailure);
    r.done();
  }
});

test('track_file: the number in the file moves the priority (× weight) and hands over; weight 0 means FAULT on a non-zero value; init_file writes the file', async () => {
  const r = rig(2);
  try {
    const files = 'track_file prio {\n  file /run/prio\n  weight -10\n  init_file 0\n}\ntrack_file stop {\n  file /run/stop\n  weight 0\n}\n';
    r.nodes[0]!.start(conf(files + instance({ priority: 150, extra: 'track_file {\n prio\n stop\n}' })));
    r.nodes[1]!.start(conf(instance({ priority: 100 })));
    assert.equal(r.files.get('/run/prio'), '0\n', 'init_file wrote the absent file');
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    r.files.set('/run/prio', '6\n');
    await r.clock.advance(1100);
    assert.equal(r.nodes[0]!.status()[0]!.priority, 90, '150 + 6 × −10');
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['BACKUP', 'MASTER'], 'priority 90 < 100: the backup preempts');
    r.files.set('/run/prio', 'not a number');
    await r.clock.advance(1100);
    assert.equal(r.nodes[0]!.status()[0]!.priority, 150, 'no number: 0');
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    r.files.set('/run/stop', '1');
    await r.clock.advance(1100);
    assert.equal(r.states()[0], 'FAULT');
    assert.deepEqual(r.nodes[0]!.status()[0]!.faults, ['track_file stop reads 1']);
    r.files.delete('/run/stop');
    await r.clock.advance(1100);
    assert.equal(r.states()[0], 'BACKUP', 'the file removed reads 0: out of FAULT');
  } finally {
    r.done();
  }
});

test('track_file values as keepalived reads them, and what they do', async () => {
  const { parseTrackFileValue, fileEffect } = await import('./track.js');
  assert.equal(parseTrackFileValue(null), 0, 'absent: 0');
  assert.equal(parseTrackFileValue(''), 0);
  assert.equal(parseTrackFileValue('  42 trailing'), 42);
  assert.equal(parseTrackFileValue('-7\n'), -7);
  assert.equal(parseTrackFileValue('0x10'), 16);
  assert.equal(parseTrackFileValue('010'), 8, 'base 0: octal');
  assert.equal(parseTrackFileValue('99999999999'), null, 'outside 32 bits: the read is ignored');
  assert.deepEqual(fileEffect(0, 0, false), { fault: false, delta: 0 });
  assert.deepEqual(fileEffect(3, 0, false), { fault: true, delta: 0 });
  assert.deepEqual(fileEffect(0, 0, true), { fault: true, delta: 0 }, 'reverse: 0 is the failure');
  assert.deepEqual(fileEffect(5, 10, false), { fault: false, delta: 50 });
  assert.deepEqual(fileEffect(5, 10, true), { fault: false, delta: -50 });
  assert.deepEqual(fileEffect(100, 10, false), { fault: false, delta: 253 }, 'at most +253');
  assert.deepEqual(fileEffect(-100, 10, false), { fault: true, delta: 0 }, '−254 or less: FAULT');
});

test('track_file configuration: an unknown name is dropped with a warning; the owner and sync group members track with weight 0', () => {
  const text = `track_file f {\n file /run/f\n weight 5\n}\n${instance({ priority: 255, state: 'MASTER', name: 'OWNER', extra: 'track_file {\n f\n nosuch\n}' })}
${instance({ priority: 100, name: 'MEMBER', vrid: 52, extra: 'track_file {\n f weight 3 reverse\n}' })}
${instance({ priority: 100, name: 'FREE', vrid: 53, extra: 'track_file {\n f weight -2\n}' })}
vrrp_sync_group G {\n group {\n MEMBER\n }\n track_file {\n f\n }\n}\n`;
  const r = parseText(text);
  assert.ok(r.ok, r.diagnostics.map((d) => d.message).join('\n'));
  const by = new Map(r.config.vrrpInstances.map((i) => [i.name, i]));
  assert.deepEqual(by.get('OWNER')?.trackFiles, [{ name: 'f', weight: 0, reverse: false }]);
  assert.deepEqual(by.get('MEMBER')?.trackFiles, [{ name: 'f', weight: 0, reverse: true }]);
  assert.deepEqual(by.get('FREE')?.trackFiles, [{ name: 'f', weight: -2, reverse: false }]);
  assert.deepEqual(r.config.vrrpSyncGroups[0]?.trackFiles, [{ name: 'f', weight: undefined, reverse: false }]);
  const warned = r.diagnostics.filter((d) => d.severity === 'warning').map((d) => d.message);
  assert.ok(warned.some((m) => /tracks unknown track_file 'nosuch'/.test(m)), warned.join('\n'));
  assert.ok(warned.some((m) => /address owner \(priority 255\): track_file 'f' weight 5 set to 0/.test(m)));
  assert.ok(warned.some((m) => /sync group member: track_file 'f' weight 3 set to 0/.test(m)));
});

test('notify_fifo and vrrp_notify_fifo: each state change is a line in both, in order, as keepalived writes them (groups too)', async () => {
  const r = rig(2);
  try {
    const g = 'global_defs {\n  notify_fifo /run/all.fifo\n  vrrp_notify_fifo /run/vrrp.fifo root\n}\n';
    r.nodes[0]!.start(conf(g + instance({ priority: 150, state: 'MASTER' }) + instance({ priority: 150, name: 'VI_2', vrid: 52, vip: '10.0.0.101/24' })
      + 'vrrp_sync_group G {\n  group {\n    VI_1\n    VI_2\n  }\n}\n'));
    r.nodes[1]!.start(conf(instance({ priority: 100 })));
    await r.clock.advance(5000);
    const want = ['INSTANCE "VI_1" BACKUP 150', 'INSTANCE "VI_2" BACKUP 150', 'GROUP "G" BACKUP 0', 'INSTANCE "VI_1" MASTER 150', 'INSTANCE "VI_2" MASTER 150', 'GROUP "G" MASTER 0'];
    assert.deepEqual(r.fifos.get('/run/all.fifo'), want);
    assert.deepEqual(r.fifos.get('/run/vrrp.fifo'), want);
    await r.nodes[0]!.stop();
    assert.deepEqual(r.fifos.get('/run/vrrp.fifo')?.slice(want.length), ['INSTANCE "VI_1" STOP 150', 'INSTANCE "VI_2" STOP 150', 'GROUP "G" STOP 0']);
  } finally {
    r.done();
  }
});

test('garp_master_refresh: while MASTER, every N s, garp_master_refresh_repeat announcements; none once BACKUP; global vrrp_garp_* give the defaults', async () => {
  const r = rig(2);
  try {
    const g = 'global_defs {\n  vrrp_garp_master_repeat 2\n  vrrp_garp_master_delay 0\n  vrrp_garp_master_refresh 10\n}\n';
    r.nodes[0]!.start(conf(g + instance({ priority: 150, extra: 'garp_master_refresh_repeat 3' })));
    r.nodes[1]!.start(conf(instance({ priority: 100 })));
    await r.clock.advance(4000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    const at = (h: number): number[] => r.hosts[h]!.announced.map((a) => a.at);
    const became = at(0)[0] ?? 0;
    assert.equal(at(0).length, 2, 'vrrp_garp_master_repeat 2, no delayed repeat (delay 0)');
    await r.clock.advance(25_000);
    assert.deepEqual(at(0).slice(2).map((t) => t - became), [10_000, 10_000, 10_000, 20_000, 20_000, 20_000], 'every 10 s, 3 at a time');
    r.nodes[0]!.reload(conf(g + instance({ priority: 50, extra: 'garp_master_refresh_repeat 3' })));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['BACKUP', 'MASTER']);
    const n = at(0).length;
    await r.clock.advance(30_000);
    assert.equal(at(0).length, n, 'no refresh once BACKUP');
    assert.equal(r.hosts[1]!.announced.filter((a) => a.at > became + 40_000).length, 0, 'the other node has no refresh configured');
  } finally {
    r.done();
  }
});

test('static_ipaddress / static_routes / static_rules: added at start whatever the state, reconciled on reload, removed at stop; bad lines are located errors', async () => {
  const r = rig(1);
  try {
    const statics = (route: string): string => `static_ipaddress {\n  192.0.2.5/32 dev eth0\n}\nstatic_routes {\n  ${route}\n  append 2001:db8::/64 dev eth0\n}\nstatic_rules {\n  from 192.0.2.5 table 7 priority 100\n}\n`;
    const c1 = conf(statics('10.9.0.0/24 via 10.0.0.254 dev eth0') + instance({ priority: 100 }));
    assert.deepEqual(c1.staticRoutes?.map((x) => [x.kind, x.family, x.action, x.words.join(' ')]), [
      ['route', 'inet', 'prepend', '10.9.0.0/24 via 10.0.0.254 dev eth0'], ['route', 'inet6', 'append', '2001:db8::/64 dev eth0'], ['rule', 'inet', 'add', 'from 192.0.2.5 table 7 priority 100'],
    ]);
    r.nodes[0]!.start(c1);
    const host = r.hosts[0]!;
    assert.deepEqual([...host.routes].sort(), ['route inet 10.9.0.0/24 via 10.0.0.254 dev eth0', 'route inet6 2001:db8::/64 dev eth0', 'rule inet from 192.0.2.5 table 7 priority 100']);
    assert.ok(host.addresses('eth0').includes('192.0.2.5'), 'present while BACKUP');
    r.nodes[0]!.reload(conf(statics('blackhole 10.8.0.0/16') + instance({ priority: 100 })));
    assert.ok(host.routes.has('route inet blackhole 10.8.0.0/16') && !host.routes.has('route inet 10.9.0.0/24 via 10.0.0.254 dev eth0'), 'reload: the changed route replaced, the rest kept');
    await r.nodes[0]!.stop();
    assert.equal(host.routes.size, 0);
    assert.ok(!host.addresses('eth0').includes('192.0.2.5'));
  } finally {
    r.done();
  }
  const lead = parseText(`static_routes {\n  src 10.0.0.1 10.7.0.0/24 via 10.0.0.254 dev eth0\n}\n${instance({ priority: 100 })}`);
  assert.ok(lead.ok, 'options before the destination, as ip(8) and keepalived\'s sample allow');
  assert.equal(lead.config.staticRoutes?.[0]?.words.join(' '), 'src 10.0.0.1 10.7.0.0/24 via 10.0.0.254 dev eth0');
  for (const [line, why] of [['10.9.0.0/24 dev eth0 track_group G', /track_group is not implemented/], ['via 10.0.0.1', /not ADDRESS\[\/PREFIX\] or default/], ['10.9.0.0/24 dev "eth0;reboot"', /is not a word ip route takes/]] as const) {
    const res = parseText(`static_routes {\n  ${line}\n}\n${instance({ priority: 100 })}`);
    assert.equal(res.ok, false, line);
    assert.match(res.diagnostics.map((d) => `${d.loc?.line ?? 0}: ${d.message}`).join('\n'), why);
  }
});

test('virtual_routes / virtual_rules move with the addresses: on the MASTER only, handed over at failover; "via A or B" is read as two next hops', async () => {
  const r = rig(2);
  try {
    const vr = 'virtual_routes {\n  10.9.0.0/24 via 10.0.0.254 dev eth0\n  10.8.0.0/24 via 10.0.0.253 or 10.0.0.252\n}\nvirtual_rules {\n  from 10.0.0.100 table 9 priority 90\n}';
    r.nodes[0]!.start(conf(instance({ priority: 150, extra: vr })));
    r.nodes[1]!.start(conf(instance({ priority: 100, extra: vr })));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    const want = ['route inet 10.8.0.0/24 nexthop via 10.0.0.253 nexthop via 10.0.0.252', 'route inet 10.9.0.0/24 via 10.0.0.254 dev eth0', 'rule inet from 10.0.0.100 table 9 priority 90'];
    assert.deepEqual([...r.hosts[0]!.routes].sort(), want);
    assert.equal(r.hosts[1]!.routes.size, 0, 'not on the backup');
    await r.nodes[0]!.stop();
    assert.equal(r.hosts[0]!.routes.size, 0, 'gone with the addresses');
    await r.clock.advance(5000);
    assert.deepEqual([...r.hosts[1]!.routes].sort(), want, 'the new master has them');
  } finally {
    r.done();
  }
});

test('accept mode: a MASTER without it (no_accept, or strict mode by default) has its VIPs filtered; the BACKUP and an accepting MASTER do not; the filter follows failover and goes at stop', async () => {
  const r = rig(2);
  try {
    const global = 'global_defs {\n  vrrp_strict\n}\n';
    const c = (priority: number, state: string): FulcrumConfig => conf(global + instance({ priority, state, version: 3, extra: 'virtual_ipaddress_excluded { 10.0.1.7/32 }' }));
    r.nodes[0]!.start(c(150, 'BACKUP'));
    r.nodes[1]!.start(c(100, 'BACKUP'));
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    assert.deepEqual([...r.hosts[0]!.filtered].sort(), ['inet 10.0.0.100', 'inet 10.0.1.7'], 'strict mode, not the owner: no accept mode');
    assert.deepEqual([...r.hosts[1]!.filtered], []);
    r.hosts[0]!.up = false;
    await r.clock.advance(5000);
    assert.deepEqual([...r.hosts[1]!.filtered].sort(), ['inet 10.0.0.100', 'inet 10.0.1.7'], 'the new master filters');
    // A reload that turns accept on lifts the filter without a transition.
    r.nodes[1]!.reload(conf(global + instance({ priority: 100, version: 3, extra: 'accept\nvirtual_ipaddress_excluded { 10.0.1.7/32 }' })));
    assert.equal(r.nodes[1]!.status()[0]!.state, 'MASTER');
    assert.deepEqual([...r.hosts[1]!.filtered], []);
    r.nodes[1]!.reload(c(100, 'BACKUP'));
    assert.equal(r.hosts[1]!.filtered.size, 2);
    // nftables refusing is reported and retried at the next change, never fatal.
    r.hosts[1]!.failFilter = true;
    await r.nodes[1]!.stop();
    r.hosts[1]!.failFilter = false;
    await r.nodes[0]!.stop();
    assert.deepEqual([...r.hosts[0]!.filtered], []);
  } finally {
    r.done();
  }
});

test('track_process: quorum lost with weight 0 means FAULT (after its delay) and the backup takes over; a negative weight lowers the priority; counts are taken each second', async () => {
  const r = rig(2);
  const running: { comm: string; cmdline: null }[] = [];
  const run = (...names: string[]): void => { running.length = 0; for (const comm of names) running.push({ comm, cmdline: null }); };
  try {
    const tp = 'vrrp_track_process hap {\n  process haproxy\n  quorum 2\n  delay 1.5\n}\nvrrp_track_process web {\n  process nginx\n  weight -60\n}\n';
    const n0 = new VrrpNode({ host: r.hosts[0]!, clock: r.clock, listProcesses: () => running });
    r.nodes[0] = n0;
    run('haproxy', 'haproxy', 'nginx');
    n0.start(conf(tp + instance({ priority: 150, state: 'MASTER', extra: 'track_process {\n  hap\n  web\n}' })));
    r.nodes[1]!.start(conf(instance({ priority: 100 })));
    await r.clock.advance(4000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP']);
    assert.equal(n0.status()[0]!.priority, 150, 'both in quorum');
    run('haproxy', 'haproxy');
    await r.clock.advance(1000);
    assert.equal(n0.status()[0]!.priority, 90, 'nginx gone: weight -60');
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['BACKUP', 'MASTER'], '90 < 100: the other preempts');
    run('haproxy', 'haproxy', 'nginx');
    await r.clock.advance(5000);
    assert.deepEqual(r.states(), ['MASTER', 'BACKUP'], 'back to 150: preempts back');
    run('haproxy', 'nginx');
    await r.clock.advance(1000);
    assert.equal(n0.status()[0]!.state, 'MASTER', 'one haproxy: under quorum 2, but delay 1.5 s has not passed');
    await r.clock.advance(1000);
    assert.equal(n0.status()[0]!.state, 'MASTER');
    await r.clock.advance(1000);
    assert.equal(n0.status()[0]!.state, 'FAULT', 'quorum lost for 1.5 s: FAULT (weight 0)');
    await r.clock.advance(5000);
    assert.equal(r.nodes[1]!.status()[0]!.state, 'MASTER');
    await n0.stop();
  } finally {
    r.done();
  }
});

test('use_vmac: the instance gets a macvlan with the virtual router MAC; its addresses go there (ARP from that MAC) while MASTER; the macvlan goes with the instance', async () => {
  const r = rig(1);
  try {
    r.nodes[0]!.start(conf(instance({ priority: 150, vrid: 51, version: 3, extra: 'use_vmac\nvirtual_ipaddress_excluded { 10.0.1.7/32 }' })));
    const host = r.hosts[0]!;
    assert.deepEqual([...host.vmacs], [['vrrp.51', 'eth0']]);
    assert.equal(host.link('vrrp.51')?.mac, '00:00:5e:00:01:33');
    await r.clock.advance(5000);
    assert.equal(r.nodes[0]!.status()[0]!.state, 'MASTER');
    assert.deepEqual(host.addresses('vrrp.51'), ['10.0.0.100', '10.0.1.7']);
    assert.ok(!host.addresses('eth0').includes('10.0.0.100'));
    assert.ok(host.announced.length > 0 && host.announced.every((a) => a.ifname === 'vrrp.51'));
    // A reload naming another vmac restarts the instance on it.
    r.nodes[0]!.reload(conf(instance({ priority: 150, vrid: 51, version: 3, extra: 'use_vmac vip51' })));
    assert.deepEqual([...host.vmacs], [['vip51', 'eth0']]);
    await r.clock.advance(5000);
    assert.deepEqual(host.addresses('vip51'), ['10.0.0.100']);
    await r.nodes[0]!.stop();
    assert.equal(host.vmacs.size, 0);
    assert.equal(host.link('vip51'), null);
  } finally {
    r.done();
  }
});

test('an interface missing at start (keepalived\'s dynamic_interfaces, always so here): the instance is in FAULT, and runs — elects, takes the VIP — once the interface appears', async () => {
  const r = rig(1);
  try {
    const c = conf(instance({ priority: 150 }).replace('interface eth0', 'interface eth7'));
    r.nodes[0]!.start(c);
    await r.clock.advance(5000);
    assert.equal(r.nodes[0]!.status()[0]!.state, 'FAULT');
    r.hosts[0]!.plugLink({ name: 'eth7', mac: '02:00:00:00:00:77', addresses: [{ family: 'inet', address: '10.0.0.7', prefixLength: 24 }] });
    await r.clock.advance(5000);
    assert.equal(r.nodes[0]!.status()[0]!.state, 'MASTER');
    assert.ok(r.hosts[0]!.addresses('eth7').includes('10.0.0.100'));
    await r.nodes[0]!.stop();
  } finally {
    r.done();
  }
});

test('use_vmac for IPv6: 00:00:5e:00:02:VRID, the interface\'s link-local on the vmac to send from, the VIPs there while MASTER', async () => {
  const r = rig(1);
  try {
    r.nodes[0]!.start(conf(instance({ priority: 150, vrid: 60, version: 3, vip: 'fd00:61::100/64', extra: 'use_vmac' })));
    const host = r.hosts[0]!;
    assert.equal(host.link('vrrp.60')?.mac, '00:00:5e:00:02:3c');
    assert.deepEqual(host.addresses('vrrp.60'), ['fe80::1'], 'the source link-local');
    await r.clock.advance(5000);
    assert.equal(r.nodes[0]!.status()[0]!.state, 'MASTER');
    assert.deepEqual(host.addresses('vrrp.60'), ['fe80::1', 'fd00:61::100']);
    await r.nodes[0]!.stop();
    assert.equal(host.link('vrrp.60'), null);
  } finally {
    r.done();
  }
});
