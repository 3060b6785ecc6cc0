/**
 * Prometheus exposition through prom-client. Values are read from the status view when
 * scraped (one view per scrape), except checker latency, which is a histogram fed by every
 * probe. Names end in `_total` for counters and carry their unit; the real server is the
 * `server` label (`10.0.0.2:80`), the virtual service the `service` label (`tcp 10.0.0.1:80`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StatusBoard } from './status.js';
import { ByteWriter } from './bytes.js';
import type { StatusView } from './view.js';

export interface Metrics {
  readonly registry: Registry;
  /** The exposition text (and its content type) for one scrape. */
  scrape(): Promise<{ text: string; contentType: string }>;
  /** The same exposition written into `out` (the API's path: no megabyte-sized string); its content type. */
  scrapeInto(out: ByteWriter): Promise<string>;
}

export function createMetrics(view: () => StatusView, board: StatusBoard, defaults = true): Metrics {
  const registry = new Registry();
  if (defaults) collectDefaultMetrics({ register: registry, prefix: 'fulcrum_' });
  let current: StatusView | null = null;
  const v = (): StatusView => current ?? (current = view());

  const srvL = ['service', 'server'] as const;

  /** A counter whose value is read from the view (prom-client counters only go up, so reset and set). */
  const readCounter = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (emit: (labels: Record<L, string>, value: number) => void) => void): void => {
    const c: Counter<L> = new Counter<L>({
      name, help, labelNames, registers: [registry],
      collect() {
        c.reset();
        read((labels, value) => c.inc(labels as Partial<Record<L, string | number>>, Math.max(0, value)));
      },
    });
  };
  const readGauge = <L extends string>(name: string, help: string, labelNames: readonly L[], read: (emit: (labels: Record<L, string>, value: number) => void) => void): void => {
    const g: Gauge<L> = new Gauge<L>({
      name, help, labelNames, registers: [registry],
      collect() {
        g.reset();
        read((labels, value) => g.set(labels as Partial<Record<L, string | number>>, value));
      },
    });
  };

  // Connection sync.
  const sync = (): StatusView['sync'] => v().sync;
  const bgp = (): StatusView['bgp'] => v().bgp;
  readGauge<never>('fulcrum_bgp_speaker_up', 'BGP speaker (gobgpd) answering: 1, else 0 (absent without fulcrum_bgp)', [], (e) => {
    const sp = bgp().speaker;
    if (sp) e({}, sp.up ? 1 : 0);
  });
  readGauge<'neighbor'>('fulcrum_bgp_session_up', 'BGP session with a neighbour established: 1, else 0', ['neighbor'], (e) => {
    for (const s of bgp().sessions) e({ neighbor: s.neighbor }, s.state === 'established' ? 1 : 0);
  });
  readGauge<'neighbor'>('fulcrum_bgp_session_established_timestamp_seconds', 'When the BGP session came up (Unix time; absent while down)', ['neighbor'], (e) => {
    for (const s of bgp().sessions) if (s.upSince !== null) e({ neighbor: s.neighbor }, s.upSince / 1000);
  });
  readGauge<'prefix'>('fulcrum_bgp_route_announced', 'A VIP route the speaker originates now: 1, withdrawn: 0', ['prefix'], (e) => {
    for (const r of bgp().routes) e({ prefix: r.prefix }, r.announced ? 1 : 0);
  });
  readCounter<'action'>('fulcrum_bgp_route_changes_total', 'Routes the speaker accepted to announce or withdraw', ['action'], (e) => {
    e({ action: 'announce' }, bgp().counters.announced);
    e({ action: 'withdraw' }, bgp().counters.withdrawn);
  });
  readCounter<never>('fulcrum_bgp_failures_total', 'BGP speaker calls that failed (unreachable, refused), each retried with backoff', [], (e) => e({}, bgp().counters.failures));
  readGauge<'role'>('fulcrum_sync_role', 'Connection sync role: 1 for the one it runs (master, backup, master+backup, stopped)', ['role'], (e) => {
    for (const r of ['master', 'backup', 'master+backup', 'stopped'] as const) e({ role: r }, sync().role === r ? 1 : 0);
  });
  readCounter<'direction'>('fulcrum_sync_messages_total', 'Connection sync datagrams sent and received (accepted)', ['direction'], (e) => {
    e({ direction: 'sent' }, sync().sent.messages);
    e({ direction: 'received' }, sync().received.messages);
  });
  readCounter<'direction'>('fulcrum_sync_entries_total', 'Connection sync entries sent and received', ['direction'], (e) => {
    e({ direction: 'sent' }, sync().sent.entries);
    e({ direction: 'received' }, sync().received.entries);
  });
  readCounter<'direction'>('fulcrum_sync_bytes_total', 'Connection sync bytes (UDP payload) sent and received', ['direction'], (e) => {
    e({ direction: 'sent' }, sync().sent.bytes);
    e({ direction: 'received' }, sync().received.bytes);
  });
  readCounter<never>('fulcrum_sync_installed_total', 'Synchronised flows written to the data plane', [], (e) => e({}, sync().installed));
  readCounter<never>('fulcrum_sync_send_errors_total', 'Connection sync datagrams that could not be sent', [], (e) => e({}, sync().sent.errors));
  readCounter<'reason'>('fulcrum_sync_refused_total', 'Connection sync datagrams or entries refused, by reason (bad-size, syncid, truncated, no-service, overflow, …)', ['reason'], (e) => {
    for (const [reason, n] of Object.entries(sync().refused)) e({ reason }, n);
  });
  readGauge<'side'>('fulcrum_sync_lag_seconds', 'Connection sync lag: send = a master\'s read of the plane to its last datagram; install = a backup\'s oldest arrival to installed', ['side'], (e) => {
    const l = sync().lag;
    if (l.send !== null) e({ side: 'send' }, l.send);
    if (l.install !== null) e({ side: 'install' }, l.install);
  });

  const instL = ['instance'] as const;
  type InstLabels = (typeof instL)[number];
  const eachVrrp = (f: (i: StatusView['vrrp'][number]) => void): void => { for (const i of v().vrrp) f(i); };
  readGauge<InstLabels | 'state'>('fulcrum_vrrp_state', 'VRRP instance state: 1 for the state it is in (INIT, BACKUP, MASTER, FAULT)', ['instance', 'state'], (e) => eachVrrp((i) => {
    for (const st of ['INIT', 'BACKUP', 'MASTER', 'FAULT']) e({ instance: i.name, state: st }, i.state === st ? 1 : 0);
  }));
  readGauge<InstLabels>('fulcrum_vrrp_priority', 'VRRP effective priority (configured ± tracking)', instL, (e) => eachVrrp((i) => e({ instance: i.name }, i.priority)));
  readGauge<InstLabels>('fulcrum_vrrp_state_since_seconds', 'When the VRRP instance last changed state (Unix time)', instL, (e) => eachVrrp((i) => e({ instance: i.name }, i.since / 1000)));
  readCounter<InstLabels>('fulcrum_vrrp_adverts_sent_total', 'VRRP advertisements sent', instL, (e) => eachVrrp((i) => e({ instance: i.name }, i.advertsSent)));
  readCounter<InstLabels>('fulcrum_vrrp_adverts_received_total', 'VRRP advertisements received and accepted', instL, (e) => eachVrrp((i) => e({ instance: i.name }, i.advertsReceived)));
  readCounter<InstLabels>('fulcrum_vrrp_transitions_total', 'VRRP state transitions', instL, (e) => eachVrrp((i) => e({ instance: i.name }, i.transitions)));
  readCounter<InstLabels>('fulcrum_vrrp_became_master_total', 'Times the VRRP instance became MASTER', instL, (e) => eachVrrp((i) => e({ instance: i.name }, i.becameMaster)));
  readCounter<'reason'>('fulcrum_vrrp_packets_dropped_total', 'VRRP packets dropped, by reason (bad-ttl, bad-checksum, auth-mismatch, unknown-vrid, …)', ['reason'], (e) => {
    for (const [reason, n] of Object.entries(v().vrrpDrops)) e({ reason }, n);
  });

  const latency = new Histogram<'service' | 'server' | 'checker'>({
    name: 'fulcrum_checker_latency_seconds', help: 'Health-check probe time, start to verdict',
    labelNames: ['service', 'server', 'checker'], buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers: [registry],
  });
  const checks = new Counter<'service' | 'server' | 'checker' | 'result'>({
    name: 'fulcrum_checks_total', help: 'Health-check probes by result', labelNames: ['service', 'server', 'checker', 'result'], registers: [registry],
  });
  board.onProbe = (p) => {
    latency.observe({ service: p.service, server: p.server, checker: p.checker }, p.latencyMs / 1000);
    checks.inc({ service: p.service, server: p.server, checker: p.checker, result: p.ok ? 'ok' : 'failed' });
  };

  const resL = ['result'] as const;
  readCounter<(typeof resL)[number]>('fulcrum_config_reloads_total', 'Configuration reloads by result', resL, (e) => {
    e({ result: 'success' }, v().reloads.ok);
    e({ result: 'failure' }, v().reloads.failed);
  });
  readGauge<never>('fulcrum_config_last_reload_successful', '1 when the last reload was applied (or none failed since start)', [], (e) => {
    const r = v().reloads;
    e({}, r.lastFailedAt > r.lastOkAt ? 0 : 1);
  });
  readGauge<never>('fulcrum_config_last_reload_success_timestamp_seconds', 'When a reload last succeeded', [], (e) => {
    const r = v().reloads;
    if (r.lastOkAt > 0) e({}, r.lastOkAt / 1000);
  });
  readCounter<'component' | 'code'>('fulcrum_internal_failures_total', 'Internal failures (kernel reads and transactions, accept errors, scripts that could not run, background tasks) by component and stable code', ['component', 'code'], (e) => {
    for (const f of board.failures.list()) e({ component: f.component, code: f.code }, f.count);
  });
  readGauge<'worker'>('fulcrum_dataplane_worker_up', '1 while the data-plane worker thread is running (userspace proxy with --workers > 1)', ['worker'], (e) => {
    for (const w of v().workers) e({ worker: String(w.index) }, w.alive ? 1 : 0);
  });
  readGauge<'worker'>('fulcrum_dataplane_worker_sessions', 'Sessions (connections, UDP flows) the worker relays now', ['worker'], (e) => {
    for (const w of v().workers) e({ worker: String(w.index) }, w.sessions);
  });
  readCounter<'worker'>('fulcrum_dataplane_worker_restarts_total', 'Times the data-plane worker died and was restarted', ['worker'], (e) => {
    for (const w of v().workers) e({ worker: String(w.index) }, w.restarts);
  });
  readGauge<never>('fulcrum_proxy_pipes', 'Pipes the userspace relay holds now for spliced bulk directions (two file descriptors each; at most a quarter of the descriptor limit)', [], (e) => e({}, v().pipes));
  readCounter<never>('fulcrum_dataplane_lost_connections_total', 'Connections lost with data-plane workers that died', [], (e) => e({}, v().lostConnections));
  readCounter<'outcome'>('fulcrum_xdp_packets_total', 'Packets the XDP program handled, by outcome (forwarded, new, no-server, no-neighbour, malformed, tx-failed)', ['outcome'], (e) => {
    for (const [outcome, n] of Object.entries(v().packets)) e({ outcome }, n);
  });
  readGauge<never>('fulcrum_runtime_changes', 'Runtime changes (fulcrum adm, API) laid over the configuration file', [], (e) => e({}, v().runtime.changes));
  readCounter<never>('fulcrum_runtime_changes_applied_total', 'Runtime changes (fulcrum adm, API) accepted and applied since start', [], (e) => e({}, v().runtime.applied));
  readCounter<never>('fulcrum_runtime_commits_total', 'Durable saves of the runtime changes; concurrent changes share one (group commit)', [], (e) => e({}, v().runtime.commits));
  readGauge<never>('fulcrum_runtime_stale_changes', 'Runtime changes the configuration file gives no target', [], (e) => e({}, v().runtime.stale.length));
  readGauge<'service' | 'server'>('fulcrum_drain_remaining_connections', 'Connections and templates still holding a drain', srvL, (e) => {
    for (const d of v().drains) e({ service: d.service, server: d.server }, d.active + d.inactive + d.templates);
  });

  const scrapeInto = async (out: ByteWriter): Promise<string> => {
    current = null;
    try {
      out.write(await registry.metrics());
      out.write('\n');
      serviceFamilies(v(), out);
      return registry.contentType;
    } finally {
      current = null;
    }
  };
  return {
    registry,
    scrapeInto,
    async scrape() {
      const out = new ByteWriter(1 << 16);
      const contentType = await scrapeInto(out);
      return { text: out.bytes().toString('utf8'), contentType };
    },
  };
}

