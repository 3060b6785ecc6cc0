/**
 * Server agents: the reply grammar of both dialects, the probe against real listeners
 * (good, garbage, empty, absent, slow), the effect on the director's table with and without
 * `require_response`, weight feedback, and `fulcrum agent` answering the director.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { agentEffect, foldAgent, INITIAL_AGENT_STATE, parseAgentReply, type AgentParse } from './reply.js';
import { probeAgent } from './probe.js';
import { AgentServer, formatReply } from './server.js';
import { computeLoad, countEstablished, parseWeights, DEFAULT_LOAD_WEIGHTS, type LoadSample } from './load.js';
import { closedPort, tcpPeer } from '../testing/peers.js';
import { parseKeepalivedText } from '../config/index.js';
import { Director } from '../director/index.js';
import { FakeDataPlane } from '../dataplane/index.js';
import { HealthMonitor } from '../health/index.js';
import { waitFor } from '../testing/net.js';

const effectOf = (raw: string, base = 10, require = false): ReturnType<typeof agentEffect> =>
  agentEffect(foldAgent(INITIAL_AGENT_STATE, parseAgentReply(raw)), base, require);

test('agent replies: Equalizer integers and HAProxy words through one parser, each word recorded', () => {
  assert.deepEqual(effectOf('-1\n'), { alive: false, load: -1, reason: 'agent load -1 (unavailable)' });
  assert.deepEqual(effectOf('0'), { alive: true, load: 0, maxconn: undefined, reason: 'agent load 0' });
  assert.deepEqual(effectOf('50\r\n'), { alive: true, load: 50, maxconn: undefined, reason: 'agent load 50' });
  assert.equal(effectOf('100').load, 100);
  const garbage = parseAgentReply('hello world');
  assert.equal(garbage.ok, false);
  assert.equal((garbage as Extract<AgentParse, { ok: false }>).error, 'no usable word in "hello world"');
  assert.deepEqual(parseAgentReply(''), { ok: false, error: 'empty reply', words: [] });
  assert.equal(parseAgentReply('101').ok, false, 'load outside -1..100');

  assert.deepEqual(effectOf('up 75%'), { alive: true, weight: 8, load: undefined, maxconn: undefined, reason: 'agent weight 75%' });
  assert.deepEqual(effectOf('drain'), { alive: true, weight: 0, load: undefined, maxconn: undefined, reason: 'agent says drain' });
  assert.equal(effectOf('maint').alive, false);
  assert.equal(effectOf('down #disk full').alive, false);
  assert.equal(effectOf('stopped').alive, false);
  assert.deepEqual(effectOf('ready,weight:5 maxconn:30'), { alive: true, weight: 5, load: undefined, maxconn: 30, reason: 'agent weight 5' });
  const p = parseAgentReply('up 50% bogus 20 #note');
  assert.ok(p.ok);
  assert.deepEqual(p.reply.words.map((w) => `${w.word}:${w.ignored ? 'ignored' : 'used'}`), ['up:used', '50%:used', 'bogus:ignored', '20:used']);
  assert.equal(p.reply.comment, 'note');

  // HAProxy states persist until changed; silence changes nothing unless required.
  let s = foldAgent(INITIAL_AGENT_STATE, parseAgentReply('drain'));
  s = foldAgent(s, parseAgentReply('40%'));
  assert.equal(agentEffect(s, 10, false).weight, 0, 'still draining');
  s = foldAgent(s, parseAgentReply('ready'));
  assert.equal(agentEffect(s, 10, false).weight, 4);
  s = foldAgent(s, { ok: false, error: 'connection refused' });
  assert.equal(agentEffect(s, 10, false).alive, true, 'no reply: no change by default');
  assert.deepEqual(agentEffect(s, 10, true), { alive: false, reason: 'no agent response (connection refused)' });
});

test('agent probe against real listeners: values, garbage, empty, absent, slow; the probe string is sent', async () => {
  const got: string[] = [];
  const reply = (text: string): Promise<{ port: number; close: () => Promise<void> }> =>
    tcpPeer((s) => { s.once('data', (d) => got.push(d.toString())); setTimeout(() => s.end(text), 10); });
  const values = await Promise.all(['-1\n', '0\n', '50\n', '100\n', 'not a number\n', ''].map(reply));
  const slow = await tcpPeer((s) => { setTimeout(() => s.end('10\n'), 2000); });
  try {
    const out = [];
    for (const v of values) out.push(await probeAgent({ family: 'inet', address: '127.0.0.1', port: v.port }, 'load?\n', 1000));
    assert.deepEqual(out.map((o) => (o.parse.ok ? o.parse.reply.load : o.parse.error)), [-1, 0, 50, 100, 'no usable word in "not a number"', 'empty reply']);
    assert.deepEqual(got, Array(6).fill('load?\n'));
    const none = await probeAgent({ family: 'inet', address: '127.0.0.1', port: await closedPort() }, undefined, 1000);
    assert.deepEqual(none.parse, { ok: false, error: 'connection refused', words: [] });
    const s = await probeAgent({ family: 'inet', address: '127.0.0.1', port: slow.port }, undefined, 300);
    assert.deepEqual([s.parse.ok, !s.parse.ok && s.parse.error], [false, 'timed out']);
    assert.ok(s.latencyMs < 800);
  } finally {
    await Promise.all([...values, slow].map((v) => v.close()));
  }
});

/** A director on a fake plane whose real servers are probed by a real HealthMonitor. */
async function directorWithAgents(conf: string): Promise<{ plane: FakeDataPlane; monitor: HealthMonitor; weights: () => Record<string, number | undefined>; loads: () => Record<string, number | undefined> }> {
  const r = parseKeepalivedText(conf);
  assert.ok(r.ok, JSON.stringify(r.diagnostics));
  const plane = new FakeDataPlane();
  const director = new Director(plane);
  await director.setConfig(r.config);
  const monitor = new HealthMonitor({ observe: (b) => void director.observeMany(b) });
  monitor.setConfig(r.config);
  const view = <T>(f: (s: { weight: number; agentLoad?: number | undefined }) => T): Record<string, T> => {
    const out: Record<string, T> = {};
    for (const svc of plane.table.services.values()) for (const [k, s] of svc.servers) out[k.replace(/^127\.0\.0\./, '')] = f(s);
    return out;
  };
  return { plane, monitor, weights: () => view((s) => s.weight), loads: () => view((s) => s.agentLoad) };
}

