import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createMetrics, StatusBoard, type StatusView } from './index.js';

const view = (over: Partial<StatusView> = {}): StatusView => ({
  plane: 'proxy', at: 0, vrrp: [], vrrpDrops: {}, drains: [], runtime: { changes: 2, stale: ['x'], where: 'mem', applied: 7, commits: 3 },
  reloads: { ok: 3, failed: 1, lastOkAt: 2_000_000, lastFailedAt: 1_000_000 },
  workers: [{ index: 0, threadId: 7, alive: true, restarts: 1, sessions: 12 }, { index: 1, threadId: 8, alive: true, restarts: 0, sessions: 3 }],
  lostConnections: 5,
  pipes: 6,
  packets: { forwarded: 900, 'no-neighbour': 2 },
  sync: {
    role: 'backup', config: { interface: 'eth1', syncid: 7, maxlen: 1472, group: '224.0.0.81', port: 8848, ttl: 1 },
    sent: { messages: 0, entries: 0, bytes: 0, errors: 0, tracked: 0 }, received: { messages: 12, entries: 400, bytes: 5000, peer: '10.0.0.9', lastAt: 1_700_000 },
    installed: 390, unchanged: 4, queued: 0, refused: { syncid: 2, 'no-server': 6 }, lag: { send: null, install: 0.04 },
  },
  bgp: {
    enabled: true, speaker: { name: 'gobgpd (pid 7)', up: true, error: null, localAs: 65001, routerId: '10.0.1.2' },
    sessions: [{ neighbor: '10.0.1.1', remoteAs: 65000, state: 'established', upSince: 1_600_000, received: 0 }, { neighbor: '10.0.1.9', remoteAs: 65000, state: 'active', upSince: null, received: 0 }],
    routes: [{ prefix: '10.99.99.99/32', wanted: true, announced: true, reason: 'tcp 10.99.99.99:80 has quorum', nextHop: null, communities: [], med: null, since: 1_650_000 }],
    counters: { announced: 3, withdrawn: 2, failures: 1 },
  },
  services: [{
    key: 'tcp 10.0.0.1:80', protocol: 'tcp', scheduler: 'wrr', flags: [], persistence: null, method: 'proxy', active: true, quorum: 1, dropped: 4,
    counters: { conns: 10, inPkts: 20, outPkts: 30, inBytes: 400, outBytes: 5000 }, rates: { cps: 1, inPps: 2, outPps: 3, inBps: 40, outBps: 500 },
    servers: [{
      key: '10.0.0.2:80', address: '10.0.0.2', port: 80, method: 'proxy', weight: 0, configuredWeight: 3, state: 'down', sorry: false, draining: null,
      active: 1, inactive: 2, templates: 5, counters: { conns: 7, inPkts: 1, outPkts: 1, inBytes: 100, outBytes: 900 }, rates: { cps: 0, inPps: 0, outPps: 0, inBps: 0, outBps: 0 },
      health: { alive: false, since: 1_500_000, reason: 'TCP_CHECK down', transitions: 2, checkers: [], checks: ['TCP_CHECK'] },
      agent: { reply: '35%', load: 35 },
    }],
  }],
  ...over,
});

