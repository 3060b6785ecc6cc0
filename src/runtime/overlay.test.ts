import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DiagnosticSink } from '../errors/index.js';
import { applyIpvsCommand, formatIpvsSave, parseIpvsadmLine, splitLine, type IpvsCommand } from '../config/ipvsadm/index.js';
import type { FulcrumConfig } from '../model/types.js';
import { parseText } from '../testing/index.js';
import { applyOverlay, EMPTY_OVERLAY, ipvsView, OverlayRecorder, parseOverlay, recordCommand, type RuntimeOverlay } from './index.js';

const FILE = `
virtual_server 10.0.0.1 80 {
  lb_algo wrr
  lb_kind PROXY
  real_server 10.0.1.1 80 {
    weight 3
    TCP_CHECK { connect_timeout 1 }
  }
  real_server 10.0.1.2 80 {
    weight 1
  }
}
virtual_server 10.0.0.2 53 {
  protocol UDP
  lb_kind PROXY
  real_server 10.0.2.1 53 { }
}
`;

function config(text = FILE): FulcrumConfig {
  const r = parseText(text);
  assert.equal(r.ok, true, JSON.stringify(r.diagnostics));
  return r.config;
}

function cmd(line: string): IpvsCommand {
  const sink = new DiagnosticSink();
  const c = parseIpvsadmLine(splitLine(line, 'cmd', 1), sink);
  assert.ok(c, JSON.stringify(sink.items));
  return c;
}

/** Record each line in turn (each must be accepted); the final overlay. */
function run(base: FulcrumConfig, lines: readonly string[], ov: RuntimeOverlay = EMPTY_OVERLAY): RuntimeOverlay {
  for (const line of lines) {
    const eff = applyOverlay(base, ov, 'proxy').config;
    const r = recordCommand(ov, base, eff, cmd(line));
    assert.ok(r.ok, `${line}: ${r.ok ? '' : r.message}`);
    ov = r.overlay;
  }
  return ov;
}

const save = (c: FulcrumConfig): string[] => formatIpvsSave(ipvsView(c));

