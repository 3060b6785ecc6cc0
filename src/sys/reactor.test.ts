import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { EAGAIN, EPOLLHUP, EPOLLIN, FdRegistry, parseSockaddr, Reactor, errnoName } from './reactor.js';
import { sockaddr } from './raw.js';
import { nativePumpMissing } from './native.js';

test('reactor: FdRegistry records descriptors as they are made and closes what is left', () => {
  const r = FdRegistry.allocate(4096);
  r.set(3);
  r.set(31);
  r.set(32);
  r.set(4095);
  r.clear(31);
  assert.deepEqual(r.held(), [3, 32, 4095]);
  // The same bitmap seen through another view (as the control plane sees a worker's).
  assert.deepEqual(new FdRegistry(r.buffer).held(), [3, 32, 4095]);
  // Beyond its size a descriptor is not recorded (never a wrong bit).
  r.set(1 << 20);
  assert.deepEqual(r.held(), [3, 32, 4095]);
});

test('reactor: sockaddrs parse to the addresses Node reports (v4-mapped shown as IPv4)', () => {
  assert.deepEqual(parseSockaddr(sockaddr('inet', '10.1.2.3', 0, 4242)), { family: 'inet', address: '10.1.2.3', port: 4242 });
  assert.deepEqual(parseSockaddr(sockaddr('inet6', '2001:db8::1', 0, 80)), { family: 'inet6', address: '2001:db8::1', port: 80 });
  assert.deepEqual(parseSockaddr(sockaddr('inet6', '::ffff:192.0.2.1', 0, 80)), { family: 'inet6', address: '192.0.2.1', port: 80 });
  assert.equal(parseSockaddr(Buffer.alloc(28)), null);
  assert.equal(errnoName(111), 'ECONNREFUSED');
  assert.equal(errnoName(100000), 'E100000');
});

test('reactor: listen, accept and relay bytes on loopback; the registry holds exactly what is open', async () => {
  const registry = FdRegistry.allocate(1 << 16);
  const reactor = new Reactor(registry);
  const lfd = reactor.listenTcp('inet', '127.0.0.1', 0, false, 16);
  // The port the kernel chose, from /proc (the socket's inode in the TCP table).
  const inode = fs.readlinkSync(`/proc/self/fd/${lfd}`).match(/socket:\[(\d+)\]/)?.[1];
  const line = fs.readFileSync('/proc/self/net/tcp', 'utf8').split('\n').find((l) => l.trim().split(/\s+/)[9] === inode);
  const port = parseInt(line!.trim().split(/\s+/)[1]!.split(':')[1]!, 16);
  assert.ok(registry.held().includes(lfd));
  const got: string[] = [];
  const sa = Buffer.alloc(28);
  const saLen = Buffer.alloc(4);
  const buf = Buffer.alloc(64);
  await new Promise<void>((resolve, reject) => {
    reactor.add(lfd, EPOLLIN, {
      onEvents: () => {
        const fd = reactor.accept(lfd, sa, saLen);
        if (fd < 0) {
          if (-fd !== EAGAIN) reject(new Error(errnoName(-fd)));
          return;
        }
        assert.equal(parseSockaddr(sa)?.address, '127.0.0.1');
        reactor.add(fd, EPOLLIN, {
          onEvents: () => {
            const n = reactor.read(fd, buf, buf.length);
            if (n > 0) {
              got.push(buf.subarray(0, n).toString());
              reactor.write(fd, Buffer.from('pong'), 4);
              reactor.shutdownWrite(fd);
            } else if (n === 0) {
              reactor.close(fd);
              resolve();
            }
          },
        });
      },
    });
    const c = net.connect(port, '127.0.0.1', () => c.write('ping'));
    c.on('data', (d) => got.push(`client:${d.toString()}`));
    c.on('end', () => c.end());
    c.on('error', reject);
  });
  assert.deepEqual(got, ['ping', 'client:pong']);
  assert.equal(reactor.size, 1);
  // Everything made was recorded and everything closed was cleared: what the registry holds
  // is what is open (the control plane closes that after a worker died: workers/plane.test.ts).
  assert.deepEqual(registry.held().length, 2, "the listener and the epoll set");
  reactor.close(lfd);
  reactor.destroy();
  assert.deepEqual(registry.held(), []);
  assert.throws(() => fs.readlinkSync(`/proc/self/fd/${lfd}`), /ENOENT/);
});

/**
 * In a child process (an abort must not take the test runner with it): a worker thread whose
 * reactor handler throws while another descriptor is ready on every turn. The exception must
 * reach the worker's uncaughtException handler (not vanish inside the native callback), and
 * with haltReactors() first the thread ends with its exit code instead of aborting the process.
 */