type ServiceV = StatusView['services'][number];
type ServerV = ServiceV['servers'][number];

/**
 * One family per virtual service or per real server: its name, help, type, and the
 * samples of one service or server — `put(labelsSuffix, value)` where the suffix adds
 * labels after the service's (or server's) own (`,direction="in"`), or nothing.
 */
interface Family<T> {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly read: (x: T, put: (extra: string, value: number) => void) => void;
}

const SERVICE_FAMILIES: readonly Family<ServiceV>[] = [
  { name: 'fulcrum_service_connections_total', help: 'Connections (UDP: sessions) scheduled by the virtual service', type: 'counter', read: (s, p) => p('', s.counters.conns) },
  { name: 'fulcrum_service_packets_total', help: 'Packets through the virtual service (in = client to server)', type: 'counter', read: (s, p) => { p(',direction="in"', s.counters.inPkts); p(',direction="out"', s.counters.outPkts); } },
  { name: 'fulcrum_service_bytes_total', help: 'Bytes through the virtual service (in = client to server)', type: 'counter', read: (s, p) => { p(',direction="in"', s.counters.inBytes); p(',direction="out"', s.counters.outBytes); } },
  { name: 'fulcrum_service_dropped_datagrams_total', help: 'Datagrams dropped (UDP: no real server, queue full, send failure)', type: 'counter', read: (s, p) => p('', s.dropped) },
  { name: 'fulcrum_service_connections_per_second', help: 'Connection rate (IPVS 2-second estimator)', type: 'gauge', read: (s, p) => p('', s.rates.cps) },
  { name: 'fulcrum_service_bytes_per_second', help: 'Byte rate (IPVS 2-second estimator)', type: 'gauge', read: (s, p) => { p(',direction="in"', s.rates.inBps); p(',direction="out"', s.rates.outBps); } },
  { name: 'fulcrum_service_packets_per_second', help: 'Packet rate (IPVS 2-second estimator)', type: 'gauge', read: (s, p) => { p(',direction="in"', s.rates.inPps); p(',direction="out"', s.rates.outPps); } },
  { name: 'fulcrum_service_up', help: '1 when the virtual service is in the data plane', type: 'gauge', read: (s, p) => p('', s.active ? 1 : 0) },
];

