import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseText } from '../testing/index.js';
import { waitFor } from '../testing/net.js';
import { ensureFifo, openNotifyFifo } from '../sys/fifo.js';
import { FifoScripts, type FifoScriptEvent } from './fifo-scripts.js';

test('notify FIFO readers: started with the FIFO as their last argument, they read what is written; they end when the writers close; a reload without them stops them', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-fifo-script-'));
  try {
    const fifo = path.join(dir, 'events');
    const out = path.join(dir, 'out');
    const reader = path.join(dir, 'reader.sh');
    fs.writeFileSync(reader, `#!/bin/sh\nwhile read line; do echo "$1 $line" >> ${out}; done < "$2"\n`, { mode: 0o755 });
    const g = (script: string): ReturnType<typeof parseText>['config'] => parseText(`global_defs {\n notify_fifo ${fifo}\n notify_fifo_script "${reader} tag"\n ${script}\n}\nvrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.9 }\n}\n`).config;
    const c = g('');
    assert.ok(c);
    assert.equal(c.global.notifyFifoScript?.text, `${reader} tag`);
    const events: FifoScriptEvent[] = [];
    const scripts = new FifoScripts(ensureFifo, (e) => events.push(e));
    scripts.set(c.global);
    scripts.set(c.global); // unchanged: the same reader goes on
    const w = openNotifyFifo(fifo);
    w.write('INSTANCE "VI_1" MASTER 100');
    w.write('INSTANCE "VI_1" BACKUP 100');
    await waitFor(() => fs.existsSync(out) && fs.readFileSync(out, 'utf8').split('\n').length === 3, 5000, 'the reader to see both lines');
    assert.equal(fs.readFileSync(out, 'utf8'), 'tag INSTANCE "VI_1" MASTER 100\ntag INSTANCE "VI_1" BACKUP 100\n');
    w.close();
    await scripts.stop(3000);
    assert.deepEqual(events.map((e) => [e.fifo, e.ok, e.outcome]), [[fifo, true, 'ended: exit 0']], 'it ended by itself at the end of the FIFO');
    // A reader the configuration drops is stopped.
    const again = new FifoScripts(ensureFifo, (e) => events.push(e));
    again.set(c.global);
    const keep = openNotifyFifo(fifo); // a writer that stays: the reader would wait for ever
    const none = parseText('global_defs {\n router_id x\n}\nvrrp_instance VI_1 {\n interface eth0\n virtual_router_id 1\n priority 100\n virtual_ipaddress { 10.0.0.9 }\n}\n').config;
    assert.ok(none);
    again.set(none.global);
    await waitFor(() => events.length === 2, 5000, 'the dropped reader to be stopped');
    assert.equal(events[1]?.outcome, 'stopped');
    keep.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