function crashingWorker(): { status: number | null; out: string } {
  const reactorUrl = new URL('./reactor.js', import.meta.url).href;
  const rawUrl = new URL('./raw.js', import.meta.url).href;
  const worker = `
const { parentPort } = require('node:worker_threads');
const net = require('node:net');
(async () => {
  const { Reactor, haltReactors, EPOLLOUT } = await import(${JSON.stringify(reactorUrl)});
  const { sockaddr } = await import(${JSON.stringify(rawUrl)});
  process.on('uncaughtException', (err) => {
    haltReactors();
    parentPort.postMessage(err instanceof Error ? err.message : String(err));
    process.exit(1);
  });
  const srv = net.createServer(() => undefined).listen(0, '127.0.0.1', () => {
    const r = new Reactor();
    const sa = sockaddr('inet', '127.0.0.1', 0, srv.address().port);
    const busy = r.connectTcp(sa);
    r.add(busy, EPOLLOUT, { onEvents() {} });
    const bad = r.connectTcp(sa);
    r.add(bad, EPOLLOUT, { onEvents() { throw new Error('handler bug'); } });
  });
})();`;
  const main = `
const { Worker } = require('node:worker_threads');
let message = null;
const w = new Worker(${JSON.stringify(worker)}, { eval: true });
w.on('message', (m) => { message = m; });
w.on('exit', (code) => { console.log(JSON.stringify({ code, message })); process.exit(0); });
setTimeout(() => { console.log('no exit'); process.exit(2); }, 10000).unref();`;
  const r = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8', timeout: 20_000 });
  return { status: r.status, out: r.stdout.trim() };
}

test('reactor: a handler that throws is an uncaught exception; a worker that halts its reactors ends cleanly', () => {
  const r = crashingWorker();
  assert.equal(r.status, 0, r.out);
  assert.deepEqual(JSON.parse(r.out), { code: 1, message: 'handler bug' });
});

test('reactor: afterBatch runs once every event of the batch is handled, and at once outside a batch', { timeout: 10_000 }, async () => {
  const reactor = new Reactor();
  const pipes = [reactor.pipe(), reactor.pipe()].map((p) => {
    assert.ok(typeof p !== 'number', 'pipe2');
    return p;
  });
  const order: string[] = [];
  const buf = Buffer.alloc(8);
  try {
    await new Promise<void>((resolve) => {
      pipes.forEach(([r], i) => {
        reactor.add(r, EPOLLIN, {
          onEvents: () => {
            reactor.read(r, buf, buf.length);
            reactor.remove(r);
            order.push(`event ${i}`);
            reactor.afterBatch(() => {
              order.push(`after ${i}`);
              if (order.length === 4) resolve();
            });
          },
        });
      });
      // Both ready before the loop turns: one epoll_wait reports both.
      for (const [, w] of pipes) reactor.write(w, Buffer.from('x'), 1);
    });
    // Both events before either afterBatch (epoll's order of the two is not the point).
    assert.deepEqual(order.slice(0, 2).sort(), ['event 0', 'event 1']);
    assert.deepEqual(order.slice(2).sort(), ['after 0', 'after 1']);
    let ran = false;
    reactor.afterBatch(() => { ran = true; });
    assert.equal(ran, true);
  } finally {
    for (const [r, w] of pipes) reactor.closePipe(r, w);
    reactor.destroy();
  }
});

/** A non-blocking pipe of the reactor's, as [read end, write end]. */
function pipeOf(reactor: Reactor): readonly [number, number] {
  const p = reactor.pipe();
  assert.ok(typeof p !== 'number', `pipe2: ${String(p)}`);
  return p;
}

test('reactor: the native pump is built and loads (npm run build compiles native/pump.c)', () => {
  assert.equal(nativePumpMissing(), '');
  const reactor = new Reactor();
  const plain = new Reactor(null, { native: false });
  try {
    assert.equal(reactor.nativePump, true);
    assert.equal(plain.nativePump, false);
  } finally {
    reactor.destroy();
    plain.destroy();
  }
});

