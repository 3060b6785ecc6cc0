import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import { EAGAIN, EPOLLIN, FdRegistry, parseSockaddr, Reactor, errnoName } from './reactor.js';
import { sockaddr } from './raw.js';

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
