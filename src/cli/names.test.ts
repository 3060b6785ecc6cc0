import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHosts, parseServices, resolveNames } from './names.js';
import { formatConnections, formatList } from '../config/ipvsadm/list.js';
import type { ConnectionEntry, ServiceStats } from '../dataplane/types.js';

test('parseHosts: the first name of an address wins; comments and blank lines are skipped', () => {
  const m = parseHosts('# comment\n127.0.0.1 localhost runsc\n\n127.0.0.1 vm\n::1 ip6-localhost ip6-loopback # x\n10.0.0.1\n');
  assert.deepEqual([...m], [['127.0.0.1', 'localhost'], ['::1', 'ip6-localhost']]);
});

test('parseServices: port/proto → the first name (getservbyport), per protocol', () => {
  const m = parseServices('http\t\t80/tcp\t\twww # WWW\nhttp-alt 8080/tcp webcache\ndomain 53/tcp\ndomain 53/udp\nbogus abc/tcp\nother 8080/tcp\n');
  assert.equal(m.get('80/tcp'), 'http');
  assert.equal(m.get('8080/tcp'), 'http-alt');
  assert.equal(m.get('53/udp'), 'domain');
  assert.equal(m.get('8080/udp'), undefined);
});

test('resolveNames: hosts file first, then PTR; a PTR that fails or never answers leaves the address numeric', async () => {
  const asked: string[] = [];
  let cancelled = 0;
  const names = await resolveNames(['127.0.0.1', '192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.1'], {
    hosts: '127.0.0.1 localhost\n', services: 'http 80/tcp\n',
    reverse: (a) => {
      asked.push(a);
      if (a === '192.0.2.1') return Promise.resolve(['rs1.example']);
      if (a === '192.0.2.2') return Promise.reject(new Error('ENOTFOUND'));
      return new Promise<string[]>(() => undefined); // a resolver that never answers
    },
    cancel: () => { cancelled++; },
  }, 20);
  assert.deepEqual(asked, ['192.0.2.1', '192.0.2.2', '192.0.2.3'], 'each address asked once; the hosts file needs no query');
  assert.equal(cancelled, 1, 'outstanding queries are cancelled at the deadline');
  assert.equal(names.host('127.0.0.1'), 'localhost');
  assert.equal(names.host('192.0.2.1'), 'rs1.example');
  assert.equal(names.host('192.0.2.2'), undefined);
  assert.equal(names.host('192.0.2.3'), undefined);
  assert.equal(names.port(80, 'TCP'), 'http');
  assert.equal(names.port(81, 'tcp'), undefined);
});

const svc = (address: string, port: number, servers: [string, number][]): ServiceStats => ({
  spec: {
    key: `tcp|${address}|${port}`, protocol: 'tcp', endpoint: { kind: 'address', family: address.includes(':') ? 'inet6' : 'inet', address, port },
    listen: [{ family: 'inet', address, port }], scheduler: 'wrr', schedFlags: [], ops: false,
  },
  counters: { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 },
  rates: { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 },
  servers: servers.map(([a, p]) => ({
    spec: { address: a, port: p, family: 'inet', method: 'proxy', weight: 1, uthreshold: 0, lthreshold: 0 },
    active: 0, inactive: 0, persistent: 0,
    counters: { conns: 0, inPkts: 0, outPkts: 0, inBytes: 0, outBytes: 0 },
    rates: { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 },
  })),
}) as unknown as ServiceStats;

test('formatList with names prints them as ipvsadm does without -n; unknown ones stay numeric', () => {
  const names = { host: (a: string) => ({ '127.0.0.1': 'localhost', '10.0.0.11': 'web1' } as Record<string, string>)[a], port: (p: number) => (p === 80 ? 'http' : p === 8080 ? 'http-alt' : undefined) };
  const lines = formatList([svc('127.0.0.1', 8080, [['10.0.0.11', 80], ['10.0.0.12', 81]])], { names });
  assert.equal(lines[3], 'TCP  localhost:http-alt wrr');
  assert.equal(lines[4], '  -> web1:http                    Proxy   1      0          0         ');
  assert.equal(lines[5], '  -> 10.0.0.12:81                 Proxy   1      0          0         ');
  const numeric = formatList([svc('127.0.0.1', 8080, [['10.0.0.11', 80]])]);
  assert.equal(numeric[3], 'TCP  127.0.0.1:8080 wrr');
  const conns = formatConnections([{ protocol: 'tcp', expires: 61, state: 'ESTABLISHED', client: { address: '10.9.9.9', port: 40000 }, virtual: { address: '127.0.0.1', port: 8080 }, server: '10.0.0.11:80' } as ConnectionEntry], names);
  assert.equal(conns[2], 'TCP 01:01  ESTABLISHED 10.9.9.9:40000     localhost:http-alt web1:http');
});
