import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fifoRs, fifoVs, ScriptAndMailNotifier } from './notifier.js';
import type { GlobalDefs, RealServer } from '../model/types.js';
import type { NotifyFifo } from '../sys/fifo.js';

test('lvs_notify_fifo / notify_fifo: keepalived\'s VS and RS lines, at once and in order, in each FIFO; one that cannot open is skipped', () => {
  assert.equal(fifoVs('tcp 192.168.201.15:80'), '[192.168.201.15]:tcp:80');
  assert.equal(fifoVs('udp [2001:db8::1]:53'), '[2001:db8::1]:udp:53');
  assert.equal(fifoVs('fwmark 8 inet'), 'FWM 8');
  assert.equal(fifoRs('udp 10.0.0.1:53', '10.0.0.2', 5353), '[10.0.0.2]:udp:5353');
  const written = new Map<string, string[]>();
  const open = (p: string): NotifyFifo => {
    if (p === '/run/broken') throw new Error('EACCES');
    const lines: string[] = [];
    written.set(p, lines);
    return { path: p, dropped: 0, write: (l) => { lines.push(l); return true; }, close: () => undefined };
  };
  const n = new ScriptAndMailNotifier(() => null, () => undefined, 1000, open);
  const g = { notifyFifo: '/run/all', lvsNotifyFifo: '/run/lvs' } as unknown as GlobalDefs;
  const rs = { address: '1.2.3.4', port: 80, smtpAlert: false } as unknown as RealServer;
  n.serverChanged({ service: 'tcp 192.168.201.15:80', server: '1.2.3.4:80', up: false, reason: 'x' }, rs, g);
  n.quorumChanged({ service: 'tcp 192.168.201.15:80', up: false }, g);
  n.serverChanged({ service: 'tcp 192.168.201.15:80', server: '1.2.3.4:80', up: true, reason: 'x' }, rs, g);
  const want = ['RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN', 'VS [192.168.201.15]:tcp:80 DOWN', 'RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 UP'];
  assert.deepEqual(written.get('/run/all'), want);
  assert.deepEqual(written.get('/run/lvs'), want);
  const broken = new ScriptAndMailNotifier(() => null, () => undefined, 1000, open);
  broken.serverChanged({ service: 'tcp 192.168.201.15:80', server: '1.2.3.4:80', up: false, reason: 'x' }, rs, { lvsNotifyFifo: '/run/broken' } as unknown as GlobalDefs);
});