const SERVER_FAMILIES: readonly Family<ServerV>[] = [
  { name: 'fulcrum_real_server_connections_total', help: 'Connections scheduled to the real server', type: 'counter', read: (r, p) => p('', r.counters.conns) },
  { name: 'fulcrum_real_server_bytes_total', help: 'Bytes to and from the real server (in = client to server)', type: 'counter', read: (r, p) => { p(',direction="in"', r.counters.inBytes); p(',direction="out"', r.counters.outBytes); } },
  { name: 'fulcrum_real_server_packets_total', help: 'Packets to and from the real server (in = client to server)', type: 'counter', read: (r, p) => { p(',direction="in"', r.counters.inPkts); p(',direction="out"', r.counters.outPkts); } },
  { name: 'fulcrum_real_server_active_connections', help: 'ActiveConn as ipvsadm shows it', type: 'gauge', read: (r, p) => p('', r.active) },
  { name: 'fulcrum_real_server_inactive_connections', help: 'InActConn as ipvsadm shows it', type: 'gauge', read: (r, p) => p('', r.inactive) },
  { name: 'fulcrum_real_server_persistence_templates', help: 'Persistence templates pointing at the real server', type: 'gauge', read: (r, p) => p('', r.templates) },
  { name: 'fulcrum_real_server_connections_per_second', help: 'Connection rate (IPVS 2-second estimator)', type: 'gauge', read: (r, p) => p('', r.rates.cps) },
  { name: 'fulcrum_real_server_bytes_per_second', help: 'Byte rate (IPVS 2-second estimator)', type: 'gauge', read: (r, p) => { p(',direction="in"', r.rates.inBps); p(',direction="out"', r.rates.outBps); } },
  { name: 'fulcrum_real_server_weight', help: 'Weight in the data plane now (absent when out of the table)', type: 'gauge', read: (r, p) => { if (r.weight !== null) p('', r.weight); } },
  { name: 'fulcrum_real_server_configured_weight', help: 'Weight the configuration (and runtime changes) give', type: 'gauge', read: (r, p) => p('', r.configuredWeight) },
  { name: 'fulcrum_real_server_up', help: '1 when the health checks pass (or none are configured), 0 when down', type: 'gauge', read: (r, p) => p('', r.health.alive ? 1 : 0) },
  { name: 'fulcrum_real_server_last_transition_timestamp_seconds', help: 'When the real server last went in or out of rotation', type: 'gauge', read: (r, p) => { if (r.health.since > 0) p('', r.health.since / 1000); } },
  { name: 'fulcrum_real_server_health_transitions_total', help: 'Times the real server went in or out of rotation', type: 'counter', read: (r, p) => p('', r.health.transitions) },
  { name: 'fulcrum_real_server_agent_load', help: "The server agent's last load reading (-1..100)", type: 'gauge', read: (r, p) => { if (r.agent?.load !== undefined) p('', r.agent.load); } },
];

