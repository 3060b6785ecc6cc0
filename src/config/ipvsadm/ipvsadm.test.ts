import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { DiagnosticSink } from '../../errors/index.js';
import { repoRoot } from '../../testing/index.js';
import { EMPTY_TABLE, formatIpvsSave, joinArgs, parseIpvsadmLine, parseIpvsadmRules, splitLine, type IpvsCommand } from './index.js';

const one = (line: string): { cmd: IpvsCommand | undefined; sink: DiagnosticSink } => {
  const sink = new DiagnosticSink();
  return { cmd: parseIpvsadmLine(splitLine(line, 'cmd', 1), sink), sink };
};
const errs = (text: string): [string, number | undefined, number | undefined, string][] =>
  parseIpvsadmRules(text, 'rules').diagnostics.filter((d) => d.severity === 'error').map((d) => [d.code, d.loc?.line, d.loc?.col, d.message]);

describe('ipvsadm grammar', () => {
  it('--start-daemon / --stop-daemon / -L --daemon, with IPVS\'s defaults and located errors', () => {
    const a = one('ipvsadm --start-daemon master --mcast-interface eth1 --syncid 7').cmd;
    assert.deepEqual(a && a.op === 'start-daemon' ? [a.role, a.sync] : null, ['master', { interface: 'eth1', syncid: 7, maxlen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 }]);
    const b = one('--start-daemon=backup --mcast-interface=eth1 --sync-maxlen 1400 --mcast-group 239.0.0.9 --mcast-port 9000 --mcast-ttl 3').cmd;
    assert.deepEqual(b && b.op === 'start-daemon' ? [b.role, b.sync] : null, ['backup', { interface: 'eth1', syncid: 0, maxlen: 1400, group: '239.0.0.9', port: 9000, ttl: 3 }]);
    assert.deepEqual(one('--stop-daemon backup').cmd, { op: 'stop-daemon', role: 'backup', loc: { file: 'cmd', line: 1, col: 1 } });
    const l = one('-L --daemon').cmd;
    assert.ok(l?.op === 'list' && l.flags.has('daemon'));
    for (const [line, re] of [
      ['--start-daemon leader --mcast-interface eth1', /illegal start-daemon parameter/],
      ['--start-daemon master', /needs --mcast-interface/],
      ['--start-daemon master --mcast-interface eth1 --syncid 300', /illegal syncid/],
      ['--start-daemon master --mcast-interface eth1 --mcast-group 10.1.1.1', /illegal multicast group/],
      ['--start-daemon master --mcast-interface eth1 -t 10.0.0.1:80', /illegal option --tcp-service/],
    ] as const) {
      const r = one(line);
      const e = r.sink.items.find((d) => d.severity === 'error');
      assert.match(e?.message ?? '', re, line);
      assert.ok((e?.loc?.col ?? 0) >= 1, line);
    }
  });

  it('parses the seed rules from the source documents: PPC, PCC (port 0) and fwmark services', () => {
    const text = fs.readFileSync(path.join(repoRoot(), 'test', 'fixtures', 'seed', 'seed-ipvsadm-rules.txt'), 'utf8');
    const r = parseIpvsadmRules(text, 'seed');
    assert.equal(r.ok, true, JSON.stringify(r.diagnostics));
    assert.equal(r.commands.length, 13);
    const v = r.virtualServers;
    assert.deepEqual(v.map((s) => [s.endpoint, s.scheduler, s.persistence?.timeout, s.realServers.length]), [
      [{ kind: 'address', family: 'inet', address: '172.16.100.1', port: 80 }, 'rr', 3600, 2],
      [{ kind: 'address', family: 'inet', address: '172.16.100.1', port: 0 }, 'rr', 3600, 2],
      [{ kind: 'fwmark', family: 'inet', mark: 8 }, 'rr', 600, 2],
      [{ kind: 'address', family: 'inet', address: '192.168.1.110', port: 0 }, 'rr', 600, 0],
      [{ kind: 'fwmark', family: 'inet', mark: 10 }, 'rr', 60, 2],
    ]);
    // -g with no port: the service's port; fwmark services have none.
    assert.deepEqual(v[0]?.realServers.map((s) => [s.address, s.port, s.method, s.weight]), [['172.16.100.10', 80, 'dr', 2], ['172.16.100.11', 80, 'dr', 2]]);
    assert.deepEqual(v[2]?.realServers.map((s) => [s.port, s.weight]), [[0, 2], [0, 1]]);
    assert.deepEqual(v[4]?.realServers.map((s) => s.weight), [1, 1]);
  });

  it('uses ipvsadm defaults: wlc, -g, weight 1, -p means 300 s', () => {
    const { cmd } = one('ipvsadm -A -t 10.0.0.1:80 -p');
    assert.ok(cmd?.op === 'add-service');
    assert.deepEqual(cmd.options, { scheduler: 'wlc', schedFlags: [], persistence: { timeout: 300, prefixLength: 32, netmask: '255.255.255.255' }, ops: false });
    const s = one('-a -t 10.0.0.1:80 -r 10.0.1.1');
    assert.ok(s.cmd?.op === 'add-server');
    assert.deepEqual([s.cmd.server.method, s.cmd.server.weight, s.cmd.server.port], ['dr', 1, 80]);
  });

  it('reads every option form: clusters, long options with =, optional -p value, IPv6, netmask', () => {
    const a = one('/sbin/ipvsadm --add-service --udp-service=[2001:db8::1]:53 --scheduler=mh -b mh-port,mh-fallback -p 60 -M 64 -o');
    assert.ok(a.cmd?.op === 'add-service', JSON.stringify(a.sink.items));
    assert.deepEqual(a.cmd.service, { kind: 'address', protocol: 'udp', family: 'inet6', address: '2001:db8::1', port: 53 });
    assert.deepEqual(a.cmd.options, { scheduler: 'mh', schedFlags: ['flag-1', 'flag-2'], persistence: { timeout: 60, prefixLength: 64, netmask: '/64' }, ops: true });
    const l = one('ipvsadm -Ln --stats');
    assert.ok(l.cmd?.op === 'list');
    assert.deepEqual([...l.cmd.flags].sort(), ['numeric', 'stats']);
    const m = one('-a -t 10.0.0.1:http -r 10.0.1.1:8080 -m -w 0 -x 100 -y 50');
    assert.ok(m.cmd?.op === 'add-server');
    assert.deepEqual(m.cmd.server, { family: 'inet', address: '10.0.1.1', port: 8080, method: 'nat', weight: 0, uthreshold: 100, lthreshold: 50, tunnel: undefined });
    const t = one('-a -f 5 -6 -r [2001:db8::9] -i --tun-type gue --tun-port 6080 --tun-csum');
    assert.ok(t.cmd?.op === 'add-server');
    assert.deepEqual(t.cmd.server.tunnel, { type: 'gue', port: 6080, checksum: 'csum' });
    const p = one('-A -t 10.0.0.1:80 -M 255.255.0.0 -p');
    assert.ok(p.cmd?.op === 'add-service');
    assert.equal(p.cmd.options.persistence?.prefixLength, 16);
    // --pe sip: accepted, with the same warning keepalived's persistence_engine gets.
    const sip = one('-A -u 10.0.0.1:5060 -s rr -p 60 --pe sip');
    assert.ok(sip.cmd?.op === 'add-service');
    assert.deepEqual(sip.sink.items.map((d) => [d.code, d.keyword]), [['W_IGNORED', '--pe']]);
    assert.match(sip.sink.items[0]?.message ?? '', /SIP persistence engine \(persistence by Call-ID\) is not implemented/);
    assert.deepEqual(one('-A -u 10.0.0.1:5060 -p 60 --pe rtsp').sink.items.map((d) => [d.code, d.message]), [['E_BAD_VALUE', "unknown persistence engine 'rtsp'"]]);
    // Any IPv4 netmask, as ipvsadm and the kernel take it.
    const nc = one('-A -t 10.0.0.1:80 -M 255.0.255.0 -p');
    assert.ok(nc.cmd?.op === 'add-service');
    assert.deepEqual(nc.cmd.options.persistence, { timeout: 300, prefixLength: 16, netmask: '255.0.255.0', mask: '255.0.255.0' });
    const set = one('ipvsadm --set 900 120 300');
    assert.ok(set.cmd?.op === 'set');
    assert.deepEqual([set.cmd.tcp, set.cmd.tcpfin, set.cmd.udp], [900, 120, 300]);
    const proxy = one('-a -t 127.0.0.1:8080 -r 127.0.0.1:9000 --proxy');
    assert.ok(proxy.cmd?.op === 'add-server');
    assert.equal(proxy.cmd.server.method, 'proxy');
  });

  it('direct routing keeps the service port, as ipvsadm does, with a warning', () => {
    const r = parseIpvsadmRules('-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1:8080 -g', 'r');
    assert.equal(r.ok, true);
    assert.equal(r.virtualServers[0]?.realServers[0]?.port, 80);
    assert.deepEqual(r.diagnostics.map((d) => [d.code, d.loc?.line, d.loc?.col]), [['W_ADJUSTED', 2, 22]]);
  });

  it('reports bad lines with ipvsadm-like messages and locations', () => {
    assert.deepEqual(errs('-A -t 10.0.0.1:80 -s fastest'), [['E_BAD_VALUE', 1, 22, "unknown scheduler 'fastest'"]]);
    assert.deepEqual(errs('-A -t 10.0.0.1'), [['E_CONTRADICTION', 1, 7, 'Zero port specified for non-persistent service']]);
    assert.deepEqual(errs('-A -t 10.0.0.300:80'), [['E_BAD_VALUE', 1, 7, "illegal virtual server address[:port] specified: '10.0.0.300:80'"]]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80 -Q'), [['E_BAD_VALUE', 1, 20, "unknown option '-Q'"]]);
    assert.deepEqual(errs('-t 10.0.0.1:80'), [['E_MISSING', 1, 1, 'no command given']]);
    assert.deepEqual(errs('-A -a -t 10.0.0.1:80'), [['E_MISSING', 1, 4, 'more than one command (-A -a)']]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w 70000'), [['E_RANGE', 2, 34, "illegal weight specified: '70000'"]]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80 -w 3'), [['E_CONTRADICTION', 1, 19, 'illegal option --weight with -A']]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80 extra'), [['E_BAD_VALUE', 1, 19, "unexpected argument 'extra'"]]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80 -s'), [['E_MISSING', 1, 19, 'option --scheduler needs a value']]);
  });

  it('applies table semantics: a rejected command leaves the table as it was', () => {
    assert.deepEqual(errs('-A -t 10.0.0.1:80\n-A -t 10.0.0.1:80'), [['E_CONTRADICTION', 2, 1, 'Service already exists']]);
    assert.deepEqual(errs('-E -t 10.0.0.1:80'), [['E_NOT_FOUND', 1, 1, 'No such service']]);
    assert.deepEqual(errs('-a -t 10.0.0.1:80 -r 10.0.1.1'), [['E_NOT_FOUND', 1, 1, 'Service not defined']]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80\n-a -t 10.0.0.1:80 -r 10.0.1.1\n-a -t 10.0.0.1:80 -r 10.0.1.1'), [['E_CONTRADICTION', 3, 1, 'Destination already exists']]);
    assert.deepEqual(errs('-A -t 10.0.0.1:80\n-d -t 10.0.0.1:80 -r 10.0.1.9'), [['E_NOT_FOUND', 2, 1, 'No such destination']]);
    const r = parseIpvsadmRules('-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.1.1 -w 3\n-A -t 10.0.0.1:80 -s wlc\n-e -t 10.0.0.1:80 -r 10.0.1.1 -w 5\n-E -u 10.0.0.1:53', 'r');
    assert.equal(r.table.services.length, 1);
    assert.equal(r.table.services[0]?.options.scheduler, 'rr');
    assert.equal(r.table.services[0]?.servers[0]?.weight, 5);
    const c = parseIpvsadmRules('-A -t 10.0.0.1:80\n-A -f 3 -p\n-D -t 10.0.0.1:80\n-C\n-A -u 10.0.0.2:53', 'r');
    assert.deepEqual(c.table.services.map((s) => s.id.kind), ['address']);
  });

  it('save → clear → restore rebuilds the identical table', () => {
    const text = [
      '-A -t 172.16.100.1:80 -s wrr -p 3600 -M 255.255.255.0',
      '-a -t 172.16.100.1:80 -r 172.16.100.10:80 -g -w 2 -x 100 -y 10',
      '-a -t 172.16.100.1:80 -r 172.16.100.11:8080 -m -w 0',
      '-A -u [2001:db8::1]:53 -s sh -b sh-port -o',
      '-a -u [2001:db8::1]:53 -r [2001:db8::2]:53 -i --tun-type gue --tun-port 6080 -w 1',
      '-A -f 8 -s mh -b mh-fallback -p 600',
      '-A -t 172.16.100.2:80 -s rr -p 60 -M 255.0.255.0',
      '-a -f 8 -r 10.0.0.5:0 -g -w 3',
    ].join('\n');
    const first = parseIpvsadmRules(text, 'a');
    assert.equal(first.ok, true, JSON.stringify(first.diagnostics));
    const saved = formatIpvsSave(first.table);
    const restored = parseIpvsadmRules(['-C', ...saved].join('\n'), 'saved', first.table);
    assert.equal(restored.ok, true, JSON.stringify(restored.diagnostics));
    assert.deepEqual(restored.table, first.table);
    assert.deepEqual(formatIpvsSave(restored.table), saved);
    assert.deepEqual(formatIpvsSave(parseIpvsadmRules(saved.join('\n'), 's', EMPTY_TABLE).table), saved);
  });

  it('handles comments, blank lines and backslash continuation in rule files', () => {
    const r = parseIpvsadmRules('# web\n\n-A -t 10.0.0.1:80 \\\n   -s rr\n', 'r');
    assert.equal(r.ok, true);
    assert.equal(r.virtualServers[0]?.scheduler, 'rr');
  });
});

describe('joinArgs', () => {
  it('joins words into a line splitLine reads back as the same words (quotes, spaces, #, backslashes)', async () => {
    const fc = (await import('fast-check')).default;
    fc.assert(fc.property(fc.array(fc.string({ minLength: 1, maxLength: 12 }), { maxLength: 6 }), (words) => {
      assert.deepEqual(splitLine(joinArgs(words), 'x', 1).map((t) => t.text), words);
    }), { numRuns: 500 });
  });
});
