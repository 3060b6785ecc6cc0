import assert from 'node:assert/strict';
import path from 'node:path';
import { describe, it } from 'node:test';
import type { Diagnostic } from '../../errors/index.js';
import { errorsOf, parseText, repoRoot, warningsOf as allWarnings } from '../../testing/index.js';

/** Warnings but the one for a virtual_server without `protocol` (most configurations here omit it; its own test checks it). */
const warningsOf = (r: Parameters<typeof allWarnings>[0]): ReturnType<typeof allWarnings> => allWarnings(r).filter((d) => !(d.keyword === 'protocol' && d.code === 'W_ADJUSTED'));
import { loadKeepalivedConfig } from './index.js';
import { serviceSpecOf } from '../../director/desired.js';
import { DEFAULT_TIMEOUTS } from '../../dataplane/types.js';

const codes = (ds: Diagnostic[]): [string, number | undefined, string | undefined][] => ds.map((d) => [d.code, d.loc?.line, d.keyword]);
const vs = (body: string, head = '10.0.0.1 80'): string => `virtual_server ${head} {\n${body}\n}\n`;

describe('keepalived.conf → model', () => {
  it('fulcrum_dataplane xdp|nft: in global_defs for every DR/TUN service, in a virtual_server to override; a bad value located', () => {
    const cfg = (g: string, local: string, kind = 'DR'): string => `global_defs {\n${g}\n}\n${vs(`lb_kind ${kind}\nprotocol TCP\n${local}\nreal_server 10.0.0.2 80 {\n}`)}`;
    const plane = (text: string): string | undefined => {
      const c = parseText(text).config;
      const v = c?.virtualServers[0];
      return c && v ? serviceSpecOf(v, new Map(), DEFAULT_TIMEOUTS, new Map(), [], undefined, c.global.dataplane).plane : 'none';
    };
    assert.equal(plane(cfg('fulcrum_dataplane xdp', '')), 'xdp');
    assert.equal(plane(cfg('fulcrum_dataplane xdp', 'fulcrum_dataplane nft')), undefined, 'the virtual_server overrides');
    assert.equal(plane(cfg('', 'fulcrum_dataplane xdp')), 'xdp');
    assert.equal(plane(cfg('', 'fulcrum_dataplane xdp', 'TUN')), 'xdp');
    assert.equal(plane(cfg('fulcrum_dataplane xdp', '', 'NAT')), undefined, 'NAT stays on nftables');
    assert.equal(plane(cfg('', '')), undefined, 'nftables by default');
    const nat = parseText(cfg('', 'fulcrum_dataplane xdp', 'NAT'));
    assert.deepEqual(codes(warningsOf(nat)), [['W_ADJUSTED', 7, 'fulcrum_dataplane']], 'said where the service asks for XDP it cannot have');
    assert.match(warningsOf(nat)[0]?.message ?? '', /DR and TUN, not NAT: this service stays on nftables/);
    const fw = parseText(`global_defs {\nfulcrum_dataplane xdp\n}\nvirtual_server fwmark 7 {\nlb_kind DR\nreal_server 10.0.0.2 80 {\n}\n}\n`).config;
    const fwVs = fw?.virtualServers[0];
    assert.equal(fw && fwVs ? serviceSpecOf(fwVs, new Map(), DEFAULT_TIMEOUTS, new Map(), [], undefined, fw.global.dataplane).plane : 'none', undefined, 'a fwmark service stays on nftables');
    const bad = errorsOf(parseText(cfg('fulcrum_dataplane ebpf', '')))[0];
    assert.equal(bad?.keyword, 'fulcrum_dataplane');
    assert.equal(bad?.loc?.line, 2);
  });

  it('lvs_sync_daemon: interface, instance (positional or inst), options with IPVS\'s defaults; every bad value located', () => {
    const inst = 'vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.1 }\n}\n';
    const g = (line: string): string => `global_defs {\n ${line}\n}\n${inst}`;
    const plain = parseText(g('lvs_sync_daemon eth1'));
    assert.deepEqual(errorsOf(plain), []);
    const { loc: _loc, ...d } = plain.config?.global.lvsSyncDaemon ?? { loc: null };
    assert.deepEqual(d, { interface: 'eth1', instance: undefined, syncid: 0, maxlen: 1472, port: 8848, ttl: 1, group: '224.0.0.81' });
    const full = parseText(g('lvs_sync_daemon eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 2 group 239.1.1.1')).config?.global.lvsSyncDaemon;
    assert.deepEqual([full?.instance, full?.syncid, full?.maxlen, full?.port, full?.ttl, full?.group], ['VI_1', 7, 1400, 9000, 2, '239.1.1.1']);
    assert.equal(parseText(g('lvs_sync_daemon eth1 inst VI_1')).config?.global.lvsSyncDaemon?.instance, 'VI_1');
    for (const [line, col, re] of [
      ['lvs_sync_daemon eth1 VI_2', 2, /unknown vrrp_instance 'VI_2'/],
      ['lvs_sync_daemon eth1 VI_1 id 256', 31, /256/],
      ['lvs_sync_daemon eth1 ttl 0', 27, /0/],
      ['lvs_sync_daemon eth1 group 10.0.0.1', 29, /not an IPv4 multicast address/],
      ['lvs_sync_daemon eth1 VI_1 color red', 28, /unknown lvs_sync_daemon option 'color'/],
      ['lvs_sync_daemon bad/if', 18, /is not an interface name/],
      ['lvs_sync_daemon eth1 VI_1 port', 33, /missing/],
    ] as const) {
      const r = parseText(g(line));
      assert.equal(r.ok, false, line);
      const e = errorsOf(r)[0];
      assert.match(e?.message ?? '', re, line);
      assert.equal(e?.loc?.line, 2, line);
      assert.equal(e?.loc?.col, col, `${line}: ${e?.message}`);
    }
  });

  it('fulcrum_sync_threshold and fulcrum_sync_refresh_period: IPVS\'s sysctls as global_defs keywords; unset by default; bad values located', () => {
    const g = (line: string): string => `global_defs {\n ${line}\n}\n`;
    const none = parseText(g('lvs_sync_daemon eth1')).config?.global;
    assert.deepEqual([none?.syncThreshold, none?.syncRefreshPeriod], [undefined, undefined]);
    const set = parseText(`global_defs {\n fulcrum_sync_threshold 1\n fulcrum_sync_refresh_period 10\n}\n`);
    assert.deepEqual(errorsOf(set), []);
    assert.deepEqual([set.config?.global.syncThreshold, set.config?.global.syncRefreshPeriod], [1, 10]);
    for (const [line, col, re] of [
      ['fulcrum_sync_threshold -1', 25, /-1/],
      ['fulcrum_sync_refresh_period 86401', 30, /86401/],
      ['fulcrum_sync_refresh_period', 30, /missing/],
    ] as const) {
      const r = parseText(g(line));
      assert.equal(r.ok, false, line);
      const e = errorsOf(r)[0];
      assert.match(e?.message ?? '', re, line);
      assert.deepEqual([e?.loc?.line, e?.loc?.col], [2, col], `${line}: ${e?.message}`);
    }
    // IPVS's sysctl takes a second value (a resend every N packets); the time-based refresh replaces it here.
    const two = parseText(g('fulcrum_sync_threshold 3 50'));
    assert.equal(two.config?.global.syncThreshold, 3);
    assert.match(allWarnings(two)[0]?.message ?? '', /extra argument '50'/);
  });

  it('interface names are checked as the kernel checks them, each a located error', () => {
    const inst = (iface: string, extra = ''): string => `vrrp_instance V {\n interface ${iface}\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.1 ${extra} }\n}\n`;
    for (const bad of ['averyveryverylongname', 'eth0/1', 'eth:0', '"a b"', '".."', '"x\'y"']) {
      const r = parseText(inst(bad));
      assert.equal(r.ok, false, bad);
      const e = errorsOf(r)[0];
      assert.match(e?.message ?? '', /is not an interface name/, bad);
      assert.deepEqual([e?.loc?.line, e?.keyword], [2, 'interface'], bad);
    }
    assert.equal(parseText(inst('eth0', 'dev bad/dev')).ok, false, 'dev of a virtual address');
    assert.equal(parseText(inst('eth0.100')).ok, true, 'a VLAN device name');
    assert.equal(parseText(inst('veth-a@x')).ok, true, 'kernel names may hold - and @');
  });

  it('reads the seed DR configuration from the source documents', () => {
    const r = loadKeepalivedConfig(path.join(repoRoot(), 'test', 'fixtures', 'seed', 'seed-keepalived-dr.conf'), { configId: 'x', env: {} });
    assert.deepEqual(errorsOf(r), []);
    const c = r.config;
    assert.equal(c.vrrpInstances.length, 1);
    const vi = c.vrrpInstances[0];
    assert.equal(vi?.vrid, 100);
    assert.equal(vi?.priority, 100);
    assert.equal(vi?.initialState, 'MASTER');
    assert.deepEqual(vi?.auth, { type: 'PASS', pass: '2209' });
    assert.deepEqual(vi?.virtualIpAddresses.map((v) => v.address), ['10.0.0.210']);
    assert.equal(c.virtualServers.length, 1);
    const v = c.virtualServers[0];
    assert.deepEqual(v?.endpoint, { kind: 'address', family: 'inet', address: '10.0.0.210', port: 80 });
    assert.equal(v?.protocol, 'tcp');
    assert.equal(v?.scheduler, 'rr');
    assert.equal(v?.method, 'dr');
    assert.equal(v?.persistence, null);
    assert.deepEqual(v?.realServers.map((s) => `${s.address}:${s.port}`), ['10.0.0.201:80', '10.0.0.204:80']);
    for (const s of v?.realServers ?? []) {
      assert.equal(s.checkers.length, 1);
      const ck = s.checkers[0];
      assert.equal(ck?.type, 'TCP_CHECK');
      assert.equal(ck?.timing.connectTimeout, 10);
      assert.equal(ck?.timing.retry, 3);
      assert.equal(ck?.timing.delayBeforeRetry, 3);
      assert.equal(ck?.type === 'TCP_CHECK' ? ck.conn.connectPort : 0, 80);
    }
    assert.deepEqual(codes(warningsOf(r)), [['W_DEPRECATED', 35, 'nb_get_retry'], ['W_DEPRECATED', 44, 'nb_get_retry']]);
  });

  it('applies keepalived defaults', () => {
    const r = parseText(vs('real_server 10.1.0.1 80 { TCP_CHECK { } HTTP_GET { url { path / } } DNS_CHECK { } MISC_CHECK { misc_path /bin/true } }'));
    assert.deepEqual(errorsOf(r), []);
    const v = r.config.virtualServers[0];
    assert.equal(v?.scheduler, 'wlc');
    assert.equal(v?.method, 'nat');
    assert.equal(v?.protocol, 'tcp');
    assert.equal(v?.quorum, 1);
    assert.equal(v?.delayLoop, 60);
    const rs = v?.realServers[0];
    assert.equal(rs?.weight, 1);
    const t = Object.fromEntries((rs?.checkers ?? []).map((c) => [c.type, c.timing]));
    assert.deepEqual(t['TCP_CHECK'], { delayLoop: 60, warmup: 60, connectTimeout: 5, retry: 1, delayBeforeRetry: 1, alpha: false, logAllFailures: false, rise: 1 });
    assert.equal(t['HTTP_GET']?.delayBeforeRetry, 3);
    assert.equal(t['DNS_CHECK']?.retry, 3);
    assert.equal(t['DNS_CHECK']?.delayBeforeRetry, 60);
    assert.equal(t['MISC_CHECK']?.retry, 0);
    const http = rs?.checkers[1];
    assert.deepEqual(http?.type === 'HTTP_GET' ? http.urls[0]?.statusCodes : null, [[200, 299]]);
    const dns = rs?.checkers[2];
    assert.deepEqual(dns?.type === 'DNS_CHECK' ? [dns.queryType, dns.name] : null, ['SOA', '.']);
  });

  it('inherits timing from virtual server to real server to checker', () => {
    const r = parseText(vs('delay_loop 7\nconnect_timeout 2\nretry 4\nreal_server 10.1.0.1 80 {\n delay_before_retry 9\n TCP_CHECK { retry 1 }\n}'));
    const t = r.config.virtualServers[0]?.realServers[0]?.checkers[0]?.timing;
    assert.deepEqual(t, { delayLoop: 7, warmup: 7, connectTimeout: 2, retry: 1, delayBeforeRetry: 9, alpha: false, logAllFailures: false, rise: 1 });
  });

  it('persistence: bare persistence_timeout is 360 s (keepalived); granularity sets the prefix', () => {
    const r = parseText(vs('persistence_timeout\npersistence_granularity 255.255.255.0'));
    assert.deepEqual(r.config.virtualServers[0]?.persistence, { timeout: 360, prefixLength: 24, netmask: '255.255.255.0' });
    const z = parseText(vs('persistence_timeout 0'));
    assert.equal(z.config.virtualServers[0]?.persistence, null);
  });

  it('reads endpoints: address and port, port 0 when persistent, fwmark, group, IPv6', () => {
    const r = parseText([
      vs('persistence_timeout 60', '10.0.0.1'),
      vs('lb_kind DR', 'fwmark 8'),
      'virtual_server_group G { 10.0.0.5-7 80\n 10.0.1.0/30 443\n fwmark 9 inet6 }',
      vs('lb_kind DR', 'group G'),
      vs('', '2001:DB8::1 443'),
    ].join('\n'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config.virtualServers.map((v) => v.endpoint), [
      { kind: 'address', family: 'inet', address: '10.0.0.1', port: 0 },
      { kind: 'fwmark', family: 'inet', mark: 8 },
      { kind: 'group', name: 'G' },
      { kind: 'address', family: 'inet6', address: '2001:db8::1', port: 443 },
    ]);
    assert.deepEqual(r.config.virtualServerGroups[0]?.members, [
      { kind: 'range', family: 'inet', first: '10.0.0.5', last: '10.0.0.7', port: 80 },
      { kind: 'range', family: 'inet', first: '10.0.1.0', last: '10.0.1.3', port: 443 },
      { kind: 'fwmark', mark: 9, family: 'inet6' },
    ]);
  });

  it('scheduler flags by name and number compare equal', () => {
    const r = parseText(vs('lb_algo sh\nsh-port\nflag-1') + vs('lvs_sched mh\nmh-fallback\nmh-port', '10.0.0.2 80'));
    assert.deepEqual(r.config.virtualServers.map((v) => v.schedFlags), [['flag-1', 'flag-2'], ['flag-1', 'flag-2']]);
  });

  it('TUN options and the PROXY method', () => {
    const r = parseText(vs('lb_kind TUN type gue port 6080 nocsum\nreal_server 10.1.0.1 80 { }') + vs('lb_kind PROXY\nreal_server 127.0.0.1 9000 { }', '127.0.0.1 8080'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config.virtualServers[0]?.realServers[0]?.tunnel, { type: 'gue', port: 6080, checksum: 'nocsum' });
    assert.equal(r.config.virtualServers[1]?.realServers[0]?.method, 'proxy');
  });

  it('reads checker-specific options', () => {
    const r = parseText(vs(`real_server 10.1.0.1 80 {
      SSL_GET {
        url {
          path /a
          digest 9B3A0C85A887A256D6939DA88AABD8CD
          status_code 200 301-302
        }
        enable_sni
        sni_name x.example
        http_protocol 1.1
      }
      UDP_CHECK {
        payload ab 1
        require_reply 0a xF
        min_reply_length 2
      }
      MISC_CHECK {
        misc_path "/bin/chk 'a b' c"
        misc_timeout 3
        misc_dynamic
        user nobody :nogroup
      }
      FILE_CHECK {
        track_file tf
        weight 5 reverse
      }
      SMTP_CHECK { helo_name me.example }
    }
    `) + 'track_file tf { file /tmp/x }');
    assert.deepEqual(errorsOf(r), []);
    const [ssl, udp, misc, file, smtp] = r.config.virtualServers[0]?.realServers[0]?.checkers ?? [];
    assert.ok(ssl?.type === 'SSL_GET');
    assert.deepEqual(ssl.urls[0], { path: '/a', digest: '9b3a0c85a887a256d6939da88aabd8cd', statusCodes: [[200, 200], [301, 302]], regexNoMatch: false });
    assert.deepEqual([ssl.enableSni, ssl.sniName, ssl.httpProtocol], [true, 'x.example', '1.1']);
    assert.ok(udp?.type === 'UDP_CHECK');
    assert.deepEqual([udp.payload, udp.requireReply, udp.replyPattern, udp.minReplyLength], ['ab01', true, '0a0f'.replace('0f', 'xf'), 2]);
    assert.ok(misc?.type === 'MISC_CHECK');
    assert.deepEqual([misc.script.argv, misc.script.user, misc.script.group, misc.timeout, misc.dynamic], [['/bin/chk', 'a b', 'c'], 'nobody', 'nogroup', 3, true]);
    assert.ok(file?.type === 'FILE_CHECK');
    assert.deepEqual([file.trackFile, file.weight, file.reverse], ['tf', 5, true]);
    assert.ok(smtp?.type === 'SMTP_CHECK');
    assert.equal(smtp.heloName, 'me.example');
  });

  it('reads the Fulcrum agent block, with a virtual-server default', () => {
    const r = parseText(vs('fulcrum_agent {\n port 1600\n interval 1\n}\nreal_server 10.1.0.1 80 { }\nreal_server 10.1.0.2 80 { fulcrum_agent {\n send "load\\n"\n require_response } }'));
    assert.deepEqual(errorsOf(r), []);
    const [a, b] = r.config.virtualServers[0]?.realServers ?? [];
    assert.deepEqual([a?.agent?.port, a?.agent?.interval, a?.agent?.requireResponse], [1600, 1, false]);
    assert.deepEqual([b?.agent?.port, b?.agent?.send, b?.agent?.requireResponse], [1510, 'load\n', true]);
    const bad = parseText(vs('real_server 10.1.0.1 80 { fulcrum_agent { interval 0.5 } }'));
    assert.deepEqual(codes(errorsOf(bad)), [['E_RANGE', 2, 'interval']]);
    assert.equal(errorsOf(bad)[0]?.loc?.col, 52);
  });

  it('reads VRRP: fractions, versions, tracking, unicast, notify', () => {
    const r = parseText(`global_defs { vrrp_version 3 }
vrrp_script chk {
  script "/bin/check 'x y'"
  interval 2
  weight -10
  rise 2
  fall 3
}
vrrp_instance A {
  state BACKUP
  interface eth0
  virtual_router_id 7
  advert_int 0.25
  unicast_src_ip 192.0.2.1
  unicast_peer { 192.0.2.2 min_ttl 250
    192.0.2.3 }
  track_interface { eth1 weight -5 reverse }
  track_script { chk weight 20 }
  notify /etc/notify.sh root
  virtual_ipaddress { 192.0.2.100/255.255.255.0 dev eth0 label eth0:1 }
}`);
    assert.deepEqual(errorsOf(r), []);
    const a = r.config.vrrpInstances[0];
    assert.deepEqual([a?.version, a?.advertInt, a?.priority, a?.family], [3, 0.25, 100, 'inet']);
    assert.deepEqual(a?.unicastPeers, [{ address: '192.0.2.2', minTtl: 250 }, { address: '192.0.2.3' }]);
    assert.deepEqual(a?.trackInterfaces, [{ name: 'eth1', weight: -5, reverse: true }]);
    assert.deepEqual(a?.trackScripts, [{ name: 'chk', weight: 20, reverse: false }]);
    assert.deepEqual(a?.notify.any, { argv: ['/etc/notify.sh'], user: 'root', group: undefined, text: '/etc/notify.sh' });
    assert.deepEqual(a?.virtualIpAddresses[0], { family: 'inet', address: '192.0.2.100', prefixLength: 24, dev: 'eth0', label: 'eth0:1', noTrack: false });
    assert.deepEqual(r.config.vrrpScripts[0]?.script.argv, ['/bin/check', 'x y']);
    assert.equal(r.config.vrrpScripts[0]?.timeout, 2);
  });

  it('adjusts like keepalived, with warnings: v2 fractions, long passwords, v3 auth, IPv6 forces v3', () => {
    const r = parseText(`vrrp_instance A { interface eth0
 virtual_router_id 1
 advert_int 1.5
 authentication {
  auth_type PASS
  auth_pass 123456789
 }
 virtual_ipaddress { 10.0.0.1 } }
vrrp_instance B { interface eth0
 version 3
 virtual_router_id 2
 authentication {
  auth_type PASS
  auth_pass x
 }
 virtual_ipaddress { 10.0.0.2 } }
vrrp_instance C { interface eth0
 version 2
 virtual_router_id 3
 virtual_ipaddress { fe80::1 } }`);
    assert.deepEqual(errorsOf(r), []);
    const [a, b, c] = r.config.vrrpInstances;
    assert.deepEqual([a?.advertInt, a?.auth?.pass], [2, '12345678']);
    assert.equal(b?.auth, undefined);
    assert.equal(c?.version, 3);
    assert.deepEqual(warningsOf(r).map((d) => d.keyword), ['auth_pass', 'advert_int', 'authentication', 'version']);
  });

  it('keepalived repairs, with a located warning: a DR/TUN real server\'s port, alpha/omega arguments, a VIP listed twice, ADDR/PREFIX sources and peers, brd +/- and broadcast', () => {
    for (const kind of ['DR', 'TUN']) {
      const r = parseText(vs(`lb_kind ${kind}\nreal_server 10.1.0.1 8080 { }`));
      assert.deepEqual(errorsOf(r), []);
      assert.equal(r.config?.virtualServers[0]?.realServers[0]?.port, 80);
      assert.deepEqual(codes(warningsOf(r)), [['W_ADJUSTED', 3, 'real_server']]);
    }
    const ao = parseText(vs('alpha no\nomega off\nreal_server 10.1.0.1 80 { }'));
    assert.deepEqual([ao.config?.virtualServers[0]?.alpha, ao.config?.virtualServers[0]?.omega], [true, true]);
    assert.deepEqual(codes(warningsOf(ao)), [['W_IGNORED', 2, 'alpha'], ['W_IGNORED', 3, 'omega']]);
    const inst = (body: string): string => `vrrp_instance V {\n interface eth0\n virtual_router_id 1\n${body}\n}\n`;
    const twice = parseText(inst(' virtual_ipaddress {\n  10.0.0.9/24\n  10.0.0.9/32 dev eth1\n }'));
    assert.deepEqual(twice.config?.vrrpInstances[0]?.virtualIpAddresses.map((x) => [x.address, x.prefixLength]), [['10.0.0.9', 24]]);
    assert.deepEqual(codes(warningsOf(twice)), [['W_ADJUSTED', 4, 'virtual_ipaddress']]);
    const src = parseText(inst(' unicast_src_ip 10.0.0.2/24\n mcast_src_ip 10.0.0.2/24\n unicast_peer {\n  10.0.0.3/24\n }\n virtual_ipaddress { 10.0.0.9 }'));
    assert.deepEqual(errorsOf(src), []);
    const i0 = src.config?.vrrpInstances[0];
    assert.deepEqual([i0?.unicastSrcIp, i0?.mcastSrcIp, i0?.unicastPeers.map((p) => p.address)], ['10.0.0.2', '10.0.0.2', ['10.0.0.3']]);
    const brd = parseText(inst(' virtual_ipaddress {\n  10.0.0.9/24 brd +\n  10.0.1.9/24 brd -\n  10.0.2.9/24 broadcast 10.0.2.255\n }'));
    assert.deepEqual(errorsOf(brd), []);
    assert.deepEqual(brd.config?.vrrpInstances[0]?.virtualIpAddresses.map((x) => x.brd), ['10.0.0.255', undefined, '10.0.2.255']);
  });

  it('keepalived\'s own keywords are never reported as unknown: each ignored one says why; a typo is still unknown, with a suggestion', () => {
    const r = parseText('global_defs {\n umask 0022\n enable_dbus\n vrrp_cpu_affinity 1\n enable_snmp_vrrp\n vrrp_netlink_cmd_rcv_bufs 1024\n}\nvrrp_instance V {\n interface eth0\n virtual_router_id 1\n priorty 100\n track_bfd {\n  b1\n }\n virtual_ipaddress { 10.0.0.9 }\n}\n');
    const w = warningsOf(r).map((d) => [d.code, d.keyword, d.message]);
    assert.deepEqual(w.map((x) => [x[0], x[1]]), [
      ['W_IGNORED', 'umask'], ['W_IGNORED', 'enable_dbus'], ['W_IGNORED', 'vrrp_cpu_affinity'], ['W_IGNORED', 'enable_snmp_vrrp'],
      ['W_IGNORED', 'vrrp_netlink_cmd_rcv_bufs'], ['W_UNKNOWN_KEYWORD', 'priorty'], ['W_IGNORED', 'track_bfd'],
    ]);
    assert.match(String(w[1]?.[2]), /DBus is not implemented/);
    assert.match(String(w[2]?.[2]), /tunes keepalived's own processes/);
    assert.match(String(w[3]?.[2]), /SNMP is not implemented/);
    assert.match(String(w[5]?.[2]), /did you mean 'priority'/);
    assert.match(String(w[6]?.[2]), /BFD is not implemented/);
  });

  it('auth_hmac is refused, never ignored (the instance would run with no authentication)', () => {
    for (const [body, line] of [[' auth_hmac {\n  key k\n }', 4], [' authentication {\n  auth_hmac sha256\n }', 5], [' authentication {\n  auth_type HMAC\n }', 5]] as const) {
      const r = parseText(`vrrp_instance V {\n interface eth0\n virtual_router_id 1\n${body}\n virtual_ipaddress { 10.0.0.9 }\n}\n`);
      assert.equal(r.ok, false, body);
      const e = errorsOf(r)[0];
      assert.deepEqual([e?.code, e?.loc?.line], ['E_UNSUPPORTED', line], body);
      assert.match(e?.message ?? '', /HMAC authentication is not implemented/);
    }
  });

  it('SMTP_CHECK host { … } blocks: each host is a checker of its own, the block\'s settings their defaults', () => {
    const r = parseText(vs('real_server 10.1.0.1 25 {\n SMTP_CHECK {\n  connect_timeout 5\n  helo_name mx.test\n  connect_port 2525\n  host {\n   connect_ip 10.1.0.5\n  }\n  host {\n   connect_ip 10.1.0.6\n   connect_port 25\n   bindto 10.0.0.2\n  }\n }\n}', '10.0.0.1 25'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(warningsOf(r), []);
    const cs = r.config?.virtualServers[0]?.realServers[0]?.checkers ?? [];
    assert.deepEqual(cs.map((c) => [c.type, c.type === 'SMTP_CHECK' ? c.heloName : '', c.type === 'SMTP_CHECK' ? c.conn : null, c.timing.connectTimeout, c.loc?.line]), [
      ['SMTP_CHECK', 'mx.test', { connectPort: 2525, connectIp: '10.1.0.5' }, 5, 7],
      ['SMTP_CHECK', 'mx.test', { connectPort: 25, connectIp: '10.1.0.6', bindto: '10.0.0.2' }, 5, 10],
    ]);
  });

  it('persistence_granularity takes any IPv4 netmask, as keepalived and ipvsadm do', () => {
    const r = parseText(vs('persistence_timeout 60\npersistence_granularity 255.0.255.0\nreal_server 10.1.0.1 80 { }'));
    assert.deepEqual(errorsOf(r), []);
    assert.deepEqual(r.config?.virtualServers[0]?.persistence, { timeout: 60, prefixLength: 16, netmask: '255.0.255.0', mask: '255.0.255.0' });
    assert.deepEqual(parseText(vs('persistence_timeout 60\npersistence_granularity 255.255.0.0\nreal_server 10.1.0.1 80 { }')).config?.virtualServers[0]?.persistence, { timeout: 60, prefixLength: 16, netmask: '255.255.0.0' });
    assert.deepEqual(codes(errorsOf(parseText(vs('persistence_timeout 60\npersistence_granularity 0.0.0.0\nreal_server 10.1.0.1 80 { }')))), [['E_BAD_VALUE', 3, 'persistence_granularity']]);
  });

  it('persistence_engine sip gets the same warning as ipvsadm --pe sip; another engine is an error', () => {
    const r = parseText(vs('persistence_timeout 60\npersistence_engine sip\nreal_server 10.1.0.1 80 { }'));
    assert.deepEqual(codes(warningsOf(r)), [['W_IGNORED', 3, 'persistence_engine']]);
    assert.match(warningsOf(r)[0]?.message ?? '', /SIP persistence engine \(persistence by Call-ID\) is not implemented/);
    assert.deepEqual(codes(errorsOf(parseText(vs('persistence_engine rtsp\nreal_server 10.1.0.1 80 { }')))), [['E_BAD_VALUE', 2, 'persistence_engine']]);
  });

  it('DNS_CHECK type: every type in keepalived\'s table (check_dns.c), case-insensitive', () => {
    for (const t of ['A', 'NS', 'CNAME', 'SOA', 'MX', 'TXT', 'AAAA', 'RRSIG', 'DNSKEY']) {
      const r = parseText(vs(`real_server 10.1.0.1 53 {\n DNS_CHECK {\n  type ${t.toLowerCase()}\n }\n}`));
      assert.deepEqual(errorsOf(r), [], t);
      const c = r.config?.virtualServers[0]?.realServers[0]?.checkers[0];
      assert.equal(c?.type === 'DNS_CHECK' ? c.queryType : null, t);
    }
    assert.deepEqual(codes(errorsOf(parseText(vs('real_server 10.1.0.1 53 {\n DNS_CHECK {\n  type PTR\n }\n}')))), [['E_BAD_VALUE', 4, 'type']]);
  });

  it('rejects contradictions with located errors', () => {
    const cases: [string, string, number, string][] = [
      ['vrrp_instance V { interface eth0\n virtual_router_id 256\n virtual_ipaddress { 10.0.0.1 } }', 'E_RANGE', 2, 'virtual_router_id'],
      ['vrrp_instance V { interface eth0\n virtual_router_id 0 }', 'E_RANGE', 2, 'virtual_router_id'],
      ['vrrp_instance V { interface eth0\n state BACKUP\n priority 255\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1 } }', 'E_CONTRADICTION', 3, 'priority'],
      [vs('lb_kind PROXY', 'fwmark 3'), 'E_CONTRADICTION', 1, 'lb_kind'],
      [vs('lb_kind PROXY\npersistence_timeout 60', '127.0.0.1'), 'E_CONTRADICTION', 1, 'lb_kind'],
      [vs('', '10.0.0.1'), 'E_CONTRADICTION', 1, 'virtual_server'],
      [vs('real_server 2001:db8::1 80 { }'), 'E_CONTRADICTION', 2, 'real_server'],
      [vs('real_server 10.1.0.1 80 { uthreshold 5\n lthreshold 9 }'), 'E_CONTRADICTION', 2, 'lthreshold'],
      [vs('lb_kind PROXY\nreal_server 10.1.0.1 80 { lb_kind NAT }'), 'E_CONTRADICTION', 3, 'lb_kind'],
      ['vrrp_instance V { interface eth0\n virtual_router_id 1\n virtual_ipaddress { 10.0.0.1\n fe80::1 } }', 'E_CONTRADICTION', 1, 'virtual_ipaddress'],
      ['vrrp_instance V { interface eth0\n virtual_router_id 1\n authentication { auth_type AH }\n virtual_ipaddress { 10.0.0.1 } }', 'E_UNSUPPORTED', 3, 'auth_type'],
    ];
    for (const [text, code, line, keyword] of cases) {
      const e = errorsOf(parseText(text));
      assert.deepEqual(codes(e), [[code, line, keyword]], text);
    }
  });

  it('rejects duplicates and dangling references', () => {
    const cases: [string, [string, number, string][]][] = [
      [vs('') + vs(''), [['E_DUPLICATE', 4, 'virtual_server']]],
      [vs('') + vs('protocol UDP'), []],
      ['vrrp_instance A { interface eth0\n virtual_router_id 5\n virtual_ipaddress { 10.0.0.1 } }\nvrrp_instance B { interface eth0\n virtual_router_id 5\n virtual_ipaddress { 10.0.0.2 } }',
        [['E_DUPLICATE', 4, 'virtual_router_id']]],
      ['vrrp_sync_group G { group { A B } }\nvrrp_instance A { interface eth0\n virtual_router_id 5\n virtual_ipaddress { 10.0.0.1 } }', [['E_REFERENCE', 1, 'group']]],
      [vs('', 'group NOPE'), [['E_REFERENCE', 1, 'virtual_server group']]],
      [vs('real_server 10.1.0.1 80 { FILE_CHECK { track_file nope } }'), [['E_REFERENCE', 2, 'track_file']]],
    ];
    for (const [text, want] of cases) assert.deepEqual(codes(errorsOf(parseText(text))), want, text);
  });

  it('repairs what keepalived repairs, each with a located warning: state EQUAL, garp_master_repeat 0, a v3 advert_int too long, a real server listed twice, a track_script or vrrp_script without its script', () => {
    const inst = (body: string): string => `vrrp_instance V {\n interface eth0\n virtual_router_id 1\n${body}\n virtual_ipaddress { 10.0.0.9 }\n}\n`;
    const r = parseText(inst(' state EQUAL\n garp_master_repeat 0\n version 3\n advert_int 100\n track_script {\n  nope\n  chk\n }'));
    assert.deepEqual(errorsOf(r), []);
    const i = r.config?.vrrpInstances[0];
    assert.deepEqual([i?.initialState, i?.garpMasterRepeat, i?.advertInt, i?.trackScripts.map((t) => t.name)], ['BACKUP', 1, 40.95, []]);
    assert.deepEqual(codes(warningsOf(r)), [['W_ADJUSTED', 4, 'state'], ['W_ADJUSTED', 5, 'garp_master_repeat'], ['W_ADJUSTED', 7, 'advert_int'], ['W_ADJUSTED', 1, 'track_script'], ['W_ADJUSTED', 1, 'track_script']]);
    const noScript = parseText(`vrrp_script chk {\n interval 1\n}\n${inst(' track_script {\n  chk\n }')}`);
    assert.deepEqual(errorsOf(noScript), []);
    assert.deepEqual([noScript.config?.vrrpScripts.length, noScript.config?.vrrpInstances[0]?.trackScripts.length], [0, 0]);
    assert.deepEqual(codes(warningsOf(noScript)), [['W_ADJUSTED', 1, 'vrrp_script'], ['W_ADJUSTED', 4, 'track_script']]);
    const twice = parseText(vs('real_server 10.1.0.1 80 {\n weight 3\n}\nreal_server 10.1.0.1 80 {\n weight 5\n}'));
    assert.deepEqual(errorsOf(twice), []);
    assert.deepEqual(twice.config?.virtualServers[0]?.realServers.map((x) => x.weight), [3]);
    assert.deepEqual(codes(warningsOf(twice)), [['W_ADJUSTED', 5, 'real_server']]);
  });

  it('rejects bad values with what was expected', () => {
    const r = parseText(vs('lb_algo fastest\nlb_kind BRIDGE\ndelay_loop soon\nquorum -1\nreal_server 10.1.0.300 80 { weight 70000 }\nreal_server 10.1.0.1 99999 { }'));
    const e = errorsOf(r);
    assert.deepEqual(e.map((d) => [d.code, d.loc?.line, d.loc?.col, d.keyword]), [
      ['E_BAD_VALUE', 2, 9, 'lb_algo'],
      ['E_BAD_VALUE', 3, 9, 'lb_kind'],
      ['E_BAD_VALUE', 4, 12, 'delay_loop'],
      ['E_RANGE', 5, 8, 'quorum'],
      ['E_BAD_VALUE', 6, 13, 'real_server'],
      ['E_RANGE', 6, 36, 'weight'],
      ['E_RANGE', 7, 22, 'real_server'],
    ]);
    assert.match(e[0]?.expected ?? '', /rr\|wrr\|lc\|wlc/);
  });

  it('fulcrum_half_open: a TCP_CHECK option (bare or a boolean), a located error on a bad value, unknown in other checkers', () => {
    const r = parseText(vs('real_server 10.1.0.1 80 {\n TCP_CHECK { fulcrum_half_open }\n TCP_CHECK { fulcrum_half_open off }\n TCP_CHECK { }\n HTTP_GET { url { path / }\n fulcrum_half_open }\n}'));
    assert.deepEqual(errorsOf(r), []);
    const cks = r.config.virtualServers[0]?.realServers[0]?.checkers ?? [];
    assert.deepEqual(cks.map((c) => (c.type === 'TCP_CHECK' ? c.halfOpen === true : c.type)), [true, false, false, 'HTTP_GET']);
    assert.deepEqual(codes(warningsOf(r)), [['W_UNKNOWN_KEYWORD', 7, 'fulcrum_half_open']]);
    const bad = errorsOf(parseText(vs('real_server 10.1.0.1 80 {\n TCP_CHECK {\n  fulcrum_half_open maybe\n }\n}')));
    assert.deepEqual(bad.map((d) => [d.code, d.loc?.line, d.loc?.col, d.keyword]), [['E_BAD_VALUE', 4, 21, 'fulcrum_half_open']]);
  });

  it('warns about unknown keywords with a suggestion, and about ignored keepalived ones', () => {
    const r = parseText(vs('lb_algorithm rr\nsnmp_name web\nreal_server 10.1.0.1 80 { wieght 3 }'));
    assert.deepEqual(errorsOf(r), []);
    const w = warningsOf(r);
    assert.deepEqual(w.map((d) => [d.code, d.loc?.line, d.keyword]), [
      ['W_UNKNOWN_KEYWORD', 2, 'lb_algorithm'], ['W_IGNORED', 3, 'snmp_name'], ['W_UNKNOWN_KEYWORD', 4, 'wieght'],
    ]);
    assert.match(w[2]?.message ?? '', /did you mean 'weight'/);
  });

  it('strict mode (vrrp_strict, strict_mode) and accept mode follow keepalived: refused where it drops the instance, repaired with a located warning where it repairs', () => {
    const inst = (body: string, name = 'VI_1'): string => `vrrp_instance ${name} {\n interface eth0\n virtual_router_id 1\n${body}\n}\n`;
    const strict = 'global_defs {\n vrrp_strict\n}\n';
    // No priority: keepalived derives it from the state — MASTER is the address owner.
    const owner = parseText(inst(' state MASTER\n virtual_ipaddress { 10.0.0.9 }'));
    assert.deepEqual([owner.config?.vrrpInstances[0]?.priority, owner.config?.vrrpInstances[0]?.accept], [255, true]);
    assert.equal(parseText(inst(' virtual_ipaddress { 10.0.0.9 }')).config?.vrrpInstances[0]?.priority, 100);
    // Accept mode: on by default outside strict mode, off in it (but for the owner), as written when written.
    const acc = (text: string): [boolean | undefined, boolean | undefined] => { const i = parseText(text).config?.vrrpInstances[0]; return [i?.accept, i?.strict]; };
    assert.deepEqual(acc(inst(' priority 100\n virtual_ipaddress { 10.0.0.9 }')), [true, undefined]);
    assert.deepEqual(acc(inst(' priority 100\n no_accept\n virtual_ipaddress { 10.0.0.9 }')), [false, undefined]);
    assert.deepEqual(acc(strict + inst(' priority 100\n virtual_ipaddress { 10.0.0.9 }')), [false, true]);
    assert.deepEqual(acc(strict + inst(' priority 100\n version 3\n accept\n virtual_ipaddress { 10.0.0.9 }')), [true, true]);
    assert.deepEqual(acc(strict + inst(' priority 100\n strict_mode off\n virtual_ipaddress { 10.0.0.9 }')), [true, undefined]);
    assert.deepEqual(acc(inst(' priority 100\n strict_mode\n virtual_ipaddress { 10.0.0.9 }')), [false, true]);
    assert.deepEqual(acc(strict + inst(' state MASTER\n priority 255\n virtual_ipaddress { 10.0.0.9 }')), [true, true]);
    // Repairs, each a located W_ADJUSTED.
    const repaired = parseText(strict + inst(' state MASTER\n priority 150\n preempt_delay 5\n accept\n authentication {\n  auth_type PASS\n  auth_pass secret\n }\n virtual_ipaddress { 10.0.0.9 }'));
    assert.deepEqual(errorsOf(repaired), []);
    const i = repaired.config?.vrrpInstances[0];
    assert.deepEqual([i?.initialState, i?.preemptDelay, i?.auth, i?.accept], ['BACKUP', 0, undefined, false]);
    assert.deepEqual(codes(warningsOf(repaired)).filter(([c]) => c === 'W_ADJUSTED'), [
      ['W_ADJUSTED', 7, 'state'], ['W_ADJUSTED', 11, 'authentication'], ['W_ADJUSTED', 9, 'preempt_delay'], ['W_ADJUSTED', 10, 'accept'],
    ]);
    // Refusals: where keepalived drops the instance.
    for (const [body, re] of [
      [' priority 100', /has no virtual_ipaddress, which vrrp_strict requires/],
      [' priority 100\n unicast_peer {\n  10.0.0.2\n }\n virtual_ipaddress { 10.0.0.9 }', /unicast peers are not allowed in strict mode/],
    ] as const) {
      const r = parseText(strict + inst(body));
      assert.equal(r.ok, false, body);
      assert.match(errorsOf(r).map((d) => d.message).join('\n'), re);
      assert.equal(errorsOf(r)[0]?.loc?.line, 4, body);
    }
    // A proxied service on such an address would receive nothing while MASTER: said, with the way out.
    const proxied = parseText(strict + inst(' priority 100\n virtual_ipaddress { 10.0.0.9 }') + vs('  lb_kind PROXY\n  real_server 10.0.1.1 80 {\n  }', '10.0.0.9 80'));
    const w = warningsOf(proxied).find((d) => d.keyword === 'virtual_server');
    assert.match(w?.message ?? '', /belongs to vrrp_instance 'VI_1', which has no accept mode \(strict mode\): its traffic is dropped while MASTER/);
    assert.equal(w?.loc?.line, 10);
    assert.equal(warningsOf(parseText(strict + inst(' priority 100\n version 3\n accept\n virtual_ipaddress { 10.0.0.9 }') + vs('  lb_kind PROXY', '10.0.0.9 80'))).filter((d) => d.keyword === 'virtual_server').length, 0);
  });

  it('vrrp_track_process with keepalived\'s defaults and rules; track_process in instances and sync groups; an unknown name dropped with a warning', () => {
    const inst = (body: string): string => `vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.9 }\n${body}\n}\n`;
    const r = parseText(`vrrp_track_process a {\n process haproxy\n}\nvrrp_track_process b {\n process /usr/sbin/haproxy -f /etc/h.cfg\n param_match initial\n weight -20 reverse\n quorum 2\n quorum_max 4\n delay 0.5\n}\nvrrp_track_process c {\n process nginx\n quorum_max 0\n fork_delay 2\n}\n`
      + inst(' track_process {\n  a\n  b weight 30 noreverse\n  nope\n }'));
    assert.deepEqual(errorsOf(r), []);
    const [a, b, c] = r.config?.trackProcesses ?? [];
    assert.deepEqual([a?.process, a?.params, a?.paramMatch, a?.fullCommand, a?.weight, a?.quorum, a?.forkDelay], ['haproxy', [], 'none', false, 0, 1, 0]);
    assert.deepEqual([b?.process, b?.params, b?.paramMatch, b?.fullCommand, b?.weight, b?.reverse, b?.quorum, b?.quorumMax, b?.forkDelay, b?.terminateDelay],
      ['/usr/sbin/haproxy', ['-f', '/etc/h.cfg'], 'initial', true, -20, true, 2, 4, 0.5, 0.5]);
    assert.deepEqual([c?.quorum, c?.quorumMax, c?.forkDelay, c?.terminateDelay], [0, 0, 2, 0], 'quorum_max 0: up while none runs');
    assert.deepEqual(r.config?.vrrpInstances[0]?.trackProcesses, [{ name: 'a', weight: undefined, reverse: false }, { name: 'b', weight: 30, reverse: false }]);
    assert.deepEqual(codes(warningsOf(r)).filter(([, , k]) => k === 'track_process'), [['W_ADJUSTED', 17, 'track_process']]);
    const bad = parseText('vrrp_track_process x {\n weight 2\n}\n' + inst(''));
    assert.equal(bad.ok, false);
    assert.match(errorsOf(bad)[0]?.message ?? '', /vrrp_track_process 'x' has no 'process'/);
    assert.equal(errorsOf(bad)[0]?.loc?.line, 1);
  });

  it('use_vmac [NAME] and vmac_xmit_base: a virtual MAC interface (vrrp.VRID by default), IPv4 or IPv6; strict mode drops vmac_xmit_base; a name twice is refused', () => {
    const inst = (body: string, vrid = 7, name = 'VI_1', vip = '10.0.0.9'): string => `vrrp_instance ${name} {\n interface eth0\n virtual_router_id ${vrid}\n priority 100\n virtual_ipaddress { ${vip} }\n${body}\n}\n`;
    assert.deepEqual(parseText(inst(' use_vmac')).config?.vrrpInstances[0]?.vmac, { name: 'vrrp.7', xmitBase: false });
    assert.deepEqual(parseText(inst(' use_vmac vip7\n vmac_xmit_base')).config?.vrrpInstances[0]?.vmac, { name: 'vip7', xmitBase: true });
    assert.deepEqual(parseText(inst(' use_vmac', 7, 'VI_1', 'fe80::9')).config?.vrrpInstances[0]?.vmac, { name: 'vrrp.7', xmitBase: false });
    const strict = parseText('global_defs {\n vrrp_strict\n}\n' + inst(' use_vmac\n vmac_xmit_base'));
    assert.deepEqual(strict.config?.vrrpInstances[0]?.vmac, { name: 'vrrp.7', xmitBase: false });
    assert.deepEqual(codes(warningsOf(strict)).filter(([, , k]) => k === 'vmac_xmit_base'), [['W_ADJUSTED', 10, 'vmac_xmit_base']]);
    const twice = parseText(inst(' use_vmac v1') + inst(' use_vmac v1', 8, 'VI_2', '10.0.0.10'));
    assert.equal(twice.ok, false);
    assert.match(errorsOf(twice)[0]?.message ?? '', /the virtual MAC interface v1 is already vrrp_instance 'VI_1''s/);
    assert.equal(parseText(inst(' use_vmac bad/name')).ok, false);
  });

  it('net_namespace NAME at the top level (keepalived installs it there): the last one wins; a name ip netns would not make is a located error', () => {
    const inst = 'vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.9 }\n}\n';
    assert.equal(parseText(`net_namespace blue\n${inst}`).config?.global.netNamespace, 'blue');
    assert.equal(parseText(inst).config?.global.netNamespace, undefined);
    const bad = parseText(`net_namespace ../etc\n${inst}`);
    assert.equal(bad.ok, false);
    assert.deepEqual(codes(errorsOf(bad)), [['E_BAD_VALUE', 1, 'net_namespace']]);
  });

  it('a virtual_server without protocol: TCP, with a located warning naming keepalived\'s UDP (none for fwmark services)', () => {
    const r = parseText(vs('  real_server 10.0.1.1 80 {\n  }'));
    assert.equal(r.config?.virtualServers[0]?.protocol, 'tcp');
    assert.deepEqual(codes(allWarnings(r)), [['W_ADJUSTED', 1, 'protocol']]);
    assert.match(allWarnings(r)[0]?.message ?? '', /keepalived 2\.2\.7 reports this and serves UDP/);
    assert.deepEqual(allWarnings(parseText(vs('  protocol UDP\n  real_server 10.0.1.1 80 {\n  }'))), []);
    assert.deepEqual(allWarnings(parseText(vs('  real_server 10.0.1.1 80 {\n  }', 'fwmark 7'))), []);
  });
});