/** A label value as Prometheus' text format (and prom-client) escape it. */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A sample value as prom-client prints it. */
function num(v: number): string {
  if (Number.isNaN(v)) return 'Nan';
  if (!Number.isFinite(v)) return v < 0 ? '-Inf' : '+Inf';
  return `${v}`;
}

/**
 * The per-service and per-real-server families, written straight to text: at 1,000 real
 * servers they are ~25,000 samples, which prom-client would rebuild as labelled objects
 * (hash each label set, reset, set, serialize) on every scrape. Same names, help, types,
 * label order and value format as prom-client; counters never go below 0.
 */
export function serviceFamilies(view: StatusView, out: ByteWriter): void {
  const services = view.services;
  const svcLabels = services.map((s) => `{service="${escapeLabel(s.key)}"`);
  const servers = services.flatMap((s) => s.servers);
  const serverLabels = services.flatMap((s, i) => s.servers.map((r) => `${svcLabels[i] ?? ''},server="${escapeLabel(r.key)}"`));
  let first = true;
  const family = <T>(f: Family<T>, items: readonly T[], labels: readonly string[]): void => {
    out.write(`${first ? '' : '\n'}# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`);
    first = false;
    const counter = f.type === 'counter';
    for (let i = 0; i < items.length; i++) {
      const head = `${f.name}${labels[i] ?? ''}`;
      f.read(items[i] as T, (extra, value) => { out.write(`${head}${extra}} ${num(counter && value < 0 ? 0 : value)}\n`); });
    }
  };
  for (const f of SERVICE_FAMILIES) family(f, services, svcLabels);
  for (const f of SERVER_FAMILIES) family(f, servers, serverLabels);
}
