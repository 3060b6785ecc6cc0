/**
 * The live dashboard: polls the daemon's /ui/state once a second and renders what is down
 * and why first, then every virtual service with its real servers (health, weight, agent
 * load, connections, a traffic sparkline), VRRP, and the event timeline. Charts plot the
 * daemon's own traffic history (/ui/history: the last 30 minutes survive a page reload).
 * With the API token — never without — each real server can be drained, undrained or
 * re-weighted, after a confirmation, through exactly the API requests `fulcrum adm` makes
 * (POST/DELETE /v1/drains, POST /v1/ipvsadm with the `-e` line); the daemon's timeline
 * shows each change and who made it.
 */
import type { HistorySeries, HistoryView, ServerView, ServiceView, StatusView, TimelineEvent } from '../../src/api/index.js';
import './style.css';

interface UiState {
  readonly status: StatusView;
  readonly events: readonly TimelineEvent[];
}

const HISTORY = 60;
const history = new Map<string, number[]>();
const events: TimelineEvent[] = [];
let lastEventId = 0;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Record<string, string> = {}, ...children: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  for (const c of children) e.append(c);
  return e;
}

function byId(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`#${id} missing`);
  return e;
}

function fmtBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v >= 100 || i === 0 ? Math.round(v) : v.toFixed(1)} ${units[i] ?? 'B'}`;
}

function ago(ms: number, now: number): string {
  if (ms <= 0) return 'since start';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m ago`;
}

function sparkline(values: readonly number[]): SVGSVGElement {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${HISTORY} 20`);
  svg.setAttribute('class', 'spark');
  svg.setAttribute('preserveAspectRatio', 'none');
  const max = Math.max(1, ...values);
  const pts = values.map((v, i) => `${HISTORY - values.length + i},${(20 - (v / max) * 18 - 1).toFixed(1)}`).join(' ');
  const base = document.createElementNS(ns, 'line');
  base.setAttribute('class', 'base');
  for (const [k, v] of Object.entries({ x1: '0', y1: '19', x2: String(HISTORY), y2: '19' })) base.setAttribute(k, v);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', values.length > 1 ? pts : '');
  svg.append(base, line);
  return svg;
}

function record(key: string, value: number): number[] {
  const h = history.get(key) ?? [];
  h.push(value);
  if (h.length > HISTORY) h.shift();
  history.set(key, h);
  return h;
}

const STATE_LABEL: Record<ServerView['state'], string> = { up: 'UP', down: 'DOWN', drain: 'DRAIN', quiescent: 'WEIGHT 0', pending: 'PENDING' };

function evidence(r: ServerView): string {
  const failing = r.health.checkers.filter((c) => !c.up);
  const c = failing[0];
  if (!c) return r.health.reason;
  return `${c.type}: ${c.detail ?? c.code ?? 'failed'}${c.status !== undefined ? ` (status ${c.status})` : ''}, ${c.latencyMs} ms`;
}

// --- Traffic history (from the daemon) and charts -----------------------------------

const WINDOW = 360;
const hist: { at: number[]; series: Map<string, { cps: (number | null)[]; bps: (number | null)[]; active: (number | null)[] }> } = { at: [], series: new Map() };

/** Append what the daemon sampled since the last fetch; keep the window. */
function mergeHistory(v: HistoryView): void {
  if (v.at.length === 0) return;
  const before = hist.at.length;
  hist.at.push(...v.at);
  const pad = (n: number): null[] => new Array<null>(n).fill(null);
  for (const [key, s] of Object.entries(v.series) as [string, HistorySeries][]) {
    const cur = hist.series.get(key) ?? { cps: pad(before), bps: pad(before), active: pad(before) };
    cur.cps.push(...s.cps);
    cur.bps.push(...s.bps);
    cur.active.push(...s.active);
    hist.series.set(key, cur);
  }
  for (const [key, cur] of hist.series) {
    if (key in v.series) continue;
    cur.cps.push(...pad(v.at.length));
    cur.bps.push(...pad(v.at.length));
    cur.active.push(...pad(v.at.length));
  }
  const drop = hist.at.length - WINDOW;
  if (drop > 0) {
    hist.at.splice(0, drop);
    for (const cur of hist.series.values()) {
      cur.cps.splice(0, drop);
      cur.bps.splice(0, drop);
      cur.active.splice(0, drop);
    }
  }
}

const COLORS = ['#2f5fd0', '#1a7f37', '#b26a00', '#8e24aa', '#c62828', '#00838f', '#5d4037', '#546e7a'];

function fmtNum(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}G`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}k`;
  return n >= 10 || n === 0 ? String(Math.round(n)) : n.toFixed(1);
}

/** A line chart with axes: time along x (sample times), `fmt` on y, one polyline per line. */
function chart(title: string, lines: readonly { label: string; values: readonly (number | null)[] }[], fmt: (n: number) => string): HTMLElement {
  const ns = 'http://www.w3.org/2000/svg';
  const W = 420;
  const H = 130;
  const L = 48;
  const B = 18;
  const T = 6;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('class', 'chart');
  const n = hist.at.length;
  const max = Math.max(1e-9, ...lines.flatMap((l) => l.values.filter((v): v is number => v !== null)));
  const x = (i: number): number => L + (n <= 1 ? 0 : (i / (n - 1)) * (W - L - 4));
  const y = (v: number): number => T + (1 - v / max) * (H - T - B);
  const add = (tag: string, attrs: Record<string, string>, text?: string): void => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    svg.append(e);
  };
  for (const f of [0, 0.5, 1]) {
    add('line', { class: 'grid', x1: String(L), x2: String(W - 4), y1: String(y(max * f)), y2: String(y(max * f)) });
    add('text', { class: 'ylabel', x: String(L - 4), y: String(y(max * f) + 3), 'text-anchor': 'end' }, max < 1e-6 ? '0' : fmt(max * f));
  }
  if (n > 0) {
    const t = (i: number): string => new Date(hist.at[i] ?? 0).toLocaleTimeString();
    add('text', { class: 'xlabel', x: String(L), y: String(H - 4), 'text-anchor': 'start' }, t(0));
    add('text', { class: 'xlabel', x: String(W - 4), y: String(H - 4), 'text-anchor': 'end' }, t(n - 1));
  }
  lines.forEach((l, k) => {
    // A gap (null: not in the table then) breaks the line.
    const segs: string[][] = [[]];
    l.values.forEach((v, i) => {
      if (v === null) segs.push([]);
      else segs[segs.length - 1]?.push(`${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    });
    for (const seg of segs) if (seg.length > 0) add('polyline', { points: seg.length === 1 ? `${seg[0]} ${seg[0]}` : seg.join(' '), stroke: COLORS[k % COLORS.length] ?? '#000', 'data-series': l.label });
  });
  return el('figure', { class: 'chart-box', 'data-chart': title },
    el('figcaption', {}, title, n > 0 ? el('span', { class: 'muted' }, ` · last ${span(((hist.at[n - 1] ?? 0) - (hist.at[0] ?? 0)) / 1000)}`) : ''),
    svg,
    el('div', { class: 'legend' }, ...lines.map((l, k) => el('span', {}, el('i', { style: `background:${COLORS[k % COLORS.length] ?? '#000'}` }), l.label))));
}