describe('runtime overlay', () => {
  it('an edit changes only what ipvsadm says and keeps the checkers; it survives a reload of the same file', () => {
    const base = config();
    const ov = run(base, ['-e -t 10.0.0.1:80 -r 10.0.1.1:80 --proxy -w 0', '-E -t 10.0.0.1:80 -s lc -p 60']);
    const eff = applyOverlay(config(), ov, 'proxy');
    assert.deepEqual(eff.stale, []);
    const vs = eff.config.virtualServers[0];
    assert.equal(vs?.scheduler, 'lc');
    assert.equal(vs?.persistence?.timeout, 60);
    assert.equal(vs?.realServers[0]?.weight, 0);
    assert.equal(vs?.realServers[0]?.checkers.length, 1, 'the TCP_CHECK stays');
    assert.equal(vs?.realServers[1]?.weight, 1);
  });

  it('adds and deletes by identity; a deleted then re-added server is a runtime definition without checkers', () => {
    const base = config();
    const ov = run(base, [
      '-a -t 10.0.0.1:80 -r 10.0.1.3:80 --proxy -w 5',
      '-d -t 10.0.0.1:80 -r 10.0.1.1:80',
      '-a -t 10.0.0.1:80 -r 10.0.1.1:80 --proxy -w 2',
      '-A -u 10.0.0.9:5353 -s rr',
      '-a -u 10.0.0.9:5353 -r 10.0.9.1:53 --proxy',
      '-D -u 10.0.0.2:53',
      '--set 100 20 30',
    ]);
    const eff = applyOverlay(base, ov, 'proxy').config;
    assert.deepEqual(save(eff), [
      '-A -t 10.0.0.1:80 -s wrr',
      '-a -t 10.0.0.1:80 -r 10.0.1.1:80 --proxy -w 2',
      '-a -t 10.0.0.1:80 -r 10.0.1.2:80 --proxy -w 1',
      '-a -t 10.0.0.1:80 -r 10.0.1.3:80 --proxy -w 5',
      '-A -u 10.0.0.9:5353 -s rr',
      '-a -u 10.0.0.9:5353 -r 10.0.9.1:53 --proxy -w 1',
    ]);
    assert.equal(eff.virtualServers[0]?.realServers[0]?.checkers.length, 0);
    assert.deepEqual(eff.global.lvsTimeouts, { tcp: 100, tcpfin: 20, udp: 30 });
    assert.equal(eff.virtualServers[1]?.method, 'proxy', 'a runtime service takes the plane default method');
    // Deleting what was only added leaves no trace; deleting a file server leaves a mark.
    const ov2 = run(base, ['-d -t 10.0.0.1:80 -r 10.0.1.3:80', '-d -t 10.0.0.1:80 -r 10.0.1.2:80'], ov);
    assert.deepEqual(ov2.servers.filter((s) => s.service === 'tcp 10.0.0.1:80').map((s) => [s.key, s.state]), [['10.0.1.1:80', 'added'], ['10.0.1.2:80', 'deleted']]);
  });

  it('refuses what ipvsadm refuses, with its messages, and records nothing', () => {
    const base = config();
    const eff = applyOverlay(base, EMPTY_OVERLAY, 'proxy').config;
    for (const [line, msg, code] of [
      ['-A -t 10.0.0.1:80 -s rr', 'Service already exists', 'E_CONTRADICTION'],
      ['-E -t 10.0.0.7:80 -s rr', 'No such service', 'E_NOT_FOUND'],
      ['-a -t 10.0.0.7:80 -r 10.0.1.1:80', 'Service not defined', 'E_NOT_FOUND'],
      ['-a -t 10.0.0.1:80 -r 10.0.1.1:80', 'Destination already exists', 'E_CONTRADICTION'],
      ['-e -t 10.0.0.1:80 -r 10.0.1.9:80', 'No such destination', 'E_NOT_FOUND'],
      ['-d -t 10.0.0.1:80 -r 10.0.1.9:80', 'No such destination', 'E_NOT_FOUND'],
    ] as const) {
      const r = recordCommand(EMPTY_OVERLAY, base, eff, cmd(line));
      assert.deepEqual(r, { ok: false, message: msg, code }, line);
    }
  });

  it('reports an entry the new file gives no target as stale, and keeps it', () => {
    const base = config();
    const ov = run(base, ['-e -t 10.0.0.1:80 -r 10.0.1.2:80 --proxy -w 7', '-E -u 10.0.0.2:53 -s sh']);
    const reloaded = config(FILE.replace('real_server 10.0.1.2 80', 'real_server 10.0.1.4 80').replace(/virtual_server 10.0.0.2 53 \{[^]*$/, ''));
    const r = applyOverlay(reloaded, ov, 'proxy');
    assert.deepEqual(r.stale, [
      'runtime edit of real server 10.0.1.2:80 in tcp 10.0.0.1:80: the configuration file no longer has it',
      'runtime edit of service udp 10.0.0.2:53: the configuration file no longer has it',
    ]);
    // Back in the file, the edit applies again.
    assert.equal(applyOverlay(config(), ov, 'proxy').config.virtualServers[0]?.realServers[1]?.weight, 7);
  });

  it('clear (-C) hides every service; a service added to the file later still appears', () => {
    const base = config();
    const ov = run(base, ['-a -t 10.0.0.1:80 -r 10.0.1.3:80 --proxy', '-C']);
    assert.deepEqual(applyOverlay(base, ov, 'proxy').config.virtualServers, []);
    const more = config(`${FILE}\nvirtual_server 10.0.0.3 80 {\n lb_kind PROXY\n}\n`);
    assert.deepEqual(applyOverlay(more, ov, 'proxy').config.virtualServers.map((v) => v.endpoint.kind === 'address' && v.endpoint.address), ['10.0.0.3']);
  });

  it('laying the overlay over the file equals applying the commands to the running table (random sequences)', () => {
    const base = config();
    const svc = fc.constantFrom('-t 10.0.0.1:80', '-u 10.0.0.2:53', '-t 10.0.0.5:80');
    const rs = fc.constantFrom('10.0.1.1:80', '10.0.1.2:80', '10.0.2.1:53', '10.0.1.7:80');
    const line = fc.oneof(
      fc.tuple(svc, fc.constantFrom('rr', 'wlc', 'sh')).map(([s, a]) => `-A ${s} -s ${a}`),
      fc.tuple(svc, fc.constantFrom('rr', 'lc')).map(([s, a]) => `-E ${s} -s ${a}`),
      svc.map((s) => `-D ${s}`),
      fc.tuple(svc, rs, fc.integer({ min: 0, max: 9 })).map(([s, r, w]) => `-a ${s} -r ${r} --proxy -w ${w}`),
      fc.tuple(svc, rs, fc.integer({ min: 0, max: 9 })).map(([s, r, w]) => `-e ${s} -r ${r} --proxy -w ${w}`),
      fc.tuple(svc, rs).map(([s, r]) => `-d ${s} -r ${r}`),
      fc.constant('-C'),
    );
    fc.assert(fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
      let ov = EMPTY_OVERLAY;
      let table = ipvsView(base);
      for (const l of lines) {
        const c = cmd(l);
        const r = recordCommand(ov, base, applyOverlay(base, ov, 'proxy').config, c);
        const sink = new DiagnosticSink();
        table = applyIpvsCommand(table, c, sink);
        assert.equal(r.ok, !sink.hasErrors, l);
        if (r.ok) ov = r.overlay;
      }
      const eff = applyOverlay(base, ov, 'proxy');
      assert.deepEqual(eff.stale, []);
      // Same services and servers (order within the file's services is the file's).
      const norm = (xs: string[]): string[] => xs.slice().sort();
      assert.deepEqual(norm(formatIpvsSave(ipvsView(eff.config))), norm(formatIpvsSave(table)));
      // Saved and read back, the overlay gives the same table.
      const back = applyOverlay(base, parseOverlay(JSON.stringify(ov), 'f'), 'proxy').config;
      assert.deepEqual(formatIpvsSave(ipvsView(back)), formatIpvsSave(ipvsView(eff.config)));
    }), { numRuns: 300 });
  });

  it('checking commands never changes the running table it shares (the per-service views are reused, copied on write)', () => {
    const base = config();
    const before = formatIpvsSave(ipvsView(base));
    const rec = new OverlayRecorder(EMPTY_OVERLAY, base, base);
    for (const line of ['-e -t 10.0.0.1:80 -r 10.0.1.1:80 --proxy -w 9', '-d -t 10.0.0.1:80 -r 10.0.1.2:80', '-a -t 10.0.0.1:80 -r 10.0.1.3:80 --proxy -w 2']) {
      assert.equal(rec.record(cmd(line)).ok, true, line);
    }
    assert.deepEqual(formatIpvsSave(ipvsView(base)), before, 'the running view is untouched');
    // A second recorder over the same running configuration starts from it, not from the first's edits.
    const again = new OverlayRecorder(EMPTY_OVERLAY, base, base);
    assert.equal(again.record(cmd('-a -t 10.0.0.1:80 -r 10.0.1.3:80 --proxy -w 2')).ok, true, 'not added by the first recorder');
    assert.equal(again.record(cmd('-d -t 10.0.0.1:80 -r 10.0.1.2:80')).ok, true, 'not deleted by the first recorder');
    // The view of the new effective configuration has the edits, and only the touched service was rebuilt.
    const eff = applyOverlay(base, rec.overlay, 'proxy').config;
    assert.deepEqual(formatIpvsSave(ipvsView(eff)).filter((l) => l.includes('10.0.0.1:80')), [
      '-A -t 10.0.0.1:80 -s wrr', '-a -t 10.0.0.1:80 -r 10.0.1.1:80 --proxy -w 9', '-a -t 10.0.0.1:80 -r 10.0.1.3:80 --proxy -w 2',
    ]);
    assert.equal(ipvsView(eff).services[1], ipvsView(base).services[1], 'the untouched service is the same object');
  });

  it('names the file and the field when a saved overlay is damaged', () => {
    assert.throws(() => parseOverlay('{', '/var/lib/fulcrum/runtime.json'), /runtime\.json: not JSON/);
    assert.throws(() => parseOverlay('{"version":1,"services":[{"state":"gone"}],"servers":[],"drains":[],"timeouts":{"tcp":0,"tcpfin":0,"udp":0}}', 'f'),
      (e: unknown) => e instanceof Error && 'code' in e && e.code === 'E_RUNTIME_STATE' && /services\[0\]\.state/.test(e.message));
  });
});
