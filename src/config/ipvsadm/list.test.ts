/**
 * `ipvsadm -L -n` formats. The first expectations are ipvsadm's own documented output
 * (LVS-HOWTO / ipvsadm(8) examples) reproduced from the same table; the golden file covers
 * every column mode over a wider table (persistence masks, fwmark, IPv6, flags, ops, K/M
 * suffixes), its widths checked against ipvsadm.c's printf formats.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ServerStats, ServiceStats } from '../../dataplane/types.js';
import { DEFAULT_TIMEOUTS } from '../../dataplane/types.js';
import { formatConnections, formatList, formatTimeouts, largeNum } from './list.js';
import { repoRoot } from '../../testing/index.js';

const zero = { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 };
const zr = { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 };

function server(address: string, port: number, o: Partial<ServerStats> & { weight?: number; method?: 'dr' | 'nat' | 'tun' | 'proxy'; ux?: number; ly?: number } = {}): ServerStats {
  return {
    spec: { key: `${address}:${port}`, family: address.includes(':') ? 'inet6' : 'inet', address, port, weight: o.weight ?? 1, method: o.method ?? 'dr', uthreshold: o.ux ?? 0, lthreshold: o.ly ?? 0 },
    active: o.active ?? 0, inactive: o.inactive ?? 0, persistent: o.persistent ?? 0, counters: o.counters ?? zero, rates: o.rates ?? zr,
  };
}

function service(proto: 'tcp' | 'udp', address: string, port: number, sched: string, servers: ServerStats[], o: Partial<ServiceStats> & { persistence?: { timeout: number; prefixLength: number; netmask: string }; ops?: boolean; flags?: ('flag-1' | 'flag-2')[]; mark?: number } = {}): ServiceStats {
  const family = address.includes(':') ? 'inet6' as const : 'inet' as const;
  return {
    spec: {
      key: `${proto} ${address}:${port}`,
      endpoint: o.mark !== undefined ? { kind: 'fwmark', family, mark: o.mark } : { kind: 'address', family, address, port },
      protocol: proto, listen: o.mark !== undefined ? [] : [{ family, address, port }], scheduler: sched as 'rr', schedFlags: o.flags ?? [],
      persistence: o.persistence ?? null, method: 'dr', ops: o.ops ?? false, timeouts: DEFAULT_TIMEOUTS,
    },
    servers, counters: o.counters ?? zero, rates: o.rates ?? zr, dropped: 0,
  };
}

test('ipvsadm -L -n and --stats: the documented example, byte for byte', () => {
  const table = [service('tcp', '192.168.1.100', 80, 'wlc', [server('192.168.1.11', 80), server('192.168.1.12', 80)])];
  assert.deepEqual(formatList(table), [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port Scheduler Flags',
    '  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn',
    'TCP  192.168.1.100:80 wlc',
    '  -> 192.168.1.11:80              Route   1      0          0         ',
    '  -> 192.168.1.12:80              Route   1      0          0         ',
  ]);
  const withStats = [service('tcp', '192.168.1.100', 80, 'wlc', [
    server('192.168.1.11', 80, { counters: { conns: 55, inPkts: 503, outPkts: 0, inBytes: 43522, outBytes: 0 } }),
    server('192.168.1.12', 80, { counters: { conns: 55, inPkts: 503, outPkts: 0, inBytes: 43522, outBytes: 0 } }),
  ], { counters: { conns: 110, inPkts: 1006, outPkts: 0, inBytes: 87044, outBytes: 0 } })];
  assert.deepEqual(formatList(withStats, { stats: true }), [
    'IP Virtual Server version 1.2.1 (size=4096)',
    'Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes',
    '  -> RemoteAddress:Port',
    'TCP  192.168.1.100:80                  110     1006        0    87044        0',
    '  -> 192.168.1.11:80                    55      503        0    43522        0',
    '  -> 192.168.1.12:80                    55      503        0    43522        0',
  ]);
});

test('print_largenum: K/M/G/T above 100 million, exact with --exact', () => {
  assert.deepEqual([99_999_999, 123_456_789, 12_345_678_901, 1_234_567_890_123, 123_456_789_012_345].map((n) => largeNum(n)),
    [' 99999999', '  123456K', '   12345M', '    1234G', '     123T']);
  assert.equal(largeNum(123_456_789, true), ' 123456789');
  assert.equal(largeNum(5, true), '        5');
});

test('every list mode over a wider table matches the golden file', () => {
  const big = { conns: 123_456_789, inPkts: 2_000_000_000, outPkts: 7, inBytes: 150_000_000_000, outBytes: 9 };
  const table = [
    service('udp', '10.0.0.53', 53, 'rr', [server('10.0.1.2', 53, { method: 'nat', weight: 3, active: 0, inactive: 12 })], { ops: true }),
    service('tcp', '10.0.0.10', 443, 'sh', [server('10.0.1.1', 8443, { method: 'nat', weight: 100, active: 1234, inactive: 56789, ux: 5000, ly: 4000, persistent: 17, counters: big, rates: { cps: 12, inPps: 345, outPps: 678, inBps: 123_456_789, outBps: 42 } })], { flags: ['flag-1', 'flag-2'], counters: big }),
    service('tcp', '10.0.0.10', 80, 'wlc', [server('10.0.1.2', 80, { weight: 0 }), server('10.0.1.1', 80, { weight: 5, active: 3, inactive: 1 })], { persistence: { timeout: 360, prefixLength: 24, netmask: '255.255.255.0' } }),
    service('tcp', '2001:db8::10', 80, 'mh', [server('2001:db8::1:2', 80, { method: 'tun' }), server('2001:db8::1:1', 80, { method: 'proxy' })], { flags: ['flag-2'], persistence: { timeout: 300, prefixLength: 64, netmask: '/64' } }),
    service('tcp', '10.0.0.99', 0, 'rr', [server('10.0.1.9', 0)], { mark: 7 }),
  ];
  const out = [
    ...formatList(table), '',
    ...formatList(table, { stats: true }), '',
    ...formatList(table, { stats: true, exact: true }), '',
    ...formatList(table, { rate: true }), '',
    ...formatList(table, { thresholds: true }), '',
    ...formatList(table, { persistentConn: true }), '',
    formatTimeouts({ tcp: 900, tcpfin: 120, udp: 300 }), '',
    ...formatConnections([
      { protocol: 'tcp', client: { family: 'inet', address: '192.0.2.7', port: 51000 }, virtual: { family: 'inet', address: '10.0.0.10', port: 80 }, server: '10.0.1.1:80', state: 'ESTABLISHED', expires: 899 },
      { protocol: 'udp', client: { family: 'inet', address: '192.0.2.8', port: 5353 }, virtual: { family: 'inet', address: '10.0.0.53', port: 53 }, server: '10.0.1.2:53', state: 'UDP', expires: 61 },
    ]),
  ].join('\n') + '\n';
  const golden = path.join(repoRoot(), 'test/fixtures/ipvsadm/list.txt');
  if (process.env['UPDATE_GOLDEN'] === '1') fs.writeFileSync(golden, out);
  assert.equal(out, fs.readFileSync(golden, 'utf8'));
});