function span(seconds: number): string {
  return seconds < 90 ? `${Math.round(seconds)} s` : `${Math.round(seconds / 60)} min`;
}

function charts(svc: ServiceView): HTMLElement {
  const s = hist.series.get(svc.key);
  const bps = (v: number): string => `${fmtBytes(v)}/s`;
  return el('div', { class: 'charts' },
    chart('New connections/s', [{ label: svc.key, values: s?.cps ?? [] }], fmtNum),
    chart('Throughput per real server', svc.servers.map((r) => ({ label: r.key, values: hist.series.get(`${svc.key}|${r.key}`)?.bps ?? [] })), bps),
    chart('Active connections per real server', svc.servers.map((r) => ({ label: r.key, values: hist.series.get(`${svc.key}|${r.key}`)?.active ?? [] })), fmtNum));
}

// --- Actions (with the token only) -------------------------------------------------

/** The `-t/-u/-f` selector of a service key, as fulcrum adm writes it; null for a group. */
function selector(key: string): string | null {
  const m = /^(tcp|udp|sctp) (\S+)$/.exec(key);
  if (m) return `${m[1] === 'tcp' ? '-t' : m[1] === 'udp' ? '-u' : '--sctp-service'} ${m[2] ?? ''}`;
  const f = /^fwmark (\d+) (inet6?)$/.exec(key);
  if (f) return `-f ${f[1] ?? ''}${f[2] === 'inet6' ? ' -6' : ''}`;
  return null;
}
const METHOD: Record<string, string> = { proxy: '--proxy', nat: '-m', dr: '-g', tun: '-i' };

interface Action { readonly what: string; readonly run: (weight: number) => Promise<Response>; readonly weight?: number }
let pending: Action | null = null;

