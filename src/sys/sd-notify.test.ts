import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadLibc, SOCK_CLOEXEC, SOCK_DGRAM, MSG_DONTWAIT } from './libc.js';
import { FakeServiceManager, notifyMessage, notifySockaddr, systemdNotifier } from './sd-notify.js';
import { SysError } from './errors.js';

test('notifySockaddr: a path is NUL-terminated; @name is abstract with no terminator; anything else is refused', () => {
  const p = notifySockaddr('/run/systemd/notify');
  assert.ok(p);
  assert.equal(p.addr.readUInt16LE(0), 1, 'AF_UNIX');
  assert.equal(p.addr.subarray(2, 2 + 19).toString(), '/run/systemd/notify');
  assert.equal(p.len, 2 + 19 + 1);
  const a = notifySockaddr('@fulcrum/notify');
  assert.ok(a);
  assert.equal(a.addr[2], 0);
  assert.equal(a.addr.subarray(3, 2 + 15).toString(), 'fulcrum/notify');
  assert.equal(a.len, 2 + 15);
  assert.equal(notifySockaddr('relative/path'), null);
  assert.equal(notifySockaddr(''), null);
  assert.equal(notifySockaddr(`/${'x'.repeat(120)}`), null, 'longer than sun_path');
});

test('notifyMessage: KEY=VALUE lines; a newline in a value cannot start another field', () => {
  assert.equal(notifyMessage({ READY: '1', STATUS: 'two\nlines' }), 'READY=1\nSTATUS=two lines');
});

test('systemdNotifier: null without NOTIFY_SOCKET; a malformed value is a SysError', () => {
  assert.equal(systemdNotifier({}), null);
  assert.throws(() => systemdNotifier({ NOTIFY_SOCKET: 'nope' }), SysError);
});

test('systemdNotifier sends one datagram to the socket systemd names (a real AF_UNIX socket)', () => {
  const libc = loadLibc();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-notify-'));
  const sockPath = path.join(dir, 'notify');
  const fd = libc.socket(1, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  assert.ok(fd >= 0);
  try {
    const sa = notifySockaddr(sockPath);
    assert.ok(sa);
    assert.equal(libc.bind(fd, sa.addr, sa.len), 0, `bind errno ${libc.errno()}`);
    const n = systemdNotifier({ NOTIFY_SOCKET: sockPath });
    assert.ok(n);
    n.notify({ READY: '1', STATUS: '1 virtual server(s)' });
    const buf = Buffer.alloc(512);
    const got = libc.recvfrom(fd, buf, buf.length, MSG_DONTWAIT, null, null);
    assert.equal(buf.subarray(0, got).toString(), 'READY=1\nSTATUS=1 virtual server(s)');
    // Nobody listening any more: a SysError, which the daemon reports and carries on.
    fs.rmSync(sockPath);
    assert.throws(() => n.notify({ READY: '1' }), SysError);
  } finally {
    libc.close(fd);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('FakeServiceManager records what it is told, and can refuse', () => {
  const f = new FakeServiceManager();
  f.notify({ RELOADING: '1' });
  assert.deepEqual(f.sent, [{ RELOADING: '1' }]);
  f.fail = true;
  assert.throws(() => f.notify({ READY: '1' }), SysError);
});