test('agent values in the director: -1 removes, loads feed the agent scheduler, require_response marks silent servers down', async () => {
  const agents = await Promise.all(['20', '-1', '70'].map((v) => tcpPeer((s) => s.end(`${v}\n`), '127.0.0.1')));
  const silent = await closedPort();
  const rs = (n: number, port: number | undefined, extra = ''): string =>
    `  real_server 127.0.0.${n} 80 {\n    fulcrum_agent {\n      connect_ip 127.0.0.1\n      port ${port}\n      interval 1\n${extra}    }\n  }\n`;
  const conf = `virtual_server 127.0.0.1 8080 {\n  lb_algo agent\n  lb_kind PROXY\n${rs(11, agents[0]?.port)}${rs(12, agents[1]?.port)}${rs(13, agents[2]?.port)}${rs(14, silent)}${rs(15, silent, '      require_response\n')}}\n`;
  let d: Awaited<ReturnType<typeof directorWithAgents>> | null = null;
  try {
    d = await directorWithAgents(conf);
    const dd = d;
    const want = { '11:80': 20, '13:80': 70, '14:80': undefined };
    // entries, not objects: JSON.stringify would drop the keys whose value is undefined
    await waitFor(() => JSON.stringify(Object.entries(dd.loads())) === JSON.stringify(Object.entries(want)), 5000, 'agent readings');
    assert.deepEqual(dd.loads(), want, '.12 said -1 (removed); .15 is silent with require_response (removed); .14 is silent (kept)');
  } finally {
    d?.monitor.stop();
    await Promise.all(agents.map((a) => a.close()));
  }
});

