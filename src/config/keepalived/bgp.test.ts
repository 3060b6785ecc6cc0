import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorsOf, parseText } from '../../testing/index.js';

const BGP = 'fulcrum_bgp {\n local_as 65001\n router_id 10.0.1.2\n neighbor 10.0.1.1 {\n  remote_as 65000\n  hold_time 9\n  password "secret"\n }\n gobgpd /usr/bin/gobgpd\n}\n';
const VS = 'virtual_server 10.99.99.99 80 {\n lb_algo mh\n lb_kind DR\n announce bgp community 65000:100 community no-export med 10 next_hop 10.0.1.2\n real_server 10.0.2.1 80 {\n }\n}\n';

describe('fulcrum_bgp and announce bgp', () => {
  it('read as the issue writes them, with defaults', () => {
    const r = parseText(BGP + VS);
    assert.deepEqual(errorsOf(r), []);
    const b = r.config?.bgp;
    assert.equal(b?.localAs, 65001);
    assert.equal(b?.routerId, '10.0.1.2');
    assert.deepEqual(b?.speaker, { kind: 'gobgpd', path: '/usr/bin/gobgpd' });
    assert.equal(b?.listenPort, 179);
    assert.equal(b?.shutdownGrace, 3);
    assert.deepEqual(b?.trackInterfaces, []);
    assert.deepEqual(parseText(BGP.replace(' gobgpd', ' track_interface eth1 eth2\n track_interface {\n  eth3\n  eth1\n }\n gobgpd') + VS).config?.bgp?.trackInterfaces, ['eth1', 'eth2', 'eth3']);
    assert.deepEqual(b?.neighbors.map(({ loc: _l, ...n }) => n), [{ address: '10.0.1.1', family: 'inet', remoteAs: 65000, holdTime: 9, password: 'secret', port: 179 }]);
    const a = r.config?.virtualServers[0]?.announce;
    assert.deepEqual([a?.communities, a?.med, a?.nextHop], [[65000 * 65536 + 100, 0xffffff01], 10, '10.0.1.2']);
    const api = parseText(BGP.replace('gobgpd /usr/bin/gobgpd', 'api 127.0.0.1:50051\n listen_port -1\n shutdown_grace 0.5') + VS).config?.bgp;
    assert.deepEqual([api?.speaker, api?.listenPort, api?.shutdownGrace], [{ kind: 'api', host: '127.0.0.1', port: 50051 }, -1, 0.5]);
    const inst = parseText(`${BGP}vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.9 }\n announce bgp\n}\n`);
    assert.deepEqual(errorsOf(inst), []);
    assert.deepEqual(inst.config?.vrrpInstances[0]?.announce?.communities, []);
  });

  it('hash_seed in global_defs: decimal or 0x hex, 32 bits, a located error otherwise', () => {
    assert.equal(parseText(`global_defs {\n hash_seed 0x2a\n}\n${BGP}${VS}`).config?.global.hashSeed, 42);
    assert.equal(parseText(`global_defs {\n hash_seed 4294967295\n}\n${BGP}${VS}`).config?.global.hashSeed, 0xffffffff);
    assert.equal(parseText(BGP + VS).config?.global.hashSeed, undefined);
    for (const bad of ['4294967296', '0x123456789', 'seed', '-1']) {
      const e = errorsOf(parseText(`global_defs {\n hash_seed ${bad}\n}\n${BGP}${VS}`))[0];
      assert.match(e?.message ?? '', /is not a 32-bit seed/, bad);
      assert.deepEqual([e?.loc?.line, e?.loc?.col], [2, 12]);
    }
  });

  it('every bad value is a located error', () => {
    for (const [text, line, col, re] of [
      [BGP.replace('local_as 65001', 'local_as 0'), 2, 11, /out of range/],
      [BGP.replace('router_id 10.0.1.2', 'router_id 2001:db8::1'), 3, 12, /not an IPv4 address/],
      [BGP.replace('hold_time 9', 'hold_time 2'), 6, 13, /2 is out of range/],
      [BGP.replace('  remote_as 65000\n', ''), 4, 2, /needs remote_as/],
      [BGP.replace('gobgpd /usr/bin/gobgpd', 'api localhost'), 9, 6, /is not HOST:PORT/],
      [BGP.replace(' local_as 65001\n', ''), 1, 1, /needs local_as/],
      [BGP + VS.replace('community 65000:100', 'community 70000:1'), 14, 25, /is not a community/],
      [BGP + VS.replace('med 10', 'colour blue'), 14, 55, /unknown announce option 'colour'/],
      [BGP + VS.replace('announce bgp', 'announce ospf'), 14, 11, /announce 'ospf' is not known/],
      [VS, 4, 2, /needs a fulcrum_bgp/],
      [BGP + 'virtual_server fwmark 7 {\n announce bgp\n real_server 10.0.2.1 80 {\n }\n}\n', 12, 2, /no address to announce/],
      [BGP.replace(' gobgpd', ' neighbor 10.0.1.1 {\n  remote_as 65002\n }\n gobgpd'), 9, 2, /neighbor 10\.0\.1\.1 is already declared/],
      [BGP.replace(' gobgpd', ' track_interface eth1 bad/if\n gobgpd'), 9, 23, /is not an interface name/],
    ] as const) {
      const r = parseText(text);
      assert.equal(r.ok, false, text);
      const e = errorsOf(r)[0];
      assert.match(e?.message ?? '', re, text);
      assert.deepEqual([e?.loc?.line, e?.loc?.col], [line, col], `${e?.message}`);
    }
  });
});
