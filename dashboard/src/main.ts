/**
 * The live dashboard: polls the daemon's read-only /ui/state once a second and renders
 * what is down and why first, then every virtual service with its real servers (health,
 * weight, agent load, connections, a traffic sparkline), VRRP, and the event timeline.
 * Traffic history for the sparklines is kept here, from the rates each poll returns.
 */
import type { ServerView, ServiceView, StatusView, TimelineEvent } from '../../src/api/index.js';
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
    el('td', { class: 'why' }, r.state === 'down' ? `${evidence(r)} — ${ago(r.health.since, now)}` : r.health.checks.length > 0 ? `${r.health.checks.join(', ')} ok` : 'no health checks'),
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
      el('thead', {}, el('tr', {}, ...['State', 'Real server', 'Weight', 'Agent load', 'Active / inactive', 'Traffic', 'Health'].map((t) => el('th', {}, t)))),
      el('tbody', {}, ...svc.servers.map((r) => serverRow(svc, r, now)))),
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
    const r = await fetch(`ui/state?since=${lastEventId}`, { cache: 'no-store', headers: token ? { authorization: `Bearer ${token}` } : {} });
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
  } catch (err: unknown) {
    byId('summary').textContent = `cannot reach the director: ${err instanceof Error ? err.message : String(err)}`;
    document.body.dataset['state'] = 'offline';
  }
  setTimeout(() => { poll().catch(() => undefined); }, 1000);
}

takeTokenFromHash();
setupLogin();
poll().catch(() => undefined);