test('metrics: names end in _total or a unit, the real server is a label, values come from the view at scrape time', async () => {
  const board = new StatusBoard(() => 0);
  const m = createMetrics(() => view(), board, false);
  board.foldHealth({ type: 'probe', service: 'tcp 10.0.0.1:80', server: '10.0.0.2:80', checker: 'TCP_CHECK', ok: false, latencyMs: 3 });
  board.foldHealth({ type: 'probe', service: 'tcp 10.0.0.1:80', server: '10.0.0.2:80', checker: 'TCP_CHECK', ok: true, latencyMs: 40 });
  const { text, contentType } = await m.scrape();
  assert.match(contentType, /^text\/plain; version=0\.0\.4/);
  assert.match(text, /^fulcrum_sync_role\{role="backup"\} 1$/m);
  assert.match(text, /^fulcrum_bgp_speaker_up 1$/m);
  assert.match(text, /^fulcrum_bgp_session_up\{neighbor="10\.0\.1\.1"\} 1$/m);
  assert.match(text, /^fulcrum_bgp_session_up\{neighbor="10\.0\.1\.9"\} 0$/m);
  assert.match(text, /^fulcrum_bgp_session_established_timestamp_seconds\{neighbor="10\.0\.1\.1"\} 1600$/m);
  assert.doesNotMatch(text, /^fulcrum_bgp_session_established_timestamp_seconds\{neighbor="10\.0\.1\.9"\}/m);
  assert.match(text, /^fulcrum_bgp_route_announced\{prefix="10\.99\.99\.99\/32"\} 1$/m);
  assert.match(text, /^fulcrum_bgp_route_changes_total\{action="withdraw"\} 2$/m);
  assert.match(text, /^fulcrum_bgp_failures_total 1$/m);
  assert.match(text, /^fulcrum_sync_messages_total\{direction="received"\} 12$/m);
  assert.match(text, /^fulcrum_sync_entries_total\{direction="received"\} 400$/m);
  assert.match(text, /^fulcrum_sync_installed_total 390$/m);
  assert.match(text, /^fulcrum_sync_bytes_total\{direction="received"\} 5000$/m);
  assert.match(text, /^fulcrum_sync_refused_total\{reason="syncid"\} 2$/m);
  assert.match(text, /^fulcrum_sync_lag_seconds\{side="install"\} 0\.04$/m);
  const S = 'service="tcp 10.0.0.1:80"';
  const R = `${S},server="10.0.0.2:80"`;
  for (const line of [
    `fulcrum_service_connections_total{${S}} 10`,
    `fulcrum_service_bytes_total{${S},direction="out"} 5000`,
    `fulcrum_service_dropped_datagrams_total{${S}} 4`,
    'fulcrum_xdp_packets_total{outcome="forwarded"} 900',
    'fulcrum_xdp_packets_total{outcome="no-neighbour"} 2',
    `fulcrum_service_connections_per_second{${S}} 1`,
    `fulcrum_real_server_connections_total{${R}} 7`,
    `fulcrum_real_server_bytes_total{${R},direction="in"} 100`,
    `fulcrum_real_server_active_connections{${R}} 1`,
    `fulcrum_real_server_inactive_connections{${R}} 2`,
    `fulcrum_real_server_persistence_templates{${R}} 5`,
    `fulcrum_real_server_weight{${R}} 0`,
    `fulcrum_real_server_configured_weight{${R}} 3`,
    `fulcrum_real_server_up{${R}} 0`,
    `fulcrum_real_server_last_transition_timestamp_seconds{${R}} 1500`,
    `fulcrum_real_server_health_transitions_total{${R}} 2`,
    `fulcrum_real_server_agent_load{${R}} 35`,
    `fulcrum_checker_latency_seconds_bucket{le="0.005",${R},checker="TCP_CHECK"} 1`,
    `fulcrum_checker_latency_seconds_count{${R},checker="TCP_CHECK"} 2`,
    `fulcrum_checks_total{${R},checker="TCP_CHECK",result="failed"} 1`,
    'fulcrum_config_reloads_total{result="success"} 3',
    'fulcrum_config_reloads_total{result="failure"} 1',
    'fulcrum_config_last_reload_successful 1',
    'fulcrum_config_last_reload_success_timestamp_seconds 2000',
    'fulcrum_runtime_changes 2',
    'fulcrum_runtime_stale_changes 1',
    'fulcrum_runtime_changes_applied_total 7',
    'fulcrum_runtime_commits_total 3',
    'fulcrum_proxy_pipes 6',
  ]) assert.ok(text.split('\n').includes(line), `missing: ${line}\n${text}`);
  assert.match(text, /^# TYPE fulcrum_real_server_connections_total counter$/m);
  assert.match(text, /^# TYPE fulcrum_real_server_active_connections gauge$/m);
  // Every counter is named *_total; every other name carries its unit or is a state/count.
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    if (type === 'counter') assert.match(name ?? '', /_total$/, `${name ?? ''} is a counter`);
  }
  // A server that is gone from the view is gone from the next scrape.
  const m2 = createMetrics(() => view({ services: [] }), new StatusBoard(), false);
  assert.doesNotMatch((await m2.scrape()).text, /server="10\.0\.0\.2:80"/);
});

test('metrics: VRRP state, priority, adverts, transitions and drops by reason', async () => {
  const inst = {
    name: 'VI_1', state: 'BACKUP' as const, priority: 90, basePriority: 150, vrid: 51, interface: 'eth0', family: 'inet' as const, version: 2 as const,
    advertInt: 1, addresses: ['10.0.0.100/24'], master: '10.0.0.2', source: '10.0.0.1', since: 3_000_000, reason: 'higher-priority' as const,
    faults: [], advertsSent: 12, advertsReceived: 40, becameMaster: 1, transitions: 3, drops: { 'auth-mismatch': 2 },
  };
  const m = createMetrics(() => view({ vrrp: [inst], vrrpDrops: { 'auth-mismatch': 2, 'bad-ttl': 1 } }), new StatusBoard(() => 0), false);
  const lines = (await m.scrape()).text.split('\n');
  for (const line of [
    'fulcrum_vrrp_state{instance="VI_1",state="BACKUP"} 1',
    'fulcrum_vrrp_state{instance="VI_1",state="MASTER"} 0',
    'fulcrum_vrrp_priority{instance="VI_1"} 90',
    'fulcrum_vrrp_state_since_seconds{instance="VI_1"} 3000',
    'fulcrum_vrrp_adverts_sent_total{instance="VI_1"} 12',
    'fulcrum_vrrp_adverts_received_total{instance="VI_1"} 40',
    'fulcrum_vrrp_transitions_total{instance="VI_1"} 3',
    'fulcrum_vrrp_became_master_total{instance="VI_1"} 1',
    'fulcrum_vrrp_packets_dropped_total{reason="auth-mismatch"} 2',
    'fulcrum_vrrp_packets_dropped_total{reason="bad-ttl"} 1',
  ]) assert.ok(lines.includes(line), `missing: ${line}`);
});

test('metrics: service and real-server families escape label values as prom-client does and never let a counter go below 0', async () => {
  const m = createMetrics(() => view({ services: [{ ...view().services[0]!, key: 'tcp a"b\\c\nd', dropped: -4 }] }), new StatusBoard(() => 0), false);
  const { text } = await m.scrape();
  assert.match(text, /^fulcrum_service_dropped_datagrams_total\{service="tcp a\\"b\\\\c\\nd"\} 0$/m);
  assert.match(text, /^# TYPE fulcrum_real_server_weight gauge$/m);
  assert.match(text, /^fulcrum_real_server_up\{service="tcp a\\"b\\\\c\\nd",server="10\.0\.0\.2:80"\} 0$/m);
});
