import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openNotifyFifo } from './fifo.js';
import { SysError } from './errors.js';

test('notify FIFO: created when absent, lines in order, never blocks: a full pipe drops and counts; a regular file is refused', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-fifo-'));
  try {
    const p = path.join(dir, 'vrrp_notify_fifo');
    const f = openNotifyFifo(p);
    assert.ok(fs.lstatSync(p).isFIFO());
    assert.equal(fs.lstatSync(p).mode & 0o777, 0o644 & ~process.umask());
    assert.equal(f.write('INSTANCE "VI_1" BACKUP 100'), true, 'no reader needed');
    assert.equal(f.write('INSTANCE "VI_1" MASTER 100'), true);
    const r = fs.openSync(p, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const buf = Buffer.alloc(4096);
    const n = fs.readSync(r, buf);
    assert.equal(buf.subarray(0, n).toString(), 'INSTANCE "VI_1" BACKUP 100\nINSTANCE "VI_1" MASTER 100\n');
    let written = 0;
    for (let i = 0; i < 10_000 && f.write(`INSTANCE "VI_1" MASTER ${i}`); i++) written++;
    assert.ok(written > 100 && written < 10_000, `the pipe filled after ${written} lines`);
    assert.equal(f.dropped, 1);
    fs.closeSync(r);
    f.close();
    assert.equal(f.write('after close'), false);
    const again = openNotifyFifo(p);
    again.close();
    const plain = path.join(dir, 'plain');
    fs.writeFileSync(plain, '');
    assert.throws(() => openNotifyFifo(plain), (err: unknown) => err instanceof SysError && /is not a FIFO/.test(err.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
