import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FAILURE_CHANNEL, FailureCode, type InternalFailure } from '../errors/index.js';
import { createLogger, droppedLogLines } from './logging.js';

test('the daemon\'s logger never waits for a reader that stopped reading: lines queue, past the bound they are dropped and reported', { timeout: 30_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-log-'));
  const fifo = path.join(dir, 'out');
  execFileSync('mkfifo', [fifo]);
  // A pipe nobody reads until the end: its kernel buffer (64 KiB) fills, then writes get EAGAIN.
  const reader = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const writer = fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
  const failures: InternalFailure[] = [];
  const onFailure = (m: unknown): void => { failures.push(m as InternalFailure); };
  subscribe(FAILURE_CHANNEL, onFailure);
  try {
    const log = createLogger('info', writer, { nonBlocking: true, maxBuffer: 256 * 1024 });
    const before = droppedLogLines();
    // ~1 MiB of lines: four times the bound plus the pipe. A blocking logger would sleep in
    // EAGAIN until someone read, and this loop would not end.
    for (let i = 0; i < 4000; i++) log.info({ event: 'test', i, pad: 'x'.repeat(200) }, `line ${i}`);
    const dropped = droppedLogLines() - before;
    assert.ok(dropped > 0, 'lines past the bound are dropped');
    assert.ok(dropped < 4000, 'lines within the bound are kept');
    // The drops are reported once, later, with their count.
    for (let i = 0; i < 50 && failures.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
    const f = failures.find((x) => x.code === FailureCode.LOG_DROPPED);
    assert.ok(f, 'E_LOG_DROPPED reported');
    assert.equal(f.detail?.['lines'], dropped);
    // What was kept arrives whole once the reader reads: complete JSON lines, in order.
    const got: Buffer[] = [];
    const buf = Buffer.alloc(65536);
    let text = '';
    for (let i = 0; i < 200; i++) {
      let n = 0;
      try {
        n = fs.readSync(reader, buf, 0, buf.length, null);
      } catch (err: unknown) {
        if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') throw err;
      }
      if (n > 0) got.push(Buffer.from(buf.subarray(0, n)));
      text = Buffer.concat(got).toString('utf8');
      if (n === 0 && text.endsWith('\n') && text.split('\n').length - 1 >= 4000 - dropped) break;
      if (n === 0) await new Promise((r) => setTimeout(r, 50));
    }
    const lines = text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as { i?: number });
    const mine = lines.filter((l) => typeof l.i === 'number').map((l) => l.i as number);
    assert.equal(mine.length, 4000 - dropped);
    assert.deepEqual(mine, [...mine].sort((a, b) => a - b));
    assert.equal(mine[0], 0);
  } finally {
    unsubscribe(FAILURE_CHANNEL, onFailure);
    fs.closeSync(writer);
    fs.closeSync(reader);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