function api(method: string, path: string, body: unknown): Promise<Response> {
  const token = sessionStorage.getItem(TOKEN_KEY) ?? '';
  return fetch(path, { method, cache: 'no-store', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

function ask(a: Action): void {
  pending = a;
  byId('action-text').textContent = a.what;
  const w = byId('action-weight-label');
  w.hidden = a.weight === undefined;
  if (a.weight !== undefined) (byId('action-weight') as HTMLInputElement).value = String(a.weight);
  byId('action').hidden = false;
}

function setupActions(): void {
  byId('action-cancel').addEventListener('click', () => {
    pending = null;
    byId('action').hidden = true;
  });
  byId('action-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const a = pending;
    pending = null;
    byId('action').hidden = true;
    if (!a) return;
    const weight = Number((byId('action-weight') as HTMLInputElement).value);
    const result = byId('action-result');
    if (a.weight !== undefined && !(Number.isInteger(weight) && weight >= 0)) {
      result.className = 'bad';
      result.textContent = `${a.what} — not sent: the weight must be a whole number, 0 or more`;
      return;
    }
    result.className = '';
    result.textContent = `${a.what} — sent…`;
    a.run(weight).then(async (r) => {
      const body = await r.json().catch(() => ({})) as { error?: { message?: string } };
      result.className = r.ok ? 'ok' : 'bad';
      result.textContent = r.ok ? `${a.what} — done` : `${a.what} — refused: ${body.error?.message ?? `HTTP ${r.status}`}`;
    }, (err: unknown) => {
      result.className = 'bad';
      result.textContent = `${a.what} — failed: ${err instanceof Error ? err.message : String(err)}`;
    });
  });
}

function actionCell(svc: ServiceView, r: ServerView): HTMLTableCellElement {
  const sel = selector(svc.key);
  if (!sessionStorage.getItem(TOKEN_KEY) || sel === null || r.sorry) return el('td', { class: 'actions' });
  const b = (label: string, act: string, a: Action): HTMLButtonElement => {
    const e = el('button', { type: 'button', 'data-action': act }, label);
    e.addEventListener('click', () => ask(a));
    return e;
  };
  const body = { server: r.key, service: svc.key };
  return el('td', { class: 'actions' },
    r.draining
      ? b('Undrain', 'undrain', { what: `Undrain ${r.key} in ${svc.key}: cancel its drain and restore its weight`, run: () => api('DELETE', 'v1/drains', body) })
      : b('Drain', 'drain', { what: `Drain ${r.key} in ${svc.key}: weight 0 now, removed once its connections end (10 min at most)`, run: () => api('POST', 'v1/drains', { ...body, deadline: 600 }) }),
    b('Weight…', 'weight', {
      what: `Set the weight of ${r.key} in ${svc.key}`, weight: r.weight ?? r.configuredWeight,
      run: (w) => api('POST', 'v1/ipvsadm', { commands: [`-e ${sel} -r ${r.key} ${METHOD[r.method] ?? '-g'} -w ${w}`] }),
    }));
}

function serverRow(svc: ServiceView, r: ServerView, now: number): HTMLTableRowElement {
  const h = record(`${svc.key}|${r.key}`, r.rates.inBps + r.rates.outBps);
  const weight = r.weight === null ? '–' : r.weight === r.configuredWeight ? String(r.weight) : `${r.weight} (of ${r.configuredWeight})`;
  const load = r.agent ? (r.agent.load !== undefined ? `${r.agent.load}%` : 'no reply') : '';
  return el('tr', { class: `server ${r.state}`, 'data-server': r.key },
    el('td', {}, el('span', { class: `badge ${r.state}` }, STATE_LABEL[r.state])),
    el('td', { class: 'addr' }, r.key, r.sorry ? el('span', { class: 'tag' }, 'sorry') : ''),
    el('td', { class: 'num' }, weight),
    el('td', { class: 'num' }, load),
    el('td', { class: 'num' }, `${r.active} / ${r.inactive}`),
    el('td', { class: 'traffic' }, sparkline(h), el('span', { class: 'rate' }, `${fmtBytes(r.rates.inBps + r.rates.outBps)}/s`)),
    el('td', { class: 'why' }, r.state === 'down' ? `${evidence(r)} — ${ago(r.health.since, now)}`
      : r.draining ? `draining, removed at the latest ${new Date(r.draining.deadline).toLocaleTimeString()}`
        : r.health.checks.length > 0 ? `${r.health.checks.join(', ')} ok` : 'no health checks'),
    actionCell(svc, r),
  );
}

function serviceCard(svc: ServiceView, now: number): HTMLElement {
  const up = svc.servers.filter((r) => r.state === 'up').length;
  const h = record(svc.key, svc.rates.cps);
  const persist = svc.persistence ? ` · persistent ${svc.persistence.timeout}s` : '';
  return el('article', { class: `service ${svc.active ? '' : 'inactive'}`, 'data-service': svc.key },
    el('h3', {}, svc.key, el('span', { class: 'meta' }, `${svc.scheduler}${persist} · ${svc.method} · ${up}/${svc.servers.length} up`)),
    el('div', { class: 'totals' },
      `${svc.counters.conns} connections · ${svc.rates.cps}/s `, sparkline(h),
      ` · in ${fmtBytes(svc.counters.inBytes)} out ${fmtBytes(svc.counters.outBytes)}`,
      svc.dropped > 0 ? ` · ${svc.dropped} dropped` : ''),
    el('table', {},
      el('thead', {}, el('tr', {}, ...['State', 'Real server', 'Weight', 'Agent load', 'Active / inactive', 'Traffic', 'Health', ''].map((t) => el('th', {}, t)))),
      el('tbody', {}, ...svc.servers.map((r) => serverRow(svc, r, now)))),
    charts(svc),
  );
}

function render(s: UiState): void {
  const st = s.status;
  const now = st.at;
  for (const e of s.events) {
    events.push(e);
    lastEventId = Math.max(lastEventId, e.id);
  }
  if (events.length > 300) events.splice(0, events.length - 300);
  const servers = st.services.flatMap((v) => v.servers.map((r) => ({ v, r })));
  const down = servers.filter((x) => x.r.state === 'down');
  byId('summary').replaceChildren(
    `${st.services.length} virtual service(s) · ${servers.length - down.length}/${servers.length} real servers up · ${st.plane} data plane`,
    st.runtime.changes > 0 ? ` · ${st.runtime.changes} runtime change(s)` : '',
    st.reloads.lastFailedAt > st.reloads.lastOkAt ? el('span', { class: 'bad' }, ' · last reload rejected') : '',
  );
  byId('alerts').replaceChildren(...(down.length === 0
    ? [el('p', { class: 'allgood' }, 'All real servers are up.')]
    : [el('h2', {}, `${down.length} real server(s) down`), el('ul', {}, ...down.map(({ v, r }) =>
      el('li', { class: 'down' }, el('strong', {}, r.key), ` in ${v.key}: ${evidence(r)} (${ago(r.health.since, now)})`)))]));
  byId('services').replaceChildren(...st.services.map((v) => serviceCard(v, now)));
  byId('vrrp').replaceChildren(st.vrrp.length === 0
    ? el('p', { class: 'muted' }, 'No VRRP instance configured.')
    : el('ul', {}, ...st.vrrp.map((v) => el('li', { class: `vrrp ${v.state.toLowerCase()}` },
      el('span', { class: `badge ${v.state === 'MASTER' ? 'up' : v.state === 'FAULT' ? 'down' : 'drain'}` }, v.state), ' ',
      el('strong', {}, v.name),
      ` VRID ${v.vrid} on ${v.interface ?? 'unicast'} · v${v.version} · priority ${v.priority}${v.priority !== v.basePriority ? ` (configured ${v.basePriority})` : ''}`,
      ` · ${v.addresses.join(', ')}`,
      v.state === 'MASTER' ? ' · holds the addresses' : v.master ? ` · master ${v.master}` : '',
      ` · since ${ago(v.since, now)}${v.reason ? ` (${v.reason})` : ''}`,
      v.faults.length > 0 ? el('span', { class: 'bad' }, ` · ${v.faults.join('; ')}`) : '',
      Object.keys(v.drops).length > 0 ? el('span', { class: 'muted' }, ` · dropped ${Object.entries(v.drops).map(([r, n]) => `${n} ${r}`).join(', ')}`) : ''))));
  const sy = st.sync;
  const refused = Object.entries(sy.refused);
  byId('sync').replaceChildren(sy.config === null
    ? el('p', { class: 'muted' }, 'No lvs_sync_daemon.')
    : el('p', { class: 'sync' },
      el('span', { class: `badge ${sy.role === 'stopped' ? 'down' : sy.role === 'backup' ? 'drain' : 'up'}` }, sy.role), ' ',
      `${sy.config.interface} → ${sy.config.group}:${sy.config.port} · syncid ${sy.config.syncid}${sy.config.instance ? ` · follows ${sy.config.instance}` : ''}`,
      ` · sent ${sy.sent.entries} entries in ${sy.sent.messages} messages${sy.sent.errors ? ` (${sy.sent.errors} errors)` : ''}`,
      ` · received ${sy.received.entries}${sy.received.peer ? ` from ${sy.received.peer}` : ''}, installed ${sy.installed}`,
      sy.lag.send !== null ? ` · send lag ${(sy.lag.send * 1000).toFixed(0)} ms` : '',
      sy.lag.install !== null ? ` · install lag ${(sy.lag.install * 1000).toFixed(0)} ms` : '',
      refused.length > 0 ? el('span', { class: 'bad' }, ` · refused ${refused.map(([r, n]) => `${n} ${r}`).join(', ')}`) : ''));
  const bgp = st.bgp;
  byId('bgp').replaceChildren(...(!bgp.enabled
    ? [el('p', { class: 'muted' }, 'No fulcrum_bgp.')]
    : [
      el('p', { class: 'bgp' },
        el('span', { class: `badge ${bgp.speaker?.up === true ? 'up' : 'down'}` }, bgp.speaker?.up === true ? 'speaker up' : 'speaker down'), ' ',
        `${bgp.speaker?.name ?? 'starting'} · AS ${bgp.speaker?.localAs ?? '?'} · router id ${bgp.speaker?.routerId ?? '?'}`,
        bgp.speaker?.error ? el('span', { class: 'bad' }, ` · ${bgp.speaker.error}`) : ''),
      ...bgp.sessions.map((s) => el('p', { class: 'bgp-session' },
        el('span', { class: `badge ${s.state === 'established' ? 'up' : 'down'}` }, s.state), ' ',
        `neighbor ${s.neighbor} AS ${s.remoteAs}${s.upSince !== null ? ` · up ${ago(s.upSince, now)}` : ''}`)),
      ...bgp.routes.map((r) => el('p', { class: 'bgp-route' },
        el('span', { class: `badge ${r.announced ? 'up' : 'down'}` }, r.announced ? 'announced' : 'withdrawn'), ' ',
        el('strong', {}, r.prefix), ` · ${r.reason}${r.since ? ` · since ${ago(r.since, now)}` : ''}`)),
    ]));
  byId('events').replaceChildren(...[...events].reverse().slice(0, 100).map((e) =>
    el('li', { class: `ev ${e.severity}`, 'data-kind': e.kind },
      el('time', { datetime: new Date(e.at).toISOString() }, new Date(e.at).toLocaleTimeString()),
      el('span', { class: 'kind' }, e.kind),
      e.service ? el('span', { class: 'where' }, `${e.service}${e.server ? ` → ${e.server}` : ''}`) : '',
      el('span', { class: 'msg' }, e.message))));
}

/**
 * The API token: from the address (`#token=…`, then removed from the address bar) or the
 * tab's session storage; asked for when the director answers 401. Never stored beyond the tab.
 */
const TOKEN_KEY = 'fulcrum-token';
function takeTokenFromHash(): void {
  const m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (!m) return;
  sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1] ?? ''));
  window.history.replaceState(null, '', location.pathname + location.search);
}

