import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { Daemon } from '../daemon/index.js';
import { ProxyDataPlane } from '../dataplane/index.js';
import { FileRuntimeStore } from '../runtime/index.js';
import { freePort, openSocket, readLine, startServer, waitFor, type TestServer } from '../testing/net.js';
import { apiRequest, type ApiTarget } from './client.js';
import { createMetrics, startApi, statusView, StatusBoard, type OpenPart, type RunningApi, type StatusView } from './index.js';

const TOKEN = 'test-token-0123456789abcdef';

interface Setup {
  readonly dir: string;
  readonly vport: number;
  readonly rs: TestServer[];
  readonly daemon: Daemon;
  readonly api: RunningApi;
  readonly unix: ApiTarget;
  readonly tcp: ApiTarget;
  readonly conf: string;
  readonly stateFile: string;
  writeConfig(servers: readonly TestServer[]): void;
}

async function withApi(fn: (s: Setup) => Promise<void>, o: { open?: Set<OpenPart>; servers?: number } = {}): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-api-'));
  const rs: TestServer[] = [];
  for (let i = 0; i < (o.servers ?? 3); i++) rs.push(await startServer(`rs${i + 1}`, { mode: 'name-echo' }));
  const vport = await freePort();
  const conf = path.join(dir, 'fulcrum.conf');
  const writeConfig = (servers: readonly TestServer[]): void => {
    fs.writeFileSync(conf, `virtual_server 127.0.0.1 ${vport} {\n  lb_algo rr\n  lb_kind PROXY\n${servers.map((s) => `  real_server 127.0.0.1 ${s.port} { weight 1 }\n`).join('')}}\n`);
  };
  writeConfig(rs.slice(0, 2));
  const stateFile = path.join(dir, 'state', 'runtime.json');
  const plane = new ProxyDataPlane();
  const daemon = new Daemon({ configFile: conf, plane, drainMs: 0, runtime: new FileRuntimeStore(stateFile), drainCheckMs: 50 });
  const board = new StatusBoard().attach();
  let api: RunningApi | null = null;
  try {
    const started = await daemon.start();
    assert.ok(started.ok, started.errors.join('\n'));
    api = await startApi({
      daemon, board, metrics: createMetrics(() => statusView(daemon, board), board, false), socketPath: path.join(dir, 'api.sock'),
      listen: { host: '127.0.0.1', port: 0 }, token: TOKEN, ...(o.open ? { open: o.open } : {}), dashboardDir: null,
    });
    const tcpUrl = `http://127.0.0.1:${api.tcp?.port ?? 0}`;
    await fn({ dir, vport, rs, daemon, api, conf, stateFile, writeConfig, unix: { socketPath: path.join(dir, 'api.sock') }, tcp: { url: tcpUrl, token: TOKEN } });
  } finally {
    await api?.close();
    await daemon.stop();
    board.close();
    await Promise.all(rs.map((s) => s.close()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Which real server a new connection reaches (they all say their name first). */
async function whoAnswers(port: number): Promise<string> {
  const sock = await openSocket(port);
  try {
    return (await readLine(sock)).trim();
  } finally {
    sock.destroy();
  }
}

const names = (v: StatusView): string[][] => v.services.map((s) => s.servers.map((r) => `${r.key}=${r.weight}`));

test('api: the unix socket is 0600; TCP needs the bearer token for /v1, /metrics and /ui/state by default; the static dashboard files are open', () => withApi(async (s) => {
  assert.equal(fs.statSync(path.join(s.dir, 'api.sock')).mode & 0o777, 0o600);
  assert.equal((await apiRequest(s.unix, 'GET', '/v1/status')).status, 200);
  const bare = { url: (s.tcp as { url: string }).url };
  const none = await apiRequest<{ error: { code: string; message: string } }>(bare, 'GET', '/v1/status');
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'E_API_UNAUTHORIZED');
  assert.match(String(none.headers['www-authenticate']), /^Bearer/);
  const wrong = await apiRequest(bare, 'POST', '/v1/ipvsadm', { commands: ['-D -t 127.0.0.1:1'] }, { timeoutMs: 5000 });
  assert.equal(wrong.status, 401, 'a change without the token is refused before anything is parsed');
  assert.equal((await apiRequest({ ...bare, token: 'x'.repeat(TOKEN.length) }, 'GET', '/v1/status')).status, 401);
  assert.equal((await apiRequest(s.tcp, 'GET', '/v1/status')).status, 200);
  assert.equal((await apiRequest(bare, 'GET', '/metrics')).status, 401, '/metrics needs the token by default');
  assert.equal((await apiRequest(bare, 'GET', '/ui/state')).status, 401, 'the dashboard state (topology, timeline) needs it too');
  const m = await apiRequest(s.tcp, 'GET', '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.text, /^fulcrum_real_server_up\{service="tcp 127\.0\.0\.1:\d+",server="127\.0\.0\.1:\d+"\} 1$/m);
  assert.equal((await apiRequest(s.tcp, 'GET', '/ui/state')).status, 200);
}));

test('api: --api-open metrics,dashboard opens /metrics and /ui/state explicitly; /v1 still needs the token', () => withApi(async (s) => {
  const bare = { url: (s.tcp as { url: string }).url };
  assert.equal((await apiRequest(bare, 'GET', '/metrics')).status, 200);
  assert.equal((await apiRequest(bare, 'GET', '/ui/state')).status, 200);
  assert.equal((await apiRequest(bare, 'GET', '/v1/status')).status, 401);
}, { open: new Set(['metrics', 'dashboard']) }));

test('api: malformed JSON, unknown fields and wrong types are 400 with a reason; nothing changes', () => withApi(async (s) => {
  const before = await apiRequest<{ lines: string[] }>(s.unix, 'GET', '/v1/ipvsadm');
  const key = encodeURIComponent(`tcp 127.0.0.1:${s.vport}`);
  const bad = async (method: string, p: string, body: unknown, raw?: string): Promise<string> => {
    const r = await apiRequest<{ error: { code: string; message: string } }>(s.unix, method, p, body, raw !== undefined ? { raw } : {});
    assert.equal(r.status, 400, `${method} ${p} ${raw ?? JSON.stringify(body)}: ${r.text}`);
    assert.equal(r.body.error.code, 'E_API_BAD_REQUEST');
    return r.body.error.message;
  };
  assert.match(await bad('POST', `/v1/services/${key}/servers`, undefined, '{"address": "127.0.0.1", '), /JSON/);
  assert.match(await bad('POST', `/v1/services/${key}/servers`, { address: '127.0.0.1', port: 1, wieght: 3 }), /unknown field 'wieght'/);
  assert.match(await bad('PATCH', `/v1/services/${key}/servers/127.0.0.1:${s.rs[0]?.port}`, { weight: '3' }), /body\.weight: must be integer/);
  assert.match(await bad('POST', '/v1/services', { protocol: 'tcp', address: '127.0.0.1', port: 1, scheduler: 'fast' }), /body\.scheduler: must be equal to one of the allowed values/);
  assert.match(await bad('POST', '/v1/ipvsadm', { commands: ['-A -t 127.0.0.1:1 -s rr', '-a -t 127.0.0.1:1 -r nowhere'] }), /commands:2:\d+: .*nowhere/);
  const after = await apiRequest<{ lines: string[] }>(s.unix, 'GET', '/v1/ipvsadm');
  assert.deepEqual(after.body.lines, before.body.lines);
}));

test('api: a runtime change goes through the reconciler, is written to the state file and survives SIGHUP and a file edit', () => withApi(async (s) => {
  const key = encodeURIComponent(`tcp 127.0.0.1:${s.vport}`);
  const third = s.rs[2] as TestServer;
  const add = await apiRequest<{ ok: boolean; ops: number }>(s.tcp, 'POST', `/v1/services/${key}/servers`, { address: '127.0.0.1', port: third.port, method: 'proxy', weight: 2 });
  assert.equal(add.status, 200, add.text);
  assert.equal(add.body.ops, 1);
  const seen = new Set<string>();
  for (let i = 0; i < 8; i++) seen.add(await whoAnswers(s.vport));
  assert.ok(seen.has('rs3'), `the runtime server takes connections: ${[...seen].join(',')}`);
  const saved = JSON.parse(fs.readFileSync(s.stateFile, 'utf8')) as { servers: { key: string; state: string }[] };
  assert.deepEqual(saved.servers.map((x) => [x.key, x.state]), [[`127.0.0.1:${third.port}`, 'added']]);
  // SIGHUP with the same file, then with an edited one (rs2 → weight 3): the runtime server stays.
  assert.equal((await s.daemon.reload()).ok, true);
  fs.writeFileSync(s.conf, fs.readFileSync(s.conf, 'utf8').replace(`${s.rs[1]?.port} { weight 1 }`, `${s.rs[1]?.port} { weight 3 }`));
  const r = await apiRequest<{ ok: boolean }>(s.unix, 'POST', '/v1/reload');
  assert.equal(r.status, 200, r.text);
  const v = (await apiRequest<StatusView>(s.unix, 'GET', '/v1/status')).body;
  assert.deepEqual(names(v), [[`127.0.0.1:${s.rs[0]?.port}=1`, `127.0.0.1:${s.rs[1]?.port}=3`, `127.0.0.1:${third.port}=2`]]);
  // A restart reads the state file back.
  const again = new Daemon({ configFile: s.conf, plane: new ProxyDataPlane(), drainMs: 0, runtime: new FileRuntimeStore(s.stateFile) });
  await s.daemon.stop();
  try {
    assert.equal((await again.start()).ok, true);
    assert.equal(again.configuration?.virtualServers[0]?.realServers.length, 3);
  } finally {
    await again.stop();
  }
}));

test('api: a refused change is a 409 with ipvsadm\'s message and leaves the table and the state file unchanged', () => withApi(async (s) => {
  const before = (await apiRequest<{ lines: string[] }>(s.unix, 'GET', '/v1/ipvsadm')).body.lines;
  const r = await apiRequest<{ error: { code: string; message: string; index: number } }>(s.unix, 'POST', '/v1/ipvsadm', {
    commands: [`-a -t 127.0.0.1:${s.vport} -r 127.0.0.1:${s.rs[2]?.port} --proxy`, `-a -t 127.0.0.1:${s.vport} -r 127.0.0.1:${s.rs[0]?.port} --proxy`],
  });
  assert.equal(r.status, 409);
  assert.deepEqual([r.body.error.code, r.body.error.message, r.body.error.index], ['E_API_REFUSED', 'Destination already exists', 1]);
  assert.deepEqual((await apiRequest<{ lines: string[] }>(s.unix, 'GET', '/v1/ipvsadm')).body.lines, before, 'all or nothing: the first line did not apply either');
  assert.equal(fs.existsSync(s.stateFile), false);
  const dr = await apiRequest<{ error: { message: string } }>(s.unix, 'POST', '/v1/ipvsadm', { commands: [`-a -t 127.0.0.1:${s.vport} -r 127.0.0.1:9 -g`] });
  assert.equal(dr.status, 409);
  assert.match(dr.body.error.message, /forwarding -g \(the default\) is not available on the proxy data plane/);
  const gone = await apiRequest<{ error: { message: string } }>(s.unix, 'DELETE', `/v1/services/${encodeURIComponent('tcp 127.0.0.1:1')}`);
  assert.deepEqual([gone.status, gone.body.error.message], [404, 'No such service']);
}));

test('api: concurrent changes are serialised: every distinct add lands, and of racing identical adds exactly one wins', () => withApi(async (s) => {
  const key = encodeURIComponent(`tcp 127.0.0.1:${s.vport}`);
  const distinct = Array.from({ length: 20 }, (_, i) => apiRequest(s.unix, 'POST', `/v1/services/${key}/servers`, { address: `127.0.1.${i + 1}`, port: 80, method: 'proxy' }));
  const same = Array.from({ length: 10 }, () => apiRequest<{ error?: { message: string } }>(s.tcp, 'POST', `/v1/services/${key}/servers`, { address: '127.0.2.1', port: 80, method: 'proxy' }));
  const [a, b] = await Promise.all([Promise.all(distinct), Promise.all(same)]);
  assert.deepEqual(a.map((r) => r.status), Array(20).fill(200));
  assert.deepEqual(b.map((r) => r.status).sort(), [200, ...Array(9).fill(409)]);
  for (const r of b) if (r.status === 409) assert.equal(r.body.error?.message, 'Destination already exists');
  const v = (await apiRequest<StatusView>(s.unix, 'GET', '/v1/status')).body;
  assert.equal(v.services[0]?.servers.length, 2 + 20 + 1);
  assert.equal(new FileRuntimeStore(s.stateFile).load().servers.length, 21, 'saved');
}));

test('api: drain sets weight 0, waits for the open connection, then removes the server; forget returns to the file', () => withApi(async (s) => {
  // Pin one long-lived connection to rs1 (rr: the first connection goes to the first server).
  const sock = await openSocket(s.vport);
  const first = (await readLine(sock)).trim();
  const held = s.rs.find((r) => r.name === first) as TestServer;
  const server = `127.0.0.1:${held.port}`;
  const r = await apiRequest<{ ok: boolean; drains: { server: string; active: number }[] }>(s.unix, 'POST', '/v1/drains', { server, deadline: 60 });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.body.drains.map((d) => [d.server, d.active]), [[server, 1]]);
  const weightOf = async (): Promise<number | null | undefined> =>
    (await apiRequest<StatusView>(s.unix, 'GET', '/v1/status')).body.services[0]?.servers.find((x) => x.key === server)?.weight;
  assert.equal(await weightOf(), 0);
  for (let i = 0; i < 4; i++) assert.notEqual(await whoAnswers(s.vport), first, 'no new connection goes to a draining server');
  await new Promise((res) => setTimeout(res, 200));
  assert.equal((await apiRequest<unknown[]>(s.unix, 'GET', '/v1/drains')).body.length, 1, 'still held by the open connection');
  sock.end();
  sock.destroy();
  await waitFor(() => s.daemon.drains().length === 0, 5000, 'the drain to finish');
  assert.equal(await weightOf(), undefined, 'removed');
  // Forgetting runtime changes returns to exactly what the file says.
  const f = await apiRequest(s.unix, 'DELETE', '/v1/runtime');
  assert.equal(f.status, 200, f.text);
  assert.equal(await weightOf(), 1);
  const events = (await apiRequest<{ kind: string; message: string }[]>(s.unix, 'GET', '/v1/events')).body;
  assert.ok(events.some((e) => e.kind === 'drain' && /removed after draining \(idle\)/.test(e.message)), JSON.stringify(events));
}));