test('agent weight feedback and HAProxy words move weights in the director (wrr)', async () => {
  let replies = ['10', 'up 50%', 'drain'];
  const agents = await Promise.all([0, 1, 2].map((i) => tcpPeer((s) => s.end(`${replies[i] ?? ''}\n`))));
  const rs = (i: number): string =>
    `  real_server 127.0.0.${21 + i} 80 {\n    weight 100\n    fulcrum_agent {\n      connect_ip 127.0.0.1\n      port ${agents[i]?.port}\n      interval 1\n    }\n  }\n`;
  const d = await directorWithAgents(`virtual_server 127.0.0.1 8081 {\n  lb_algo wrr\n  lb_kind PROXY\n${[0, 1, 2].map(rs).join('')}}\n`);
  try {
    await waitFor(() => d.weights()['21:80'] === 90 && d.weights()['22:80'] === 50 && d.weights()['23:80'] === 0, 5000, 'weights from agents');
    replies = ['60', 'up 100%', 'ready'];
    await waitFor(() => d.weights()['22:80'] === 100 && d.weights()['23:80'] === 100 && (d.weights()['21:80'] ?? 90) < 90, 5000, 'agents changed their minds');
    // Load 10 → 60 lowers .21's weight, smoothed: 0.3·60 + 0.7·10 = 25 → weight 75 (not 40 at once).
    assert.equal(d.weights()['21:80'], 75);
  } finally {
    d.monitor.stop();
    await Promise.all(agents.map((a) => a.close()));
  }
});

test('fulcrum agent: system load mix, dialects, a slow command never blocks a probe, stale → -1', async () => {
  const s0: LoadSample = { cpuBusy: 100, cpuTotal: 1000, loadavg1: 1, cores: 2, memTotal: 1000, memAvailable: 750, established: 0 };
  const s1: LoadSample = { ...s0, cpuBusy: 500, cpuTotal: 2000, established: 500 };
  assert.deepEqual(computeLoad(s0, s1, DEFAULT_LOAD_WEIGHTS), { load: 41, cpu: 40, loadavg: 50, memory: 25, connections: 50 });
  assert.equal(computeLoad(s0, s1, parseWeights('cpu=1,load=0,memory=0,connections=0')).load, 40);
  assert.throws(() => parseWeights('cpu=x'), /bad weight 'cpu=x'/);
  assert.equal(countEstablished(['  sl  local rem st\n   0: 0100007F:1F90 00000000:0000 0A x\n   1: 0100007F:1F90 0100007F:C350 01 x\n']), 1);
  assert.deepEqual([formatReply('35', 'equalizer'), formatReply('35', 'haproxy'), formatReply(null, 'equalizer'), formatReply(null, 'haproxy'), formatReply('drain', 'haproxy')],
    ['35\n', 'up 65%\n', '-1\n', 'down #stale\n', 'drain\n']);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-agent-'));
  const valueFile = path.join(dir, 'value');
  const cmd = path.join(dir, 'load.sh');
  fs.writeFileSync(valueFile, '42');
  fs.writeFileSync(cmd, `#!/bin/sh\nif [ -e ${dir}/slow ]; then sleep 3; fi\ncat ${valueFile}\n`, { mode: 0o755 });
  const server = new AgentServer({ port: 0, host: '127.0.0.1', dialect: 'equalizer', source: { kind: 'command', argv: [cmd], timeoutMs: 5000 }, intervalMs: 100, staleMs: 600, probeWaitMs: 50 });
  const port = await server.start();
  const target = { family: 'inet' as const, address: '127.0.0.1', port };
  try {
    const first = await probeAgent(target, 'probe-1\n', 1000);
    assert.deepEqual(first.parse.ok && first.parse.reply.load, 42);
    assert.equal(server.lastProbe, 'probe-1', 'the probe string was read');
    fs.writeFileSync(path.join(dir, 'slow'), '');
    fs.writeFileSync(valueFile, '43');
    await new Promise((r) => setTimeout(r, 250));
    const during = await probeAgent(target, undefined, 1000);
    assert.ok(during.latencyMs < 500, `answered at once while the command hangs (${Math.round(during.latencyMs)} ms)`);
    assert.equal(during.parse.ok && during.parse.reply.load, 42, 'last good value');
    await new Promise((r) => setTimeout(r, 700));
    const stale = await probeAgent(target, undefined, 1000);
    assert.equal(stale.parse.ok && stale.parse.reply.load, -1, 'stale → unavailable');
  } finally {
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