function askForToken(message: string): void {
  const box = byId('login');
  box.hidden = false;
  byId('login-reason').textContent = message;
}

function setupLogin(): void {
  byId('login-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = byId('token') as HTMLInputElement;
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    input.value = '';
    byId('login').hidden = true;
  });
}

async function poll(): Promise<void> {
  try {
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
    const h = await fetch(`ui/history?since=${hist.at[hist.at.length - 1] ?? 0}`, { cache: 'no-store', headers });
    if (h.ok) mergeHistory(await h.json() as HistoryView);
    const r = await fetch(`ui/state?since=${lastEventId}`, { cache: 'no-store', headers });
    if (r.status === 401) {
      askForToken(token ? 'The token was refused.' : 'This director needs its API token.');
      document.body.dataset['state'] = 'locked';
      byId('summary').textContent = 'locked: enter the API token';
      setTimeout(() => { poll().catch(() => undefined); }, 1000);
      return;
    }
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    render(await r.json() as UiState);
    document.body.dataset['state'] = 'live';
    // Read-only without the token (an operator may open the dashboard with --api-open).
    byId('readonly').hidden = token !== null && token !== '';
  } catch (err: unknown) {
    byId('summary').textContent = `cannot reach the director: ${err instanceof Error ? err.message : String(err)}`;
    document.body.dataset['state'] = 'offline';
  }
  setTimeout(() => { poll().catch(() => undefined); }, 1000);
}

takeTokenFromHash();
setupLogin();
setupActions();
byId('unlock').addEventListener('click', () => askForToken('Actions need the API token.'));
poll().catch(() => undefined);