test('reactor: the native pump reads a descriptor marked relayTo, writes it to the peer, and reports both results', { timeout: 10_000 }, async () => {
  const reactor = new Reactor();
  const [aR, aW] = pipeOf(reactor);
  const [bR, bW] = pipeOf(reactor);
  const seen: string[] = [];
  let wake: () => void = () => undefined;
  try {
    reactor.add(aR, EPOLLIN, {
      onEvents: (ev) => {
        seen.push(`events ${ev}`);
        wake();
      },
      onRelayed: (n, w) => {
        seen.push(n > 0 ? `relayed ${n} ${w} ${reactor.buffer.subarray(0, n).toString()}` : `read ${n}`);
        wake();
      },
    });
    reactor.relayTo(aR, bW);
    const next = (): Promise<void> => new Promise((resolve) => { wake = resolve; });
    let p = next();
    reactor.write(aW, Buffer.from('hello'), 5);
    await p;
    assert.deepEqual(seen, ['relayed 5 5 hello']);
    const out = Buffer.alloc(16);
    assert.equal(reactor.read(bR, out, out.length), 5);
    assert.equal(out.subarray(0, 5).toString(), 'hello');
    // A hang-up (a pipe's writer gone: EPOLLHUP) is not EPOLLIN alone: left to the handler.
    p = next();
    reactor.close(aW);
    await p;
    assert.deepEqual(seen, ['relayed 5 5 hello', `events ${EPOLLHUP}`]);
    reactor.remove(aR);
  } finally {
    reactor.close(aR);
    reactor.closePipe(bR, bW);
    reactor.destroy();
  }
});

test('reactor: once the peer does not take a whole read, the pump reads nothing more in that batch (the buffer keeps the bytes)', { timeout: 10_000 }, async () => {
  const reactor = new Reactor();
  const [aR, aW] = pipeOf(reactor);
  const [cR, cW] = pipeOf(reactor);
  const [bR, bW] = pipeOf(reactor);
  // The peer's pipe full: the next write to it fails with EAGAIN.
  const fill = Buffer.alloc(65536, 0x2e);
  for (let i = 0; i < 64 && reactor.write(bW, fill, fill.length) > 0; i++);
  assert.equal(reactor.write(bW, fill, 1), -EAGAIN);
  const seen: string[] = [];
  try {
    await new Promise<void>((resolve) => {
      for (const [fd, name] of [[aR, 'a'], [cR, 'c']] as const) {
        reactor.add(fd, EPOLLIN, {
          onEvents: (ev) => {
            seen.push(`${name} events ${ev}`);
            reactor.remove(fd);
            if (seen.length === 2) resolve();
          },
          onRelayed: (n, w) => {
            // What this read left in the buffer is still there when its handler looks.
            seen.push(`${name} relayed ${n} ${w} ${reactor.buffer.subarray(0, n).toString()}`);
            reactor.remove(fd);
            if (seen.length === 2) resolve();
          },
        });
        reactor.relayTo(fd, bW);
      }
      // Both ready before the loop turns: one batch reports both.
      reactor.write(aW, Buffer.from('a1'), 2);
      reactor.write(cW, Buffer.from('c2'), 2);
    });
    const relayed = seen.filter((s) => s.includes('relayed'));
    assert.equal(relayed.length, 1, seen.join('; '));
    assert.match(relayed[0] ?? '', new RegExp(`^([ac]) relayed 2 ${-EAGAIN} \\1[12]$`));
    assert.equal(seen.filter((s) => s.endsWith(`events ${EPOLLIN}`)).length, 1, seen.join('; '));
  } finally {
    for (const [r, w] of [[aR, aW], [cR, cW], [bR, bW]] as const) reactor.closePipe(r, w);
    reactor.destroy();
  }
});

test('reactor: a closed descriptor is no longer relayed, and neither is the next one given its number', { timeout: 10_000 }, async () => {
  const reactor = new Reactor();
  const [aR, aW] = pipeOf(reactor);
  const [bR, bW] = pipeOf(reactor);
  reactor.relayTo(aR, bW);
  reactor.close(aR);
  // The lowest free number is aR's again.
  const [nR, nW] = pipeOf(reactor);
  assert.equal(nR, aR);
  try {
    const got = await new Promise<string>((resolve) => {
      reactor.add(nR, EPOLLIN, {
        onEvents: () => {
          const buf = Buffer.alloc(8);
          resolve(`events: ${buf.subarray(0, reactor.read(nR, buf, buf.length)).toString()}`);
        },
        onRelayed: (n) => resolve(`relayed ${n}`),
      });
      reactor.write(nW, Buffer.from('new'), 3);
    });
    assert.equal(got, 'events: new');
    assert.equal(reactor.read(bR, Buffer.alloc(8), 8), -EAGAIN, 'nothing was written to the old peer');
    reactor.remove(nR);
  } finally {
    reactor.close(aW);
    reactor.closePipe(nR, nW);
    reactor.closePipe(bR, bW);
    reactor.destroy();
  }
});
