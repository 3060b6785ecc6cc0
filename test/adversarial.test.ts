/**
 * Adversarial clients and servers against `fulcrum run` (child process, loopback):
 * thousands of silent connections, a real server that never reads (back-pressure must
 * bound the proxy's memory), and the figures that show it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startDaemon } from '../src/testing/daemon.js';
import { fetchText, freePort, startServer, waitFor } from '../src/testing/net.js';

const MiB = 1024 * 1024;

function conf(port: number, rsPort: number): string {
  return `virtual_server 127.0.0.1 ${port} {\n lb_algo rr\n lb_kind PROXY\n real_server 127.0.0.1 ${rsPort} {\n }\n}\n`;
}

test('adversarial: 5,000 connections that send nothing — memory per connection is small, others are still served', async (t) => {
  // A deep accept queue: the test process opens clients in bursts while this server accepts.
  const rs = await startServer('rs1', { mode: 'name-echo', backlog: 8192 });
  const port = await freePort();
  const d = await startDaemon(conf(port, rs.port));
  const idle: net.Socket[] = [];
  try {
    const before = d.rss();
    const N = 5000;
    // Open in batches so the accept backlog is never the limit being tested.
    for (let i = 0; i < N; i += 250) {
      await Promise.all(Array.from({ length: Math.min(250, N - i) }, () => new Promise<void>((resolve, reject) => {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.on('error', () => undefined);
        s.once('connect', () => { idle.push(s); resolve(); });
        s.once('error', reject);
      })));
    }
    await waitFor(() => rs.accepted >= N, 20000, 'the proxy to connect every idle client upstream');
    const after = d.rss();
    const perConn = (after - before) / N;
    t.diagnostic(`RSS ${Math.round(before / MiB)} MiB → ${Math.round(after / MiB)} MiB with ${N} idle connections: ${Math.round(perConn)} B per proxied connection`);
    assert.ok(perConn < 24 * 1024, `per-connection memory ${perConn} B is bounded`);
    for (let i = 0; i < 20; i++) assert.equal((await fetchText(port, { payload: '' })).split('\n')[0], 'rs1');
  } finally {
    for (const s of idle) s.destroy();
    await d.cleanup();
    await rs.close();
  }
});

test('adversarial: a real server that accepts and never reads — back-pressure bounds proxy memory', async (t) => {
  const rs = await startServer('sink', { mode: 'sink' });
  const port = await freePort();
  const d = await startDaemon(conf(port, rs.port));
  const clients: net.Socket[] = [];
  try {
    const before = d.rss();
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    const offered: number[] = [];
    // 8 clients each try to push 64 MiB; each write waits for 'drain', as a well-behaved sender would.
    await Promise.all(Array.from({ length: 8 }, (_, i) => new Promise<void>((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1' });
      clients.push(s);
      s.on('error', () => undefined);
      offered[i] = 0;
      const stopAt = Date.now() + 3000;
      const pump = (): void => {
        while (Date.now() < stopAt && offered[i]! < 64 * MiB) {
          offered[i]! += chunk.length;
          if (!s.write(chunk)) {
            s.once('drain', pump);
            return;
          }
        }
        resolve();
      };
      s.once('connect', pump);
      setTimeout(resolve, 3500);
    })));
    const after = d.rss();
    const accepted = offered.reduce((a, b) => a + b, 0);
    t.diagnostic(`clients got ${Math.round(accepted / MiB)} MiB accepted in total before back-pressure stopped them; proxy RSS ${Math.round(before / MiB)} → ${Math.round(after / MiB)} MiB`);
    assert.ok(accepted < 8 * 64 * MiB, 'the senders were held back');
    assert.ok(after - before < 48 * MiB, `proxy memory grew by ${Math.round((after - before) / MiB)} MiB only`);
  } finally {
    for (const s of clients) s.destroy();
    await d.cleanup();
    await rs.close();
  }
});
